"""RoBERTa / XLM-RoBERTa / CamemBERT, DistilBERT, ELECTRA and ALBERT: BERT's graph with small
changes, checked against transformers' own models on PyTorch with the same random weights.

Each checkpoint is built here (random weights, LayerNorms and biases perturbed so neither is
an identity), saved as safetensors or pytorch_model.bin, with the model prefix and heads of a
``*ForMaskedLM``/``*ForPreTraining`` or as the bare model, and fed input_ids directly.
"""
from __future__ import annotations

import collections
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from _engine_support import cosine_per_token, max_diff_on_tokens, model_outputs

from nlu_lite.convert import (
    GRAPH_VARIANTS,
    convert_checkpoint,
    ensure_onnx,
    supported_model_types,
)
from nlu_lite.convert.families import config_from_dict
from nlu_lite.errors import ConversionError, InputError
from nlu_lite.runtime import OnnxEncoder

TOLERANCE = 1e-4
ODD = {"vocab_size": 99, "hidden_size": 36, "num_hidden_layers": 3, "num_attention_heads": 3, "intermediate_size": 52,
       "max_position_embeddings": 40}
BASE = {"vocab_size": 1000, "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
        "intermediate_size": 3072, "max_position_embeddings": 512}
ROBERTA_TYPES = {"roberta": "Roberta", "xlm-roberta": "XLMRoberta", "camembert": "Camembert"}


@dataclass(frozen=True)
class Case:
    """One checkpoint: its family, how it was saved, and config changes from the sizes given."""

    model_type: str
    head: bool  # saved by the head class: prefixed names plus head weights the converter must drop
    weights: str  # "safetensors" or "bin"
    pooler: bool = False  # a bare model saved with its pooler
    changes: tuple[tuple[str, object], ...] = field(default=())

    @property
    def id(self) -> str:
        extra = "-".join(f"{k}={v}" for k, v in self.changes)
        return "-".join(filter(None, [self.model_type, "head" if self.head else "bare", self.weights,
                                      "pooler" if self.pooler else "", extra]))


def _transformers_config(model_type: str, sizes: dict, changes: dict):
    """transformers' config for ``sizes`` (BERT's names), in the family's own spelling, then ``changes``."""
    import transformers as tf

    if model_type == "distilbert":
        names = {"hidden_size": "dim", "num_hidden_layers": "n_layers", "num_attention_heads": "n_heads",
                 "intermediate_size": "hidden_dim"}
        fields = {names.get(k, k): v for k, v in sizes.items()}
        return tf.DistilBertConfig(**{**fields, **changes}, attn_implementation="eager")
    if model_type in ROBERTA_TYPES:  # the table has padding_idx + 1 rows more than the longest input
        config_class = getattr(tf, ROBERTA_TYPES[model_type] + "Config")
        fields = {**sizes, "max_position_embeddings": sizes["max_position_embeddings"] + 2, "type_vocab_size": 1,
                  "layer_norm_eps": 1e-5}
        return config_class(**{**fields, **changes}, attn_implementation="eager")
    config_class = {"electra": tf.ElectraConfig, "albert": tf.AlbertConfig}[model_type]
    return config_class(**{**sizes, **changes}, attn_implementation="eager")


def _transformers_model(model_type: str, config, *, head: bool, pooler: bool):
    import transformers as tf

    prefix = {"distilbert": "DistilBert", "electra": "Electra", "albert": "Albert"}.get(model_type)
    prefix = prefix or ROBERTA_TYPES[model_type]
    if head:
        kind = "ForPreTraining" if model_type in ("electra", "albert") else "ForMaskedLM"
        return getattr(tf, prefix + kind)(config)
    model_class = getattr(tf, prefix + "Model")
    if model_type in ("distilbert", "electra"):
        return model_class(config)  # neither has a pooler
    return model_class(config, add_pooling_layer=pooler)


@dataclass
class Checkpoint:
    folder: Path
    model: object  # transformers' bare model, eval mode
    pad_id: int
    max_positions: int


