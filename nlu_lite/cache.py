"""The one cache root, and the primitives every writer into it uses.

Nothing is ever written in place: a file is written next to its target under a
temporary name and renamed over it, so a reader sees the old file, the new file,
or nothing, never half of one. Writers of the same target serialise on a lock.
Files and folders are created as ``open()``/``mkdir()`` would, so the umask (and a
folder's default ACL) decides who may read them: a cache shared between users works.

Digests (:func:`file_digest`) are what a cached file is checked against. Reading a
100-400 MB file costs 0.1-0.5 s, so a big file's digest is remembered by its identity
(device, inode, size, mtime_ns, ctime_ns): any write through the file system changes
ctime, even when the writer puts mtime back, so a changed file is read again. (Not on
Windows, where ctime is the creation time.) What no identity shows, bytes changed under
the file system (a failing disk), is found by reading in full: ``NLU_LITE_FULL_VERIFY=1``
on every load, or ``nlu-lite cache verify``. Files up to ``FULL_CHECK_BYTES`` are always
read. The memo is an optimisation only: where it cannot be written (a read-only cache)
the digest is kept for this process.

Scratch (``atomic_path``'s temporary files, download and conversion folders) always
sits beside what it becomes, under a lock its writer holds; :func:`sweep_scratch`
removes what a killed process left, never what a live one is writing.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import secrets
import shutil
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from filelock import FileLock, Timeout

from ._env import env_flag

logger = logging.getLogger(__name__)

ENV_CACHE = "NLU_LITE_CACHE"
ENV_FULL_VERIFY = "NLU_LITE_FULL_VERIFY"  # 1: read every file in full on every load, big ones too
FULL_CHECK_BYTES = 16 << 20  # config, tokenizer, vocab, ONNX graph: read in full on every load
STALE_AFTER = 6 * 3600.0  # scratch with no lock to ask, untouched this long, was left by a dead process
SCRATCH_SUFFIX = ".tmp"
SCRATCH_PREFIXES = (".tmp-", ".nlu_lite_int8_", ".nlu_lite_fp32_")  # download folders; int8 conversion folders
DIGESTS = ("sha256", "git-sha1")  # git-sha1: a git blob's id, the Hub's ETag of a non-LFS file

_SEEN: dict[tuple[str, str], tuple[tuple[int, ...], str]] = {}  # (path, algorithm) -> (identity, digest)
_MEMO_WRITE_FAILED: set[str] = set()


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


def git_blob_sha1(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """The git object id of a file (sha1 of ``blob <size>\\0`` + bytes): the Hub's ETag of a non-LFS file."""
    with open(path, "rb") as fh:
        digest = hashlib.sha1(b"blob %d\0" % os.fstat(fh.fileno()).st_size)
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


# --- digests, remembered by file identity -------------------------------------------------


def _identity(stat: os.stat_result) -> tuple[int, ...]:
    return (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)


def _memo_file(memo: Path, path: str, algorithm: str) -> Path:
    return memo / (hashlib.sha256(f"{algorithm}:{path}".encode("utf-8")).hexdigest()[:32] + ".json")


def default_memo() -> Path:
    """Where digests are remembered: ``cache_root()/hashes``."""
    return cache_root() / "hashes"


def file_digest(path: str | os.PathLike, algorithm: str = "sha256", *, memo: Path | None = None,
                reread: bool = False, lookup: bool = False) -> str:
    """The hex digest (``sha256`` or ``git-sha1``) of ``path``'s bytes.

    Read in full when ``reread``, when the file is at most ``FULL_CHECK_BYTES``, or when
    ``NLU_LITE_FULL_VERIFY=1`` (unless ``lookup``: the digest only names a cache entry);
    otherwise taken from the memo (this process's, then ``memo``, default
    ``cache_root()/hashes``) when the file's identity is unchanged since it was last read.
    A digest read in full is remembered (best effort: a read-only memo folder is fine).
    """
    if algorithm not in DIGESTS:
        raise ValueError(f"algorithm={algorithm!r} is not one of {DIGESTS}")
    path = os.path.realpath(path)
    stat = os.stat(path)
    identity = _identity(stat)
    memo = default_memo() if memo is None else Path(memo)
    if not reread and stat.st_size > FULL_CHECK_BYTES and (lookup or not env_flag(ENV_FULL_VERIFY)):
        known = _SEEN.get((path, algorithm))
        if known is not None and known[0] == identity:
            return known[1]
        record = read_json_object(_memo_file(memo, path, algorithm)) or {}
        if record.get("path") == path and record.get("identity") == list(identity) \
                and isinstance(record.get("digest"), str):
            _SEEN[(path, algorithm)] = (identity, record["digest"])
            return record["digest"]
    digest = sha256_file(path) if algorithm == "sha256" else git_blob_sha1(path)
    if _identity(os.stat(path)) == identity:  # unchanged while we read it
        _remember(path, algorithm, identity, digest, memo)
    return digest


def remember_digest(path: str | os.PathLike, digest: str, algorithm: str = "sha256", *,
                    memo: Path | None = None) -> None:
    """Record ``digest`` for ``path`` as it is now, when we know it without reading (we just wrote it)."""
    real = os.path.realpath(path)
    _remember(real, algorithm, _identity(os.stat(real)), digest, default_memo() if memo is None else Path(memo))


