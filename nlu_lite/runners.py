"""What every distributed runner shares: the pipeline as a bundle, one load per worker process,
and a batch of rows through predict().

Spark (:mod:`nlu_lite.spark`) and Dask (:mod:`nlu_lite.dask`) ship a pipeline's read-only
bundle to their workers; a worker loads it on first use and keeps it, so it loads once per
process however many tasks and jobs follow.
"""
from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from .cache import cache_root, lock_for
from .errors import InputError
from .pipeline import Pipeline
from .registry import spec_to_dict

ID_COLUMN = "origin_index"
DEFAULT_BATCH_ROWS = 1000
_RUNNER_OPTIONS = ("text_column", "keep_columns")  # the runner's own parameters name these

# per Python worker process: bundle path and threads -> the loaded pipeline
_WORKER_PIPES: dict[tuple[str, int | None], Pipeline] = {}
_WORKER_LOCK = threading.Lock()
LOADS = {"count": 0}  # how many pipelines this process loaded for Spark or Dask tasks


def as_pipeline(alias_or_pipe: str | os.PathLike | Pipeline) -> Pipeline:
    """A loaded pipeline: the argument itself, or ``nlu_lite.load(alias_or_path)``."""
    if isinstance(alias_or_pipe, Pipeline):
        return alias_or_pipe
    from .api import load

    return load(str(alias_or_pipe))


def bundle_for(pipe: Pipeline) -> Path:
    """The pipeline's read-only bundle: where it was loaded from, or one saved once under the cache."""
    if pipe.recipe is not None and pipe.recipe.bundle is not None:
        return Path(pipe.recipe.bundle)
    from .bundle import is_bundle

    identity = {"spec": spec_to_dict(pipe.spec), "precision": pipe.precision, "model": str(Path(pipe.model_path).resolve()),
                "size": Path(pipe.model_path + ".data").stat().st_size}
    key = hashlib.sha256(json.dumps(identity, sort_keys=True).encode("utf-8")).hexdigest()[:24]
    folder = cache_root() / "bundles" / key
    with lock_for(folder):
        if not is_bundle(folder):
            pipe.save(folder)
    return folder


def worker_pipeline(bundle: str | os.PathLike, threads: int | None) -> Pipeline:
    """The pipeline of ``bundle`` in this process, loaded on first use and kept (one load per worker)."""
    key = (str(bundle), threads)
    with _WORKER_LOCK:
        pipe = _WORKER_PIPES.get(key)
        if pipe is None:
            pipe = Pipeline.from_bundle(bundle, threads=threads)
            _WORKER_PIPES[key] = pipe
            LOADS["count"] += 1
        return pipe


def check_runner_options(pipe: Pipeline, output_level: str | None, options: dict[str, Any]) -> str:
    """predict() options checked on the driver, before any job; returns the output level."""
    clash = [k for k in _RUNNER_OPTIONS if k in options]
    if clash:
        raise InputError(f"{clash} are the runner's own parameters here: use text_col= and keep_columns=")
    return pipe.resolve_options(output_level, **options).output_level


def predict_frame(pipe: Pipeline, pdf: pd.DataFrame, *, ids: Any, text_col: str, kept: Sequence[str],
                  output_level: str, options: dict[str, Any]) -> pd.DataFrame:
    """One batch of rows through predict(): ``ids`` become ``origin_index``, ``kept`` columns follow it."""
    data = pd.DataFrame({text_col: pdf[text_col].to_numpy(dtype=object), **{c: pdf[c].to_numpy() for c in kept}},
                        index=pd.Index(ids))
    return pipe.predict(data, output_level=output_level, text_column=text_col, keep_columns=list(kept) or False,
                        progress=False, **options)