def build_checkpoint(folder: Path, case: Case, sizes: dict = ODD, seed: int = 0) -> Checkpoint:
    import torch

    torch.manual_seed(seed)
    config = _transformers_config(case.model_type, sizes, dict(case.changes))
    model = _transformers_model(case.model_type, config, head=case.head, pooler=case.pooler).eval()
    with torch.no_grad():  # random init leaves LayerNorms at identity and biases at 0
        for name, p in model.named_parameters():
            if "norm" in name.lower() or name.endswith("bias"):
                p.add_(torch.randn_like(p) * 0.1)
    folder.mkdir(parents=True, exist_ok=True)
    config.save_pretrained(folder)
    state = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}  # tied heads: own copies
    if case.weights == "safetensors":
        from safetensors.torch import save_file

        save_file(state, str(folder / "model.safetensors"))
    else:
        torch.save(state, folder / "pytorch_model.bin")
    pad = config.pad_token_id
    offset = pad + 1 if case.model_type in ROBERTA_TYPES else 0
    return Checkpoint(folder, model.base_model, pad, config.max_position_embeddings - offset)


def batch(checkpoint: Checkpoint, vocab_size: int, lengths: list[int], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Right-padded with the pad id; real tokens never the pad id (RoBERTa counts positions past it)."""
    rng = np.random.default_rng(seed)
    ids = np.full((len(lengths), max(lengths)), checkpoint.pad_id, np.int64)
    mask = np.zeros_like(ids)
    for row, n in enumerate(lengths):
        ids[row, :n] = rng.integers(2, vocab_size, n)
        mask[row, :n] = 1
    return ids, mask


def largest_difference(model_path: Path, want: dict[str, np.ndarray], ids, mask) -> float:
    encoder = OnnxEncoder.from_path(model_path)
    got = encoder.run(ids, mask, outputs=encoder.output_names)
    assert set(got) == set(want), "outputs differ from transformers' (hidden states / pooler)"
    worst = 0.0
    for name, array in want.items():
        assert got[name].shape == array.shape and got[name].dtype == np.float32, name
        real = np.abs(got[name] - array).max() if name == "pooler_output" else max_diff_on_tokens(got[name], array, mask)
        assert real <= TOLERANCE, f"{name}: max |onnx - transformers| = {real:.2e}"
        worst = max(worst, float(real))
    return worst


CASES = [
    Case("roberta", head=True, weights="safetensors"),
    Case("roberta", head=False, weights="bin", pooler=True),
    Case("xlm-roberta", head=True, weights="bin"),
    Case("camembert", head=False, weights="safetensors", pooler=True),
    Case("distilbert", head=True, weights="safetensors", changes=(("sinusoidal_pos_embds", True),)),
    Case("distilbert", head=False, weights="bin", changes=(("activation", "relu"),)),
    Case("electra", head=True, weights="safetensors", changes=(("embedding_size", 20),)),
    Case("electra", head=False, weights="bin"),  # embedding_size == hidden_size: no projection
    Case("albert", head=True, weights="safetensors", changes=(("embedding_size", 20), ("num_hidden_groups", 2))),
    Case("albert", head=False, weights="bin", changes=(("embedding_size", 20), ("hidden_act", "gelu"))),
]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """Each case's checkpoint, built once for the module."""
    built: dict[Case, Checkpoint] = {}

    def get(case: Case) -> Checkpoint:
        if case not in built:
            built[case] = build_checkpoint(tmp_path_factory.mktemp(case.model_type), case, seed=len(built))
        return built[case]

    return get


@pytest.mark.parametrize("graph", GRAPH_VARIANTS)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_matches_transformers(checkpoints, tmp_path, case, graph):
    ckpt = checkpoints(case)
    # a one-token row, a row of every position the model has, and padding
    ids, mask = batch(ckpt, ODD["vocab_size"], [7, ckpt.max_positions, 1, 12, 19], seed=3)
    out = convert_checkpoint(ckpt.folder, tmp_path / "model.onnx", graph=graph)
    largest_difference(out, model_outputs(ckpt.model, ids, mask), ids, mask)


def test_albert_stores_shared_weights_once(checkpoints, tmp_path):
    """3 layers over 2 groups: layers 0 and 1 run group 0, layer 2 runs group 1 (transformers' formula)."""
    import onnx

    case = CASES[8]
    for graph in GRAPH_VARIANTS:
        out = convert_checkpoint(checkpoints(case).folder, tmp_path / f"{graph}.onnx", graph=graph)
        model = onnx.load(str(out), load_external_data=False)
        names = [t.name for t in model.graph.initializer]
        assert len(names) == len(set(names))
        assert not any(".layer." in n for n in names) and {n.split(".")[2] for n in names if n.startswith("encoder.")} == {"0", "1"}
        readers = collections.Counter(i for node in model.graph.node for i in node.input)
        shared = "encoder.group.{}.attention.qkv.weight_t" if graph == "fused" else "encoder.group.{}.attention.self.query.weight_t"
        assert (readers[shared.format(0)], readers[shared.format(1)]) == (2, 1)
        assert (readers["encoder.group.0.output.dense.weight_t"], readers["encoder.group.1.output.dense.weight_t"]) == (2, 1)


# --- the cache, the runtime and int8 -------------------------------------------------------

# int8 (dynamic, per-channel) mean per-token cosine to fp32 on these random odd-shape models,
# measured: roberta 0.999993, distilbert 0.9999999, electra 0.999989, albert 0.999993 (min per token
# 0.99997). Random weights quantize well; the bound leaves room for other seeds and still fails a broken
# quantizer.
INT8_MEAN_COSINE = 0.9999


@pytest.mark.parametrize("case", [CASES[0], CASES[2], CASES[3], CASES[4], CASES[6], CASES[8]], ids=lambda c: c.model_type)
def test_end_to_end_cache_runtime_and_int8(checkpoints, isolated_cache, case):
    import onnx

    ckpt = checkpoints(case)
    ids, mask = batch(ckpt, ODD["vocab_size"], [5, ckpt.max_positions, 17], seed=5)
    fp32_path = ensure_onnx(ckpt.folder)
    assert ensure_onnx(ckpt.folder) == fp32_path  # cached
    encoder = OnnxEncoder.from_path(fp32_path)
    assert encoder.max_positions == ckpt.max_positions == 40  # RoBERTa: 42 rows, less padding_idx + 1
    assert encoder.metadata["model_type"] == case.model_type and encoder.num_layers == 3 and encoder.hidden_size == 36
    with pytest.raises(InputError, match="exceeds the model's 40 positions"):
        encoder.run(*batch(ckpt, ODD["vocab_size"], [41]))
    fp32 = encoder.run(ids, mask)["last_hidden_state"]
    int8_path = ensure_onnx(ckpt.folder, precision="int8")
    ops = collections.Counter(n.op_type for n in onnx.load(str(int8_path), load_external_data=False).graph.node)
    # every layer really quantized, per token (ALBERT's and ELECTRA's projected embeddings too: no op with one
    # scale per call, QAttention or DynamicQuantizeMatMul, is left), then fp32 MultiHeadAttention
    assert (ops["QAttention"], ops["DynamicQuantizeMatMul"], ops["MultiHeadAttention"]) == (0, 0, 3), ops
    assert ops["MatMulIntegerToFloat"] >= 3 * 4, ops
    int8_encoder = OnnxEncoder.from_path(int8_path)
    assert int8_encoder.metadata["precision"] == "int8" and int8_encoder.max_positions == 40
    int8 = int8_encoder.run(ids, mask)["last_hidden_state"]
    assert cosine_per_token(int8, fp32, mask).mean() >= INT8_MEAN_COSINE
    # a sequence's int8 states do not depend on its batch-mates (padding included): the same bits alone
    for row in range(len(ids)):
        n = int(mask[row].sum())
        alone = int8_encoder.run(ids[row:row + 1, :n], mask[row:row + 1, :n])["last_hidden_state"][0]
        np.testing.assert_array_equal(alone, int8[row, :n])


# --- configs refused by name --------------------------------------------------------------


def _config(case: Case) -> dict:
    return _transformers_config(case.model_type, ODD, dict(case.changes)).to_dict()


@pytest.mark.parametrize(("case", "change", "message"), [
    (CASES[0], {"pad_token_id": None}, "pad_token_id"),
    (CASES[0], {"pad_token_id": 41}, "pad_token_id is 41.*from 0 to max_position_embeddings - 2 = 40"),
    (CASES[2], {"is_decoder": True}, "is_decoder"),
    (CASES[3], {"position_embedding_type": "relative_key"}, "position_embedding_type"),
    (CASES[4], {"dim": ...}, "lacks the field 'dim' that a DistilBERT config has"),
    (CASES[4], {"n_heads": 5}, "dim 36 is not divisible by n_heads 5"),
    (CASES[4], {"activation": "swish"}, "activation 'swish' is not supported"),
    (CASES[4], {"hidden_dim": 2.5}, "hidden_dim is 2.5"),
    (CASES[6], {"embedding_size": 0}, "embedding_size is 0"),
    (CASES[6], {"hidden_act": "silu"}, "hidden_act 'silu'"),
    (CASES[8], {"inner_group_num": 2}, "inner_group_num is 2"),
    (CASES[8], {"num_hidden_groups": -1}, "num_hidden_groups is -1"),
], ids=lambda v: v.id if isinstance(v, Case) else None)
def test_unsupported_settings_are_refused_by_name(case, change, message):
    data = _config(case)
    for key, value in change.items():
        if value is ...:
            data.pop(key)
        else:
            data[key] = value
    with pytest.raises(ConversionError, match=message):
        config_from_dict(data)


def test_every_family_is_supported():
    assert {"roberta", "xlm-roberta", "camembert", "distilbert", "electra", "albert"} <= set(supported_model_types())


def test_distilbert_accepts_transformers_attribute_names():
    """transformers' attribute_map reads hidden_size / num_hidden_layers / num_attention_heads as dim / n_layers / n_heads."""
    data = _config(CASES[4])
    for ours, theirs in (("dim", "hidden_size"), ("n_layers", "num_hidden_layers"), ("n_heads", "num_attention_heads")):
        data[theirs] = data.pop(ours)
    config = config_from_dict(data)
    assert (config.hidden_size, config.num_layers, config.num_heads) == (36, 3, 3)


@pytest.mark.parametrize(("case", "field", "value"), [(CASES[6], "embedding_size", 24), (CASES[4], "hidden_dim", 60),
                                                    (CASES[4], "dim", 39)], ids=lambda v: v if isinstance(v, str) else "")
def test_weights_of_another_size_name_the_config_field(checkpoints, tmp_path, case, field, value):
    """The error names the field as the family's config.json spells it (DistilBERT's dim, hidden_dim)."""
    folder = checkpoints(case).folder
    data = json.loads((folder / "config.json").read_text())
    broken = tmp_path / "ckpt"
    broken.mkdir()
    (broken / "model.safetensors").symlink_to(folder / "model.safetensors")
    (broken / "config.json").write_text(json.dumps({**data, field: value}))
    with pytest.raises(ConversionError, match=f"implies .* from {field}={value} .* Set {field} to "):
        convert_checkpoint(broken, tmp_path / "m.onnx")


# --- the real base shapes (reduced vocab) -------------------------------------------------

BASE_CASES = [  # the real base shapes: hidden 768, 12 heads, intermediate 3072; bare models (heads are tested above)
    (Case("roberta", head=False, weights="safetensors", pooler=True), {}),  # 514 rows: 512 tokens
    (Case("distilbert", head=False, weights="safetensors"), {"num_hidden_layers": 6}),
    (Case("electra", head=False, weights="safetensors", changes=(("embedding_size", 768),)), {}),
    (Case("albert", head=False, weights="safetensors", pooler=True, changes=(("embedding_size", 128),)), {}),
]


@pytest.mark.slow
@pytest.mark.parametrize(("case", "sizes"), BASE_CASES, ids=lambda v: v.model_type if isinstance(v, Case) else "")
def test_base_shape_matches_transformers(tmp_path, case, sizes):
    sizes = {**BASE, **sizes}
    ckpt = build_checkpoint(tmp_path / "ckpt", case, sizes=sizes, seed=1)
    assert ckpt.max_positions == 512
    ids, mask = batch(ckpt, sizes["vocab_size"], [64, 9, 33, 1, 50], seed=2)
    out = convert_checkpoint(ckpt.folder, tmp_path / "model.onnx")
    assert OnnxEncoder.from_path(out).max_positions == 512
    largest_difference(out, model_outputs(ckpt.model, ids, mask), ids, mask)
