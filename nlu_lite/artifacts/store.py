"""What the cache holds, how to check it and how to empty it (``nlu-lite cache list|verify|clear [ALIAS]``).

Hub files live in huggingface_hub's cache, which transformers users share: clearing removes
only the snapshot files nlu_lite fetched (as recorded in ``cache_root()/hub/*.json``) and the
blobs no other snapshot file points to; the repo's folder goes too once nothing is left in
its snapshots. Everything else (``pypi/``, ``url/``, ``onnx/``) is nlu_lite's own.

Only models are listed: the digest memo (``hashes/``, ``onnx/hashes/``), lock files and folders
holding nothing else are not. Listing, verifying and clearing first sweep the scratch that
killed downloads and conversions left (:func:`sweep_stale`).
"""
from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..cache import cache_root, is_scratch, read_json_object, sweep_scratch
from ..errors import InputError
from ..registry import HubSource, ModelSpec, PypiSource, Registry, UrlSource, default_registry
from . import hub, integrity, pypi, url
from .common import PROVENANCE, folder_size, hf_cache_dir, provenance_digests, sweep_folder

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CacheEntry:
    """One cached model source or ONNX conversion."""

    kind: str  # "hf", "pypi", "url" or "onnx"
    path: Path
    size_bytes: int
    aliases: tuple[str, ...]  # registry aliases these files serve (empty: none known)
    detail: str  # repo and commits, requirement, URL, or the conversion's key

    @property
    def size_mb(self) -> float:
        return self.size_bytes / 1e6


def _owners(registry: Registry) -> dict[tuple[str, str], tuple[str, ...]]:
    """(kind, key) -> aliases, where key is the repo (hf) or the cache folder (pypi, url)."""
    owners: dict[tuple[str, str], list[str]] = {}
    for spec in registry:
        for source in spec.sources:
            key = _key(source)
            if key is not None and spec.alias not in owners.setdefault(key, []):
                owners[key].append(spec.alias)
    return {k: tuple(v) for k, v in owners.items()}


def _key(source) -> tuple[str, str] | None:
    if isinstance(source, HubSource):
        return ("hf", source.repo)
    if isinstance(source, PypiSource):
        return ("pypi", str(pypi.target_dir(source)))
    if isinstance(source, UrlSource):
        return ("url", str(url.target_dir(source)))
    return None


def _memos() -> Iterator[dict]:
    folder = cache_root() / "hub"
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else ():
        repo = (read_json_object(path) or {}).get("repo")
        if isinstance(repo, str) and repo:
            yield hub.read_memo(repo)


def _hub_files(memo: dict) -> dict[Path, Path]:
    """snapshot file -> the blob it points to (itself for copies), for the files nlu_lite fetched."""
    snapshots = hf_cache_dir() / hub.repo_folder(memo["repo"]) / "snapshots"
    found = {}
    for commit, names in memo["files"].items():
        for name in names:
            pointer = snapshots / commit / name
            if pointer.is_symlink():
                found[pointer] = pointer.parent / os.readlink(pointer)
            elif pointer.is_file():
                found[pointer] = pointer
    return found


def _blob_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def cache_entries(registry: Registry | None = None) -> list[CacheEntry]:
    """Every cached source and ONNX conversion, with its size and the aliases it serves."""
    registry = registry or default_registry()
    owners = _owners(registry)
    entries = []
    for memo in _memos():
        files = _hub_files(memo)
        if not files:
            continue
        size = sum(_blob_size(blob) for blob in set(files.values()))
        commits = sorted({p.parent.name for p in files})
        entries.append(CacheEntry("hf", hf_cache_dir() / hub.repo_folder(memo["repo"]), size,
                                  owners.get(("hf", memo["repo"]), ()), f"{memo['repo']}@{','.join(c[:12] for c in commits)}"))
    root = cache_root()
    for kind in ("pypi", "url"):
        for folder in _subfolders(root / kind):
            record = (read_json_object(folder / PROVENANCE) or {})
            detail = record.get("requirement") or record.get("url") or folder.name
            entries.append(CacheEntry(kind, folder, folder_size(folder), owners.get((kind, str(folder)), ()), detail))
    for folder in _onnx_entries(root / "onnx"):
        entries.append(CacheEntry("onnx", folder, folder_size(folder), _onnx_aliases(folder, registry, owners), folder.name))
    return entries


