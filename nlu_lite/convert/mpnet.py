"""MPNet checkpoints (``model_type`` 'mpnet', e.g. sentence-transformers/all-mpnet-base-v2) as ONNX.

MPNet is a post-LayerNorm encoder like BERT, with three differences that the graph follows
exactly (transformers' ``modeling_mpnet.py``):

- positions like RoBERTa: token ``i`` of a right-padded row reads row ``PADDING_IDX + 1 + i``
  of the position table (``padding_idx`` is hard-coded to 1), so a 514-row table takes 512
  tokens; there are no token type embeddings;
- one relative position bias, ``encoder.relative_attention_bias.weight`` [32 buckets,
  heads], bucketed T5-style (bidirectional, log-spaced up to distance 128), computed once
  and added to every layer's attention scores before the mask;
- its own weight names (``attention.attn.q/k/v/o``, ``attention.LayerNorm``).

The bias of every relative distance ``-(P-1)..P-1`` (P usable positions) is computed here in
numpy, once, as a [2P-1, heads] table; the graph gathers the [S, S] distances of the actual
sequence length from it and adds it to the padding mask once, for all layers.

Attention is built from standard ops in both graph variants (``"fused"`` differs only in its
BiasGelu/FastGelu activation). com.microsoft ``Attention`` takes the bias as its
``attention_bias`` input and is exact in fp32, but int8 broke it: onnxruntime's dynamic
quantizer rewrote it to ``QAttention``, which has no such input, and silently dropped the bias.
Measured (onnxruntime 1.32, one thread's CPU time, 12-layer base shape, batch 32 x 64 tokens,
median of 12): fp32 2.60 s with ``Attention``, 2.65-2.77 s with standard ops (the same within
this busy machine's noise: onnxruntime fuses the standard graph's GELU, so after its fusions both
variants run the same kernels); int8 0.72-0.77 s with standard ops, 1.32 s with ``Attention``
kept fp32 so that its bias survives. ``MultiHeadAttention`` after a packed QKV MatMul was slower in both (2.78 s, 0.88 s).
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..choices import GraphVariant
from ..errors import ConversionError
from .encoder import EncoderSizes, feed_forward_layout
from .family import Family, start_graph
from .fields import activation_field, eps_field, expect_mapping, size_field
from .graph import (
    DEFAULT_GRAPH,
    EXACT_GELU,
    MS_DOMAIN,
    GraphBuilder,
    activation,
    attention_context,
    finish_model,
    key_mask_bias,
    layer_norm,
    linear,
    sequence_length,
    shown,
    tanh_pooler,
)

PADDING_IDX = 1  # MPNetEmbeddings hard-codes it, whatever config.json's pad_token_id says
NUM_BUCKETS = 32  # MPNetEncoder.compute_position_bias always uses 32 buckets ...
MAX_DISTANCE = 128  # ... log-spaced up to this distance, the last bucket beyond it
_SIZE_FIELDS = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                "max_position_embeddings")
_KEEP_PREFIXES = ("embeddings.", "encoder.", "pooler.")
_MPNET_BASE = {"vocab_size": 30527, "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
               "intermediate_size": 3072, "max_position_embeddings": 514}
# what a config.json without the field got before the families had their own defaults (BERT's 512)
_DEFAULTS = {"max_position_embeddings": 512}


@dataclass(frozen=True)
class MPNetConfig(EncoderSizes):
    """The fields of an MPNet ``config.json`` that the graph depends on.

    ``max_position_embeddings`` is the position table's row count (514 for mpnet-base);
    :attr:`positions` is how many tokens that takes (512).
    """

    hidden_act: str = "gelu"
    layer_norm_eps: float = 1e-12
    max_position_embeddings: int = 514
    relative_attention_num_buckets: int = NUM_BUCKETS

    @property
    def positions(self) -> int:
        """The longest sequence the table takes, special tokens included: rows after the padding row."""
        return self.max_position_embeddings - PADDING_IDX - 1

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "config.json") -> MPNetConfig:
        """Validate a transformers MPNet config; errors name the field, its allowed values and the fix."""
        expect_mapping(data, where, "MPNet")
        act = activation_field(data, where)
        sizes = {field: size_field(data, field, where, model="MPNet", base=_MPNET_BASE, defaults=_DEFAULTS)
                 for field in _SIZE_FIELDS}
        config = cls(
            vocab_size=sizes["vocab_size"],
            hidden_size=sizes["hidden_size"],
            num_layers=sizes["num_hidden_layers"],
            num_heads=sizes["num_attention_heads"],
            intermediate_size=sizes["intermediate_size"],
            hidden_act=act,
            layer_norm_eps=eps_field(data, where),
            max_position_embeddings=sizes["max_position_embeddings"],
            relative_attention_num_buckets=_buckets_field(data, where),
        )
        if config.hidden_size % config.num_heads:
            raise ConversionError(
                f"{where}: hidden_size {config.hidden_size} is not divisible by num_attention_heads {config.num_heads}; "
                f"fix num_attention_heads in {where} (mpnet-base has 768 / 12) or download the checkpoint again"
            )
        if config.positions < 1:
            raise ConversionError(
                f"{where}: max_position_embeddings is {config.max_position_embeddings}, but MPNet's first "
                f"{PADDING_IDX + 1} position rows are never a token's (padding_idx {PADDING_IDX}); it must be at "
                f"least {PADDING_IDX + 2} (mpnet-base has 514). Fix it in {where} or download the checkpoint again"
            )
        return config


def _buckets_field(data: Mapping[str, Any], where: str) -> int:
    """Only 32: transformers buckets into 32 whatever the field says (a smaller table fails there)."""
    value = data.get("relative_attention_num_buckets", NUM_BUCKETS)
    if type(value) is not int or value != NUM_BUCKETS:
        raise ConversionError(
            f"{where}: relative_attention_num_buckets {shown(value)} is not supported; transformers' MPNet always "
            f"uses {NUM_BUCKETS} relative position buckets, so nlu_lite converts only relative_attention_num_buckets="
            f"{NUM_BUCKETS} (mpnet-base's value). Fix it in {where} if the weights' table has {NUM_BUCKETS} rows"
        )
    return value


def _sizes(config: MPNetConfig) -> dict[str, int]:
    return {"vocab_size": config.vocab_size, "hidden_size": config.hidden_size,
            "intermediate_size": config.intermediate_size, "max_position_embeddings": config.max_position_embeddings,
            "relative_attention_num_buckets": config.relative_attention_num_buckets,
            "num_attention_heads": config.num_heads}


def _layout(config: MPNetConfig, with_pooler: bool) -> dict[str, tuple[str, ...]]:
    """MPNetModel's weight names, each dimension named by the config field that sets it ([out, in])."""
    h, i = "hidden_size", "intermediate_size"
    layout: dict[str, tuple[str, ...]] = {
        "embeddings.word_embeddings.weight": ("vocab_size", h),
        "embeddings.position_embeddings.weight": ("max_position_embeddings", h),
        "embeddings.LayerNorm.weight": (h,),
        "embeddings.LayerNorm.bias": (h,),
        "encoder.relative_attention_bias.weight": ("relative_attention_num_buckets", "num_attention_heads"),
    }
    for n in range(config.num_layers):
        p = f"encoder.layer.{n}."
        for part in ("q", "k", "v", "o"):
            layout[f"{p}attention.attn.{part}.weight"] = (h, h)
            layout[f"{p}attention.attn.{part}.bias"] = (h,)
        layout.update({
            f"{p}attention.LayerNorm.weight": (h,),
            f"{p}attention.LayerNorm.bias": (h,),
            **feed_forward_layout(p, h, i),
        })
    if with_pooler:
        layout["pooler.dense.weight"] = (h, h)
        layout["pooler.dense.bias"] = (h,)
    return layout


