"""nlu_lite.dask.predict on a real Dask LocalCluster (2 workers x 1 thread): the same rows as
predict(), indexed by origin label with the right divisions, one model load per worker."""
from __future__ import annotations

import numpy as np
import pytest
from _engines import assert_same_as_predict, rows

import nlu_lite

dd = pytest.importorskip("dask.dataframe", reason="the dask extra (pip install 'nlu-lite[dask]')")
distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NLU_LITE_CACHE", str(tmp_path_factory.mktemp("dask_cache")))
        mp.setenv("NLU_LITE_PROGRESS", "0")
        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                      dashboard_address=None) as cluster, distributed.Client(cluster) as c:
            yield c


@pytest.fixture(scope="module")
def tiny(client, tiny_bert_dir):
    import nlu_lite.dask  # noqa: F401

    return nlu_lite.load(path=tiny_bert_dir)


@pytest.mark.parametrize("level", ["token", "sentence", "document"])
def test_every_level_equals_predict_with_the_inputs_divisions(client, tiny, level):
    data = rows()
    ddf = dd.from_pandas(data.set_index("id", drop=False), npartitions=3)
    out = nlu_lite.dask.predict(ddf, tiny, level, keep_columns=["label", "score"])
    assert out.known_divisions and out.divisions == ddf.divisions
    got = out.compute()
    assert dict(out._meta.dtypes) == dict(got.dtypes) and out._meta.index.dtype == got.index.dtype
    for p in range(out.npartitions):  # every partition's labels lie within its divisions
        part = out.get_partition(p).compute()
        if len(part):
            assert out.divisions[p] <= part.index.min() and part.index.max() <= out.divisions[p + 1]
    assert_same_as_predict(tiny, got.reset_index(), data, level, ["label", "score"])


def test_partitions_that_restart_at_zero_get_global_positions(client, tiny):
    data = rows()
    parts = [data.iloc[:7].reset_index(drop=True), data.iloc[7:].reset_index(drop=True)]  # as read_csv makes them
    ddf = dd.concat([dd.from_pandas(p, npartitions=1) for p in parts]).clear_divisions()
    out = nlu_lite.dask.predict(ddf, tiny, "document")
    assert out.divisions == (0, 7, len(data) - 1)
    got = out.compute()
    assert got.index.tolist() == list(range(len(data)))
    assert got.document.tolist() == data.text.fillna("").tolist()  # a missing text is an empty document


def test_id_col_and_one_load_per_worker(client, tiny):
    data = rows()
    out = nlu_lite.dask.predict(dd.from_pandas(data, npartitions=4), tiny, "sentence", id_col="id").compute()
    assert_same_as_predict(tiny, out.reset_index(), data, "sentence", [])
    loads = client.run(lambda: __import__("nlu_lite.runners", fromlist=["LOADS"]).LOADS["count"])
    assert sorted(loads.values()) == [1, 1]  # the worker plugin loaded it once on each worker


def test_meta_matches_and_options_fail_before_running(client, tiny):
    ddf = dd.from_pandas(rows(), npartitions=2)
    with pytest.raises(nlu_lite.InputError, match="pooling"):
        nlu_lite.dask.predict(ddf, tiny, "token", pooling="mean")
    with pytest.raises(nlu_lite.InputError, match="unknown column"):
        nlu_lite.dask.predict(ddf, tiny, keep_columns=["nope"])
    empty = nlu_lite.dask.meta(tiny, "token", subtoken_pooling="first_last")
    assert nlu_lite.to_matrix(empty).shape == (0, 64)
    assert np.dtype(empty.index.dtype) == np.int64 and empty.index.name == "origin_index"


@pytest.mark.slow
def test_real_minilm_on_dask(client, minilm_dir):
    pipe = nlu_lite.load(path=minilm_dir)
    data = rows()
    out = nlu_lite.dask.predict(dd.from_pandas(data, npartitions=3), pipe, "token", id_col="id", progress=True)
    assert_same_as_predict(pipe, out.compute().reset_index(), data, "token", [])
