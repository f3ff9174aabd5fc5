"""output_level='chunk': the user's own spans, each pooled from the token vectors it overlaps,
computed in its sentence's context; every odd span has a defined result (nlu_lite.chunks)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nlu_lite
from nlu_lite.errors import InputError

TEXTS = ["Dr. Smith lives in London. The cat runs over the river bank.", "I love nlp and data science"]


@pytest.fixture(scope="module")
def tokens(tiny_pipe):
    return tiny_pipe.predict(TEXTS, output_level="token")


def _expected(tokens: pd.DataFrame, row: int, begin: int, end: int, mode: str = "mean") -> np.ndarray:
    mine = tokens[(tokens["origin_index"] == row) & (tokens["begin"] < end) & (tokens["end"] > begin)]
    if begin == end or not len(mine):
        return np.full(tokens.attrs["nlu_lite"]["dim"], np.nan, np.float32)
    vectors = nlu_lite.to_matrix(mine)
    return {"mean": vectors.mean(axis=0), "first": vectors[0], "last": vectors[-1]}[mode]


def test_a_span_is_the_mean_of_its_tokens_in_the_token_frame(tiny_pipe, tokens):
    spans = [[(4, 9, "PER"), (19, 25, "LOC"), (0, 3)], [(2, 6), (15, 27, "FIELD")]]
    df = tiny_pipe.predict(TEXTS, output_level="chunk", chunks=spans)
    assert list(df.columns[:10]) == ["origin_index", "chunk_index", "chunk", "begin", "end", "label", "sentence_index",
                                     "n_tokens", "crosses_sentences", "windowed"]
    assert df["chunk"].tolist() == ["Smith", "London", "Dr.", "love", "data science"]
    assert df["label"].tolist() == ["PER", "LOC", None, None, "FIELD"]
    assert df["chunk_index"].tolist() == [0, 1, 2, 0, 1]
    assert df["n_tokens"].tolist() == [1, 1, 2, 1, 2]
    got = nlu_lite.to_matrix(df)
    for k, (row, b, e) in enumerate(zip(df["origin_index"], df["begin"], df["end"])):
        np.testing.assert_allclose(got[k], _expected(tokens, row, b, e), atol=1e-6)


@pytest.mark.parametrize("mode", ["first", "last"])
def test_first_and_last(tiny_pipe, tokens, mode):
    df = tiny_pipe.predict(TEXTS, output_level="chunk", chunks=[[(0, 25)], [(7, 27)]], chunk_pooling=mode)
    for k, (row, b, e) in enumerate(zip(df["origin_index"], df["begin"], df["end"])):
        np.testing.assert_array_equal(nlu_lite.to_matrix(df)[k], _expected(tokens, row, b, e, mode))


def test_empty_blank_partial_and_cross_sentence_spans(tiny_pipe, tokens):
    spans = [[(5, 5), (9, 10), (6, 8), (20, 35)], []]
    df = tiny_pipe.predict(TEXTS, output_level="chunk", chunks=spans)
    got = nlu_lite.to_matrix(df)
    assert np.isnan(got[0]).all() and np.isnan(got[1]).all()  # empty; only a space
    assert df["n_tokens"].tolist()[:2] == [0, 0] and df["sentence_index"].tolist()[:2] == [-1, -1]
    np.testing.assert_allclose(got[2], _expected(tokens, 0, 4, 9), atol=1e-6)  # "it" inside "Smith": that token
    assert df["crosses_sentences"].tolist() == [False, False, False, True]
    np.testing.assert_allclose(got[3], _expected(tokens, 0, 20, 35), atol=1e-6)  # "ondon. The cat": both sentences
    assert df["sentence_index"].iloc[3] == 0


def test_a_dataframe_of_spans_gives_the_same_rows_in_its_own_order(tiny_pipe):
    series = pd.Series(TEXTS, index=["a", "b"])
    table = pd.DataFrame({"origin_index": ["b", "a", "a"], "begin": [2, 19, 4], "end": [6, 25, 9],
                          "label": ["V", "LOC", "PER"]})
    df = tiny_pipe.predict(series, output_level="chunk", chunks=table)
    assert df["origin_index"].tolist() == ["b", "a", "a"] and df["chunk"].tolist() == ["love", "London", "Smith"]
    assert df["chunk_index"].tolist() == [0, 0, 1]
    listed = tiny_pipe.predict(series, output_level="chunk", chunks=[[(19, 25), (4, 9)], [(2, 6)]])
    np.testing.assert_array_equal(nlu_lite.to_matrix(df)[[1, 2, 0]], nlu_lite.to_matrix(listed))


def test_kept_columns_follow_their_chunks(tiny_pipe):
    frame = pd.DataFrame({"text": TEXTS, "source": ["x", "y"]})
    df = tiny_pipe.predict(frame, output_level="chunk", chunks=[[(0, 3)], [(2, 6), (7, 10)]], keep_columns=True)
    assert df["source"].tolist() == ["x", "y", "y"]


@pytest.mark.parametrize("chunks, says", [
    ([[(0, 999)], []], "outside its text"),
    ([[(-1, 2)], []], "outside its text"),
    ([[(5, 2)], []], "outside its text"),
    ([[(0, 2)]], "2 rows"),
    ([[(0, "2")], []], "integers"),
    ([[(0,)], []], "begin, end"),
    ("0-5", "per input row"),
    (pd.DataFrame({"origin_index": [7], "begin": [0], "end": [1]}), "not a label"),
    (pd.DataFrame({"row": [0], "begin": [0], "end": [1]}), "origin_index"),
])
def test_bad_spans_are_errors_naming_them(tiny_pipe, chunks, says):
    with pytest.raises(InputError, match=says):
        tiny_pipe.predict(TEXTS, output_level="chunk", chunks=chunks)


def test_a_span_on_a_row_without_text(tiny_pipe):
    with pytest.raises(InputError, match="has no text"):
        tiny_pipe.predict(["hello there", None], output_level="chunk", chunks=[[], [(0, 1)]])


def test_chunk_options_belong_to_the_chunk_level(tiny_pipe):
    with pytest.raises(InputError, match="chunks="):
        tiny_pipe.predict(TEXTS, output_level="chunk")
    with pytest.raises(InputError, match="only at output_level='chunk'"):
        tiny_pipe.predict(TEXTS, output_level="token", chunks=[[], []])
    with pytest.raises(InputError, match="pooling"):
        tiny_pipe.predict(TEXTS, output_level="chunk", chunks=[[], []], pooling="mean")
    with pytest.raises(InputError, match="chunk_pooling"):
        tiny_pipe.predict(TEXTS, output_level="chunk", chunks=[[], []], chunk_pooling="max")
    empty = tiny_pipe.predict(TEXTS, output_level="chunk", chunks=[[], []])
    assert len(empty) == 0 and nlu_lite.to_matrix(empty).shape == (0, 32)


SPANS = st.lists(st.tuples(st.integers(0, 2), st.integers(0, 1), st.integers(0, 60)), max_size=8)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=SPANS)
def test_any_spans_pool_exactly_their_tokens(tiny_pipe, tokens, raw):
    spans = [[], []]
    for row, start, length in raw:
        row = min(row, 1)
        text = TEXTS[row]
        b = min(start * 7, len(text))
        spans[row].append((b, min(b + length, len(text))))
    df = tiny_pipe.predict(TEXTS, output_level="chunk", chunks=spans)
    assert len(df) == sum(map(len, spans))
    got = nlu_lite.to_matrix(df)
    for k, (row, b, e) in enumerate(zip(df["origin_index"], df["begin"], df["end"])):
        np.testing.assert_allclose(got[k], _expected(tokens, row, b, e), atol=1e-6)


def test_chunk_frames_plot_and_rows_without_vectors_are_left_out(tiny_pipe):
    from nlu_lite.viz import plot_embeddings

    texts = TEXTS * 3
    df = tiny_pipe.predict(texts, output_level="chunk", chunks=[[(0, 9), (4, 4)], [(2, 10)]] * 3)
    fig = plot_embeddings(df, "pca")
    placed = sum(len(trace.x) for trace in fig.data)
    assert placed == int((df["n_tokens"] > 0).sum()) == 6  # the three empty spans have no point
    hover = " ".join(t for trace in fig.data if trace.hovertext is not None for t in trace.hovertext)
    assert "Dr. Smith" in hover and "love nlp" in hover