def rename_weight(stored: str) -> str | None:
    """MPNetModel's name for a stored weight: ``mpnet.`` (MPNetForMaskedLM & co.) stripped;
    ``None`` for what MPNetModel does not use (``lm_head``, ``classifier``, the ``position_ids`` buffer)."""
    key = stored.removeprefix("mpnet.")
    if key.endswith("position_ids") or not key.startswith(_KEEP_PREFIXES):
        return None
    return key


# --- the relative position bias ----------------------------------------------------------


def relative_position_bucket(relative: np.ndarray, num_buckets: int = NUM_BUCKETS,
                             max_distance: int = MAX_DISTANCE) -> np.ndarray:
    """transformers' ``MPNetEncoder.relative_position_bucket`` in numpy, step for step in float32
    (so a distance on a bucket boundary lands where PyTorch puts it)."""
    n = -np.asarray(relative, np.int64)
    half = num_buckets // 2
    ret = (n < 0).astype(np.int64) * half
    n = np.abs(n)
    max_exact = half // 2
    ratio = np.maximum(n, max_exact).astype(np.float32) / np.float32(max_exact)  # >= 1: no log(0)
    scaled = np.log(ratio) / np.float32(math.log(max_distance / max_exact)) * np.float32(half - max_exact)
    large = np.minimum(max_exact + scaled.astype(np.int64), half - 1)
    return ret + np.where(n < max_exact, n, large)


