"""XLNet (model_type 'xlnet') -> ONNX: fidelity to transformers' XLNetModel on PyTorch, padding on
either side, the <cls> segment option, int8, config checks, head checkpoints.

Every checkpoint is built here with random weights; nothing is downloaded. Init leaves
LayerNorms at identity, biases at 0 and every attention tensor at N(0, 0.02), which would make
XLNet's relative and segment terms a negligible share of the scores: they are redrawn larger, so
that a wrong relative shift, clamp or segment rule shows (the segment term alone moves the states by 0.99).
Rows are framed as XLNet's tokenizer frames a text: ``pieces <sep> <cls>``, padded with <pad>.
"""
from __future__ import annotations

import collections
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from _engine_support import (
    cosine_per_token,
    max_diff_on_tokens,
    model_outputs,
    save_state,
    scratch_dir,
)

from nlu_lite.convert import (
    GRAPH_VARIANTS,
    convert_checkpoint,
    ensure_onnx,
    load_weights,
    read_config,
)
from nlu_lite.convert.families import config_from_dict, parameter_count
from nlu_lite.convert.store import save_model
from nlu_lite.convert.xlnet import (
    FAMILY,
    MAX_POSITIONS,
    build_model,
    relative_sinusoids,
)
from nlu_lite.errors import ConversionError, InputError
from nlu_lite.runtime import OnnxEncoder

TOLERANCE = 1e-4
CLS, SEP, PAD = 3, 4, 5  # XLNet's vocabulary: <unk> <s> </s> <cls> <sep> <pad> <mask> <eod> <eop>
FIRST_PIECE = 9
TINY = {"d_model": 36, "n_layer": 3, "n_head": 3, "d_inner": 52, "vocab_size": 101}
SPECIALS = ["<unk>", "<s>", "</s>", "<cls>", "<sep>", "<pad>", "<mask>", "<eod>", "<eop>"]
# xlnet-base-cased's config.json, as published
XLNET_BASE_CASED = {
    "architectures": ["XLNetLMHeadModel"], "attn_type": "bi", "bi_data": False, "bos_token_id": 1, "clamp_len": -1,
    "d_head": 64, "d_inner": 3072, "d_model": 768, "dropout": 0.1, "end_n_top": 5, "eos_token_id": 2,
    "ff_activation": "gelu", "initializer_range": 0.02, "layer_norm_eps": 1e-12, "mem_len": None,
    "model_type": "xlnet", "n_head": 12, "n_layer": 12, "pad_token_id": 5, "reuse_len": None, "same_length": False,
    "start_n_top": 5, "summary_activation": "tanh", "summary_last_dropout": 0.1, "summary_type": "last",
    "summary_use_proj": True, "untie_r": True, "use_mems_eval": True, "use_mems_train": False, "vocab_size": 32000,
}
HEADS = {"model": "XLNetModel", "lm": "XLNetLMHeadModel", "classifier": "XLNetForSequenceClassification"}


def build_xlnet(folder: Path, *, d_model: int, n_layer: int, n_head: int, d_inner: int, vocab_size: int,
                head: str = "model", weights: str = "safetensors", seed: int = 0, **changes):
    """A random XLNet (``head``: a key of :data:`HEADS`) saved as a checkpoint folder; returns the
    folder and the XLNetModel inside it to compare with."""
    import torch
    import transformers

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    config = transformers.XLNetConfig(vocab_size=vocab_size, d_model=d_model, n_layer=n_layer, n_head=n_head,
                                      d_inner=d_inner, **changes)
    model = getattr(transformers, HEADS[head])(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "layer_norm" in name or name.endswith("bias"):
                p.add_(torch.randn_like(p) * 0.1)
            if name.endswith(("rel_attn.q", "rel_attn.k", "rel_attn.v", "rel_attn.o", "rel_attn.r")):
                p.normal_(0.0, 0.9 / d_model**0.5)
            if name.endswith(("r_w_bias", "r_r_bias", "r_s_bias", "seg_embed")):
                p.normal_(0.0, 0.5)
            if name.endswith("word_embedding.weight"):
                p.normal_(0.0, 1.0)
    config.save_pretrained(folder)
    state = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}  # lm_loss is tied: own copy
    save_state(state, folder, weights)
    return folder, (model if head == "model" else model.transformer)


