"""predict() on Spark: a lazy Spark DataFrame with an explicit schema, one model per Python worker.

>>> import nlu_lite.spark
>>> out = nlu_lite.spark.predict(sdf, 'en.embed.minilm_l6', output_level='token')  # doctest: +SKIP
>>> out.printSchema()  # doctest: +SKIP

The pipeline is saved once as a read-only bundle (:meth:`nlu_lite.Pipeline.save`) and shipped
with ``SparkContext.addFile``; each Python worker loads it once (no network, no conversion,
no write) and keeps it for every later task and job. Rows go through ``mapInArrow`` (one
input row may become many output rows; the vectors leave as one Arrow float buffer per
batch), ``batch_rows`` at a time, so a worker's memory is bounded by one batch's frame
whatever Arrow hands it. Needs the ``spark`` extra (pyspark ≥ 4,
Python ≥ 3.11) and, on the workers, ``PYSPARK_PYTHON`` pointing at a Python with nlu-lite.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ._optional import require
from .errors import InputError
from .frame import to_matrix
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


def _spark_type(dtype: Any):
    types = require("pyspark.sql.types", "spark", package="pyspark")
    kind = getattr(dtype, "kind", "O")
    return {"i": types.LongType(), "u": types.LongType(), "b": types.BooleanType(), "f": types.DoubleType()}.get(
        kind, types.StringType())


def schema(alias_or_pipe: str | Pipeline, output_level: str | None = None, *, id_type: Any = None,
           kept: Sequence[Any] = (), **options: Any):
    """The ``StructType`` :func:`predict` returns, computed without running a Spark job (an alias is
    loaded first, to know the model's width and columns).

    ``id_type``: the Spark type of ``origin_index`` (``bigint`` by default: the ids Spark
    makes). ``kept``: ``StructField`` s of the kept columns, in order.
    """
    types = require("pyspark.sql.types", "spark", package="pyspark")
    pipe = as_pipeline(alias_or_pipe)
    level = check_runner_options(pipe, output_level, options, [f.name for f in kept])
    fields = [types.StructField(ID_COLUMN, id_type or types.LongType(), True), *kept]
    for name, dtype in list(pipe.output_columns(level).items())[1:]:
        if name == pipe.spec.embedding_column:
            fields.append(types.StructField(name, types.ArrayType(types.FloatType(), containsNull=False), False))
        else:
            fields.append(types.StructField(name, _spark_type(dtype), name != "windowed"))
    return types.StructType(fields)


def predict(sdf, alias_or_pipe: str | Pipeline, output_level: str | None = None, *, text_col: str = "text",
            id_col: str | None = None, keep_columns: Sequence[str] | None = None, threads: int | None = None,
            batch_rows: int = DEFAULT_BATCH_ROWS, **predict_options: Any):
    """Embed the ``text_col`` column of the Spark DataFrame ``sdf``: a lazy Spark DataFrame of predict()'s rows.

    ``origin_index`` holds ``id_col``'s values, or, when ``id_col`` is None, ids from
    ``monotonically_increasing_id()`` (bigint, as NLU makes them). ``keep_columns``: columns of
    ``sdf`` carried to every output row. ``threads``: onnxruntime threads per task (default
    ``spark.task.cpus``, so tasks x threads never exceeds an executor's cores). The other
    keywords are predict()'s options, checked here on the driver before any job.

    >>> out = nlu_lite.spark.predict(sdf, pipe, 'sentence', keep_columns=['label'])  # doctest: +SKIP
    """
    functions = require("pyspark.sql.functions", "spark", package="pyspark")
    types = require("pyspark.sql.types", "spark", package="pyspark")
    pipe = as_pipeline(alias_or_pipe)
    kept = [keep_columns] if isinstance(keep_columns, str) else list(keep_columns or ())
    level = check_runner_options(pipe, output_level, predict_options, kept)
    threads = check_threads(threads)
    if text_col not in sdf.columns:
        raise InputError(f"the Spark DataFrame has no {text_col!r} column (columns: {sdf.columns}); pass text_col=")
    if not isinstance(sdf.schema[text_col].dataType, types.StringType):
        raise InputError(f"column {text_col!r} is {sdf.schema[text_col].dataType.simpleString()}, not string; "
                         f"cast it first: sdf.withColumn({text_col!r}, sdf[{text_col!r}].cast('string'))")
    unknown = [c for c in kept + ([id_col] if id_col else []) if c not in sdf.columns]
    if unknown:
        raise InputError(f"unknown column(s) {unknown}; the Spark DataFrame has {sdf.columns}")
    if isinstance(batch_rows, bool) or not isinstance(batch_rows, int) or batch_rows < 1:
        raise InputError(f"batch_rows must be a positive integer; got {batch_rows!r}")
    session = sdf.sparkSession
    if threads is None:
        threads = int(session.sparkContext.getConf().get("spark.task.cpus", "1"))
    id_source = id_col or "__nlu_lite_id"
    if id_col is None:
        sdf = sdf.withColumn(id_source, functions.monotonically_increasing_id())
    out_schema = schema(pipe, level, id_type=sdf.schema[id_source].dataType,
                        kept=[sdf.schema[c] for c in kept], **predict_options)
    bundle = bundle_for(pipe)
    name, expected, runtime = _ship(session, bundle), bundle_id(bundle), runtime_of(pipe)
    options = dict(predict_options)
    arrow_schema = require("pyspark.sql.pandas.types", "spark", package="pyspark").to_arrow_schema(out_schema)
    column = pipe.spec.embedding_column

    def run(batches):
        # Arrow in and out (mapInArrow): the vectors go to Spark as one float buffer per batch,
        # not converted row by row from numpy objects as mapInPandas would
        from pyspark import SparkFiles

        worker = worker_pipeline(SparkFiles.get(name), threads, expected, runtime)
        for batch in batches:
            pdf = batch.to_pandas()
            for start in range(0, len(pdf), batch_rows):
                part = pdf.iloc[start:start + batch_rows]
                frame = predict_frame(worker, part, ids=part[id_source].to_numpy(), text_col=text_col, kept=kept,
                                      output_level=level, options=options)
                yield _record_batch(frame, arrow_schema, column)

    columns = list(dict.fromkeys([id_source, text_col, *kept]))
    return sdf.select(*columns).mapInArrow(run, out_schema)


def _record_batch(frame: pd.DataFrame, schema, column: str):
    """predict()'s frame as an Arrow record batch of ``schema``; the vectors without a per-row copy."""
    import numpy as np
    import pyarrow as pa

    arrays = []
    for field in schema:
        if field.name == column:
            matrix = to_matrix(frame, column)
            width = matrix.shape[1]
            offsets = pa.array(np.arange(0, len(matrix) * width + 1, width, dtype=np.int32))
            arrays.append(pa.ListArray.from_arrays(offsets, pa.array(matrix.reshape(-1), type=pa.float32()),
                                                   type=field.type))
        else:
            values = frame[field.name]
            values = values.to_numpy(dtype=object) if pa.types.is_string(field.type) else values
            arrays.append(pa.array(values, type=field.type, from_pandas=True))
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


_SHIPPED: set[tuple[str, str]] = set()  # (application id, bundle folder) already added


def _ship(session, bundle: Path) -> str:
    """``addFile`` the bundle folder once per Spark application; workers find it by its folder name."""
    context = session.sparkContext
    key = (context.applicationId, str(bundle))
    if key not in _SHIPPED:
        context.addFile(str(bundle), recursive=True)
        _SHIPPED.add(key)
    return bundle.name