def bias_by_distance(table: np.ndarray, positions: int) -> np.ndarray:
    """Row ``d + positions - 1`` is the bias [heads] for key position minus query position ``d``."""
    distances = np.arange(-(positions - 1), positions, dtype=np.int64)
    return np.ascontiguousarray(table[relative_position_bucket(distances)], dtype=np.float32)


def _position_bias(b: GraphBuilder, w: Mapping[str, np.ndarray], config: MPNetConfig, seq_len: str) -> str:
    """[1, heads, S, S]: bias[h, i, j] = table[bucket(j - i), h], built once for all layers."""
    by_distance = b.const("encoder.relative_attention_bias.by_distance",
                          bias_by_distance(w["encoder.relative_attention_bias.weight"], config.positions))
    length = b.op("Squeeze", [seq_len, b.const("axis_0", np.array([0], np.int64))])
    steps = b.op("Range", [b.scalar(0, np.int64), length, b.scalar(1, np.int64)])
    rows = b.op("Unsqueeze", [steps, b.const("axis_1", np.array([1], np.int64))])  # query i
    cols = b.op("Unsqueeze", [steps, "axis_0"])  # key j
    index = b.op("Add", [b.op("Sub", [cols, rows]), b.scalar(config.positions - 1, np.int64)])
    per_pair = b.op("Gather", [by_distance, index])  # [S, S, heads]
    return b.op("Unsqueeze", [b.op("Transpose", [per_pair], perm=[2, 0, 1]), "axis_0"], out="relative_position_bias")


# --- layers ------------------------------------------------------------------------------


def _embeddings(b: GraphBuilder, w: Mapping[str, np.ndarray], config: MPNetConfig, seq_len: str) -> str:
    """word + position ``PADDING_IDX + 1 + i``, then LayerNorm: transformers' ``hidden_states[0]``.

    transformers numbers the tokens whose id is not the padding id 1; a tokenizer never puts
    that id inside a right-padded row, so its positions are these."""
    word = b.op("Gather", [b.const("embeddings.word_embeddings.weight", w["embeddings.word_embeddings.weight"]), "input_ids"])
    table = w["embeddings.position_embeddings.weight"][PADDING_IDX + 1:]
    positions = b.op("Slice", [b.const("embeddings.token_positions", table),
                               b.const("zero_i64", np.array([0], np.int64)), seq_len])
    summed = b.op("Add", [word, positions], out="embeddings_sum")
    return layer_norm(b, summed, w, "embeddings.LayerNorm", config.layer_norm_eps, out="hidden_state_0")


def _attention(b: GraphBuilder, x: str, w: Mapping[str, np.ndarray], p: str, cfg: MPNetConfig, scores_bias: str) -> str:
    """softmax(q k^T / sqrt(d) + relative bias + mask) v, then the output projection's MatMul (no bias)."""
    context = attention_context(b, x, w, p, cfg, [f"{p}attention.attn.{n}" for n in ("q", "k", "v")], scores_bias)
    return linear(b, context, w, f"{p}attention.attn.o", bias=False)


