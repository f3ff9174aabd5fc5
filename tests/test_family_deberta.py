"""DeBERTa-v2/v3 -> ONNX: fidelity to transformers' DebertaV2Model, the position tables, refused settings,
the conversion cache, int8."""
from __future__ import annotations

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

from nlu_lite.convert import GRAPH_VARIANTS, convert_checkpoint, ensure_onnx
from nlu_lite.convert.deberta import DebertaConfig, relative_index_tables
from nlu_lite.convert.families import config_from_dict
from nlu_lite.errors import ConversionError
from nlu_lite.runtime import OnnxEncoder

TOLERANCE = 1e-4
# microsoft/deberta-v3-*'s settings (deberta-v3-base's config.json, less its sizes)
V3 = {"relative_attention": True, "pos_att_type": "p2c|c2p", "position_buckets": 256, "norm_rel_ebd": "layer_norm",
      "share_att_key": True, "position_biased_input": False, "type_vocab_size": 0, "max_relative_positions": -1,
      "max_position_embeddings": 512, "layer_norm_eps": 1e-7, "hidden_act": "gelu"}
ODD = {"vocab_size": 97, "hidden_size": 36, "num_hidden_layers": 3, "num_attention_heads": 3, "intermediate_size": 52}
# 16 buckets over 64 positions: the lengths below reach the log buckets (|i - j| > 8) and the clamp (> 64)
SMALL_BUCKETS = {"position_buckets": 16, "max_relative_positions": 64}
LENGTHS = [100, 7, 1, 60, 100]


def build_deberta(folder: Path, *, weights: str = "safetensors", prefix: bool = False, seed: int = 0, **fields):
    """A random DebertaV2Model saved as a checkpoint folder; returns (folder, the model in eval mode).

    ``prefix``: saved as DebertaV2ForMaskedLM (``deberta.`` names, an ``lm_predictions`` head) plus a
    ``mask_predictions`` head as in the microsoft/deberta-v3 files: the converter must drop the heads.
    """
    import torch
    from transformers import DebertaV2Config, DebertaV2ForMaskedLM, DebertaV2Model

    torch.manual_seed(seed)
    config = DebertaV2Config(**{**V3, **ODD, **fields}, legacy=False)
    model = DebertaV2ForMaskedLM(config) if prefix else DebertaV2Model(config)
    base = model.deberta if prefix else model
    with torch.no_grad():
        for name, p in base.named_parameters():
            if "LayerNorm" in name or name.endswith("bias"):  # not identity / zero: the test must see them
                p.add_(torch.randn_like(p) * 0.1)
            elif name.endswith(("query_proj.weight", "key_proj.weight")):
                # sharper attention: an off-by-one relative row then moves the output by ~1e-2, not ~5e-4
                p.mul_(5.0)
    folder.mkdir(parents=True, exist_ok=True)
    config.save_pretrained(folder)
    state = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    if prefix:
        state["mask_predictions.dense.weight"] = torch.randn(config.hidden_size, config.hidden_size)
        state["mask_predictions.classifier.bias"] = torch.randn(1)
    save_state(state, folder, weights)
    return folder, base.eval()


def assert_matches(model, onnx_path: Path, lengths=LENGTHS, seed: int = 0) -> float:
    """Every output within TOLERANCE of transformers' on real positions; returns the largest difference."""
    ids, mask = padded_batch(model.config.vocab_size, lengths, seed)
    want = model_outputs(model, ids, mask)
    encoder = OnnxEncoder.from_path(onnx_path)
    got = encoder.run(ids, mask, outputs=encoder.output_names)
    assert set(got) == set(want), "outputs differ from transformers' hidden states (no pooler in DebertaV2Model)"
    worst = 0.0
    for name, array in want.items():
        assert got[name].shape == array.shape and got[name].dtype == np.float32, name
        diff = max_diff_on_tokens(got[name], array, mask)
        assert diff <= TOLERANCE, f"{name}: max |onnx - transformers| = {diff:.2e}"
        worst = max(worst, diff)
    return worst