def sweep_stale() -> int:
    """Remove the scratch killed downloads and conversions left in ``cache_root()``; the bytes freed.

    Never a live process's: scratch is removed only when the lock its writer holds is free, or,
    for scratch no lock guards (the digest memo's, or an older nlu_lite's download folders), when
    nothing touched it for ``cache.STALE_AFTER`` seconds. huggingface_hub's ``.incomplete`` files
    are its own (it resumes them).
    """
    root = cache_root()
    freed = sweep_folder(root / "pypi") + sweep_folder(root / "url")
    for folder in (root / "hashes", root / "onnx" / "hashes"):
        if folder.is_dir():
            freed += sweep_scratch(folder.iterdir())
    if (root / "hub").is_dir():
        for item in (root / "hub").iterdir():  # .<memo>.json.<random>.tmp, written under the memo's lock
            memo, _, _ = item.name[1:].partition(".json.")
            if is_scratch(item) and memo:
                freed += sweep_scratch([item], root / "hub" / f"{memo}.json")
    if (root / "onnx").is_dir():
        for entry in (root / "onnx").iterdir():
            if entry.is_dir() and entry.name != "hashes":
                freed += sweep_scratch(entry.iterdir(), entry / "model.onnx")
    return freed


def verify_entry(entry: CacheEntry) -> list[str]:
    """Read every file of a cached source in full and compare it with its record; what is wrong
    (empty: nothing). Damaged files are removed, so ``nlu-lite download`` or the next load fetches
    them again. (ONNX conversions: ``nlu_lite.convert.store.verify_conversion``.)"""
    if entry.kind == "hf":
        repo = entry.detail.rsplit("@", 1)[0]
        memo = hub.read_memo(repo)
        snapshots = hf_cache_dir() / hub.repo_folder(repo) / "snapshots"
        damage = []
        for pointer in _hub_files(memo):
            commit = pointer.relative_to(snapshots).parts[0]  # names may hold a folder: 1_Pooling/config.json
            name = pointer.relative_to(snapshots / commit).as_posix()
            known = hub.expected_digest(pointer, memo.get("sha256", {}).get(commit, {}).get(name))
            expected = {name: known} if known is not None else {}
            damage += integrity.check_files(snapshots / commit, expected, [name], full=True, record="the Hub's ETag")
    elif entry.kind in ("pypi", "url"):
        record = (read_json_object(entry.path / PROVENANCE) or {})
        model_dir = entry.path / str(record.get("path", "")).strip("/")
        expected = provenance_digests(entry.path, model_dir)
        names = sorted(expected) if expected is not None else []
        present = [name for name in names if (model_dir / name).is_file()]
        damage = integrity.check_files(model_dir, expected, present, full=True, record=PROVENANCE)
        missing = [f"{model_dir / name}: missing" for name in names if name not in present]
        integrity.discard(damage)
        return [str(d) for d in damage] + missing
    else:
        raise InputError(f"verify_entry checks downloaded sources, not {entry.kind!r} entries: "
                         "use nlu_lite.convert.store.verify_conversion for 'onnx'")
    integrity.discard(damage)
    return [str(d) for d in damage]


