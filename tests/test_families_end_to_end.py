"""Every family through the whole pipeline: load(path=folder) -> predict(output_level='token').

A word's vector is the transformers model's state of the first piece that covers the word (its
character span overlaps the word's), whatever the tokenizer; a causal model's (Qwen3) is its
last covering piece's, the only one that has seen the whole word. The token columns are the same
for every model, so frames from different models join on ``(origin_index, begin, end)``.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from _tokenizers import build_bpe_tokenizer, build_unigram_tokenizer
from conftest import build_wordpiece_vocab

import nlu_lite

TEXTS = [
    "Hello, world; Smith's café costs 3.50 dollars",
    "東京は大きい 中文 and naïve résumé",
    "emoji 😀 and e\u0301 combining marks",
    "a lone \u0301 mark, [SEP] and [CLS] are text",
    "short",
]
SIZES = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 37}

# family -> (transformers config class, model class, tokenizer kind, extra config)
FAMILIES = {
    "bert": ("BertConfig", "BertModel", "wordpiece", {}),
    "roberta": ("RobertaConfig", "RobertaModel", "bpe", {"max_position_embeddings": 130, "type_vocab_size": 1}),
    "xlm-roberta": ("XLMRobertaConfig", "XLMRobertaModel", "unigram",
                    {"max_position_embeddings": 130, "type_vocab_size": 1}),
    "camembert": ("CamembertConfig", "CamembertModel", "unigram", {"max_position_embeddings": 130, "type_vocab_size": 1}),
    "distilbert": ("DistilBertConfig", "DistilBertModel", "wordpiece",
                   {"dim": 32, "n_layers": 2, "n_heads": 4, "hidden_dim": 37}),
    "electra": ("ElectraConfig", "ElectraModel", "wordpiece", {"embedding_size": 16}),
    "albert": ("AlbertConfig", "AlbertModel", "unigram", {"embedding_size": 16, "num_hidden_groups": 1}),
    "mpnet": ("MPNetConfig", "MPNetModel", "bpe", {"max_position_embeddings": 130}),
    "deberta-v2": ("DebertaV2Config", "DebertaV2Model", "unigram",
                   {"relative_attention": True, "position_buckets": 32, "max_relative_positions": -1,
                    "pos_att_type": ["p2c", "c2p"], "norm_rel_ebd": "layer_norm", "share_att_key": True,
                    "position_biased_input": False, "type_vocab_size": 0, "max_position_embeddings": 128}),
    # framing at the end (pieces <sep> <cls>); its own size names
    "xlnet": ("XLNetConfig", "XLNetModel", "unigram:xlnet", {"d_model": 32, "n_layer": 2, "n_head": 4, "d_inner": 37}),
    # a window of 8 (each token sees 4 either side): most of these texts are longer
    "longformer": ("LongformerConfig", "LongformerModel", "bpe",
                   {"max_position_embeddings": 130, "type_vocab_size": 1, "attention_window": 8}),
    # T5's encoder: framing "pieces </s>", relative buckets, gated-GELU feed-forward
    "t5": ("T5Config", "T5EncoderModel", "unigram:t5",
           {"d_model": 32, "d_kv": 8, "d_ff": 37, "num_layers": 2, "num_heads": 4, "feed_forward_proj": "gated-gelu",
            "relative_attention_num_buckets": 8, "relative_attention_max_distance": 20}),
    # rotary positions, a local window of 8 (4 either side) on layer 1, global on layer 0
    "modernbert": ("ModernBertConfig", "ModernBertModel", "bpe:bert",
                   {"local_attention": 8, "global_attn_every_n_layers": 2, "max_position_embeddings": 256}),
    # a decoder: causal grouped-query attention, "pieces <|endoftext|>", a word's vector its last piece's
    "qwen3": ("Qwen3Config", "Qwen3Model", "bpe:eos", {"num_key_value_heads": 2, "head_dim": 8,
                                                     "max_position_embeddings": 256}),
}
OWN_SIZES = {"distilbert", "xlnet", "t5"}  # families whose config names its sizes differently (given in FAMILIES)
LAST_PIECE = {"qwen3"}  # causal models: a word's vector is its last piece's (the only one that saw the whole word)


def _tokenizer(kind: str, folder):
    kind, _, framing = kind.partition(":")
    if kind == "wordpiece":
        build_wordpiece_vocab(folder, lowercase=True)
    elif kind == "bpe":
        build_bpe_tokenizer(folder, **({"framing": framing} if framing else {}))
    else:
        build_unigram_tokenizer(folder, **({"framing": framing} if framing else {}))
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(folder))


def _build(family: str, folder):
    import torch
    import transformers

    config_name, model_name, kind, extra = FAMILIES[family]
    ref_tok = _tokenizer(kind, folder)
    sizes = {} if family in OWN_SIZES else SIZES
    ids = {f"{k}_token_id": getattr(ref_tok, f"{k}_token_id") for k in ("bos", "eos", "cls", "sep")
           if family == "modernbert"}  # its config names its special ids (they index the embedding table)
    config = getattr(transformers, config_name)(vocab_size=len(ref_tok), pad_token_id=ref_tok.pad_token_id,
                                                **ids, **sizes, **extra)
    torch.manual_seed(0)
    model = getattr(transformers, model_name)(config).eval()
    with torch.no_grad():  # LayerNorms and biases away from identity/zero, so the test sees them
        for name, p in model.named_parameters():
            if p.dim() == 1:
                p.add_(torch.randn_like(p) * 0.1)
    model.save_pretrained(str(folder))
    return model, ref_tok


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("families")
    return {family: (root / family, *_build(family, root / family)) for family in FAMILIES}


@pytest.fixture(scope="module")
def frames(built, tmp_path_factory):
    import os

    cache = tmp_path_factory.mktemp("cache")
    old = os.environ.get("NLU_LITE_CACHE")
    os.environ["NLU_LITE_CACHE"] = str(cache)
    try:
        return {family: nlu_lite.load(path=str(folder)).predict(TEXTS, output_level="token")
                for family, (folder, _, _) in built.items()}
    finally:
        if old is None:
            os.environ.pop("NLU_LITE_CACHE")
        else:
            os.environ["NLU_LITE_CACHE"] = old


def _reference_word_vectors(model, ref_tok, text: str, spans, last: bool = False) -> np.ndarray:
    import torch

    enc = ref_tok(text, return_offsets_mapping=True, split_special_tokens=True, return_tensors="pt")
    offsets = enc.pop("offset_mapping")[0].tolist()
    with torch.no_grad():
        states = model(**{k: v for k, v in enc.items() if k in ("input_ids", "attention_mask")}).last_hidden_state[0]
    out = np.full((len(spans), states.shape[1]), np.nan, dtype=np.float32)
    for w, (b, e) in enumerate(spans):
        covering = [i for i, (pb, pe) in enumerate(offsets) if pb < pe and pb < e and pe > b]
        if covering:
            out[w] = states[covering[-1] if last else covering[0]].numpy()
    return out


@pytest.mark.parametrize("family", list(FAMILIES))
def test_a_words_vector_is_the_state_of_its_first_covering_piece(built, frames, family):
    _, model, ref_tok = built[family]
    df = frames[family]
    vectors = nlu_lite.to_matrix(df)
    checked = 0
    assert (df["sentence_index"] == 0).all()  # one sentence per text: one sequence, as the reference runs it
    for i, text in enumerate(TEXTS):
        rows = np.flatnonzero(df["origin_index"].to_numpy() == i)
        spans = list(zip(df["begin"].to_numpy()[rows], df["end"].to_numpy()[rows]))
        want = _reference_word_vectors(model, ref_tok, text, spans, last=family in LAST_PIECE)
        np.testing.assert_array_equal(np.isnan(vectors[rows]), np.isnan(want))
        np.testing.assert_allclose(vectors[rows], want, atol=2e-4, rtol=0)
        checked += int((~np.isnan(want[:, 0])).sum())
    assert checked >= 40


def test_token_columns_are_the_same_for_every_model(frames):
    columns = ["origin_index", "sentence_index", "token", "begin", "end", "sentence"]
    first = frames["bert"][columns]
    for family, df in frames.items():
        pd.testing.assert_frame_equal(df[columns], first, obj=family)
    assert (first["token"] == [t[b:e] for t, b, e in zip(np.array(TEXTS)[first["origin_index"]], first["begin"],
                                                          first["end"])]).all()
    joined = frames["bert"].merge(frames["xlm-roberta"], on=["origin_index", "begin", "end"], how="inner")
    assert len(joined) == len(first)


@pytest.fixture(scope="module")
def st_folders(built, tmp_path_factory):
    """Each family's checkpoint saved by sentence-transformers: Transformer, Pooling (mean; a causal
    model's last token), Normalize."""
    import sentence_transformers as st
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer

    out = {}
    for family, (folder, model, _) in built.items():
        transformer = Transformer(str(folder))
        width = transformer.get_embedding_dimension()
        pooling = Pooling(width, pooling_mode="lasttoken" if family in LAST_PIECE else "mean")
        encoder = st.SentenceTransformer(modules=[transformer, pooling, Normalize()], device="cpu")
        target = tmp_path_factory.mktemp(f"st_{family}") / "model"
        encoder.save(str(target))
        out[family] = (target, encoder)
    return out


