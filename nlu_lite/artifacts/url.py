"""A zip or tar of a model folder at a URL, pinned by its sha256; or one file kept as it is.

The archive is downloaded into a scratch folder inside the cache (resumed with ``Range`` after
a dropped connection, restarted when the server ignores ``Range``), its sha256 checked, its
members checked (see :mod:`.archive`), and only the model's files copied out into
``cache_root()/url/<sha256>/``. The archive itself is not kept. A source with ``unpack: false``
(a vectors table: ``cc.af.300.vec.gz``) keeps the download itself, named ``weights[0]``.

A source without a sha256 (the publisher states none) goes to ``cache_root()/url/u-<hash of the
URL>/``; the download's sha256 is logged and written to the folder's record, which every later
load checks the files against.
"""
from __future__ import annotations

import hashlib
import http.client
import json
import logging
import os
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

from ..cache import atomic_path, cache_root, sha256_file
from ..errors import DownloadError, IntegrityError
from ..registry import UrlSource
from .archive import extract_model_files
from .common import (PROVENANCE, is_complete, locked, provenance_digests, publish, remember_unpacked, scratch_dir,
                     sweep_folder, unreachable_reason)

logger = logging.getLogger(__name__)
RETRY_STATUS = (408, 429, 500, 502, 503, 504)


def target_dir(source: UrlSource) -> Path:
    if source.sha256:
        return cache_root() / "url" / source.sha256.lower()
    key = "\n".join((source.url, source.path, *source.weights, str(source.unpack)))
    return cache_root() / "url" / ("u-" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:32])


def lock_target(source: UrlSource) -> Path:
    """What unpacking and repairing this source's files lock."""
    return target_dir(source)


def model_dir(source: UrlSource) -> Path:
    return target_dir(source) / source.path.strip("/")


def cached(source: UrlSource) -> Path | None:
    folder = model_dir(source)
    return folder if is_complete(folder, source.files, source.weights) else None


def expected_digests(source: UrlSource, folder: Path) -> dict[str, tuple[str, str]] | None:
    """The sha256 of each file, recorded when it was unpacked; ``None`` when the record is gone."""
    return provenance_digests(target_dir(source), folder)


def get(source: UrlSource, *, progress: bool, refresh: bool, force: bool = False) -> Path:
    """The model folder, downloading and unpacking the archive if it is not already unpacked (or ``force``)."""
    target = target_dir(source)
    with locked(target, source.url):
        sweep_folder(target.parent, holding=target)
        folder = cached(source)
        if folder is not None and not force:
            return folder
        with scratch_dir(target) as tmp:
            archive = tmp / "archive"
            download_file(source.url, archive, sha256=source.sha256, progress=progress)
            actual = source.sha256.lower() if source.sha256 else sha256_file(archive)
            if not source.sha256:
                logger.warning("%s: its publisher states no sha256; this download's is %s (recorded: later loads "
                               "check the cached files against it)", source.url, actual)
            staged = tmp / "staged"
            folder = staged / source.path.strip("/")
            if source.unpack:
                hashes = extract_model_files(archive, source.path, source.files, source.weights, folder,
                                             what=f"archive from {source.url}")
            else:  # the file itself: a vectors table
                folder.mkdir(parents=True, exist_ok=True)
                os.replace(archive, folder / source.weights[0])
                hashes = {source.weights[0]: actual}
            earlier = provenance_digests(target, model_dir(source)) or {}  # files an earlier unpacking left
            files = {**{name: digest for name, (_, digest) in earlier.items()}, **hashes}
            with atomic_path(staged / PROVENANCE) as record:
                record.write_text(json.dumps({"kind": "url", "url": source.url, "sha256": actual,
                                              "pinned": bool(source.sha256), "path": source.path, "files": files},
                                             indent=1), encoding="utf-8")
            publish(staged, target)
            remember_unpacked(model_dir(source), hashes)
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

    Cuts, timeouts, resets and 408/429/5xx are retried (with ``Range`` after a cut); a name that does
    not resolve, a refused connection or no route fail at once.

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
                unreachable = unreachable_reason(error)
                if unreachable is not None:  # no network, or a wrong address: retrying cannot help
                    raise DownloadError(
                        f"cannot reach {urlsplit(url).netloc} to download {url}: {unreachable}. Nothing was "
                        "retried: there is no network, or the address is wrong. Check the connection, the URL in "
                        "the registry entry and the proxy (HTTPS_PROXY, NO_PROXY), then retry."
                    ) from error
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
