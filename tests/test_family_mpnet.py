"""MPNet (model_type 'mpnet') -> ONNX: fidelity to transformers' MPNetModel on PyTorch, int8, config checks.

Every checkpoint is built here with random weights (LayerNorms, biases and the relative
position bias perturbed so none is an identity or zero); nothing is downloaded. The graph is
fed ``input_ids`` directly: ids never equal MPNet's padding id 1 inside a row, because
transformers numbers positions by ``input_ids != 1``, and rows are right-padded with 1.
"""
from __future__ import annotations

import collections
import json
from pathlib import Path

import numpy as np
import pytest
from _engine_support import (
    cosine_per_token,
    max_diff_on_tokens,
    model_outputs,
    padded_batch,
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
from nlu_lite.convert.mpnet import (
    FAMILY,
    PADDING_IDX,
    bias_by_distance,
    relative_position_bucket,
)
from nlu_lite.errors import ConversionError, InputError
from nlu_lite.runtime import OnnxEncoder

TOLERANCE = 1e-4
TINY = {"hidden": 36, "layers": 3, "heads": 3, "intermediate": 52, "vocab_size": 101}
# all-mpnet-base-v2's config.json, as published (the fields the converter reads, and the rest)
ALL_MPNET_BASE_V2 = {
    "architectures": ["MPNetForMaskedLM"], "attention_probs_dropout_prob": 0.1, "bos_token_id": 0,
    "eos_token_id": 2, "hidden_act": "gelu", "hidden_dropout_prob": 0.1, "hidden_size": 768,
    "initializer_range": 0.02, "intermediate_size": 3072, "layer_norm_eps": 1e-05, "max_position_embeddings": 514,
    "model_type": "mpnet", "num_attention_heads": 12, "num_hidden_layers": 12, "pad_token_id": 1,
    "relative_attention_num_buckets": 32, "transformers_version": "4.8.2", "vocab_size": 30527,
}


def build_mpnet(folder: Path, *, hidden: int, layers: int, heads: int, intermediate: int, vocab_size: int,
                max_positions: int = 514, masked_lm: bool = False, weights: str = "safetensors", seed: int = 0):
    """A random MPNetModel (with pooler) or MPNetForMaskedLM (``mpnet.`` names, lm_head, no pooler)
    saved as a checkpoint folder; returns the folder and the MPNetModel to compare with."""
    import torch
    from transformers import MPNetConfig, MPNetForMaskedLM, MPNetModel

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    config = MPNetConfig(vocab_size=vocab_size, hidden_size=hidden, num_hidden_layers=layers,
                         num_attention_heads=heads, intermediate_size=intermediate,
                         max_position_embeddings=max_positions, layer_norm_eps=1e-5)
    model = (MPNetForMaskedLM(config) if masked_lm else MPNetModel(config)).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "LayerNorm" in name or name.endswith("bias"):
                p.add_(torch.randn_like(p) * 0.1)
            # init ~N(0, 0.02) leaves attention (and the relative bias) a small share of a tiny model's
            # output: without the bias, the int8 test's cosine would still be 0.99999. Now it is 0.97
            if "relative_attention_bias" in name or ".attn." in name:
                p.normal_(0.0, 1.0 if "relative" in name else 0.9 / hidden**0.5)
    config.save_pretrained(folder)
    state = {k: v.clone().contiguous() for k, v in model.state_dict().items()}  # lm_head shares the word table
    save_state(state, folder, weights)
    return folder, (model.mpnet if masked_lm else model)


def mpnet_batch(vocab_size: int, lengths: list[int], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    return padded_batch(vocab_size, lengths, seed, pad=PADDING_IDX)


def max_diffs(model_path: Path, model, ids: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """Max |onnx - transformers| per output, over real positions; the outputs must be the same set."""
    encoder = OnnxEncoder.from_path(model_path)
    got = encoder.run(ids, mask, outputs=encoder.output_names)
    want = model_outputs(model, ids, mask)
    assert set(got) == set(want), "outputs differ from transformers' (hidden states / pooler)"
    diffs = {}
    for name, array in want.items():
        assert got[name].shape == array.shape and got[name].dtype == np.float32, name
        pooled = name == "pooler_output"
        diffs[name] = float(np.abs(got[name] - array).max()) if pooled else max_diff_on_tokens(got[name], array, mask)
    return diffs


# --- fidelity at an odd small shape ------------------------------------------------------

CHECKPOINTS = {  # MPNetModel names (with pooler) and MPNetForMaskedLM's (mpnet. prefix, lm_head, no pooler)
    "model-safetensors": {"weights": "safetensors"},
    "model-bin": {"weights": "bin"},
    "masked_lm-safetensors": {"weights": "safetensors", "masked_lm": True},
    "masked_lm-bin": {"weights": "bin", "masked_lm": True},
}


@pytest.fixture(scope="module", params=list(CHECKPOINTS))
def tiny(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(request.param)
    return build_mpnet(folder, **TINY, **CHECKPOINTS[request.param], seed=len(request.param))


@pytest.mark.parametrize("graph", GRAPH_VARIANTS)
def test_tiny_mpnet_matches_transformers(tiny, graph, tmp_path):
    """All 512 positions (distances past the last log bucket), a one-token row, padding."""
    folder, model = tiny
    ids, mask = mpnet_batch(TINY["vocab_size"], [512, 7, 1, 200, 130], seed=3)
    diffs = max_diffs(convert_checkpoint(folder, tmp_path / "model.onnx", graph=graph), model, ids, mask)
    assert ("pooler_output" in diffs) == (model.pooler is not None)
    assert max(diffs.values()) <= TOLERANCE, diffs  # measured: 1.2e-6 to 1.4e-6


def test_graph_is_valid_onnx_with_the_interface(tiny, tmp_path):
    import onnx

    folder, model = tiny
    graph = onnx.load(str(convert_checkpoint(folder, tmp_path / "model.onnx"))).graph
    onnx.checker.check_model(onnx.load(str(tmp_path / "model.onnx")), full_check=True)
    assert [i.name for i in graph.input] == ["input_ids", "attention_mask"]
    names = ["last_hidden_state"] + [f"hidden_state_{i}" for i in range(4)]
    assert [o.name for o in graph.output] == names + (["pooler_output"] if model.pooler is not None else [])


def test_weights_names_and_parameter_count(tiny):
    folder, model = tiny
    weights = load_weights(folder)
    assert not any(k.startswith(("mpnet.", "lm_head")) or k.endswith("position_ids") for k in weights)
    config = read_config(folder)
    assert config.positions == 512 and config.max_position_embeddings == 514
    with_pooler = model.pooler is not None
    assert parameter_count(config, with_pooler=with_pooler) == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("act", ["gelu_new", "relu"])
@pytest.mark.parametrize("graph", GRAPH_VARIANTS)
def test_other_activations(tmp_path, act, graph):
    """hidden_act does not change the weights: rewrite it and let transformers read the same folder."""
    from transformers import MPNetModel

    folder, _ = build_mpnet(tmp_path / "ckpt", **TINY, max_positions=40, seed=9)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "hidden_act": act}))
    other = MPNetModel.from_pretrained(folder).eval()
    assert other.config.hidden_act == act
    ids, mask = mpnet_batch(TINY["vocab_size"], [38, 5, 20], seed=4)
    diffs = max_diffs(convert_checkpoint(folder, tmp_path / "model.onnx", graph=graph), other, ids, mask)
    assert max(diffs.values()) <= TOLERANCE, diffs


def test_relative_buckets_match_transformers():
    """Every distance of a 512-position table and beyond, the bucket boundaries included."""
    import torch
    from transformers.models.mpnet.modeling_mpnet import MPNetEncoder

    distances = np.arange(-4095, 4096)
    want = MPNetEncoder.relative_position_bucket(torch.from_numpy(distances)).numpy()
    np.testing.assert_array_equal(relative_position_bucket(distances), want)
    table = np.random.default_rng(0).normal(size=(32, 5)).astype(np.float32)
    by_distance = bias_by_distance(table, 512)
    assert by_distance.shape == (1023, 5)
    np.testing.assert_array_equal(by_distance[511], table[0])  # distance 0
    np.testing.assert_array_equal(by_distance[0], table[want[4095 - 511]])  # distance -511


# --- end to end: ensure_onnx, the runtime, int8 --------------------------------------------


def test_ensure_onnx_runtime_and_int8(tmp_path, isolated_cache):
    import onnx

    folder, model = build_mpnet(tmp_path / "ckpt", **TINY, weights="bin", seed=21)
    fp32_path = ensure_onnx(folder)
    assert fp32_path.is_relative_to(isolated_cache) and ensure_onnx(folder) == fp32_path  # cached
    encoder = OnnxEncoder.from_path(fp32_path)
    meta = encoder.metadata
    assert encoder.max_positions == 512 and meta["position_table_size"] == 514  # 514 rows, padding_idx 1
    assert (meta["model_type"], meta["num_layers"], meta["num_heads"], meta["hidden_size"], meta["vocab_size"],
            meta["graph"], meta["precision"]) == ("mpnet", 3, 3, 36, 101, "fused", "fp32")
    assert encoder.has_pooler and encoder.num_layers == 3 and meta["converter_version"]

    ids, mask = mpnet_batch(TINY["vocab_size"], [64, 12, 1, 40, 64, 33], seed=5)
    fp32 = encoder.run(ids, mask)["last_hidden_state"]
    assert max_diff_on_tokens(fp32, model_outputs(model, ids, mask)["last_hidden_state"], mask) <= TOLERANCE
    full = mpnet_batch(TINY["vocab_size"], [512])
    assert encoder.run(*full)["last_hidden_state"].shape == (1, 512, 36)
    with pytest.raises(InputError, match="512 positions"):
        encoder.run(*mpnet_batch(TINY["vocab_size"], [513]))

    int8_path = ensure_onnx(folder, precision="int8")
    assert int8_path.parent != fp32_path.parent
    ops = collections.Counter(n.op_type for n in onnx.load(str(int8_path), load_external_data=False).graph.node)
    assert (ops["MatMulInteger"] + ops["MatMulIntegerToFloat"] + ops["DynamicQuantizeMatMul"]) == 3 * 6 + 1, ops  # q, k, v, o, two FFN per layer, pooler: every weight
    quantized = OnnxEncoder.from_path(int8_path)
    assert quantized.metadata["precision"] == "int8" and quantized.max_positions == 512
    cos = cosine_per_token(quantized.run(ids, mask)["last_hidden_state"], fp32, mask)
    # measured 0.99994 (min 0.9998) over seeds; 0.974 (min 0.78) if the relative bias were lost,
    # as com.microsoft QAttention would lose it
    assert cos.mean() >= 0.999 and cos.min() >= 0.99, (cos.mean(), cos.min())
    assert 1 - cos.mean() > 1e-6  # it really is a different (quantized) model


# --- what is refused ----------------------------------------------------------------------


@pytest.mark.parametrize(("change", "field"), [
    ({"relative_attention_num_buckets": 64}, "relative_attention_num_buckets"),
    ({"relative_attention_num_buckets": 32.0}, "relative_attention_num_buckets"),
    ({"max_position_embeddings": 2}, "max_position_embeddings"),
    ({"hidden_act": "swish"}, "hidden_act"),
    ({"num_attention_heads": 7}, "num_attention_heads"),
    ({"hidden_size": 768.0}, "hidden_size"),
    ({"layer_norm_eps": -1}, "layer_norm_eps"),
])
def test_unsupported_config_is_refused_by_name(change, field):
    with pytest.raises(ConversionError, match=field):
        config_from_dict({**ALL_MPNET_BASE_V2, **change}, "all-mpnet/config.json")


def test_real_config_reads_with_512_positions():
    config = config_from_dict(ALL_MPNET_BASE_V2)
    assert type(config) is FAMILY.config_class and config.positions == 512
    assert (config.hidden_size, config.num_layers, config.num_heads, config.layer_norm_eps) == (768, 12, 12, 1e-5)
    assert FAMILY.rename("lm_head.decoder.weight") is None and FAMILY.rename("embeddings.position_ids") is None
    assert FAMILY.rename("mpnet.encoder.relative_attention_bias.weight") == "encoder.relative_attention_bias.weight"


def test_heads_disagreeing_with_the_bias_table(tmp_path):
    """num_attention_heads sizes only the relative bias table: the error says which field to fix."""
    folder, _ = build_mpnet(tmp_path / "ckpt", **TINY, max_positions=40, seed=2)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "num_attention_heads": 4}))
    with pytest.raises(ConversionError, match="relative_attention_bias.*Set num_attention_heads to 3"):
        convert_checkpoint(folder, tmp_path / "model.onnx")


# --- the real base shape -----------------------------------------------------------------


@pytest.fixture(scope="module")
def base(request, tmp_path_factory):
    """all-mpnet-base-v2's shape (768 x 12 layers x 12 heads, 3072, 514 positions), vocabulary cut to 1,000."""
    return build_mpnet(scratch_dir(request, tmp_path_factory, "mpnet_base"), hidden=768, layers=12, heads=12, intermediate=3072,
                       vocab_size=1000, seed=7)


@pytest.mark.slow
@pytest.mark.parametrize("graph", GRAPH_VARIANTS)
def test_base_shape_matches_transformers(base, graph, tmp_path):
    folder, model = base
    ids, mask = mpnet_batch(1000, [160, 9, 33, 1, 150, 64], seed=6)
    diffs = max_diffs(convert_checkpoint(folder, tmp_path / "model.onnx", graph=graph), model, ids, mask)
    assert max(diffs.values()) <= TOLERANCE, diffs  # measured: 6.0e-6 (int8 of it: mean cosine to fp32 0.99966)
