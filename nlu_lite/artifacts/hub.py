"""Model files from the Hugging Face Hub, through huggingface_hub and its own cache.

Files land in huggingface_hub's cache (``HF_HUB_CACHE`` / ``HF_HOME``), shared with
transformers users: a model one of them already fetched is not fetched again.
``HF_ENDPOINT``, ``HF_TOKEN`` and the cache variables are read when a fetch runs, not when
huggingface_hub was imported.

Only the files a model needs are fetched: the registry's ``files``, those of its ``optional``
files the repo has (one it lacks is remembered as absent for that commit, so a cached model
needs no request to learn it again), then the first of its ``weights`` the repo has. Each file
is checked against the Hub's ETag, which is its sha256 for LFS files and its git blob sha1
otherwise; a mismatch removes the file from the cache.
The ETag stays at hand as the blob's name, so every later load checks the files against it
(:mod:`.integrity`); where huggingface_hub stores copies instead of links, the sha256 nlu_lite
computed at download is recorded and used instead.

With no network at all (a name that does not resolve, a refused connection) a fetch fails at
once (``common.check_reachable``); huggingface_hub's own retries stay for cuts and 5xx.

Zero requests when cached: for a revision that is not a commit id (``main``), the commit a
fetch resolved is remembered in ``cache_root()/hub/<repo folder>.json`` and its snapshot is
reused without asking the Hub again. ``nlu-lite download ALIAS`` (``download()``) asks again
and moves to the newest commit.
"""
from __future__ import annotations

import functools
import json
import logging
import os
import re
import sys
from collections.abc import Iterable
from pathlib import Path

from ..cache import atomic_path, cache_root, file_digest, sweep_scratch
from ..errors import ArtifactNotFoundError, DownloadError, IntegrityError, NluLiteError
from ..registry import HubSource
from .common import check_reachable, hf_cache_dir, is_complete, locked
from .integrity import Expected

logger = logging.getLogger(__name__)
COMMIT = re.compile(r"[0-9a-f]{40}")
SHA256 = re.compile(r"[0-9a-f]{64}")


def repo_folder(repo: str) -> str:
    """huggingface_hub's folder name for a model repo."""
    return "models--" + repo.replace("/", "--")


def storage_dir(source: HubSource) -> Path:
    return hf_cache_dir() / repo_folder(source.repo)


def memo_path(repo: str) -> Path:
    """nlu_lite's record of the commits it resolved and the files it fetched for ``repo``."""
    return cache_root() / "hub" / f"{repo_folder(repo)}.json"


def lock_target(source: HubSource) -> Path:
    """What fetching, repairing and recording this repo's files lock."""
    return memo_path(source.repo)


def read_memo(repo: str) -> dict:
    path = memo_path(repo)
    empty = {"repo": repo, "revisions": {}, "files": {}, "absent": {}}
    try:
        memo = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return empty
    except (OSError, ValueError):
        logger.warning("ignoring unreadable %s", path)
        return empty
    if not isinstance(memo, dict):
        logger.warning("ignoring unreadable %s", path)
        return empty
    memo.setdefault("revisions", {})
    memo.setdefault("files", {})
    memo.setdefault("absent", {})
    return memo


def _remember(source: HubSource, revision: str, commit: str, names: list[str], copies: dict[str, str],
              absent: Iterable[str] = ()) -> None:
    """Record the commit ``revision`` resolved to, the files fetched, the sha256 of those stored as copies,
    and the optional files the commit does not have."""
    memo = read_memo(source.repo)
    memo["repo"] = source.repo
    if revision != commit:
        memo["revisions"][revision] = commit
    memo["files"][commit] = sorted(set(memo["files"].get(commit, [])) | set(names))
    gone = (set(memo["absent"].get(commit, [])) | set(absent)) - set(names)
    if gone:
        memo["absent"][commit] = sorted(gone)
    else:
        memo["absent"].pop(commit, None)
    if copies:
        memo.setdefault("sha256", {}).setdefault(commit, {}).update(copies)
    with atomic_path(memo_path(source.repo)) as tmp:
        tmp.write_text(json.dumps(memo, indent=1, sort_keys=True), encoding="utf-8")


