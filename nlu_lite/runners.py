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
import shutil
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from .bundle import MANIFEST, read_bundle
from .cache import cache_root, lock_for, sha256_file
from .errors import ArtifactNotFoundError, InputError, NluLiteError
from .frame import check_kept_columns
from .pipeline import Pipeline
from .registry import spec_to_dict

ID_COLUMN = "origin_index"
DEFAULT_BATCH_ROWS = 1000
_RUNNER_OPTIONS = ("text_column", "keep_columns")  # the runner's own parameters name these

# per worker process (the pid: never a forked parent's): bundle, its manifest's sha256, threads -> pipeline
_WORKER_PIPES: dict[tuple[int, str, str, int | None], Pipeline] = {}
_WORKER_LOCK = threading.Lock()
LOADS = {"count": 0}  # pipelines this process loaded for engine tasks (the tests read it on workers)


def as_pipeline(alias_or_pipe: str | os.PathLike | Pipeline) -> Pipeline:
    """A loaded pipeline: the argument itself, or ``nlu_lite.load(alias_or_path)``."""
    if isinstance(alias_or_pipe, Pipeline):
        return alias_or_pipe
    from .api import load
    from .group import PipelineGroup

    pipe = alias_or_pipe if isinstance(alias_or_pipe, PipelineGroup) else load(str(alias_or_pipe))
    if isinstance(pipe, PipelineGroup):
        raise InputError(f"the Spark and Dask runners run one model; this request names several "
                         f"({[p.spec.alias for p in pipe.pipelines]}): run each and join the frames on origin_index "
                         "(and begin/end at token level)")
    return pipe


def bundle_for(pipe: Pipeline) -> Path:
    """The pipeline's read-only bundle: where it was loaded from, or one saved once under the cache
    (``cache_root()/bundles/<key>``, the key naming the model's content), saved again if damaged."""
    if pipe.recipe is not None and pipe.recipe.bundle is not None:
        return Path(pipe.recipe.bundle)
    model = Path(pipe.model_path)
    identity = {"spec": spec_to_dict(pipe.spec), "precision": pipe.precision, "model": str(model.resolve()),
                "size": model.with_name(model.name + ".data").stat().st_size}
    key = hashlib.sha256(json.dumps(identity, sort_keys=True).encode("utf-8")).hexdigest()[:24]
    folder = cache_root() / "bundles" / key
    try:
        with lock_for(folder):
            try:
                read_bundle(folder, verify=False)  # sizes only: the workers check every sha256
            except NluLiteError:
                if folder.exists():
                    shutil.rmtree(folder)
                pipe.save(folder)
    except OSError as exc:
        raise ArtifactNotFoundError(
            f"could not write the pipeline's bundle under {folder.parent} ({exc}); save one where you can "
            "write and pass that instead: pipe.save(path); nlu_lite.load(path=path)"
        ) from exc
    return folder


def bundle_id(folder: str | os.PathLike) -> str:
    """The sha256 of a bundle's manifest: what the driver expects a worker to load."""
    return sha256_file(Path(folder) / MANIFEST)


def runtime_of(pipe: Pipeline) -> str:
    """How the driver's pipeline runs, for its workers to run the same: ``'onnxruntime'``, or
    ``'openvino/fp32'`` / ``'openvino/bf16'``."""
    recipe = pipe.recipe
    if recipe is None or recipe.engine == "onnxruntime":
        return "onnxruntime"
    return f"{recipe.engine}/{recipe.precision}"


def worker_pipeline(bundle: str | os.PathLike, threads: int | None, expected: str | None = None,
                    runtime: str = "onnxruntime") -> Pipeline:
    """The pipeline of ``bundle`` in this process, loaded on first use and kept (one load per worker).

    Keyed by the manifest's sha256 too, so a bundle saved again at the same path is loaded anew;
    ``expected`` (the driver's :func:`bundle_id`) refuses a stale copy instead of embedding with it.
    ``runtime``: the driver's engine and precision (:func:`runtime_of`).
    """
    manifest = bundle_id(bundle)
    if expected is not None and manifest != expected:
        raise InputError(f"the bundle at {bundle} is not the one the driver shipped (saved again or replaced "
                         "meanwhile); save a changed model to a new path")
    key = (os.getpid(), str(bundle), manifest, threads, runtime)
    with _WORKER_LOCK:
        pipe = _WORKER_PIPES.get(key)
        if pipe is None:
            from .runtime import LoadOptions

            engine, _, precision = runtime.partition("/")
            options = LoadOptions.resolve(threads=threads, engine=engine, precision=precision or None)
            pipe = Pipeline.from_bundle(bundle, options=options)
            _WORKER_PIPES[key] = pipe
            LOADS["count"] += 1
        return pipe


def check_runner_options(pipe: Pipeline, output_level: str | None, options: dict[str, Any],
                         kept: Sequence[str] = ()) -> str:
    """predict() options and kept columns checked on the driver, before any job; returns the output level."""
    clash = [k for k in _RUNNER_OPTIONS if k in options]
    if clash:
        raise InputError(f"{clash} are the runner's own parameters here: use text_col= and keep_columns=")
    resolved = pipe.resolve_options(output_level, **options)
    if resolved.metadata or not resolved.get_embeddings:
        raise InputError("metadata=True and get_embeddings=False are predict()'s alone for now: the engines' "
                         "schemas hold the vectors and flat columns")
    check_kept_columns(list(kept), resolved.output_level)
    return resolved.output_level


def check_threads(threads: object) -> int | None:
    if threads is None:
        return None
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise InputError(f"threads must be a positive integer (onnxruntime threads per task); got {threads!r}")
    return threads


def predict_frame(pipe: Pipeline, pdf: pd.DataFrame, *, ids: Any, text_col: str, kept: Sequence[str],
                  output_level: str, options: dict[str, Any]) -> pd.DataFrame:
    """One batch of rows through predict(): ``ids`` become ``origin_index``, ``kept`` columns follow it."""
    data = pdf[list(dict.fromkeys([text_col, *kept]))].set_axis(pd.Index(ids), axis=0)  # kept columns keep dtypes
    return pipe.predict(data, output_level=output_level, text_column=text_col, keep_columns=list(kept) or False,
                        **{**options, "progress": False})  # a bar per batch on a worker is noise