@pytest.mark.parametrize("buckets, max_relative, length", [(256, -1, 512), (16, 64, 300), (0, 24, 100), (8, 9, 40)])
def test_relative_index_tables_match_transformers(buckets, max_relative, length):
    """The precomputed tables by distance give, for every (i, j), the row transformers' gathers read."""
    import torch
    from transformers.models.deberta_v2.modeling_deberta_v2 import (
        build_relative_position,
    )

    config = DebertaConfig.from_dict({**V3, **ODD, "position_buckets": buckets, "max_relative_positions": max_relative,
                                      "max_position_embeddings": length})
    span = config.attention_span
    states = torch.zeros(1, length, 4)
    relative = build_relative_position(states, states, bucket_size=buckets or -1,
                                       max_position=config.max_relative_positions)[0].numpy()
    c2p_want = np.clip(relative + span, 0, 2 * span - 1)  # [query, key], as DisentangledSelfAttention
    p2c_want = np.clip(-relative + span, 0, 2 * span - 1).T  # [key, query] there, transposed after its gather
    c2p, p2c = relative_index_tables(config)
    ids = np.arange(length)
    distance = ids[:, None] - ids[None, :] + length - 1
    np.testing.assert_array_equal(c2p[distance], c2p_want)
    np.testing.assert_array_equal(p2c[distance], p2c_want)


@pytest.mark.parametrize("graph", GRAPH_VARIANTS)
@pytest.mark.parametrize("weights, prefix", [("safetensors", False), ("bin", True)])
def test_odd_shape_matches_transformers(tmp_path, graph, weights, prefix):
    """hidden 36 over 3 heads, 3 layers, intermediate 52; safetensors / pytorch_model.bin, with and
    without the ``deberta.`` prefix; the log buckets and their clamp both reached."""
    folder, model = build_deberta(tmp_path / "ckpt", weights=weights, prefix=prefix, seed=3, **SMALL_BUCKETS)
    out = convert_checkpoint(folder, tmp_path / "model.onnx", graph=graph)
    assert_matches(model, out)
    assert_matches(model, out, lengths=[1, 1])  # a one-position batch: one relative row, one distance


VARIANTS = {
    # DeBERTa-v2 style: own position projections, absolute positions and token types in, no buckets
    # (distances clamp at 24), embed_proj 20 -> 36, no LayerNorm on the relative table, c2p only
    "v2_style": {"position_buckets": -1, "max_relative_positions": 24, "share_att_key": False,
                 "position_biased_input": True, "type_vocab_size": 2, "embedding_size": 20, "norm_rel_ebd": "none",
                 "pos_att_type": ["c2p"]},
    "p2c_own_key": {"pos_att_type": "p2c", "share_att_key": False, **SMALL_BUCKETS},
    "no_relative_attention": {"relative_attention": False, "position_biased_input": True},
    "gelu_new": {"hidden_act": "gelu_new", **SMALL_BUCKETS},
    "relu": {"hidden_act": "relu"},
}


@pytest.mark.parametrize("graph", GRAPH_VARIANTS)
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_config_variants_match_transformers(tmp_path, graph, variant):
    folder, model = build_deberta(tmp_path / "ckpt", seed=5, **VARIANTS[variant])
    assert_matches(model, convert_checkpoint(folder, tmp_path / "model.onnx", graph=graph))


@pytest.mark.parametrize("field, value", [
    ("conv_kernel_size", 3),  # deberta-v2-xlarge's convolution
    ("pos_att_type", "p2c|p2p"),
    ("pos_att_type", ["c2p", "c2c"]),
    ("norm_rel_ebd", "batch_norm"),
    ("attention_head_size", 7),
    ("position_buckets", 1),
    ("hidden_act", "silu"),
    ("share_att_key", "yes"),
    ("hidden_size", 37),  # not divisible by 3 heads
    ("max_position_embeddings", 1.5),
])
def test_unsupported_settings_are_refused_by_name(field, value):
    data = {"model_type": "deberta-v2", **V3, **ODD, field: value}
    with pytest.raises(ConversionError, match=field):
        config_from_dict(data, "deberta/config.json")


