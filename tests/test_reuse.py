"""A repeated sentence (document, at document level) is embedded once per call and copied: the
frame equals the one computed without reuse, and the model sees each distinct text once."""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nlu_lite
from nlu_lite.choices import OUTPUT_LEVELS

LONG = " ".join(["the dog runs to the river bank"] * 100)  # windowed


@pytest.fixture(scope="module")
def pipe(tiny_pipe):
    return tiny_pipe


def _same(a: pd.DataFrame, b: pd.DataFrame, column: str) -> None:
    pd.testing.assert_frame_equal(a.drop(columns=column), b.drop(columns=column))
    np.testing.assert_array_equal(nlu_lite.to_matrix(a), nlu_lite.to_matrix(b))


@pytest.mark.parametrize("level", OUTPUT_LEVELS)
@pytest.mark.parametrize("options", [{}, {"normalize": True}, {"layers": [-2, -1]}], ids=["plain", "normalize", "layers"])
def test_reuse_gives_the_same_frame(pipe, level, options):
    texts = pd.DataFrame({"text": ["the dog runs. The cat sleeps!", "", "Dr. Smith lives in London. the dog runs.",
                                   "the dog runs. The cat sleeps!", None, LONG, LONG + " x", LONG, "\u200b"],
                          "label": list("abcdefghi")})
    extra = {"subtoken_pooling": "first_last"} if level == "token" else {}
    on = pipe.predict(texts, output_level=level, keep_columns=True, **options, **extra)
    off = pipe.predict(texts, output_level=level, keep_columns=True, deduplicate=False, **options, **extra)
    _same(on, off, pipe.spec.embedding_column)


def test_each_distinct_sentence_reaches_the_model_once(pipe, monkeypatch, caplog):
    sentences = [f"sentence number {i} is here." for i in range(70)]
    texts = sentences + sentences[:30]  # 30% repeats
    seen = []
    original = pipe.encoder.run

    def counting(ids, mask, outputs=("last_hidden_state",)):
        seen.append(int(np.asarray(mask).shape[0]))
        return original(ids, mask, outputs)

    monkeypatch.setattr(pipe.encoder, "run", counting)
    caplog.set_level(logging.INFO, logger="nlu_lite.pipeline")
    pipe.predict(texts, output_level="sentence")
    assert sum(seen) == 70 and "30 of 100 sentences were repeats" in caplog.text
    seen.clear()
    pipe.predict(texts, output_level="sentence", deduplicate=False)
    assert sum(seen) == 100


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=st.lists(st.sampled_from(["the dog.", "The cat sleeps! the dog.", "", None, "Dr. Smith.", "東京 😀",
                                       "the dog. the dog."]), max_size=8),
       level=st.sampled_from(OUTPUT_LEVELS))
def test_any_repetition_is_exact(pipe, texts, level):
    _same(pipe.predict(texts, output_level=level), pipe.predict(texts, output_level=level, deduplicate=False),
          pipe.spec.embedding_column)


def test_repeats_view_the_same_read_only_memory(pipe):
    """A repeat's row is a read-only view of its first occurrence's vector (no copy), its own view
    object: replacing one row's cell, or writing into a cell of an unpickled frame, leaves the other
    row's vector as it was."""
    import pickle

    column = pipe.spec.embedding_column
    for level in ("token", "sentence", "document"):
        df = pipe.predict(["the dog runs.", "the cat sleeps.", "the dog runs."], output_level=level)
        first, repeat = df[df.origin_index == 0][column].iloc[0], df[df.origin_index == 2][column].iloc[0]
        assert np.shares_memory(first, repeat) and first is not repeat and not repeat.flags.writeable
        with pytest.raises(ValueError):
            repeat[0] = 1.0
        kept = first.copy()
        df.at[df.index[df.origin_index == 2][0], column] = np.zeros_like(repeat)
        np.testing.assert_array_equal(df[df.origin_index == 0][column].iloc[0], kept)

        restored = pickle.loads(pickle.dumps(pipe.predict(["the dog runs.", "the dog runs."], output_level=level)))
        a, b = restored[restored.origin_index == 0][column].iloc[0], restored[restored.origin_index == 1][column].iloc[0]
        before = b.copy()
        a.setflags(write=True)
        a[:] = 0.0
        np.testing.assert_array_equal(b, before)
