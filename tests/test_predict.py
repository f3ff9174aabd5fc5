"""predict() against the reference: transformers' tokenizer and BertModel on the same checkpoint.

Every vector compared here is recomputed by transformers on PyTorch, never taken from an
earlier nlu_lite run.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import nlu_lite
from nlu_lite.errors import InputError
from nlu_lite.windows import owner_window, plan_windows

TOL = 1e-4


class Reference:
    """transformers on PyTorch, loaded from the same folder."""

    def __init__(self, folder):
        import torch
        from transformers import AutoTokenizer, BertModel

        self.torch = torch
        self.tok = AutoTokenizer.from_pretrained(str(folder))
        self.model = BertModel.from_pretrained(str(folder)).eval()

    def run_ids(self, ids: list[int]):
        t = self.torch
        with t.no_grad():
            out = self.model(input_ids=t.tensor([ids]), attention_mask=t.ones(1, len(ids), dtype=t.long),
                             output_hidden_states=True)
        return out

    def encode(self, text: str):
        enc = self.tok(text)
        return enc["input_ids"], enc.word_ids()

    def first_piece_states(self, sentence: str, layer: int = -1) -> np.ndarray:
        ids, word_ids = self.encode(sentence)
        states = self.run_ids(ids).hidden_states[layer][0].numpy()
        firsts = [i for i, w in enumerate(word_ids) if w is not None and (i == 0 or word_ids[i - 1] != w)]
        return states[firsts]

    def sequence_states(self, text: str) -> np.ndarray:
        ids, _ = self.encode(text)
        return self.run_ids(ids).last_hidden_state[0].numpy()


@pytest.fixture(scope="module")
def module_cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        root = tmp_path_factory.mktemp("cache")
        mp.setenv("NLU_LITE_CACHE", str(root / "nlu_lite"))
        mp.setenv("HF_HUB_CACHE", str(root / "hf"))
        mp.setenv("NLU_LITE_PROGRESS", "0")
        yield root


@pytest.fixture(scope="module")
def tiny(tiny_bert_dir, module_cache):
    return nlu_lite.load(path=tiny_bert_dir), Reference(tiny_bert_dir)


def emb(df: pd.DataFrame) -> np.ndarray:
    return nlu_lite.to_matrix(df)


SENTENCES = [
    "I love NLP.",
    "The quick brown fox jumps over the lazy dog in London, running.",
    "Dr. Smith lives in Paris; his café is naïve.",
    "東京 and 北京 are cities 😀 👍!",
]


def test_token_level_matches_transformers_first_piece(tiny):
    pipe, ref = tiny
    df = pipe.predict(SENTENCES, output_level="token")
    for row, sentence in enumerate(SENTENCES):
        part = df[df.origin_index == row]
        expected = ref.first_piece_states(sentence)
        assert len(part) == len(expected)  # one row per word of the reference tokenizer
        np.testing.assert_allclose(emb(part), expected, atol=TOL)
        assert all(sentence[b:e] == t for b, e, t in zip(part.begin, part.end, part.token))


def test_tokens_are_shown_as_written_with_offsets_into_the_original(tiny):
    pipe, _ = tiny
    text = "Hello Dr. Müller! Café 😀 in 東京, naïve résumé."
    df = pipe.predict(text)
    assert df.token.tolist() == ["Hello", "Dr", ".", "Müller", "!", "Café", "😀", "in", "東", "京", ",",
                                 "naïve", "résumé", "."]
    assert all(text[b:e] == t for b, e, t in zip(df.begin, df.end, df.token))
    assert df.sentence_index.tolist() == [0] * 5 + [1] * 9
    assert set(df.sentence) == {"Hello Dr. Müller!", "Café 😀 in 東京, naïve résumé."}


def test_frame_layout_dtypes_and_matrix(tiny):
    pipe, _ = tiny
    df = pipe.predict(SENTENCES)
    column = pipe.spec.embedding_column
    assert list(df.columns) == ["origin_index", "sentence_index", "token", "begin", "end", "sentence", "windowed", column]
    cells = df[column].to_numpy()
    assert all(isinstance(v, np.ndarray) and v.dtype == np.float32 and v.shape == (pipe.spec.dim,) for v in cells)
    matrix = nlu_lite.to_matrix(df)
    assert matrix.shape == (len(df), pipe.spec.dim) and matrix.dtype == np.float32
    np.testing.assert_array_equal(matrix, np.vstack(cells))
    assert cells[0].base is not None and cells[0].base is cells[-1].base  # views of one matrix
    np.testing.assert_array_equal(df.nlu.matrix(), matrix)
    assert not df.windowed.any()


def test_every_input_type_gives_the_same_rows(tiny):
    pipe, _ = tiny
    base = pipe.predict(SENTENCES[:2])
    variants = [tuple(SENTENCES[:2]), np.array(SENTENCES[:2]), pd.Series(SENTENCES[:2]),
                pd.DataFrame({"text": SENTENCES[:2]}), iter(SENTENCES[:2])]
    for data in variants:
        df = pipe.predict(data)
        pd.testing.assert_frame_equal(df.drop(columns=pipe.spec.embedding_column),
                                      base.drop(columns=pipe.spec.embedding_column))
        np.testing.assert_allclose(emb(df), emb(base), atol=1e-6)
    one = pipe.predict(SENTENCES[1])
    np.testing.assert_allclose(emb(one), emb(base[base.origin_index == 1]), atol=1e-5)


def test_series_index_dataframe_columns_and_no_mutation(tiny):
    pipe, _ = tiny
    series = pd.Series(["I love NLP.", "Dogs run."], index=["a", "b"])
    df = pipe.predict(series)
    assert df.origin_index.tolist() == ["a"] * 4 + ["b"] * 3
    frame = pd.DataFrame({"body": ["I love NLP.", "Dogs run."], "label": ["x", "y"]}, index=[7, 9])
    before = frame.copy()
    out = pipe.predict(frame, text_column="body", keep_columns=["label"], output_level="sentence")
    assert out.origin_index.tolist() == [7, 9] and out.label.tolist() == ["x", "y"]
    pd.testing.assert_frame_equal(frame, before)


def test_batching_and_sorting_do_not_change_results(tiny):
    pipe, _ = tiny
    texts = [" ".join(["dog"] * n) + "." for n in (3, 40, 1, 17, 8, 25)]
    a = pipe.predict(texts, batch_size=1)
    b = pipe.predict(texts, batch_size=4)
    c = pipe.predict(texts, batch_size=32, max_batch_tokens=50)  # a token cap splits the batches instead
    pd.testing.assert_frame_equal(a.iloc[:, :-1], b.iloc[:, :-1])
    pd.testing.assert_frame_equal(a.iloc[:, :-1], c.iloc[:, :-1])
    np.testing.assert_allclose(emb(a), emb(b), atol=TOL)
    np.testing.assert_allclose(emb(a), emb(c), atol=TOL)


def test_batches_respect_both_caps_and_cover_every_sequence():
    from nlu_lite.batching import split_batches as _batches

    rng = np.random.default_rng(3)
    widths = rng.integers(3, 600, size=500)
    order = np.argsort(widths, kind="stable")
    for batch_size, max_tokens in [(32, 1024), (1, 10**9), (32, 10**9), (7, 100), (500, 1)]:
        batches = _batches(order, widths, batch_size, max_tokens)
        np.testing.assert_array_equal(np.concatenate(batches), order)  # all, once, in order
        for b in batches:
            assert 1 <= len(b) <= batch_size
            assert len(b) == 1 or len(b) * widths[b].max() <= max_tokens
        # greedy: a batch stops only when the next sequence would break a cap
        for b, nxt in zip(batches, batches[1:]):
            assert len(b) == batch_size or (len(b) + 1) * widths[nxt[0]] > max_tokens


def test_long_sequences_are_capped_by_tokens_not_only_sequences(tiny):
    pipe, _ = tiny
    calls = []
    original = pipe.encoder.run

    def recording(ids, mask, outputs):
        calls.append(ids.shape)
        return original(ids, mask, outputs)

    pipe.encoder.run = recording
    texts = [" ".join(["dog"] * n) + "." for n in (120, 125, 130, 3, 4)]
    try:
        pipe.predict(texts, output_level="document", batch_size=32, max_batch_tokens=10**6)
        uncapped, calls[:] = list(calls), []
        pipe.predict(texts, output_level="document", batch_size=32, max_batch_tokens=256)
    finally:
        del pipe.encoder.run
    assert [rows for rows, _ in uncapped] == [5]
    assert sum(rows for rows, _ in calls) == 5  # every document ran once
    assert all(rows * width <= 256 for rows, width in calls)  # no call above the cap
    assert sorted(rows for rows, _ in calls) == [1, 2, 2]  # greedy: as many as fit


def test_sentence_and_document_mean_pooling_match_the_reference(tiny):
    pipe, ref = tiny
    text = "Dr. Smith lives in Paris. The dog runs to the river bank!"
    sentences = pipe.predict(text, output_level="sentence")
    assert sentences.sentence.tolist() == ["Dr. Smith lives in Paris.", "The dog runs to the river bank!"]
    for vec, sentence in zip(emb(sentences), sentences.sentence):
        np.testing.assert_allclose(vec, ref.sequence_states(sentence).mean(axis=0), atol=TOL)
    doc = pipe.predict(text, output_level="document")
    assert doc.document.tolist() == [text]
    np.testing.assert_allclose(emb(doc)[0], ref.sequence_states(text).mean(axis=0), atol=TOL)


@pytest.mark.parametrize("pooling", ["cls", "max", "pooler"])
def test_other_poolings_match_the_reference(tiny, pooling):
    pipe, ref = tiny
    text = "The quick brown fox jumps over the lazy dog."
    got = emb(pipe.predict(text, output_level="document", pooling=pooling))[0]
    ids, _ = ref.encode(text)
    out = ref.run_ids(ids)
    states = out.last_hidden_state[0].numpy()
    expected = {"cls": states[0], "max": states.max(axis=0), "pooler": out.pooler_output[0].numpy()}[pooling]
    np.testing.assert_allclose(got, expected, atol=TOL)


def test_layers_and_subtoken_pooling_options_match_the_reference(tiny):
    pipe, ref = tiny
    sentence = "Unbelievable runners played in London."
    got = emb(pipe.predict(sentence, layers=[-2, -1]))
    expected = (ref.first_piece_states(sentence, -2) + ref.first_piece_states(sentence, -1)) / 2
    np.testing.assert_allclose(got, expected, atol=TOL)
    got0 = emb(pipe.predict(sentence, layers=0))
    np.testing.assert_allclose(got0, ref.first_piece_states(sentence, 0), atol=TOL)

    ids, word_ids = ref.encode(sentence)
    states = ref.run_ids(ids).last_hidden_state[0].numpy()
    words = sorted({w for w in word_ids if w is not None})
    mean = np.stack([states[[i for i, w in enumerate(word_ids) if w == k]].mean(axis=0) for k in words])
    last = np.stack([states[[i for i, w in enumerate(word_ids) if w == k][-1]] for k in words])
    np.testing.assert_allclose(emb(pipe.predict(sentence, subtoken_pooling="mean")), mean, atol=TOL)
    np.testing.assert_allclose(emb(pipe.predict(sentence, subtoken_pooling="last")), last, atol=TOL)
    first_last = emb(pipe.predict(sentence, subtoken_pooling="first_last"))
    assert first_last.shape[1] == 2 * pipe.spec.dim
    np.testing.assert_allclose(first_last[:, pipe.spec.dim:], last, atol=TOL)


def test_missing_empty_and_invalid_rows(tiny):
    pipe, _ = tiny
    data = pd.Series(["I love NLP.", None, "", "   ", "Dogs run."], index=list("abcde"))
    tokens = pipe.predict(data)
    assert sorted(set(tokens.origin_index)) == ["a", "e"]  # rows without text have no tokens
    for level in ("sentence", "document"):
        df = pipe.predict(data, output_level=level)
        assert df.origin_index.tolist() == list("abcde")  # every input row has its row
        matrix = emb(df)
        assert np.isnan(matrix[1:4]).all() and np.isfinite(matrix[[0, 4]]).all()
    with pytest.raises(InputError, match=r"row 1 .*int"):
        pipe.predict(["fine", 3])
    skipped = pipe.predict(["fine", 3], output_level="document", skip_invalid=True)
    assert len(skipped) == 2 and np.isnan(emb(skipped)[1]).all()
    empty = pipe.predict([], output_level="token")
    assert len(empty) == 0 and pipe.spec.embedding_column in empty.columns


def test_options_are_validated_with_the_valid_names(tiny):
    pipe, _ = tiny
    with pytest.raises(InputError, match="valid options are .*subtoken_pooling"):
        pipe.predict("x", subtoken_poling="mean")
    with pytest.raises(InputError, match="output_level"):
        pipe.predict("x", output_level="word")
    with pytest.raises(InputError, match="layer 5 does not exist.*0..2"):
        pipe.predict("x", layers=[5])
    with pytest.raises(InputError, match="max_length"):
        pipe.predict("x", max_length=4096)
    for name, value in [("batch_size", 0), ("max_batch_tokens", 0), ("max_batch_tokens", 1.5), ("batch_size", True)]:
        with pytest.raises(InputError, match=name):
            pipe.predict("x", **{name: value})


def _long_document(n_words: int, rng) -> str:
    words = ["the", "dog", "runs", "to", "the", "river", "bank", "and", "unbelievable", "money", "loan",
             "doctor", "smith", "lives", "in", "london", "café", "naïve", "東京", "😀", "3.14"]
    out, sentence_len = [], 0
    for i in range(n_words):
        out.append(words[rng.integers(len(words))])
        sentence_len += 1
        # mostly ordinary sentences, one very long run without punctuation (more than 512 pieces)
        if 300 < i < 1100:
            continue
        if sentence_len > rng.integers(5, 30):
            out[-1] += "."
            sentence_len = 0
    return " ".join(out)


def test_two_thousand_word_document_at_every_level_loses_nothing(tiny):
    pipe, ref = tiny
    rng = np.random.default_rng(0)
    text = _long_document(2000, rng)
    sentences = nlu_lite.split_sentences(text)

    tokens = pipe.predict(text, output_level="token")
    expected_words = sum(len({w for w in ref.encode(text[b:e])[1] if w is not None}) for b, e in sentences)
    assert len(tokens) == expected_words
    assert all(text[b:e] == t for b, e, t in zip(tokens.begin, tokens.end, tokens.token))
    assert (np.diff(tokens.begin.to_numpy()) > 0).all()  # input order, no duplicates
    assert np.isfinite(emb(tokens)).all()

    # the long sentence was embedded in windows; each of its tokens equals transformers on its window
    long_id = max(range(len(sentences)), key=lambda i: sentences[i][1] - sentences[i][0])
    long_rows = tokens[tokens.sentence_index == long_id]
    assert long_rows.windowed.all() and not tokens[tokens.sentence_index != long_id].windowed.any()
    b, e = sentences[long_id]
    ids, word_ids = ref.encode(text[b:e])
    pieces, piece_words = ids[1:-1], word_ids[1:-1]
    assert len(pieces) > 510
    windows = plan_windows(len(pieces), 510, 128)
    owner = owner_window(len(pieces), windows)
    window_states = [ref.run_ids([ids[0]] + pieces[s:t] + [ids[-1]]).last_hidden_state[0].numpy() for s, t in windows]
    firsts = [i for i, w in enumerate(piece_words) if i == 0 or piece_words[i - 1] != w]
    expected = np.stack([window_states[owner[i]][1 + i - windows[owner[i], 0]] for i in firsts])
    np.testing.assert_allclose(emb(long_rows), expected, atol=TOL)

    sent = pipe.predict(text, output_level="sentence")
    assert len(sent) == len(sentences) and sent.windowed.sum() == 1
    assert np.isfinite(emb(sent)).all()
    doc = pipe.predict(text, output_level="document")
    assert len(doc) == 1 and bool(doc.windowed[0]) and np.isfinite(emb(doc)).all()


def test_repr_names_the_model(tiny):
    pipe, _ = tiny
    assert "dim=32" in repr(pipe) and "layers=2" in repr(pipe)
    html = pipe._repr_html_()
    assert "<table>" in html and pipe.spec.embedding_column in html and "onnxruntime" in html.lower()


# -- the real model: all-MiniLM-L6-v2 from its PyPI wheel ---------------------------------


@pytest.fixture(scope="module")
def minilm_ref(minilm_dir):
    return Reference(minilm_dir)


def test_minilm_one_liner_matches_the_model_card_call(module_cache, minilm_ref):
    df = nlu_lite.load("en.embed.minilm_l6").predict("I love NLP", output_level="token")
    assert df.token.tolist() == ["I", "love", "NLP"]
    assert "en_embed_minilm_l6_embeddings" in df.columns
    matrix = emb(df)
    assert matrix.shape == (3, 384)
    np.testing.assert_allclose(matrix, minilm_ref.first_piece_states("I love NLP"), atol=TOL)


def test_minilm_sentence_vectors_match_sentence_transformers_recipe(module_cache, minilm_ref):
    pipe = nlu_lite.load("en.embed_sentence.minilm_l6")
    texts = ["A man is eating food.", "The new movie is awesome!", "Dr. Smith went to Washington."]
    df = pipe.predict(texts, output_level="document")
    for vec, text in zip(emb(df), texts):
        mean = minilm_ref.sequence_states(text).mean(axis=0)  # mean pooling over [CLS] .. [SEP]
        expected = mean / np.linalg.norm(mean)
        np.testing.assert_allclose(vec, expected, atol=TOL)
        assert abs(np.linalg.norm(vec) - 1) < 1e-5