@pytest.mark.parametrize("family", list(FAMILIES))
def test_sentence_level_equals_sentence_transformers(st_folders, family, tmp_path, monkeypatch):
    monkeypatch.setenv("NLU_LITE_CACHE", str(tmp_path / "cache"))
    folder, encoder = st_folders[family]
    pipe = nlu_lite.load(path=folder)
    assert pipe.spec.task == "sentence" and pipe.spec.pooling == ("lasttoken" if family in LAST_PIECE else "mean")
    # sentence-transformers reads "[SEP]" in a text as the control token; nlu_lite reads it as text (by design)
    texts = [t for t in TEXTS if "[SEP]" not in t]
    got = pipe.embed(texts, output_level="document")
    want = encoder.encode(texts, convert_to_numpy=True)
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)
    # each text alone gives the same bits as inside the batch
    np.testing.assert_array_equal(pipe.embed(texts[:1], output_level="document")[0], got[0])


LONG_FAMILIES = {  # families that take a 3,000-piece text in one sequence
    "longformer": ("LongformerConfig", "LongformerModel", "bpe",
                   {"max_position_embeddings": 4098, "type_vocab_size": 1, "attention_window": 64}),
    "modernbert": ("ModernBertConfig", "ModernBertModel", "bpe:bert",
                   {"local_attention": 64, "global_attn_every_n_layers": 2, "max_position_embeddings": 4096}),
}