def framed_batch(vocab_size: int, lengths: list[int], seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Right-padded ``pieces <sep> <cls>`` rows (a row of 1 is a lone <cls>), and the token types
    XLNet's tokenizer gives them: 0, with 2 for the <cls> and 3 for padding."""
    rng = np.random.default_rng(seed)
    ids = np.full((len(lengths), max(lengths)), PAD, np.int64)
    mask, types = np.zeros_like(ids), np.full_like(ids, 3)
    for row, n in enumerate(lengths):
        ids[row, :n] = rng.integers(FIRST_PIECE, vocab_size, n)
        ids[row, max(n - 2, 0):n] = [SEP, CLS][-n:]
        mask[row, :n], types[row, :n], types[row, n - 1] = 1, 0, 2
    return ids, mask, types


def left_padded(*arrays: np.ndarray, mask: np.ndarray) -> list[np.ndarray]:
    """Right-padded rows moved to the right end (XLNet's tokenizer pads on the left)."""
    shift = mask.shape[1] - mask.sum(axis=1)
    return [np.stack([np.roll(row, s) for row, s in zip(a, shift)]) for a in arrays]


def run_all(model_path: Path, ids: np.ndarray, mask: np.ndarray) -> dict[str, np.ndarray]:
    encoder = OnnxEncoder.from_path(model_path)
    return encoder.run(ids, mask, outputs=encoder.output_names)


def largest_difference(got: dict[str, np.ndarray], want: dict[str, np.ndarray], mask: np.ndarray) -> float:
    """Max |onnx - transformers| over real positions of every output; the outputs must be the same set."""
    assert set(got) == set(want), "outputs differ from transformers' hidden states"
    for name, array in want.items():
        assert got[name].shape == array.shape and got[name].dtype == np.float32, name
    return max(max_diff_on_tokens(got[name], want[name], mask) for name in want)


# --- fidelity at an odd small shape ------------------------------------------------------

CHECKPOINTS = {  # XLNetModel's names; XLNetLMHeadModel's and a classifier's (transformer. prefix, heads)
    "model-safetensors": {"weights": "safetensors"},
    "lm-bin": {"weights": "bin", "head": "lm"},
    "lm-safetensors": {"weights": "safetensors", "head": "lm"},
    "classifier-safetensors": {"weights": "safetensors", "head": "classifier"},
}


@pytest.fixture(scope="module", params=list(CHECKPOINTS))
def tiny(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(request.param)
    return build_xlnet(folder, **TINY, **CHECKPOINTS[request.param], seed=len(request.param))


@pytest.mark.parametrize("graph", GRAPH_VARIANTS)
def test_tiny_xlnet_matches_transformers(tiny, graph, tmp_path):
    """Every hidden state at real positions; a lone-<cls> row and padding."""
    folder, model = tiny
    ids, mask, _ = framed_batch(TINY["vocab_size"], [64, 7, 1, 23, 2], seed=3)
    got = run_all(convert_checkpoint(folder, tmp_path / "model.onnx", graph=graph), ids, mask)
    want = model_outputs(model, ids, mask)
    assert len(want) == TINY["n_layer"] + 2  # hidden_state_0..3 (0: the word embedding) and last_hidden_state
    assert largest_difference(got, want, mask) <= TOLERANCE  # measured: 1.0e-6 to 1.4e-6


def test_left_or_right_padding_gives_the_same_states(tmp_path):
    """Our graph takes right padding; transformers called with XLNet's tokenizer's left padding
    gives the same states at the real positions (only distances enter attention)."""
    folder, model = build_xlnet(tmp_path / "ckpt", **TINY, seed=5)
    ids, mask, _ = framed_batch(TINY["vocab_size"], [50, 9, 1, 31], seed=6)
    got = run_all(convert_checkpoint(folder, tmp_path / "model.onnx"), ids, mask)
    right = model_outputs(model, ids, mask)
    left_ids, left_mask = left_padded(ids, mask, mask=mask)
    back = {k: _to_right(v, left_mask) for k, v in model_outputs(model, left_ids, left_mask).items()}
    right_diff = largest_difference(got, right, mask)
    left_diff = largest_difference(got, back, mask)
    assert right_diff <= TOLERANCE and left_diff <= TOLERANCE, (right_diff, left_diff)  # measured 1.2e-6, 1.2e-6
    left_got = run_all(tmp_path / "model.onnx", left_ids, left_mask)  # our graph is padding-agnostic too
    assert largest_difference({k: _to_right(v, left_mask) for k, v in left_got.items()}, right, mask) <= TOLERANCE


def _to_right(states: np.ndarray, left_mask: np.ndarray) -> np.ndarray:
    """Left-padded rows' states moved back to right-padded positions."""
    shift = left_mask.sum(axis=1) - left_mask.shape[1]
    return np.stack([np.roll(row, s, axis=0) for row, s in zip(states, shift)])


# --- segments: the default (no segment term) and cls_segment=True (tokenizer's token types) ---


def xlnet_tokenizer():
    """An XLNet tokenizer (transformers' own class) over a small Unigram vocabulary."""
    from transformers import XLNetTokenizer

    pieces = ["▁", "▁the", "▁cat", "▁sat", "▁on", "▁mat", "▁a", "s", "a", "t", "e", "c", "m", "o", "n", "h", "."]
    vocab = [(t, 0.0) for t in SPECIALS] + [(p, -float(i + 1)) for i, p in enumerate(pieces)]
    return XLNetTokenizer(vocab=vocab)


TEXTS = ["the cat sat on the mat.", "a cat", "the <cls> cat sat", "mat"]


@pytest.fixture(scope="module")
def segment_case(tmp_path_factory):
    folder, model = build_xlnet(tmp_path_factory.mktemp("segments"), **{**TINY, "vocab_size": 30}, seed=11)
    encoded = xlnet_tokenizer()(TEXTS, padding=True, return_token_type_ids=True, return_tensors="np")
    left_ids, left_mask, left_types = (encoded[k].astype(np.int64) for k in ("input_ids", "attention_mask",
                                                                             "token_type_ids"))
    real = left_mask[2] == 1  # "the <cls> cat sat": <cls> twice, type 2 only at the end
    assert (left_mask[:, 0] == 0).any() and (left_ids[2][real] == CLS).sum() == 2
    assert left_types[2][real].tolist() == [0] * (real.sum() - 1) + [2]
    shift = left_mask.sum(axis=1) - left_mask.shape[1]
    ids, mask = (np.stack([np.roll(r, s) for r, s in zip(a, shift)]) for a in (left_ids, left_mask))
    ids[mask == 0] = PAD
    with_types = model_outputs(model, left_ids, left_mask, token_type_ids=__import__("torch").from_numpy(left_types))
    without = model_outputs(model, left_ids, left_mask)
    return folder, ids, mask, ({k: _to_right(v, left_mask) for k, v in with_types.items()},
                                {k: _to_right(v, left_mask) for k, v in without.items()})


@pytest.mark.parametrize("graph", GRAPH_VARIANTS)
@pytest.mark.parametrize("cls_segment", [False, True])
def test_segments_match_transformers(segment_case, cls_segment, graph, tmp_path):
    """Default: transformers without token_type_ids (what transformers 5's tokenizer, sentence-transformers
    and Spark NLP give). cls_segment=True: transformers with the tokenizer's token_type_ids
    (return_token_type_ids=True; transformers 4's default), including a '<cls>' inside a text."""
    folder, ids, mask, (with_types, without) = segment_case
    config = dataclasses.replace(read_config(folder), cls_segment=cls_segment)
    path = save_model(build_model(config, load_weights(folder, config), graph=graph), tmp_path / "model.onnx")
    got = run_all(path, ids, mask)
    matched, other = (with_types, without) if cls_segment else (without, with_types)
    assert largest_difference(got, matched, mask) <= TOLERANCE  # measured: 1.2e-6 to 1.4e-6
    assert largest_difference(got, other, mask) > 0.1  # the segment term matters here (measured 0.99)
    assert OnnxEncoder.from_path(path).metadata["cls_segment"] is cls_segment


def test_tokenizer_framing_is_read_from_the_post_processor(tmp_path):
    """XLNet frames at the END (``pieces <sep> <cls>``) and pads on the left with <pad> (5):
    nlu_lite's tokenizer reads suffix (4, 3), no prefix, pad id 5 from tokenizer.json."""
    from tokenizers import Tokenizer

    from nlu_lite.tokenize import PieceTokenizer

    tokenizer = xlnet_tokenizer()
    assert tokenizer.padding_side == "left" and tokenizer.pad_token_id == PAD
    tokenizer.save_pretrained(tmp_path)
    data = json.loads((tmp_path / "tokenizer.json").read_text())
    assert [next(iter(p.values()))["id"] for p in data["post_processor"]["single"]] == ["A", "<sep>", "<cls>"]
    framing = PieceTokenizer(Tokenizer.from_file(str(tmp_path / "tokenizer.json"))).framing
    assert (framing.prefix, framing.suffix, framing.pad_id) == ((), (SEP, CLS), PAD)
    assert tokenizer("the cat")["input_ids"][-2:] == [SEP, CLS]


# --- positions ---------------------------------------------------------------------------


@pytest.mark.parametrize("clamp_len", [-1, 7])
def test_sinusoids_match_transformers(clamp_len):
    """The table against XLNetModel.relative_positional_encoding, at the base width and 512 positions."""
    import torch
    from transformers import XLNetConfig, XLNetModel

    model = XLNetModel(XLNetConfig(d_model=768, n_layer=1, n_head=12, d_inner=8, vocab_size=10, clamp_len=clamp_len))
    table = relative_sinusoids(768, MAX_POSITIONS, clamp_len)
    assert table.shape == (2 * MAX_POSITIONS, 768)
    with torch.no_grad():
        for length in (MAX_POSITIONS, 37):
            want = model.relative_positional_encoding(length, length)[:, 0, :].numpy()
            got = table[MAX_POSITIONS - length:MAX_POSITIONS + length]
            assert np.abs(got - want).max() <= 2e-6  # measured 9.6e-7 (torch's float32 pow, 3 of 384 values)


@pytest.mark.parametrize("graph", GRAPH_VARIANTS)
@pytest.mark.parametrize("changes", [{"ff_activation": "gelu_new"}, {"ff_activation": "relu"},
                                     {"ff_activation": "silu"}, {"clamp_len": 5}], ids=str)
def test_other_settings(tmp_path, changes, graph):
    """Settings that do not change the weights: rewrite config.json and let transformers read the same
    folder."""
    from transformers import XLNetModel

    folder, _ = build_xlnet(tmp_path / "ckpt", **TINY, seed=9)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, **changes}))
    other = XLNetModel.from_pretrained(folder).eval()
    assert all(getattr(other.config, k) == v for k, v in changes.items())
    ids, mask, _ = framed_batch(TINY["vocab_size"], [38, 5, 20], seed=4)
    got = run_all(convert_checkpoint(folder, tmp_path / "model.onnx", graph=graph), ids, mask)
    assert largest_difference(got, model_outputs(other, ids, mask), mask) <= TOLERANCE


