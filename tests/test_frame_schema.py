"""Every predict() frame has its level's columns and dtypes, empty or not, and to_matrix of an
empty frame is (0, width), so chunks stack whatever they hold."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nlu_lite
from nlu_lite.choices import OUTPUT_LEVELS


@pytest.fixture(scope="module")
def pipe(tiny_pipe):
    return tiny_pipe


def _schema(df: pd.DataFrame) -> dict[str, np.dtype]:
    return {c: df[c].dtype for c in df.columns}


@pytest.mark.parametrize("level", OUTPUT_LEVELS)
@pytest.mark.parametrize("empty", [[], [""], [None, "   "]], ids=["no-rows", "empty-text", "missing"])
def test_empty_results_keep_columns_dtypes_and_width(pipe, level, empty):
    options = {"subtoken_pooling": "first_last"} if level == "token" else {}
    full = pipe.predict(["the dog runs. The cat sleeps."], output_level=level, **options)
    got = pipe.predict(empty, output_level=level, **options)
    assert _schema(got) == _schema(full) == pipe.output_columns(level, **options)
    width = pipe.resolve_options(level, **options).vector_width
    assert nlu_lite.to_matrix(got).shape == ((0, width) if level == "token" or not empty else (len(empty), width))
    assert nlu_lite.to_matrix(full).shape[1] == width == (64 if level == "token" else 32)


def test_string_index_keeps_its_dtype_when_empty(pipe):
    full = pipe.predict(pd.Series(["the dog."], index=["a"]))
    empty = pipe.predict(pd.Series([""], index=["a"]))
    assert full.origin_index.dtype == empty.origin_index.dtype == pd.Series(["a"]).dtype
    assert _schema(empty) == pipe.output_columns(index_dtype=pd.Series(["a"]).dtype)


def test_predict_iter_chunks_without_tokens_stack(pipe):
    texts = ["the dog runs.", "", None, "the cat sleeps."]
    chunks = list(nlu_lite.predict_iter(pipe, texts, output_level="token", chunk_size=1))
    assert [len(c) for c in chunks] == [4, 0, 0, 4]  # "the dog runs ." and "the cat sleeps ."
    stacked = np.vstack([nlu_lite.to_matrix(c) for c in chunks])
    np.testing.assert_array_equal(stacked, nlu_lite.to_matrix(pipe.predict(texts, output_level="token")))
    assert pd.concat(chunks).reset_index(drop=True).drop(columns=pipe.spec.embedding_column).equals(
        pipe.predict(texts).drop(columns=pipe.spec.embedding_column))


def test_filtered_frame_still_knows_its_width(pipe):
    df = pipe.predict(["the dog runs."])
    assert nlu_lite.to_matrix(df[df.token == "nothing"]).shape == (0, 32)
    assert df.iloc[:0].nlu.matrix().shape == (0, 32)


TEXT = st.one_of(st.none(), st.just(""), st.just("  \n"),
                 st.lists(st.sampled_from(["the", "dog", "runs", ".", "Dr.", "Smith", "東京", "!", "café"]),
                          max_size=12).map(" ".join))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=st.lists(TEXT, max_size=6), level=st.sampled_from(OUTPUT_LEVELS))
def test_any_input_gives_the_levels_schema(pipe, texts, level):
    df = pipe.predict(texts, output_level=level)
    assert _schema(df) == pipe.output_columns(level)
    matrix = nlu_lite.to_matrix(df)
    assert matrix.shape == (len(df), 32) and matrix.dtype == np.float32
    if level == "document":
        assert len(df) == len(texts)  # a row per input row, text or not