def test_undefined_log_buckets_are_refused():
    """64 buckets (middle 32) over max_relative_positions 33: log((33 - 1) / 32) = 0 divides."""
    with pytest.raises(ConversionError, match="position_buckets 64 and max_relative_positions 33"):
        config_from_dict({"model_type": "deberta-v2", **V3, **ODD, "position_buckets": 64, "max_relative_positions": 33})


def test_relative_table_of_another_size_names_position_buckets(tmp_path):
    folder, _ = build_deberta(tmp_path / "ckpt", **SMALL_BUCKETS)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "position_buckets": 32}))
    with pytest.raises(ConversionError, match=r"rel_embeddings.weight has shape \(32, 36\).*position_buckets"):
        convert_checkpoint(folder, tmp_path / "model.onnx")


def test_ensure_onnx_cached_model_and_int8(tmp_path, isolated_cache):
    """The whole path: config.json -> family -> cached ONNX -> OnnxEncoder; int8 close to fp32."""
    folder, model = build_deberta(tmp_path / "ckpt", prefix=True, seed=7, hidden_size=128, num_attention_heads=4,
                                  intermediate_size=256, num_hidden_layers=2, vocab_size=500)
    fp32_path = ensure_onnx(folder)
    assert ensure_onnx(folder) == fp32_path  # cached
    encoder = OnnxEncoder.from_path(fp32_path, threads=2)
    assert (encoder.max_positions, encoder.hidden_size, encoder.num_layers, encoder.has_pooler) == (512, 128, 2, False)
    meta = encoder.metadata
    assert (meta["model_type"], meta["num_heads"], meta["vocab_size"], meta["precision"]) == ("deberta-v2", 4, 500, "fp32")
    assert_matches(model, fp32_path, lengths=[200, 31, 5])

    int8 = OnnxEncoder.from_path(ensure_onnx(folder, precision="int8"), threads=2)
    assert int8.metadata["precision"] == "int8"
    ids, mask = padded_batch(500, [200, 31, 5, 120], seed=2)
    cos = cosine_per_token(int8.run(ids, mask)["last_hidden_state"], encoder.run(ids, mask)["last_hidden_state"], mask)
    # measured: mean 0.99996, min 0.99993 (seeds 7, 8); deberta-v3-base's shape, random weights: mean 0.994, min 0.989
    assert cos.mean() >= 0.9995 and cos.min() >= 0.999, (cos.mean(), cos.min())


BASE_LENGTHS = [160, 9, 131]  # past the 128 positions that v3's 256 buckets hold exactly: log buckets used


@pytest.fixture(scope="module")
def base_checkpoint(request, tmp_path_factory):
    """deberta-v3-base's shape (768 wide, 12 layers, 12 heads, 3,072, 512 positions), vocab cut to 1,000;
    transformers' outputs for BASE_LENGTHS computed once."""
    folder = scratch_dir(request, tmp_path_factory, "deberta_base") / "ckpt"
    folder, model = build_deberta(folder, seed=1, vocab_size=1000, hidden_size=768, num_hidden_layers=12,
                                  num_attention_heads=12, intermediate_size=3072)
    ids, mask = padded_batch(1000, BASE_LENGTHS, seed=4)
    return folder, ids, mask, model_outputs(model, ids, mask)


@pytest.mark.slow
@pytest.mark.parametrize("graph", GRAPH_VARIANTS)
def test_v3_base_shape_matches_transformers(base_checkpoint, tmp_path, graph):
    folder, ids, mask, want = base_checkpoint
    encoder = OnnxEncoder.from_path(convert_checkpoint(folder, tmp_path / "model.onnx", graph=graph))
    assert encoder.max_positions == 512 and encoder.metadata["position_buckets"] == 256
    got = encoder.run(ids, mask, outputs=encoder.output_names)
    assert set(got) == set(want)
    for name, array in want.items():
        diff = max_diff_on_tokens(got[name], array, mask)
        assert diff <= TOLERANCE, f"{name}: max |onnx - transformers| = {diff:.2e}"
