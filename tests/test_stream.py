"""nlu_lite.stream: chunked predict() and parquet streaming on a tiny model.

The reference for every vector is one plain ``predict()`` call on the whole input; the
parquet file is read back with pyarrow directly as well as through ``read_parquet``.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import nlu_lite
from nlu_lite.errors import InputError

pq = pytest.importorskip("pyarrow.parquet")
from nlu_lite.stream import predict_iter, predict_to_parquet, read_parquet  # noqa: E402

TOL = 1e-5  # chunks change batch composition (padding width), which moves float32 sums slightly

TEXTS = [
    "I love NLP.",
    "The quick brown fox jumps over the lazy dog in London. It was running!",
    "",
    "Dr. Smith lives in Paris; his café is naïve.",
    None,
    "東京 and 北京 are cities 😀 👍!",
    "data science learning machine deep network embedding vector",
    "a",
    "The doctor played with the cat, the dog and the river bank money loan.",
    "über straße résumé",
    "word " * 40,
    "Walk. Run. Jump.",
]


@pytest.fixture(scope="module")
def pipe(tiny_bert_dir, tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        root = tmp_path_factory.mktemp("stream_cache")
        mp.setenv("NLU_LITE_CACHE", str(root / "nlu_lite"))
        mp.setenv("NLU_LITE_PROGRESS", "0")
        yield nlu_lite.load(path=tiny_bert_dir)


def _columns_equal(got: pd.DataFrame, want: pd.DataFrame) -> None:
    name = pipe_column(want)
    assert list(got.columns) == list(want.columns)
    for col in want.columns:
        if col == name:
            continue
        assert got[col].astype(object).tolist() == want[col].astype(object).tolist(), col
    np.testing.assert_allclose(nlu_lite.to_matrix(got), nlu_lite.to_matrix(want), atol=TOL, rtol=0)


def pipe_column(df: pd.DataFrame) -> str:
    return next(c for c in df.columns if c.endswith("_embeddings"))


@pytest.mark.parametrize("level", ["token", "sentence", "document"])
def test_parquet_rows_in_order_and_vectors_equal_predict(pipe, tmp_path, level):
    want = pipe.predict(TEXTS, output_level=level)
    target = tmp_path / f"{level}.parquet"
    out = predict_to_parquet(pipe, iter(TEXTS), target, output_level=level, chunk_size=5)
    assert out == target
    got = read_parquet(target)
    assert len(got) == len(want) > 0
    _columns_equal(got, want)
    # the same through pyarrow alone: float32 fixed-size lists, one row group per non-empty chunk
    table = pq.read_table(target)
    column = table.schema.field(pipe_column(want))
    assert column.type.list_size == pipe.spec.dim and str(column.type.value_type) == "float"
    assert str(column.type).startswith("fixed_size_list<")
    flat = table.column(column.name).combine_chunks().flatten().to_numpy().reshape(len(want), -1)
    np.testing.assert_allclose(flat, nlu_lite.to_matrix(want), atol=TOL, rtol=0)
    assert pq.ParquetFile(target).metadata.num_row_groups == 3  # rows 0-4, 5-9, 10-11
    assert not [p for p in tmp_path.iterdir() if p.name != target.name]  # no temporary file left


def test_origin_index_is_global_across_chunks(pipe, tmp_path):
    got = read_parquet(predict_to_parquet(pipe, (t for t in TEXTS), tmp_path / "o.parquet",
                                          output_level="sentence", chunk_size=2))
    want = pipe.predict(TEXTS, output_level="sentence")
    assert got["origin_index"].tolist() == want["origin_index"].tolist()
    assert got["origin_index"].max() == len(TEXTS) - 1  # the last row's position, not its position in a chunk


def test_dataframe_keeps_its_index_labels_and_columns(pipe, tmp_path):
    df = pd.DataFrame({"text": TEXTS, "label": [f"L{i}" for i in range(len(TEXTS))]},
                      index=pd.Index([100 + 3 * i for i in range(len(TEXTS))], name="id"))
    want = pipe.predict(df, output_level="token", keep_columns=["label"])
    got = read_parquet(predict_to_parquet(pipe, df, tmp_path / "df.parquet", output_level="token",
                                          keep_columns=["label"], chunk_size=4))
    _columns_equal(got, want)
    assert set(got["origin_index"]) <= set(df.index)
    assert got["label"].tolist() == [f"L{(i - 100) // 3}" for i in got["origin_index"]]


def test_predict_iter_frames_concatenate_to_predict(pipe):
    frames = list(predict_iter(pipe, TEXTS, output_level="token", chunk_size=3))
    assert len(frames) == 4
    got = pd.concat(frames, ignore_index=True)
    _columns_equal(got, pipe.predict(TEXTS, output_level="token"))


def test_generator_is_read_lazily(pipe):
    pulled = []

    def rows():
        for i, text in enumerate(TEXTS):
            pulled.append(i)
            yield text

    frames = predict_iter(pipe, rows(), output_level="sentence", chunk_size=4)
    next(frames)
    assert len(pulled) <= 5  # one chunk, plus the one look-ahead islice may take
    assert sum(len(f) for f in frames) > 0


def test_failure_midway_leaves_no_file(pipe, tmp_path):
    def rows():
        yield from TEXTS[:6]
        raise RuntimeError("the source broke")

    target = tmp_path / "broken.parquet"
    with pytest.raises(RuntimeError, match="the source broke"):
        predict_to_parquet(pipe, rows(), target, output_level="token", chunk_size=2)
    assert list(tmp_path.iterdir()) == []


def test_failure_keeps_an_existing_file_unchanged(pipe, tmp_path):
    target = tmp_path / "kept.parquet"
    predict_to_parquet(pipe, TEXTS[:3], target, output_level="sentence")
    before = target.read_bytes()
    with pytest.raises(InputError):
        predict_to_parquet(pipe, ["fine", 42, "fine"], target, output_level="sentence", chunk_size=1)
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["kept.parquet"]


def test_empty_input_writes_an_empty_file_with_the_columns(pipe, tmp_path):
    want = pipe.predict(["x"], output_level="sentence")
    got = read_parquet(predict_to_parquet(pipe, [], tmp_path / "empty.parquet", output_level="sentence"))
    assert len(got) == 0
    assert list(got.columns) == list(want.columns)


def test_first_last_pooling_doubles_the_width(pipe, tmp_path):
    got = read_parquet(predict_to_parquet(pipe, TEXTS[:4], tmp_path / "fl.parquet", output_level="token",
                                          subtoken_pooling="first_last", chunk_size=2))
    want = pipe.predict(TEXTS[:4], output_level="token", subtoken_pooling="first_last")
    assert nlu_lite.to_matrix(got).shape == (len(want), 2 * pipe.spec.dim)
    _columns_equal(got, want)


@pytest.mark.parametrize("bad", [0, -1, 2.5, "10"])
def test_bad_chunk_size_is_rejected(pipe, bad):
    with pytest.raises(InputError, match="chunk_size"):
        next(predict_iter(pipe, TEXTS, chunk_size=bad))


def test_unknown_option_is_rejected_before_any_file_appears(pipe, tmp_path):
    with pytest.raises(InputError, match="unknown option"):
        predict_to_parquet(pipe, TEXTS, tmp_path / "x.parquet", colour="red")
    assert list(tmp_path.iterdir()) == []