def expected_digest(pointer: Path, recorded: str | None = None) -> tuple[str, str] | None:
    """What a snapshot file should hash to: its blob's name (the ETag), else the sha256 recorded at download."""
    if pointer.is_symlink():
        etag = Path(os.readlink(pointer)).name
        if SHA256.fullmatch(etag):
            return ("sha256", etag)
        if COMMIT.fullmatch(etag):
            return ("git-sha1", etag)
    return ("sha256", recorded) if isinstance(recorded, str) else None


def expected_digests(source: HubSource, folder: Path) -> Expected:
    """Digests of the snapshot ``folder``'s files (``1_Pooling/config.json`` too), from the blob names and
    nlu_lite's record (no reading)."""
    recorded = read_memo(source.repo).get("sha256", {}).get(folder.name, {})
    found = {}
    for pointer in folder.rglob("*") if folder.is_dir() else ():
        name = pointer.relative_to(folder).as_posix()
        known = expected_digest(pointer, recorded.get(name))
        if known is not None:
            found[name] = known
    return found


def _commits(source: HubSource) -> list[str]:
    """Commits that may hold the model, no network: the pinned one, or what ``revision`` resolved to."""
    revision = source.revision or "main"
    if COMMIT.fullmatch(revision):
        return [revision]
    found = []
    remembered = read_memo(source.repo)["revisions"].get(revision)
    if remembered:
        found.append(remembered)
    ref = storage_dir(source) / "refs" / revision
    if ref.is_file():
        commit = ref.read_text(encoding="utf-8").strip()
        if commit not in found:
            found.append(commit)
    return found


def cached(source: HubSource) -> Path | None:
    """The snapshot folder holding the model's files, if the cache has them (no network): every file and
    one weights file, and each optional file either there or known to be absent from that commit."""
    snapshots = storage_dir(source) / "snapshots"
    commits = _commits(source)
    absent = read_memo(source.repo)["absent"] if source.optional and commits else {}
    for commit in commits:
        folder = snapshots / commit
        known = set(absent.get(commit, ()))
        if is_complete(folder, source.files, source.weights) and all(
                name in known or (folder / name).is_file() for name in source.optional):
            return folder
    return None


def get(source: HubSource, *, progress: bool, refresh: bool, force: bool = False) -> Path:
    """The snapshot folder, fetched when needed; ``refresh`` asks the Hub what ``revision`` is now;
    ``force`` downloads every file again."""
    memo = lock_target(source)
    with locked(memo, source.repo):
        sweep_scratch(memo.parent.glob(f".{memo.name}.*"), memo, held=True)
        if not refresh and not force:
            folder = cached(source)
            if folder is not None:
                return folder
        return _download(source, progress, force)


def _download(source: HubSource, progress: bool, force: bool = False) -> Path:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import RemoteEntryNotFoundError
    from tqdm.auto import tqdm

    endpoint = (os.environ.get("HF_ENDPOINT") or "").rstrip("/") or None
    revision = source.revision or "main"
    check_reachable(endpoint or "https://huggingface.co", f"{source.repo} from the Hub")
    options = dict(
        cache_dir=hf_cache_dir(), endpoint=endpoint, library_name="nlu_lite", force_download=force,
        tqdm_class=functools.partial(tqdm, disable=not progress),
    )
    commit: str | None = None
    snapshot: Path | None = None
    fetched: list[str] = []
    copies: dict[str, str] = {}

    def one(name: str) -> Path:
        nonlocal commit, snapshot
        path = Path(hf_hub_download(source.repo, name, revision=commit or revision, **options))
        folder = path.parents[len(Path(name).parts) - 1]
        if commit is None:
            commit, snapshot = folder.name, folder
        copy = _verify(path, source, name, commit)
        if copy is not None:
            copies[name] = copy
        fetched.append(name)
        return path

    absent: list[str] = []
    for name in source.files:
        _mapped(one, name, source, endpoint, revision)
    known_absent = set(read_memo(source.repo)["absent"].get(commit, ())) if commit and not force else set()
    for name in source.optional:
        if name in known_absent:  # this commit has been asked already: it has no such file
            absent.append(name)
            continue
        try:
            _mapped(one, name, source, endpoint, revision, missing_ok=RemoteEntryNotFoundError)
        except RemoteEntryNotFoundError:
            logger.debug("%s has no %s (optional)", source.repo, name)
            absent.append(name)
    for name in source.weights:
        try:
            _mapped(one, name, source, endpoint, revision, missing_ok=RemoteEntryNotFoundError)
            break
        except RemoteEntryNotFoundError:
            logger.debug("%s has no %s; trying the next weights file", source.repo, name)
    else:
        if source.weights:
            raise ArtifactNotFoundError(
                f"repo {source.repo} (revision {revision}) has none of the weights files "
                f"{', '.join(source.weights)}. Fix 'weights' in the registry entry."
            )
    assert commit is not None and snapshot is not None
    _remember(source, revision, commit, fetched, copies, absent)
    logger.info("fetched %s from %s at %s", ", ".join(fetched), source.repo, commit)
    return snapshot