def _feed_forward(b: GraphBuilder, h1: str, w: Mapping[str, np.ndarray], p: str, cfg: MPNetConfig, graph: str) -> str:
    """The intermediate activation: BiasGelu (exact erf GELU) / FastGelu in the fused graph, plain ops otherwise."""
    if graph != "fused" or cfg.hidden_act == "relu":
        return activation(b, linear(b, h1, w, f"{p}intermediate.dense"), cfg.hidden_act)
    bias = b.const(f"{p}intermediate.dense.bias", w[f"{p}intermediate.dense.bias"])
    op = "BiasGelu" if cfg.hidden_act in EXACT_GELU else "FastGelu"  # FastGelu is exactly gelu_new's tanh form
    return b.op(op, [linear(b, h1, w, f"{p}intermediate.dense", bias=False), bias], domain="com.microsoft")


def _layer(b: GraphBuilder, x: str, w: Mapping[str, np.ndarray], p: str, cfg: MPNetConfig, graph: str,
           scores_bias: str, out: str) -> str:
    """One MPNetLayer: attention, residual + LayerNorm, feed-forward, residual + LayerNorm."""
    eps = cfg.layer_norm_eps
    attn = _attention(b, x, w, p, cfg, scores_bias)
    h1 = _add_norm(b, attn, f"{p}attention.attn.o.bias", x, w, f"{p}attention.LayerNorm", eps)
    ffn = linear(b, _feed_forward(b, h1, w, p, cfg, graph), w, f"{p}output.dense", bias=False)
    return _add_norm(b, ffn, f"{p}output.dense.bias", h1, w, f"{p}output.LayerNorm", eps, out=out)


def _add_norm(b: GraphBuilder, x: str, bias: str, skip: str, w: Mapping[str, np.ndarray], norm: str, eps: float,
              out: str | None = None) -> str:
    """LayerNorm(x + bias + skip) as Add + LayerNormalization, as BERT's graph does (faster on
    onnxruntime 1.32's CPU than SkipLayerNormalization: encoder.residual_layer_norm)."""
    biased = b.op("Add", [x, b.const(bias, w[bias])])
    return layer_norm(b, b.op("Add", [biased, skip]), w, norm, eps, out=out)


def _scores_bias(b: GraphBuilder, position_bias: str) -> str:
    """What every layer adds to its scores: the [1, N, S, S] relative bias plus the additive
    [B, 1, 1, S] mask (0 for real keys, ``MASK_VALUE`` for padding), summed once for all layers."""
    return b.op("Add", [position_bias, key_mask_bias(b)], out="scores_bias")


def build_model(config: MPNetConfig, weights: Mapping[str, np.ndarray], *, graph: GraphVariant = DEFAULT_GRAPH,
                metadata: Mapping[str, Any] | None = None):
    """The ONNX ``ModelProto`` for ``config`` and MPNetModel-named ``weights``."""
    b, w, with_pooler = start_graph(FAMILY, config, weights, graph)

    seq_len = sequence_length(b)
    x = _embeddings(b, w, config, seq_len)
    scores_bias = _scores_bias(b, _position_bias(b, w, config, seq_len))
    for n in range(config.num_layers):
        last = n == config.num_layers - 1
        x = _layer(b, x, w, f"encoder.layer.{n}.", config, graph, scores_bias,
                   "last_hidden_state" if last else f"hidden_state_{n + 1}")
    b.op("Identity", [x], out=f"hidden_state_{config.num_layers}")

    if with_pooler:
        tanh_pooler(b, x, w)
    uses_ms = any(node.domain == MS_DOMAIN for node in b.nodes)  # not with relu: no fused op then
    info = {**asdict(config), "max_position_embeddings": config.positions,
            "position_table_size": config.max_position_embeddings, "model_type": "mpnet"}
    return finish_model(b, "mpnet", hidden_size=config.hidden_size, num_layers=config.num_layers, graph=graph,
                        with_pooler=with_pooler, ms_domain=uses_ms, info=info, metadata=metadata,
                        value_info=[("embeddings_sum", ["batch", "sequence", config.hidden_size]),
                                    ("relative_position_bias", [1, config.num_heads, "sequence", "sequence"])])


FAMILY = Family(
    name="MPNet",
    model_types=("mpnet",),
    config_class=MPNetConfig,
    rename=rename_weight,
    layout=_layout,
    sizes=_sizes,
    build_model=build_model,
    max_length=lambda config: config.positions,
)
