"""Hostile text and files a user may hand over: each gives a defined, documented result or a
clear error at load time, and no row, character or vector is lost silently."""
from __future__ import annotations

import logging
import shutil

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import nlu_lite
from nlu_lite.choices import OUTPUT_LEVELS
from nlu_lite.errors import ConversionError, InputError, RegistryError
from nlu_lite.registry import parse_model
from nlu_lite.tokenize import word_splitter


@pytest.fixture(scope="module")
def pipe(tiny_pipe):
    return tiny_pipe


def _nan_rows(df: pd.DataFrame) -> list[bool]:
    return np.isnan(nlu_lite.to_matrix(df)).any(axis=1).tolist()


@pytest.mark.parametrize("level", OUTPUT_LEVELS)
def test_a_lone_surrogate_is_replaced_and_counted_not_fatal(pipe, level, caplog, tmp_path):
    caplog.set_level(logging.WARNING, logger="nlu_lite.inputs")
    df = pipe.predict(["abc\ud800def", "fine text"], output_level=level)
    assert "U+FFFD" in caplog.text and "1 row(s)" in caplog.text
    text_column = {"token": "sentence", "sentence": "sentence", "document": "document"}[level]
    assert df[text_column].iloc[0] == "abc\ufffddef"  # one character for one: offsets still index the text
    assert not any(_nan_rows(df))
    back = nlu_lite.read_parquet(nlu_lite.predict_to_parquet(pipe, ["abc\ud800def"], tmp_path / "s.parquet",
                                                             output_level=level))
    assert back[text_column].iloc[0] == "abc\ufffddef"


def test_every_kind_of_nan_is_a_missing_value(pipe):
    df = pipe.predict(["the dog.", np.float32("nan"), np.float16("nan"), float("nan"), pd.NaT, None],
                      output_level="document")
    assert _nan_rows(df) == [False, True, True, True, True, True]


def test_special_token_strings_in_text_are_ordinary_text(pipe):
    text = "a [SEP] b [CLS] [MASK] [PAD] [UNK]"
    pieces = pipe.tokenizer.encode([text])
    specials = {pipe.tokenizer._tok.token_to_id(t) for t in ("[SEP]", "[CLS]", "[MASK]", "[PAD]")}
    assert not specials & set(pieces.ids.tolist())
    tokens = pipe.predict(text).token.tolist()
    assert tokens[:5] == ["a", "[", "SEP", "]", "b"]
    same = nlu_lite.to_matrix(pipe.predict("a [sep] b", output_level="sentence"))  # uncased: the same pieces
    np.testing.assert_array_equal(nlu_lite.to_matrix(pipe.predict("a [SEP] b", output_level="sentence")), same)


def test_the_nan_rule_is_one_rule_no_word_pieces(pipe):
    # the tokenizer keeps nothing of control and zero-width characters: such a text has no vector
    df = pipe.predict(["\x00\x01\x02", "\u200b\u200d\ufeff", "Hello. \u200b", "   "], output_level="sentence")
    assert df.origin_index.tolist() == [0, 1, 2, 3]  # every row kept
    assert _nan_rows(df) == [True, True, False, True]
    assert df.sentence.tolist()[2] == "Hello."  # the zero-width tail is not a sentence of its own
    tokens = pipe.predict(["Hello. \u200b"], output_level="token")
    assert tokens.token.tolist() == ["Hello", "."] and not any(_nan_rows(tokens))
    docs = pipe.predict(["\u200b", "Hello. \u200b"], output_level="document")
    assert _nan_rows(docs) == [True, False]


@pytest.mark.parametrize("name", ["token", "origin_index", "sentence", "mine_embeddings"])
def test_kept_columns_never_repeat_an_output_column(pipe, name):
    df = pd.DataFrame({"text": ["the dog runs."], name: ["x"]})
    with pytest.raises(InputError, match=name):
        pipe.predict(df, output_level="token", keep_columns=True)


@pytest.mark.parametrize("index", [pd.MultiIndex.from_tuples([(0, "a"), (0, "b")]), pd.Index([0, "a"], dtype=object)],
                         ids=["multiindex", "mixed"])
def test_parquet_refuses_index_labels_it_cannot_store_before_any_work(pipe, tmp_path, index):
    data = pd.Series(["the dog.", "the cat."], index=index)
    assert len(pipe.predict(data)) == 6  # predict() itself keeps any labels
    with pytest.raises(InputError, match="origin_index"):
        nlu_lite.predict_to_parquet(pipe, data, tmp_path / "x.parquet")
    assert not list(tmp_path.iterdir())


def _entry(**overrides):
    base = {"name": "m", "task": "token", "dim": 8, "layers": 1, "heads": 2, "sources": [{"hf": {"repo": "a/b"}}]}
    return {**base, **overrides}


@pytest.mark.parametrize("overrides, field", [
    ({"aliases": [1, 2]}, "aliases"), ({"aliases": "en.embed.m1"}, "aliases"), ({"aliases": [""]}, "aliases"),
    ({"name": 5}, "name"), ({"license": ["MIT"]}, "license"), ({"size_mb": "90"}, "size_mb"),
    ({"sources": [{"hf": {"repo": 3}}]}, "repo"), ({"sources": [{"hf": {"repo": "a/b", "files": "config.json"}}]}, "files"),
])
def test_registry_types_are_checked(overrides, field):
    with pytest.raises(RegistryError, match=field):
        parse_model(_entry(**overrides))


