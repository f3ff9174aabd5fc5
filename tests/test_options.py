"""predict()'s options are checked before any work: every wrong value and every option that has
no meaning at the requested level is an InputError naming the option, the value and the choices,
raised before a single input row is read or tokenized."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nlu_lite
from nlu_lite.choices import OUTPUT_LEVELS, SENTENCE_POOLINGS, SUBTOKEN_POOLINGS
from nlu_lite.errors import InputError
from nlu_lite.options import DEFAULTS, OPTION_NAMES


@pytest.fixture(scope="module")
def pipe(tiny_pipe):
    return tiny_pipe


@pytest.fixture()
def untouched(pipe, monkeypatch):
    """An input that records whether it was read, and a tokenizer that records whether it ran."""
    calls = {"rows": 0, "encode": 0}
    original = pipe.tokenizer.encode

    def counting_encode(texts, **kwargs):
        calls["encode"] += 1
        return original(texts, **kwargs)

    monkeypatch.setattr(pipe.tokenizer, "encode", counting_encode)

    def rows(n=20_000):
        for i in range(n):
            calls["rows"] += 1
            yield f"the dog number {i} runs."

    return calls, rows


# (level, options, words the message must contain)
WRONG = [
    ("token", {"subtoken_pooling": "avg"}, ["subtoken_pooling", "'avg'", "first_last"]),
    ("token", {"subtoken_pooling": 1}, ["subtoken_pooling", "first"]),
    ("token", {"pooling": "mean"}, ["pooling", "output_level='token'", "subtoken_pooling"]),
    ("sentence", {"subtoken_pooling": "mean"}, ["subtoken_pooling", "'sentence'", "pooling="]),
    ("document", {"subtoken_pooling": "first"}, ["subtoken_pooling", "'document'"]),
    ("sentence", {"pooling": "avg"}, ["pooling", "'avg'", "'cls'"]),
    ("sentence", {"pooling": ""}, ["pooling", "''", "'cls'"]),
    ("token", {"subtoken_pooling": ""}, ["subtoken_pooling", "''"]),
    ("document", {"pooling": None, "normalize": "yes"}, ["normalize", "'yes'"]),
    ("token", {"normalize": 1}, ["normalize", "1"]),
    ("sentence", {"layers": [5]}, ["layers", "5", "0..2"]),
    ("sentence", {"layers": [-4]}, ["layers", "-4"]),
    ("sentence", {"layers": []}, ["layers", "empty"]),
    ("sentence", {"layers": "last"}, ["layers", "'last'"]),
    ("sentence", {"layers": [1.5]}, ["layers", "1.5"]),
    ("sentence", {"pooling": "pooler", "layers": [-2, -1]}, ["layers", "pooler"]),
    ("token", {"batch_size": 0}, ["batch_size", "positive integer"]),
    ("token", {"batch_size": True}, ["batch_size"]),
    ("token", {"batch_size": 2.0}, ["batch_size"]),
    ("token", {"max_batch_tokens": -1}, ["max_batch_tokens"]),
    ("token", {"max_length": 4096}, ["max_length", "512"]),
    ("token", {"max_length": 2}, ["max_length", "3"]),
    ("token", {"max_length": "512"}, ["max_length"]),
    ("token", {"window_overlap": -1}, ["window_overlap"]),
    ("token", {"max_length": 10, "window_overlap": 8}, ["window_overlap", "0 to 7"]),
    ("token", {"progress": "no"}, ["progress"]),
    ("token", {"skip_invalid": "yes"}, ["skip_invalid"]),
    ("token", {"text_column": 3}, ["text_column"]),
    ("token", {"keep_columns": 3}, ["keep_columns"]),
    ("paragraph", {}, ["output_level", "'paragraph'", "document"]),
    ("token", {"colour": "red"}, ["colour", "valid options", "subtoken_pooling"]),
]


@pytest.mark.parametrize("level, options, words", WRONG, ids=[f"{lvl}-{sorted(o)}" for lvl, o, _ in WRONG])
def test_wrong_option_fails_before_any_row_is_read(pipe, untouched, level, options, words):
    calls, rows = untouched
    with pytest.raises(InputError) as info:
        pipe.predict(rows(), output_level=level, **options)
    for word in words:
        assert word in str(info.value), (word, str(info.value))
    assert calls == {"rows": 0, "encode": 0}


def test_twenty_thousand_texts_with_a_wrong_option_are_never_read(pipe, untouched):
    calls, rows = untouched
    texts = list(rows())
    calls["rows"] = 0
    with pytest.raises(InputError, match="subtoken_pooling"):
        pipe.predict(texts, subtoken_pooling="avg")
    assert calls["encode"] == 0


def test_pooler_on_a_model_without_one_is_refused_up_front(tiny_bert_dir, tmp_path, monkeypatch):
    from conftest import build_bert_checkpoint

    monkeypatch.setenv("NLU_LITE_CACHE", str(tmp_path / "cache"))
    folder = build_bert_checkpoint(tmp_path / "no_pooler", with_pooler=False)
    pipe = nlu_lite.load(path=folder)
    with pytest.raises(InputError, match="pooler.*has none.*'mean'"):
        pipe.predict("the dog.", output_level="sentence", pooling="pooler")
    assert pipe.resolve_options("sentence").pooling == "mean"


def test_defaults_come_from_the_model_and_level(pipe):
    token = pipe.resolve_options()
    assert (token.output_level, token.subtoken_pooling, token.pooling, token.normalize) == ("token", "first", None, False)
    sentence = pipe.resolve_options("sentence")
    assert (sentence.subtoken_pooling, sentence.pooling, sentence.max_length) == (None, "mean", 512)
    assert pipe.resolve_options("token", subtoken_pooling="first_last").vector_width == 64
    assert pipe.resolve_options("token", layers=np.int64(-1)).layers == (-1,)
    assert pipe.resolve_options("sentence", batch_size=np.int32(4)).batch_size == 4
    assert set(OPTION_NAMES) == set(DEFAULTS)
    assert sentence.window_overlap == 128
    assert pipe.resolve_options("token", max_length=66).window_overlap == 32  # half of a 64-piece window
    assert pipe.resolve_options("token", max_length=200).window_overlap == 128  # as before: 128 when it fits
    assert pipe.resolve_options("token", keep_columns=None).keep_columns is False


def test_normalize_applies_at_token_level(pipe):
    plain = nlu_lite.to_matrix(pipe.predict("the quick brown fox jumps.", output_level="token"))
    unit = nlu_lite.to_matrix(pipe.predict("the quick brown fox jumps.", output_level="token", normalize=True))
    np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(unit, plain / np.linalg.norm(plain, axis=1, keepdims=True), rtol=1e-5, atol=1e-6)
    assert not np.allclose(np.linalg.norm(plain, axis=1), 1.0)


def test_keep_columns_that_repeat_output_columns_are_refused(pipe):
    import pandas as pd

    df = pd.DataFrame({"text": ["the dog runs."], "sentence": ["mine"], "label": [1]})
    with pytest.raises(InputError, match=r"\['sentence'\]"):
        pipe.predict(df, output_level="sentence", keep_columns=True)
    out = pipe.predict(df, output_level="document", keep_columns=["label"])
    assert list(out.columns[:2]) == ["origin_index", "label"]
    out = pipe.predict(df, output_level="document", keep_columns="label")  # one name alone
    assert "label" in out.columns and "sentence" not in out.columns


def test_text_column_and_keep_columns_need_a_dataframe(pipe, untouched):
    calls, rows = untouched
    with pytest.raises(InputError, match="keep_columns applies to DataFrame"):
        pipe.predict(rows(), keep_columns=["label"])
    with pytest.raises(InputError, match="text_column='body' applies to DataFrame"):
        pipe.predict(rows(), text_column="body")
    assert calls == {"rows": 0, "encode": 0}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(level=st.sampled_from(OUTPUT_LEVELS),
       subtoken=st.one_of(st.none(), st.sampled_from(SUBTOKEN_POOLINGS), st.text(max_size=8)),
       pooling=st.one_of(st.none(), st.sampled_from(SENTENCE_POOLINGS), st.text(max_size=8)),
       normalize=st.one_of(st.none(), st.booleans(), st.integers(-1, 2), st.text(max_size=3)),
       layers=st.one_of(st.integers(-5, 5), st.lists(st.integers(-5, 5), max_size=3)),
       batch_size=st.one_of(st.integers(-2, 64), st.floats(0, 64), st.booleans()))
def test_options_either_resolve_to_valid_values_or_fail_before_work(pipe, untouched, level, subtoken, pooling,
                                                                    normalize, layers, batch_size):
    calls, rows = untouched
    calls.update(rows=0, encode=0)  # one fixture serves every example
    options = {"subtoken_pooling": subtoken, "pooling": pooling, "normalize": normalize, "layers": layers,
               "batch_size": batch_size}
    try:
        resolved = pipe.resolve_options(level, **options)
    except InputError:
        with pytest.raises(InputError):
            pipe.predict(rows(5), output_level=level, **options)
        assert calls == {"rows": 0, "encode": 0}
        return
    # resolved: every value concrete, valid, and meaningful at this level
    assert resolved.output_level == level
    if level == "token":
        assert resolved.subtoken_pooling in SUBTOKEN_POOLINGS and resolved.pooling is None
    else:
        assert resolved.pooling in SENTENCE_POOLINGS and resolved.subtoken_pooling is None
    assert isinstance(resolved.normalize, bool) and resolved.batch_size >= 1
    assert all(-3 <= v <= 2 for v in resolved.layers) and resolved.layers
    df = pipe.predict(["the dog runs. It is quick!", ""], output_level=level, **options)
    assert nlu_lite.to_matrix(df).shape[1] == resolved.vector_width


def test_methods_that_became_functions_say_where_they_went(pipe):
    with pytest.raises(AttributeError, match=r"nlu_lite.predict_iter\(pipe"):
        pipe.predict_iter(["x"])
    with pytest.raises(AttributeError, match="no attribute 'nonsense'"):
        pipe.nonsense