def forget_digest(path: str | os.PathLike, algorithm: str = "sha256", *, memo: Path | None = None) -> None:
    """Drop what is remembered about ``path`` (its bytes changed under an unchanged identity)."""
    real = os.path.realpath(path)
    _SEEN.pop((real, algorithm), None)
    with contextlib.suppress(OSError):
        _memo_file(default_memo() if memo is None else Path(memo), real, algorithm).unlink()


def read_json_object(path: str | os.PathLike) -> dict | None:
    """The JSON object in ``path``; ``None`` when the file is missing, unreadable or not an object."""
    try:
        value = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _remember(path: str, algorithm: str, identity: tuple[int, ...], digest: str, memo: Path) -> None:
    _SEEN[(path, algorithm)] = (identity, digest)
    if identity[2] <= FULL_CHECK_BYTES:
        return  # read in full every time anyway
    record = {"path": path, "algorithm": algorithm, "identity": list(identity), "digest": digest}
    try:
        with atomic_path(_memo_file(memo, path, algorithm)) as tmp:
            tmp.write_text(json.dumps(record) + "\n", encoding="utf-8")
    except OSError as exc:  # a read-only cache: the memo is an optimisation, this process keeps it
        if str(memo) not in _MEMO_WRITE_FAILED:
            _MEMO_WRITE_FAILED.add(str(memo))
            logger.info("cannot remember file digests in %s (%s); big files are re-read once per process", memo,
                        exc.strerror or exc)


# --- writing ---------------------------------------------------------------------------


def _new_name(folder: Path, prefix: str, suffix: str) -> Path:
    return folder / f"{prefix}{secrets.token_hex(4)}{suffix}"


def make_scratch_file(folder: Path, prefix: str, suffix: str = SCRATCH_SUFFIX) -> Path:
    """A new empty file in ``folder`` with a random name; its mode follows the umask (mkstemp's is 0600)."""
    for _ in range(100):
        path = _new_name(folder, prefix, suffix)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return path
    raise FileExistsError(errno.EEXIST, f"no free scratch name in {folder}")


def make_scratch_dir(folder: Path, prefix: str) -> Path:
    """A new empty folder in ``folder`` with a random name; its mode follows the umask (mkdtemp's is 0700)."""
    folder.mkdir(parents=True, exist_ok=True)
    for _ in range(100):
        path = _new_name(folder, prefix, "")
        try:
            path.mkdir(0o777)
        except FileExistsError:
            continue
        return path
    raise FileExistsError(errno.EEXIST, f"no free scratch name in {folder}")


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it over ``target`` on success.

    On any exception the temporary file is removed and ``target`` is untouched. The file is
    created with mode ``0o666 & ~umask``, as ``open()`` would.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = make_scratch_file(target.parent, f".{target.name}.")
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


# --- scratch left by killed processes -----------------------------------------------------


def is_scratch(path: Path) -> bool:
    """An ``atomic_path`` temporary file or a scratch folder (never a lock file)."""
    name = path.name
    return (name.startswith(".") and name.endswith(SCRATCH_SUFFIX)) or name.startswith(SCRATCH_PREFIXES)


def _last_touched(path: Path) -> float:
    newest = path.lstat().st_mtime
    if path.is_dir() and not path.is_symlink():
        for sub in path.rglob("*"):
            with contextlib.suppress(OSError):
                newest = max(newest, sub.lstat().st_mtime)
    return newest


def _size(path: Path) -> int:
    if path.is_dir() and not path.is_symlink():
        return sum(p.lstat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())
    return path.lstat().st_size


def _remove(path: Path) -> int:
    try:
        size = _size(path)
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    except FileNotFoundError:
        return 0
    except OSError as exc:  # a read-only cache: leave it
        logger.debug("cannot remove scratch %s: %s", path, exc)
        return 0
    logger.info("removed %s (%.1f MB), left by a process that was killed", path, size / 1e6)
    return size


def sweep_scratch(items: Iterable[Path], lock_target: Path | None = None, *, held: bool = False,
                  stale_after: float = STALE_AFTER) -> int:
    """Remove scratch ``items`` that no live process can still be writing; the bytes freed.

    ``lock_target``: the target whose :func:`lock_for` lock every writer of these items holds
    while they exist. When we hold it (``held``) or can take it at once, the items are what a
    killed writer left. Without a lock to ask, only items untouched for ``stale_after``
    seconds are removed. A read-only cache is left as it is.
    """
    items = [p for p in items if is_scratch(p)]
    if not items:
        return 0
    if lock_target is None:
        now = time.time()
        freed = 0
        for item in items:
            with contextlib.suppress(OSError):
                if now - _last_touched(item) > stale_after:
                    freed += _remove(item)
        return freed
    if held:
        return sum(_remove(item) for item in items)
    lock = lock_for(lock_target)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return 0  # its writer is alive
    except OSError as exc:  # read-only: nothing could be removed anyway
        logger.debug("cannot take %s to sweep scratch: %s", lock.lock_file, exc)
        return 0
    try:
        return sum(_remove(item) for item in items)
    finally:
        lock.release()