def clear_cache(alias: str | None = None, registry: Registry | None = None) -> int:
    """Remove cached files (of one model when ``alias`` is given); the bytes freed.

    Without an alias: all of ``cache_root()`` and the Hub files nlu_lite fetched. With one: its
    sources' files and the ONNX conversions made from them. Hub files are shared by every
    alias built on the same repo (a token and a sentence variant), so both lose them.
    """
    registry = registry or default_registry()
    freed = sweep_stale()
    if alias is None:
        freed += sum(_clear_hub(memo) for memo in list(_memos()))
        root = cache_root()
        if root.is_dir():
            freed += folder_size(root)
            shutil.rmtree(root, ignore_errors=True)
        return freed
    spec: ModelSpec = registry.resolve(alias)
    owners = _owners(registry)
    for folder in _onnx_entries(cache_root() / "onnx"):
        if spec.alias in _onnx_aliases(folder, registry, owners):
            freed += _rmtree(folder)
    for source in spec.sources:
        if isinstance(source, HubSource):
            memo = hub.read_memo(source.repo)
            freed += _clear_hub(memo)
        elif isinstance(source, PypiSource):
            freed += _rmtree(pypi.target_dir(source))
        elif isinstance(source, UrlSource):
            freed += _rmtree(url.target_dir(source))
    return freed


def _clear_hub(memo: dict) -> int:
    files = _hub_files(memo)
    storage = hf_cache_dir() / hub.repo_folder(memo["repo"])
    freed = 0
    for pointer in files:
        pointer.unlink(missing_ok=True)
    still_used = {
        (p.parent / os.readlink(p)).resolve() for p in (storage / "snapshots").rglob("*") if p.is_symlink()
    } if (storage / "snapshots").is_dir() else set()
    for blob in set(files.values()):
        if blob.exists() and blob.resolve() not in still_used:
            freed += _blob_size(blob)
            blob.unlink(missing_ok=True)  # a shared-store link goes, the store is huggingface_hub's
    snapshots = storage / "snapshots"
    for folder in sorted(snapshots.rglob("*"), reverse=True) if snapshots.is_dir() else ():
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
    if snapshots.is_dir() and not any(snapshots.iterdir()):
        logger.info("removing %s: nothing else is left in it", storage)
        freed += folder_size(storage)
        shutil.rmtree(storage, ignore_errors=True)
    hub.memo_path(memo["repo"]).unlink(missing_ok=True)
    return freed


def _onnx_aliases(folder: Path, registry: Registry, owners: dict) -> tuple[str, ...]:
    """Best effort: aliases whose name, or whose cached source folder, the conversion's manifest mentions."""
    manifest = (read_json_object(folder / "manifest.json") or {})
    strings = set(_strings(manifest))
    found = []
    for spec in registry:
        names = {spec.name, *spec.aliases}
        folders = {str(p) for f in _source_folders(spec) for p in (f, f.resolve())}
        if names & strings or any(s.startswith(f) for s in strings for f in folders):
            found.append(spec.alias)
    return tuple(found)


def _source_folders(spec: ModelSpec) -> Iterator[Path]:
    for source in spec.sources:
        if isinstance(source, HubSource):
            yield hf_cache_dir() / hub.repo_folder(source.repo)
        elif isinstance(source, PypiSource):
            yield pypi.target_dir(source)
        elif isinstance(source, UrlSource):
            yield url.target_dir(source)


def _strings(value) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _subfolders(folder: Path) -> list[Path]:
    """Folders of ``folder`` that hold something besides lock files and scratch (a lock-only folder is no model)."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".") and _holds_files(p))


def _holds_files(folder: Path) -> bool:
    return any(p.is_file() and not p.name.endswith(".lock")
               and not any(is_scratch(Path(part)) for part in p.relative_to(folder).parts)
               for p in folder.rglob("*"))


def _onnx_entries(folder: Path) -> list[Path]:
    """Conversions: folders holding a model, its data or a manifest (not the digest memo ``hashes/``)."""
    return [p for p in _subfolders(folder) if p.name != "hashes"
            and any((p / name).exists() for name in ("model.onnx", "model.onnx.data", "manifest.json"))]


def _rmtree(path: Path) -> int:
    if not path.exists():
        return 0
    size = folder_size(path)
    shutil.rmtree(path, ignore_errors=True)
    return size