def _copy(src, dst):
    shutil.copytree(src, dst)
    return dst


@pytest.mark.parametrize("damage, word", [
    (lambda f: (f / "tokenizer.json").write_text("{not json"), "tokenizer.json"),
    (lambda f: (f / "tokenizer.json").write_text("{}"), "tokenizer.json"),
    (lambda f: ((f / "tokenizer.json").unlink(), (f / "vocab.txt").write_bytes(b"\xff\xfe[PAD]\n\x80")), "vocab.txt"),
    (lambda f: ((f / "tokenizer.json").unlink(), (f / "vocab.txt").write_text("")), "vocab.txt"),
    (lambda f: ((f / "tokenizer.json").unlink(), (f / "vocab.txt").write_text("[PAD]\n[SEP]\nthe\n")), "[CLS]"),
])
def test_a_broken_tokenizer_fails_at_load_naming_the_file(tiny_bert_dir, tmp_path, isolated_cache, damage, word):
    folder = _copy(tiny_bert_dir, tmp_path / "ckpt")
    damage(folder)
    with pytest.raises(ConversionError) as info:
        nlu_lite.load(path=folder)
    assert word in str(info.value) and str(folder) in str(info.value)


def test_a_tokenizer_larger_than_the_embedding_table_fails_at_load(tiny_bert_dir, tmp_path, isolated_cache):
    folder = _copy(tiny_bert_dir, tmp_path / "ckpt")
    (folder / "tokenizer.json").unlink()
    vocab = (folder / "vocab.txt").read_text(encoding="utf-8")
    (folder / "vocab.txt").write_text(vocab + "".join(f"extra{i}\n" for i in range(50)), encoding="utf-8")
    with pytest.raises(ConversionError, match="embedding table"):
        nlu_lite.load(path=folder)


LABELS = st.one_of(st.integers(-10**6, 10**6), st.text(max_size=5))
# any Unicode (hypothesis leaves surrogates out: added), plus what breaks splitters and tokenizers
HOSTILE = st.one_of(st.characters(), st.sampled_from(
    ["\ud800", "\udfff", "[SEP]", "[CLS]", "\u200b", "\ufeff", "\x00", "\ufffd", ". ", "Dr. ", "...", "?!",
     "\n\n", " ", "\t", "東", "e\u0301", "😀"]))
TEXTS = st.lists(HOSTILE, max_size=30).map("".join)


def _valid(text: str) -> str:
    return "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in text)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.tuples(LABELS, st.one_of(st.none(), TEXTS)), max_size=6,
                     unique_by=lambda r: (type(r[0]).__name__, r[0])),
       level=st.sampled_from(OUTPUT_LEVELS))
@example(rows=[(0, "\u1932"), (1, "a \u1932 b")], level="token")  # a lone mark the uncased tokenizer strips
def test_random_unicode_loses_nothing(pipe, rows, level):
    index = pd.Index([label for label, _ in rows], dtype=object)
    texts = pd.Series([text for _, text in rows], index=index, dtype=object)
    df = pipe.predict(texts, output_level=level)
    normalizer = pipe.tokenizer._tok.normalizer
    emb = nlu_lite.to_matrix(df)
    with_pieces = [bool(t) and len(pipe.tokenizer.encode([_valid(t)]).ids) > 0 for t in texts]
    if level != "token":  # every input row has at least one row
        assert sorted(map(repr, set(df.origin_index))) == sorted(map(repr, set(index)))
    if level == "document":
        assert len(df) == len(rows)
        assert np.isnan(emb).any(axis=1).tolist() == [not p for p in with_pieces]
    if level == "sentence":
        assert not np.isnan(emb[df.origin_index.map(lambda o: with_pieces[index.get_loc(o)]).to_numpy(bool)]).any()
    if level == "token":
        # a token's vector is NaN exactly when the tokenizer keeps nothing of it (README: a lone combining mark an
        # uncased model strips, such as U+1932 alone, keeps its row with a NaN vector, logged)
        kept_nothing = [not normalizer.normalize_str(token).strip() for token in df.token]
        assert np.isnan(emb).any(axis=1).tolist() == kept_nothing
        for position, (label, text) in enumerate(zip(index, texts)):
            mask = [type(o) is type(label) and o == label for o in df.origin_index]
            mine = df.loc[np.asarray(mask, dtype=bool)]
            # rows come from the words (the splitter is the same for every model), vectors from the pieces
            words = text is not None and len(word_splitter().split([_valid(text)])[0]) > 0
            assert bool(len(mine)) == words
            assert words or not with_pieces[position]
            if text is None:
                continue
            text = _valid(text)
            covered = np.zeros(len(text), bool)
            for begin, end, token in zip(mine.begin, mine.end, mine.token):
                assert text[begin:end] == token
                covered[begin:end] = True
            for position_char, char in enumerate(text):  # what no token covers, the tokenizer drops
                if not covered[position_char]:
                    assert not normalizer.normalize_str(char).strip(), (text, char)