@pytest.mark.slow
@pytest.mark.parametrize("family", list(LONG_FAMILIES))
def test_a_3000_piece_text_is_one_sequence_equal_to_transformers(family, tmp_path, monkeypatch):
    """Through the pipeline: not windowed, every word's vector its first piece's state in transformers'
    run of the whole text."""
    import torch
    import transformers

    monkeypatch.setenv("NLU_LITE_CACHE", str(tmp_path / "cache"))
    config_name, model_name, kind, extra = LONG_FAMILIES[family]
    folder = tmp_path / family
    ref_tok = _tokenizer(kind, folder)
    ids = {f"{k}_token_id": getattr(ref_tok, f"{k}_token_id") for k in ("bos", "eos", "cls", "sep")
           if family == "modernbert"}
    config = getattr(transformers, config_name)(vocab_size=len(ref_tok), pad_token_id=ref_tok.pad_token_id, **ids,
                                                **SIZES, **extra)
    torch.manual_seed(0)
    model = getattr(transformers, model_name)(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1:
                p.add_(torch.randn_like(p) * 0.1)
    model.save_pretrained(str(folder))
    text = " ".join(TEXTS[i % 3] for i in range(160))
    n_pieces = len(ref_tok(text, add_special_tokens=False)["input_ids"])
    assert 2800 <= n_pieces <= 3800, n_pieces
    df = nlu_lite.load(path=folder).predict(text, output_level="token")
    assert not df["windowed"].any()
    spans = list(zip(df["begin"].to_numpy(), df["end"].to_numpy()))
    want = _reference_word_vectors(model, ref_tok, text, spans)
    got = nlu_lite.to_matrix(df)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_allclose(got, want, atol=2e-4, rtol=0)


def test_a_decoder_tokenizer_without_end_token_frames_nothing(built, tmp_path, monkeypatch):
    """A Qwen3 tokenizer.json without the <|endoftext|> post-processor (as Qwen3-Embedding's was before June
    2025) is a decoder's own framing: nothing around the text, and last-token pooling takes the last text piece,
    as sentence-transformers does with that file. An encoder's tokenizer without one is still an error."""
    import json
    import shutil

    import sentence_transformers as st
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer

    from nlu_lite.errors import ConversionError

    monkeypatch.setenv("NLU_LITE_CACHE", str(tmp_path / "cache"))
    bare = shutil.copytree(built["qwen3"][0], tmp_path / "qwen3_bare")
    data = json.loads((bare / "tokenizer.json").read_text(encoding="utf-8"))
    data["post_processor"] = None
    (bare / "tokenizer.json").write_text(json.dumps(data), encoding="utf-8")
    pipe = nlu_lite.load(path=bare)
    assert (pipe.tokenizer.framing.prefix, pipe.tokenizer.framing.suffix) == ((), ())
    transformer = Transformer(str(bare))
    encoder = st.SentenceTransformer(modules=[transformer, Pooling(transformer.get_embedding_dimension(),
                                                                   pooling_mode="lasttoken"), Normalize()],
                                     device="cpu")
    texts = [t for t in TEXTS if "[SEP]" not in t]
    got = nlu_lite.load(path=bare).embed(texts, output_level="document", pooling="lasttoken", normalize=True)
    np.testing.assert_allclose(got, encoder.encode(texts, convert_to_numpy=True), atol=1e-4, rtol=0)

    encoder_folder = shutil.copytree(built["longformer"][0], tmp_path / "longformer_bare")
    data = json.loads((encoder_folder / "tokenizer.json").read_text(encoding="utf-8"))
    data["post_processor"] = None
    (encoder_folder / "tokenizer.json").write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ConversionError, match="post-processor"):
        nlu_lite.load(path=encoder_folder)


@pytest.mark.parametrize(("family", "last"), [("xlnet", True), ("t5", False), ("bert", False)])
def test_cls_pooling_reads_the_familys_class_token(built, family, last, tmp_path, monkeypatch):
    """XLNet's summary token <cls> ends its sequence (pieces <sep> <cls>); T5's framing is suffix-only too
    (pieces </s>) but, as sentence-transformers' cls pooling, reads position 0; BERT's [CLS] is first."""
    import torch

    monkeypatch.setenv("NLU_LITE_CACHE", str(tmp_path / "cache"))
    folder, model, ref_tok = built[family]
    text = "paris is a city by the river"
    got = nlu_lite.load(path=folder).embed([text], output_level="document", pooling="cls")[0]
    enc = ref_tok(text, return_tensors="pt")
    with torch.no_grad():
        states = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).last_hidden_state[0].numpy()
    np.testing.assert_allclose(got, states[-1 if last else 0], atol=1e-4, rtol=0)
    assert np.abs(states[-1] - states[0]).max() > 1e-2  # the two positions differ: the test can tell them apart
