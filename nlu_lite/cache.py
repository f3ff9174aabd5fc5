"""The one cache root, and the primitives every writer into it uses.

Nothing is ever written in place: a file is written next to its target under a
temporary name and renamed over it, so a reader sees the old file, the new file,
or nothing, never half of one. Writers of the same target serialise on a lock.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from filelock import FileLock

ENV_CACHE = "NLU_LITE_CACHE"


def cache_root() -> Path:
    """``$NLU_LITE_CACHE`` or ``~/.cache/nlu_lite`` (``$XDG_CACHE_HOME`` honoured); never a temp folder."""
    env = os.environ.get(ENV_CACHE)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "nlu_lite"


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it over ``target`` on success.

    On any exception the temporary file is removed and ``target`` is untouched.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()


def lock_for(target: str | os.PathLike, timeout: float = -1) -> FileLock:
    """A cross-process lock guarding ``target`` (the lock file sits beside it)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(str(target.parent / f".{target.name}.lock"), timeout=timeout)