def test_a_layer_count_the_weights_disagree_with_is_refused_by_name(tmp_path):
    """transformers would quietly read the first n_layer layers; nlu_lite refuses, as for every family."""
    folder, _ = build_xlnet(tmp_path / "ckpt", **TINY, seed=9)
    config = json.loads((folder / "config.json").read_text())
    for n, says in ((2, "holds 3 layers (up to layer.2)"), (4, "lacks layer.3")):
        (folder / "config.json").write_text(json.dumps({**config, "n_layer": n}))
        with pytest.raises(ConversionError, match="n_layer") as caught:
            convert_checkpoint(folder, tmp_path / "model.onnx")
        assert says in str(caught.value)


# --- the graph, end to end: ensure_onnx, the runtime, int8 ----------------------------------


def test_graph_is_valid_onnx_with_the_interface(tiny, tmp_path):
    import onnx

    folder, _ = tiny
    path = convert_checkpoint(folder, tmp_path / "model.onnx")
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    graph = onnx.load(str(path), load_external_data=False).graph
    assert [i.name for i in graph.input] == ["input_ids", "attention_mask"]
    assert [o.name for o in graph.output] == ["last_hidden_state"] + [f"hidden_state_{i}" for i in range(4)]


def test_weights_names_and_parameter_count(tiny):
    folder, model = tiny
    weights = load_weights(folder)
    assert not any(k.startswith(("transformer.", "lm_loss", "sequence_summary", "logits_proj")) for k in weights)
    assert "mask_emb" not in weights and "layer.0.rel_attn.seg_embed" not in weights  # unread by the default graph
    config = read_config(folder)
    unread = model.mask_emb.numel() + sum(layer.rel_attn.seg_embed.numel() + layer.rel_attn.r_s_bias.numel()
                                          for layer in model.layer)
    assert parameter_count(config, with_pooler=False) == sum(p.numel() for p in model.parameters()) - unread
    both = dataclasses.replace(config, cls_segment=True)
    assert parameter_count(both, with_pooler=False) == sum(p.numel() for p in model.parameters()) - model.mask_emb.numel()