def _mapped(call, name: str, source: HubSource, endpoint: str | None, revision: str, missing_ok=()) -> Path:
    """Run ``call(name)``, turning huggingface_hub's and the network's errors into ours."""
    from huggingface_hub import errors as hf

    where = f"{name} from {source.repo} (revision {revision}) at {endpoint or 'https://huggingface.co'}"
    try:
        return call(name)
    except NluLiteError:
        raise
    except missing_ok:
        raise
    except hf.RevisionNotFoundError as exc:
        raise DownloadError(f"repo {source.repo} has no revision {revision!r}. "
                            "Fix 'revision' in the registry entry.") from exc
    except hf.RepositoryNotFoundError as exc:  # also gated repos and 401s
        raise DownloadError(
            f"the Hub at {endpoint or 'https://huggingface.co'} has no repo {source.repo}, or it is private or "
            "gated: check the name, and set HF_TOKEN to a token with access."
        ) from exc
    except hf.RemoteEntryNotFoundError as exc:
        raise ArtifactNotFoundError(f"repo {source.repo} (revision {revision}) has no file {name}. "
                                    "Fix 'files' in the registry entry.") from exc
    except hf.HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else "?"
        raise DownloadError(f"HTTP {status} while fetching {where}. Retry later; if it persists, check "
                            "HF_ENDPOINT and your proxy.") from exc
    except hf.LocalEntryNotFoundError as exc:  # the metadata request failed and the file is not cached
        cause = exc.__cause__ or exc
        raise DownloadError(
            f"could not reach the Hub for {where}: {cause}. Check the network, proxy and firewall, "
            "set HF_ENDPOINT to a mirror, or provide the files another way (see nlu-lite download)."
        ) from exc
    except _network_errors() as exc:
        raise DownloadError(f"fetching {where} failed: {exc!r}. Retry; nothing partial was kept.") from exc


def _network_errors() -> tuple[type[BaseException], ...]:
    """OSError plus the HTTP client errors of whichever client huggingface_hub imported."""
    found: list[type[BaseException]] = [OSError]
    for module, name in (("httpx2", "HTTPError"), ("httpx", "HTTPError"), ("requests", "RequestException")):
        loaded = sys.modules.get(module)
        if loaded is not None and isinstance(getattr(loaded, name, None), type):
            found.append(getattr(loaded, name))
    return tuple(found)


def _verify(pointer: Path, source: HubSource, name: str, commit: str) -> str | None:
    """Check a snapshot file against the Hub's ETag (its blob's name); remove it if it differs.

    Returns the sha256 of a file stored as a copy (symlinks unsupported: the ETag is not at hand
    later), for nlu_lite's record; ``None`` for a link."""
    if not pointer.is_symlink():
        return file_digest(pointer, reread=True)
    blob = pointer.parent / os.readlink(pointer)
    known = expected_digest(pointer)
    if known is None:
        logger.debug("ETag %r of %s is neither a sha256 nor a git sha1; not checked", blob.name, name)
        return None
    algorithm, etag = known
    actual = file_digest(pointer, algorithm, reread=True)  # remembered: the next load need not read it
    if actual == etag:
        return None
    pointer.unlink(missing_ok=True)
    blob.unlink(missing_ok=True)
    raise IntegrityError(
        f"{name} from {source.repo} (commit {commit}) has {algorithm} {actual}, but the Hub announced {etag}; "
        "the corrupted file was removed from the cache. Retry; if it persists, a proxy or mirror "
        "(HF_ENDPOINT) is altering the download."
    )
