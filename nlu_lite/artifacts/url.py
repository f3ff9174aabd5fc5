"""A zip or tar of a model folder at a URL, pinned by its sha256.

The archive is downloaded into a scratch folder inside the cache (resumed with ``Range`` after
a dropped connection, restarted when the server ignores ``Range``), its sha256 checked, its
members checked (see :mod:`.archive`), and only the model's files copied out into
``cache_root()/url/<sha256>/``. The archive itself is not kept.
"""
from __future__ import annotations

import http.client
import json
import logging
import time
import urllib.error
import urllib.request
from pathlib import Path

from ..cache import atomic_path, cache_root, sha256_file
from ..errors import DownloadError, IntegrityError
from ..registry import UrlSource
from .archive import extract_model_files
from .common import is_complete, locked, publish, scratch_dir

logger = logging.getLogger(__name__)
PROVENANCE = ".nlu_lite_source.json"
RETRY_STATUS = (408, 429, 500, 502, 503, 504)


def target_dir(source: UrlSource) -> Path:
    return cache_root() / "url" / source.sha256.lower()


def model_dir(source: UrlSource) -> Path:
    return target_dir(source) / source.path.strip("/")


def cached(source: UrlSource) -> Path | None:
    folder = model_dir(source)
    return folder if is_complete(folder, source.files, source.weights) else None


def get(source: UrlSource, *, progress: bool, refresh: bool) -> Path:
    target = target_dir(source)
    with locked(target, source.url):
        folder = cached(source)
        if folder is not None:
            return folder
        with scratch_dir(target.parent) as tmp:
            archive = tmp / "archive"
            download_file(source.url, archive, sha256=source.sha256, progress=progress)
            staged = tmp / "staged"
            hashes = extract_model_files(
                archive, source.path, source.files, source.weights, staged / source.path.strip("/"),
                what=f"archive from {source.url}",
            )
            with atomic_path(staged / PROVENANCE) as record:
                record.write_text(json.dumps({"kind": "url", "url": source.url, "sha256": source.sha256.lower(),
                                              "path": source.path, "files": hashes}, indent=1), encoding="utf-8")
            publish(staged, target)
    return model_dir(source)


def download_file(
    url: str,
    dest: Path,
    *,
    sha256: str | None = None,
    size: int | None = None,
    progress: bool = True,
    attempts: int = 4,
    timeout: float = 30.0,
) -> Path:
    """GET ``url`` into ``dest``, retrying transient failures; check ``size`` and ``sha256`` when given.

    On any failure ``dest`` is removed: a partial or corrupted file is never left behind.
    """
    from tqdm.auto import tqdm

    written = 0
    total: int | None = None
    bar = None
    try:
        for attempt in range(1, attempts + 1):
            request = urllib.request.Request(url, headers={"User-Agent": "nlu_lite", "Accept-Encoding": "identity"})
            if written:
                request.add_header("Range", f"bytes={written}-")
            try:
                with urllib.request.urlopen(request, timeout=timeout) as response:
                    if written and response.status != 206:  # the server ignored Range: start again
                        logger.info("%s does not resume downloads; starting again", url)
                        written = 0
                        if bar is not None:
                            bar.reset()
                    length = response.headers.get("Content-Length")
                    if total is None and length is not None:
                        total = written + int(length)
                    if bar is None:
                        bar = tqdm(total=total, initial=written, unit="B", unit_scale=True,
                                   desc=url.rsplit("/", 1)[-1][-40:], disable=not progress)
                    with open(dest, "ab" if written else "wb") as out:
                        while block := response.read(1 << 20):
                            out.write(block)
                            written += len(block)
                            bar.update(len(block))
                if total is not None and written < total:
                    raise http.client.IncompleteRead(b"", total - written)
                break
            except urllib.error.HTTPError as error:
                if error.code not in RETRY_STATUS or attempt == attempts:
                    raise DownloadError(
                        f"HTTP {error.code} {error.reason} from {url}. "
                        + ("Check the URL in the registry entry." if error.code in (401, 403, 404, 410)
                           else "The server failed; retry later.")
                    ) from error
                why = f"HTTP {error.code}"
            except (OSError, http.client.HTTPException) as error:  # URLError, timeouts, resets, short reads
                if attempt == attempts:
                    raise DownloadError(
                        f"downloading {url} failed after {attempts} attempts: {error!r}. "
                        "Check the network, proxy (HTTPS_PROXY) and firewall, then retry."
                    ) from error
                why = repr(error)
            wait = 0.5 * 2 ** (attempt - 1)
            logger.warning("%s while downloading %s; retrying in %.1f s (%d/%d)", why, url, wait, attempt, attempts)
            time.sleep(wait)
        if size is not None and written != size:
            raise IntegrityError(f"{url} gave {written} bytes, but the registry expects {size}. Retry; "
                                 "if it persists the URL serves a different file.")
        if sha256 is not None:
            actual = sha256_file(dest)
            if actual != sha256.lower():
                raise IntegrityError(
                    f"{url} gave a file with sha256 {actual}, but the registry expects {sha256}. It was discarded. "
                    "Retry; if it persists the URL (or a proxy) serves a different file: fix the URL or the sha256."
                )
    except BaseException:
        dest.unlink(missing_ok=True)
        raise
    finally:
        if bar is not None:
            bar.close()
    return dest