def test_ensure_onnx_runtime_and_int8(tmp_path, isolated_cache):
    import onnx

    folder, model = build_xlnet(tmp_path / "ckpt", **TINY, head="lm", weights="bin", seed=21)
    fp32_path = ensure_onnx(folder)
    assert fp32_path.is_relative_to(isolated_cache) and ensure_onnx(folder) == fp32_path  # cached
    encoder = OnnxEncoder.from_path(fp32_path)
    meta = encoder.metadata
    assert encoder.max_positions == MAX_POSITIONS == meta["max_position_embeddings"]
    assert (meta["model_type"], meta["num_layers"], meta["num_heads"], meta["hidden_size"], meta["vocab_size"],
            meta["graph"], meta["precision"], meta["cls_segment"]) == ("xlnet", 3, 3, 36, 101, "fused", "fp32", False)
    assert not encoder.has_pooler and encoder.num_layers == 3

    ids, mask, _ = framed_batch(TINY["vocab_size"], [64, 12, 1, 40, 64, 33], seed=5)
    mask[2] = 0  # an all-padding row stays finite
    fp32 = encoder.run(ids, mask, outputs=encoder.output_names)
    assert all(np.isfinite(v).all() for v in fp32.values())
    assert max_diff_on_tokens(fp32["last_hidden_state"], model_outputs(model, ids, mask)["last_hidden_state"],
                              mask) <= TOLERANCE
    full = framed_batch(TINY["vocab_size"], [MAX_POSITIONS])[:2]
    assert encoder.run(*full)["last_hidden_state"].shape == (1, MAX_POSITIONS, 36)
    with pytest.raises(InputError, match="512 positions"):
        encoder.run(*framed_batch(TINY["vocab_size"], [MAX_POSITIONS + 1])[:2])

    int8_path = ensure_onnx(folder, precision="int8")
    ops = collections.Counter(n.op_type for n in onnx.load(str(int8_path), load_external_data=False).graph.node)
    # q, k, v, r, o and the two feed-forward Linears in each layer: every weight matrix
    assert ops["MatMulInteger"] + ops["MatMulIntegerToFloat"] + ops["DynamicQuantizeMatMul"] == 3 * 7, ops
    quantized = OnnxEncoder.from_path(int8_path)
    assert quantized.metadata["precision"] == "int8" and quantized.max_positions == MAX_POSITIONS
    cos = cosine_per_token(quantized.run(ids, mask)["last_hidden_state"], fp32["last_hidden_state"], mask)
    # measured over 4 seeds: mean 0.99994-0.99995, min 0.99983-0.99987
    assert cos.mean() >= 0.9995 and cos.min() >= 0.999, (cos.mean(), cos.min())
    assert 1 - cos.mean() > 1e-6  # it really is a different (quantized) model


