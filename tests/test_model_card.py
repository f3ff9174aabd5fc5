"""The model card's exact call, end to end: alias -> Hub download -> ONNX -> DataFrame.

../shared/reference/small_bert_L4_512_model_card.md shows
``nlu.load('en.embed.bert.small_L4_512').predict(text, output_level='token')`` giving the
columns ``token`` and ``en_embed_bert_small_L4_512_embeddings`` for I / love / NLP. The Hub is
not reachable here, so a loopback hub serves a checkpoint with that model's exact shape
(4 layers, hidden 512, 8 heads, intermediate 2048, bert-base-uncased's 30,522-piece vocab),
random weights, in the Google repo's layout (config.json, pytorch_model.bin, vocab.txt).
"""
from __future__ import annotations

import shutil

import numpy as np
import pytest
from _hub_server import HubServer
from conftest import build_bert_checkpoint

import nlu_lite


@pytest.fixture(scope="module")
def small_bert_repo(tmp_path_factory, minilm_dir):
    folder = build_bert_checkpoint(tmp_path_factory.mktemp("small_bert_L4_512"), hidden=512, layers=4, heads=8,
                                   intermediate=2048, vocab_size=30522, weights="bin")
    shutil.copy(minilm_dir / "vocab.txt", folder / "vocab.txt")  # the standard bert-base-uncased vocab
    return folder


def test_model_card_call_through_the_hub(small_bert_repo, isolated_cache, monkeypatch):
    import torch
    from transformers import AutoTokenizer, BertModel

    monkeypatch.setenv("NLU_LITE_PROGRESS", "0")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    with HubServer() as hub:
        hub.add_repo("google/bert_uncased_L-4_H-512_A-8", small_bert_repo)
        monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
        embeddings_df = nlu_lite.load("en.embed.bert.small_L4_512").predict(["I love NLP"], output_level="token")

    assert embeddings_df.token.tolist() == ["I", "love", "NLP"]
    assert "en_embed_bert_small_L4_512_embeddings" in embeddings_df.columns
    matrix = nlu_lite.to_matrix(embeddings_df)
    assert matrix.shape == (3, 512)

    tok = AutoTokenizer.from_pretrained(str(small_bert_repo))
    enc = tok("I love NLP", return_tensors="pt")
    assert tok.convert_ids_to_tokens(enc["input_ids"][0]) == ["[CLS]", "i", "love", "nl", "##p", "[SEP]"]
    with torch.no_grad():
        states = BertModel.from_pretrained(str(small_bert_repo)).eval()(**enc).last_hidden_state[0].numpy()
    np.testing.assert_allclose(matrix, states[[1, 2, 3]], atol=1e-4)  # first piece of each token
