"""nlu_lite.spark.predict on a real Spark (local[2]): the same rows as predict(), an explicit schema,
one model load per Python worker, several Arrow batches per partition."""
from __future__ import annotations

import os
import sys

import numpy as np
import pandas as pd
import pytest
from _engines import assert_same_as_predict, rows

import nlu_lite

pyspark = pytest.importorskip("pyspark", reason="the spark extra (pip install 'nlu-lite[spark]')")


@pytest.fixture(scope="module")
def spark(tmp_path_factory):
    from pyspark.sql import SparkSession

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PYSPARK_PYTHON", sys.executable)  # the workers need this venv's nlu_lite
        mp.setenv("PYSPARK_DRIVER_PYTHON", sys.executable)
        mp.setenv("NLU_LITE_CACHE", str(tmp_path_factory.mktemp("spark_cache")))
        mp.setenv("NLU_LITE_PROGRESS", "0")
        session = (SparkSession.builder.master("local[2]").appName("nlu_lite tests")
                   .config("spark.ui.enabled", "false").config("spark.sql.shuffle.partitions", "2")
                   .config("spark.sql.execution.arrow.maxRecordsPerBatch", "3")  # several batches per partition
                   .config("spark.driver.memory", "1g").getOrCreate())
        yield session
        session.stop()


@pytest.fixture(scope="module")
def tiny(spark, tiny_bert_dir):
    return nlu_lite.load(path=tiny_bert_dir)


@pytest.mark.parametrize("level", ["token", "sentence", "document"])
def test_every_level_equals_single_process_predict(spark, tiny, level):
    data = rows()
    sdf = spark.createDataFrame(data).repartition(3)
    out = nlu_lite.spark.predict(sdf, tiny, level, id_col="id", keep_columns=["label", "score"], batch_rows=4)
    assert out.schema == nlu_lite.spark.schema(tiny, level, id_type=sdf.schema["id"].dataType,
                                               kept=[sdf.schema["label"], sdf.schema["score"]])
    types = {f.name: f.dataType.simpleString() for f in out.schema}
    assert types["origin_index"] == "bigint" and types["label"] == "string" and types["score"] == "double"
    assert types[tiny.spec.embedding_column] == "array<float>" and types["windowed"] == "boolean"
    assert_same_as_predict(tiny, out.toPandas(), data, level, ["label", "score"])


def test_default_ids_are_spark_made_bigints_one_per_row(spark, tiny):
    data = rows()
    out = nlu_lite.spark.predict(spark.createDataFrame(data[["text"]]), tiny, "document").toPandas()
    assert len(out) == len(data) and out.origin_index.is_unique and out.origin_index.dtype == np.int64
    assert sorted(out.document) == sorted(data.text.fillna(""))  # a missing text is an empty document


def test_each_python_worker_loads_the_model_once(spark, tiny):
    sdf = spark.createDataFrame(rows()).repartition(6)
    for level in ("token", "sentence"):  # two more jobs over six partitions
        nlu_lite.spark.predict(sdf, tiny, level, id_col="id").count()

    def loads(batches):
        from nlu_lite.runners import LOADS

        for _ in batches:
            pass
        yield pd.DataFrame({"pid": [os.getpid()], "loads": [LOADS["count"]]})

    seen = sdf.mapInPandas(loads, "pid long, loads long").toPandas()
    assert seen.loads.max() == 1, seen  # a worker that ran nlu_lite tasks loaded once; others never


def test_options_and_columns_are_checked_on_the_driver(spark, tiny):
    sdf = spark.createDataFrame(rows())
    with pytest.raises(nlu_lite.InputError, match="subtoken_pooling"):
        nlu_lite.spark.predict(sdf, tiny, "token", subtoken_pooling="avg")
    with pytest.raises(nlu_lite.InputError, match="no 'body' column"):
        nlu_lite.spark.predict(sdf, tiny, text_col="body")
    with pytest.raises(nlu_lite.InputError, match="not string"):
        nlu_lite.spark.predict(sdf, tiny, text_col="score")
    with pytest.raises(nlu_lite.InputError, match=r"\['sentence'\]"):
        nlu_lite.spark.predict(sdf.withColumnRenamed("label", "sentence"), tiny, "sentence", keep_columns=["sentence"])
    with pytest.raises(nlu_lite.InputError, match="threads"):
        nlu_lite.spark.predict(sdf, tiny, threads=0)


def test_predict_options_reach_the_workers(spark, tiny):
    data = rows()
    out = nlu_lite.spark.predict(spark.createDataFrame(data), tiny, "token", id_col="id", progress=True,
                                 subtoken_pooling="mean", normalize=True).toPandas()
    want = tiny.predict(data.set_index("id")[["text"]], subtoken_pooling="mean", normalize=True)
    assert len(out) == len(want)
    np.testing.assert_allclose(np.linalg.norm(nlu_lite.to_matrix(out), axis=1), 1.0, rtol=1e-5)


@pytest.mark.slow
def test_real_minilm_on_spark(spark, minilm_dir):
    pipe = nlu_lite.load(path=minilm_dir)
    data = rows()
    out = nlu_lite.spark.predict(spark.createDataFrame(data), pipe, "token", id_col="id").toPandas()
    assert_same_as_predict(pipe, out, data, "token", [])