# --- what is refused ----------------------------------------------------------------------


@pytest.mark.parametrize(("change", "field"), [
    ({"attn_type": "uni"}, "attn_type"),
    ({"bi_data": True}, "bi_data"),
    ({"bi_data": "no"}, "bi_data"),
    ({"ff_activation": "tanh"}, "ff_activation"),
    ({"n_head": 7}, "n_head"),
    ({"d_head": 32}, "d_head"),
    ({"d_model": 768.0}, "d_model"),
    ({"d_inner": 0}, "d_inner"),
    ({"n_layer": True}, "n_layer"),
    ({"clamp_len": 1.5}, "clamp_len"),
    ({"clamp_len": True}, "clamp_len"),
    ({"layer_norm_eps": -1}, "layer_norm_eps"),
    ({"cls_token_id": 32000}, "cls_token_id"),
    ({"cls_token_id": "3"}, "cls_token_id"),
    ({"is_decoder": True}, "is_decoder"),
])
def test_unsupported_config_is_refused_by_name(change, field):
    with pytest.raises(ConversionError, match=field):
        config_from_dict({**XLNET_BASE_CASED, **change}, "xlnet/config.json")


def test_real_config_reads():
    config = config_from_dict(XLNET_BASE_CASED)
    assert type(config) is FAMILY.config_class and FAMILY.max_length(config) == MAX_POSITIONS
    assert (config.hidden_size, config.num_layers, config.num_heads, config.head_size, config.intermediate_size,
            config.hidden_act, config.clamp_len, config.cls_token_id, config.cls_segment) == \
        (768, 12, 12, 64, 3072, "gelu", -1, CLS, False)
    legacy = {k: v for k, v in XLNET_BASE_CASED.items() if k != "vocab_size"}
    assert config_from_dict({**legacy, "n_token": 32000}).vocab_size == 32000  # pre-2.x field name
    assert config_from_dict({**XLNET_BASE_CASED, "d_head": None}).head_size == 64
    assert FAMILY.rename("lm_loss.weight") is None and FAMILY.rename("transformer.mask_emb") is None
    assert FAMILY.rename("sequence_summary.summary.weight") is None
    assert FAMILY.rename("transformer.layer.3.rel_attn.r") == "layer.3.rel_attn.r"


