"""predict(truncation=True): the reference cut, exactly (Spark NLP's maxSentenceLength: 128 pieces,
[CLS] and [SEP] included; max_length= sets it), with the cut rows flagged and nothing dropped."""
from __future__ import annotations

import numpy as np
import pytest

import nlu_lite
from nlu_lite.errors import InputError
from nlu_lite.options import SPARK_NLP_MAX_SENTENCE_LENGTH

WORDS = ["the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "river", "bank", "money", "loan", "water",
         "walk", "cat", "city", "data"]
LONG = " ".join(WORDS[i % len(WORDS)] + ("s" if i % 3 == 0 else "") for i in range(260))  # one sentence, ~300 pieces


@pytest.fixture(scope="module")
def reference(tiny_bert_dir):
    import torch
    from transformers import AutoTokenizer, BertModel

    tok = AutoTokenizer.from_pretrained(str(tiny_bert_dir))
    model = BertModel.from_pretrained(str(tiny_bert_dir)).eval()

    def run(text: str, cut: int):
        enc = tok(text, truncation=True, max_length=cut, return_offsets_mapping=True, return_tensors="pt")
        offsets = enc.pop("offset_mapping")[0].tolist()
        with torch.no_grad():
            states = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).last_hidden_state[0]
        return states.numpy(), offsets, enc["input_ids"].shape[1]

    return run


def _first_piece_vectors(df, states, offsets):
    """Each token's reference vector: the state of its first piece inside the cut, else NaN."""
    out = np.full((len(df), states.shape[1]), np.nan, np.float32)
    for row, (b, e) in enumerate(zip(df["begin"], df["end"])):
        hit = next((i for i, (pb, pe) in enumerate(offsets) if pb < pe and pb < e and pe > b), None)
        if hit is not None:
            out[row] = states[hit]
    return out


def test_the_text_is_long_enough_to_be_cut(tiny_pipe):
    assert len(tiny_pipe.tokenizer.encode([LONG]).ids) > 290


@pytest.mark.parametrize("max_length", [None, 64])
def test_token_level_equals_transformers_on_the_first_pieces(tiny_pipe, reference, max_length):
    cut = max_length or SPARK_NLP_MAX_SENTENCE_LENGTH
    df = tiny_pipe.predict(LONG, output_level="token", truncation=True, max_length=max_length)
    states, offsets, n = reference(LONG, cut)
    assert n == cut  # [CLS] + cut - 2 pieces + [SEP]
    want = _first_piece_vectors(df, states, offsets)
    got = nlu_lite.to_matrix(df)
    np.testing.assert_array_equal(np.isnan(got[:, 0]), np.isnan(want[:, 0]))
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)
    assert len(df) == len(tiny_pipe.predict(LONG, output_level="token"))  # no row dropped
    assert 0 < np.isnan(got[:, 0]).sum() < len(df)  # the tokens after the cut: NaN, and flagged
    assert df["truncated"].all() and not df["windowed"].any()


def test_sentence_level_mean_equals_transformers_on_the_cut(tiny_pipe, reference):
    texts = [LONG, "the cat walks"]
    df = tiny_pipe.predict(texts, output_level="sentence", pooling="mean", truncation=True)
    for row, text in enumerate(texts):
        states, _, _ = reference(text, SPARK_NLP_MAX_SENTENCE_LENGTH)
        np.testing.assert_allclose(nlu_lite.to_matrix(df)[row], states.mean(axis=0), atol=1e-5)
    assert df["truncated"].tolist() == [True, False]


def test_without_truncation_nothing_is_cut_and_there_is_no_truncated_column(tiny_pipe):
    df = tiny_pipe.predict(LONG, output_level="sentence", max_length=128)
    assert "truncated" not in df.columns and df["windowed"].all()  # embedded in windows instead
    assert "truncated" in tiny_pipe.output_columns("token", truncation=True)
    assert list(tiny_pipe.predict([], output_level="token", truncation=True).columns) == \
        list(tiny_pipe.output_columns("token", truncation=True))


def test_truncation_checks_its_values(tiny_pipe):
    with pytest.raises(InputError, match="truncation"):
        tiny_pipe.predict("x", truncation="yes")
    with pytest.raises(InputError, match="max_length"):
        tiny_pipe.predict("x", truncation=True, max_length=2)


def test_reuse_and_truncation_give_the_same_frame(tiny_pipe):
    texts = [LONG, "the cat walks", LONG]
    a = tiny_pipe.predict(texts, output_level="token", truncation=True, deduplicate=True)
    b = tiny_pipe.predict(texts, output_level="token", truncation=True, deduplicate=False)
    np.testing.assert_array_equal(nlu_lite.to_matrix(a), nlu_lite.to_matrix(b))
    assert a["truncated"].tolist() == b["truncated"].tolist()
