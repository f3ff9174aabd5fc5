"""predict() on Dask: a Dask DataFrame indexed by origin label, one model per worker process.

>>> import nlu_lite.dask
>>> out = nlu_lite.dask.predict(ddf, 'en.embed.minilm_l6', output_level='sentence')  # doctest: +SKIP
>>> out.compute().reset_index()  # predict()'s frame  # doctest: +SKIP

Each partition goes through predict() on a worker, 1,000 rows at a time; the
pipeline travels as its read-only bundle (:meth:`nlu_lite.Pipeline.save`, on storage the
workers can read), which a worker loads once, at start through a worker plugin when a
distributed client is running, else on its first task. The result is indexed by
``origin_index``: the input's index labels when its divisions are known (and kept), the
``id_col`` values when given, else global row positions (computed from the partition
lengths, so partitions of ``read_csv``, which each restart at 0, never collide). Needs the
``dask`` extra.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ._optional import require
from .errors import InputError
from .frame import arrow_vectors, to_matrix
from .pipeline import Pipeline
from .runners import (
    DEFAULT_BATCH_ROWS,
    ID_COLUMN,
    as_pipeline,
    bundle_for,
    bundle_id,
    check_runner_options,
    check_threads,
    predict_frame,
    runtime_of,
    worker_pipeline,
)

PLUGIN_NAME = "nlu_lite-preload"


def meta(alias_or_pipe: str | Pipeline, output_level: str | None = None, *, index_dtype: Any = "int64",
         kept: dict[str, Any] | None = None, **options: Any) -> pd.DataFrame:
    """The empty frame (columns, dtypes, index) :func:`predict` returns, computed without running a task
    (an alias is loaded first, to know the model's width and columns).

    The embedding column is Arrow ``fixed_size_list<float32>[dim]`` (Dask turns object columns
    into strings); :func:`nlu_lite.to_matrix` reads it as the usual ``(n, dim)`` matrix.
    """
    import pyarrow as pa

    pipe = as_pipeline(alias_or_pipe)
    level = check_runner_options(pipe, output_level, options, list(kept or ()))
    columns = pipe.output_columns(level, index_dtype=index_dtype)
    width = pipe.resolve_options(level, **options).vector_width
    columns[pipe.spec.embedding_column] = pd.ArrowDtype(pa.list_(pa.float32(), width))
    index = pd.Index([], dtype=columns.pop(ID_COLUMN), name=ID_COLUMN)
    data = {name: pd.Series([], dtype=dtype) for name, dtype in (kept or {}).items()}
    data.update({name: pd.Series([], dtype=dtype) for name, dtype in columns.items()})
    return pd.DataFrame(data, index=index)


def _partition(pdf: pd.DataFrame, bundle: str, expected: str, threads: int | None, level: str, text_col: str,
               kept: list[str], id_col: str | None, options: dict[str, Any], start: int | None,
               runtime: str = "onnxruntime") -> pd.DataFrame:
    """One partition through predict(), ``DEFAULT_BATCH_ROWS`` rows at a time, indexed by origin label."""
    pipe = worker_pipeline(bundle, threads, expected, runtime)
    if id_col is not None:
        ids = pdf[id_col].to_numpy()
    elif start is not None:
        ids = np.arange(start, start + len(pdf), dtype=np.int64)
    else:
        ids = pdf.index.to_numpy()
    frames = [predict_frame(pipe, pdf.iloc[i:i + DEFAULT_BATCH_ROWS], ids=ids[i:i + DEFAULT_BATCH_ROWS],
                            text_col=text_col, kept=kept, output_level=level, options=options)
              for i in range(0, max(len(pdf), 1), DEFAULT_BATCH_ROWS)]
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    column = pipe.spec.embedding_column
    frame[column] = arrow_vectors(to_matrix(frame, column)).array  # Dask would turn an object column into text
    return frame.set_index(ID_COLUMN)


def predict(ddf, alias_or_pipe: str | Pipeline, output_level: str | None = None, *, text_col: str = "text",
            id_col: str | None = None, keep_columns: Sequence[str] | None = None, threads: int | None = 1,
            **predict_options: Any):
    """Embed the ``text_col`` column of the Dask DataFrame ``ddf``: a lazy Dask DataFrame of predict()'s rows.

    ``threads``: onnxruntime threads per task (default 1: each Dask worker thread runs its own
    single-threaded session; raise it for few workers with many cores). The other keywords
    are predict()'s options, checked here before anything runs. Without ``id_col`` and with
    unknown divisions, the partition lengths are computed first (one pass that reads the input).

    >>> nlu_lite.dask.predict(ddf, pipe, 'token', keep_columns=['label']).compute()  # doctest: +SKIP
    """
    dd = require("dask.dataframe", "dask", package="dask")
    from dask import delayed

    pipe = as_pipeline(alias_or_pipe)
    kept = [keep_columns] if isinstance(keep_columns, str) else list(keep_columns or ())
    level = check_runner_options(pipe, output_level, predict_options, kept)
    threads = check_threads(threads)
    unknown = [c for c in [text_col, *kept, *([id_col] if id_col else [])] if c not in ddf.columns]
    if unknown:
        raise InputError(f"unknown column(s) {unknown}; the Dask DataFrame has {list(ddf.columns)}")
    bundle = str(bundle_for(pipe))
    expected = bundle_id(bundle)
    runtime = runtime_of(pipe)
    _preload_on_workers(bundle, threads, runtime)
    n = ddf.npartitions
    starts: list[int | None] = [None] * n
    divisions: Any = None
    if id_col is not None:
        index_dtype = ddf[id_col].dtype
    elif ddf.known_divisions:
        index_dtype, divisions = ddf.index.dtype, tuple(ddf.divisions)
    else:  # global row positions: partitions of read_csv each restart at 0
        lengths = [int(v) for v in ddf.map_partitions(len).compute()]
        offsets = np.r_[0, np.cumsum(lengths)].astype(np.int64).tolist()
        starts, index_dtype = offsets[:-1], "int64"
        if all(lengths):
            divisions = tuple(offsets[:-1]) + (offsets[-1] - 1,)
    empty = meta(pipe, level, index_dtype=index_dtype, kept={c: ddf[c].dtype for c in kept}, **predict_options)
    options = dict(predict_options)
    parts = [delayed(_partition)(part, bundle, expected, threads, level, text_col, kept, id_col, options, start,
                                 runtime) for part, start in zip(ddf.to_delayed(), starts)]
    return dd.from_delayed(parts, meta=empty, divisions=divisions, verify_meta=False)


try:  # the plugin base class comes with the distributed scheduler, which is optional
    from distributed.diagnostics.plugin import WorkerPlugin as _PluginBase
except ImportError:  # pragma: no cover - dask without distributed
    _PluginBase = object


class Preload(_PluginBase):
    """A distributed worker plugin: load the bundle as the worker starts (or when registered)."""

    idempotent = True

    def __init__(self, bundle: str, threads: int | None, runtime: str = "onnxruntime") -> None:
        self.bundle, self.threads, self.runtime = bundle, threads, runtime

    def setup(self, worker) -> None:
        worker_pipeline(self.bundle, self.threads, runtime=self.runtime)


def _preload_on_workers(bundle: str, threads: int | None, runtime: str = "onnxruntime") -> None:
    """With a distributed client running, every worker loads the bundle now, once."""
    try:
        from distributed import default_client
    except ImportError:
        return
    try:
        client = default_client()
    except ValueError:  # no distributed client: each process loads on its first task
        return
    client.register_plugin(Preload(bundle, threads, runtime),
                           name=f"{PLUGIN_NAME}-{Path(bundle).name}-{threads}-{runtime.replace('/', '-')}")