@pytest.mark.parametrize(("change", "message"), [
    ({"n_layer": 4}, "lacks"),
    ({"n_head": 4}, "Set n_head to 3"),
    ({"d_inner": 50}, "Set d_inner to 52"),
])
def test_config_disagreeing_with_the_weights(tmp_path, change, message):
    folder, _ = build_xlnet(tmp_path / "ckpt", **TINY, seed=2)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, **change, "d_head": None}))
    with pytest.raises(ConversionError, match=message):
        convert_checkpoint(folder, tmp_path / "model.onnx")


# --- the real base shape -----------------------------------------------------------------


@pytest.fixture(scope="module")
def base(request, tmp_path_factory):
    """xlnet-base-cased's shape (768 x 12 layers x 12 heads, d_head 64, 3072, gelu), vocabulary cut to 1,000."""
    return build_xlnet(scratch_dir(request, tmp_path_factory, "xlnet_base"), d_model=768, n_layer=12, n_head=12, d_inner=3072,
                       vocab_size=1000, head="lm", seed=7)


@pytest.mark.slow
@pytest.mark.parametrize("graph", GRAPH_VARIANTS)
def test_base_shape_matches_transformers(base, graph, tmp_path):
    folder, model = base
    ids, mask, _ = framed_batch(1000, [160, 9, 33, 1, 150, 64], seed=6)
    path = convert_checkpoint(folder, tmp_path / "model.onnx", graph=graph)
    got = run_all(path, ids, mask)
    assert largest_difference(got, model_outputs(model, ids, mask), mask) <= TOLERANCE  # measured: 4.8e-6, both graphs
    if graph == "fused":
        int8 = run_all(convert_checkpoint(folder, tmp_path / "int8.onnx", precision="int8"), ids, mask)
        cos = cosine_per_token(int8["last_hidden_state"], got["last_hidden_state"], mask)
        assert cos.mean() >= 0.999 and cos.min() >= 0.998, (cos.mean(), cos.min())  # measured: 0.99970 / 0.99925
        assert 1 - cos.mean() > 1e-6  # it really is a different (quantized) model
