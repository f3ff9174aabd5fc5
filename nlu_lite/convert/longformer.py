"""Longformer checkpoints (``model_type`` 'longformer', e.g. allenai/longformer-base-4096) as ONNX.

The graph computes transformers' ``LongformerModel`` (``modeling_longformer.py``):

- RoBERTa's embeddings: token ``i`` of a right-padded row reads position row ``pad_token_id + 1 + i``
  (a 4,098-row table takes 4,096 tokens), plus the type-0 embedding (folded into the position
  table), then LayerNorm;
- post-LayerNorm layers whose self-attention is a sliding window: with ``w = attention_window / 2``
  (per layer), token ``i`` attends to the real tokens ``j`` with ``|i - j| <= w``;
- by default no global attention: what ``LongformerModel`` computes with
  ``global_attention_mask=None`` and what Spark NLP's ``LongformerEmbeddings`` (its RoBERTa
  runner feeds ``input_ids`` and ``attention_mask`` only) computes for token vectors.
  ``LongformerConfig.global_first_token`` (``with_global_first_token(config)``) builds instead
  what ``global_attention_mask[:, 0] = 1`` gives: every token also attends to the first token
  (``<s>``), and the first token attends to the whole row through the separate
  ``query_global``/``key_global``/``value_global`` projections. The metadata's
  ``global_attention`` says which (``"none"`` or ``"first_token"``).

The window is exact and chunked, so a layer's memory grows as ``S * w``, not ``S^2``: the
sequence is cut into blocks of ``min(w, S)`` queries; each block's keys are its previous, own and
next block (``3 * block`` keys), and a [block, 3 * block] band mask plus the padding mask remove
the keys outside ``|i - j| <= w`` or past the row's end. transformers pads the sequence to a
multiple of the window internally; those positions are masked keys there as here, so real
positions' results are the same. Masks are additive ``MASK_VALUE`` (finite), so padded positions
stay finite; transformers' ``finfo.min`` and -inf give exactly zero weight, as -10,000 does.

Both graph variants build the same standard-op attention (onnxruntime's com.microsoft
``LongformerAttention`` is CUDA-only and its ``Attention`` is full, not banded); ``"fused"``
differs only in its BiasGelu/FastGelu feed-forward activation, as MPNet's.
transformers ignores the config fields ``attention_mode``, ``attention_dilation`` and
``ignore_attention_mask`` of older checkpoints; so does this graph.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from ..choices import GraphVariant
from ..errors import ConversionError
from .encoder import (
    EncoderConfig,
    EncoderPlan,
    encoder_fields,
    encoder_layout,
    encoder_sizes,
    rename_weight,
    residual_layer_norm,
)
from .family import Family, start_graph
from .graph import (
    DEFAULT_GRAPH,
    EXACT_GELU,
    MASK_VALUE,
    MS_DOMAIN,
    GraphBuilder,
    activation,
    finish_model,
    key_mask_bias,
    layer_norm,
    linear,
    sequence_length,
    shown,
    tanh_pooler,
)

MODEL_TYPE = "longformer"
GLOBAL_PROJECTIONS = ("query_global", "key_global", "value_global")
_LONGFORMER_BASE = {"vocab_size": 50265, "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
                    "intermediate_size": 3072, "max_position_embeddings": 4098, "type_vocab_size": 1}
_DEFAULTS = {"max_position_embeddings": 512, "type_vocab_size": 2}  # transformers' LongformerConfig defaults
_WINDOW_LIMIT = 1 << 20  # far above any position table (CONFIG_LIMITS' max_position_embeddings)


@dataclass(frozen=True)
class LongformerConfig(EncoderConfig):
    """BERT's fields plus the padding index that offsets positions, each layer's
    ``attention_window`` (both sides together, even) and whether the first token is global."""

    hidden_act: str = "gelu"
    layer_norm_eps: float = 1e-5
    max_position_embeddings: int = 4098
    type_vocab_size: int = 1
    pad_token_id: int = 1
    attention_window: tuple[int, ...] = ()
    global_first_token: bool = False

    @property
    def positions(self) -> int:
        """The longest sequence the table takes, framing included: the rows after the padding row."""
        return self.max_position_embeddings - self.pad_token_id - 1

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "config.json") -> LongformerConfig:
        """Validate a transformers Longformer config; errors name the field, its allowed values and the fix."""
        fields = encoder_fields(data, where, model="Longformer", base=_LONGFORMER_BASE, defaults=_DEFAULTS)
        pad = data.get("pad_token_id", 1)
        rows = fields["max_position_embeddings"]
        if type(pad) is not int or not 0 <= pad < rows - 1:
            raise ConversionError(
                f"{where}: pad_token_id is {shown(pad)}, but positions start after it, so it must be a whole number "
                f"from 0 to max_position_embeddings - 2 = {rows - 2} (longformer-base-4096 has 1 with 4098 "
                f"positions); fix pad_token_id in {where} or download the checkpoint again"
            )
        windows = _window_field(data, where, fields["num_layers"])
        return cls(**fields, pad_token_id=pad, attention_window=windows)


def _window_field(data: Mapping[str, Any], where: str, layers: int) -> tuple[int, ...]:
    """``attention_window``: one even positive whole number, or a list of one per layer."""
    value = data.get("attention_window", 512)
    values = [value] * layers if type(value) is int else value
    fix = (f"it must be an even whole number from 2 to {_WINDOW_LIMIT:,}, or a list of {layers} of them "
           f"(one per layer; longformer-base-4096 has 512); fix attention_window in {where} or download the "
           "checkpoint again")
    if not isinstance(values, list) or len(values) != layers:
        raise ConversionError(f"{where}: attention_window is {shown(value)}, but {fix}")
    for window in values:
        if type(window) is not int or not 2 <= window <= _WINDOW_LIMIT or window % 2:
            raise ConversionError(f"{where}: attention_window holds {shown(window)}, but {fix}")
    return tuple(values)


def with_global_first_token(config: LongformerConfig, enabled: bool = True) -> LongformerConfig:
    """``config`` whose graph gives the first token global attention (``global_attention_mask[:, 0] = 1``)."""
    return replace(config, global_first_token=bool(enabled))


def _plan(config: LongformerConfig) -> EncoderPlan:
    return EncoderPlan(model_type=MODEL_TYPE, token_types=True, position_offset=config.pad_token_id + 1)


def _layout(config: LongformerConfig, with_pooler: bool) -> dict[str, tuple[str, ...]]:
    """RoBERTa's weights, plus each layer's global projections when the graph reads them."""
    layout = encoder_layout(config.num_layers, with_pooler=with_pooler, plan=_plan(config))
    if config.global_first_token:
        for n in range(config.num_layers):
            for part in GLOBAL_PROJECTIONS:
                layout[f"encoder.layer.{n}.attention.self.{part}.weight"] = ("hidden_size", "hidden_size")
                layout[f"encoder.layer.{n}.attention.self.{part}.bias"] = ("hidden_size",)
    return layout


def rename(stored: str) -> str | None:
    """LongformerModel's name: ``longformer.`` (LongformerForMaskedLM & co.) stripped; ``lm_head``,
    ``classifier``, ``qa_outputs`` and buffers dropped."""
    return rename_weight(stored, "longformer.")


# --- the graph ---------------------------------------------------------------------------


def _i64(b: GraphBuilder, name: str, values: list[int]) -> str:
    return b.const(name, np.array(values, np.int64))


def _embeddings(b: GraphBuilder, w: Mapping[str, np.ndarray], config: LongformerConfig, seq_len: str) -> str:
    """word + (position ``pad + 1 + i`` + token type 0), then LayerNorm: transformers' ``hidden_states[0]``.
    transformers numbers the tokens whose id is not the pad id; right-padded rows hold none inside."""
    word = b.op("Gather", [b.const("embeddings.word_embeddings.weight", w["embeddings.word_embeddings.weight"]),
                           "input_ids"])
    table = (w["embeddings.position_embeddings.weight"][config.pad_token_id + 1:]
             + w["embeddings.token_type_embeddings.weight"][0])
    positions = b.op("Slice", [b.const("embeddings.position_plus_type0", table), _i64(b, "zero_i64", [0]), seq_len])
    summed = b.op("Add", [word, positions], out="embeddings_sum")
    return layer_norm(b, summed, w, "embeddings.LayerNorm", config.layer_norm_eps, out="hidden_state_0")


@dataclass(frozen=True)
class Band:
    """One window's geometry and masks, shared by the layers with that window.

    ``blocks``: how many blocks of ``min(w, S)`` queries (``ceil(S / block)``, 1-element int64);
    ``pads_q`` / ``pads_k``: the [B, S, hidden] Pad that fills the last block (keys: plus a block of
    zeros at each end); ``shape_q`` / ``shape_k``: the [B, blocks (+2), block, heads, head size]
    reshapes; ``bias``: [B, 1, blocks, block, 3 * block], 0 where key ``j`` of the previous/own/next
    block is a real token with ``|i - j| <= w``, else MASK_VALUE."""

    blocks: str
    seq_len: str
    pads_q: str
    pads_k: str
    shape_q: str
    shape_k: str
    bias: str


def _band(b: GraphBuilder, config: LongformerConfig, one_sided: int, seq_len: str, keep: str) -> Band:
    """The block geometry and additive mask of window ``2 * one_sided`` (``keep``: [B, S] float, 1 = key used)."""
    p = f"band{one_sided}/"
    block = b.op("Min", [_i64(b, f"{p}w", [one_sided]), seq_len])
    blocks = b.op("Div", [b.op("Sub", [b.op("Add", [seq_len, block]), _i64(b, "one_i64", [1])]), block])
    pad_end = b.op("Sub", [b.op("Mul", [blocks, block]), seq_len])
    heads = _i64(b, f"{p}heads", [config.num_heads, config.head_size])
    zero = _i64(b, "zero_i64", [0])
    shape_q = b.op("Concat", [zero, blocks, block, heads], axis=0)
    shape_k = b.op("Concat", [zero, b.op("Add", [blocks, _i64(b, "two_i64", [2])]), block, heads], axis=0)

    after = b.op("Add", [pad_end, block])
    pads_q = b.op("Concat", [zero, zero, zero, zero, pad_end, zero], axis=0)
    pads_k = b.op("Concat", [zero, block, zero, zero, after, zero], axis=0)
    # keys: the row padded by a block before and pad_end + a block after, as the keys will be
    kept = b.op("Pad", [keep, b.op("Concat", [zero, block, zero, after], axis=0), b.scalar(0.0)])
    key_bias = b.op("Mul", [b.op("Sub", [b.scalar(1.0), kept]), b.scalar(MASK_VALUE)])
    by_block = b.op("Reshape", [key_bias, b.op("Concat", [zero, b.op("Add", [blocks, _i64(b, "two_i64", [2])]), block],
                                                axis=0)])
    key_bias = _neighbours(b, by_block, blocks, axis=1, concat_axis=2)  # [B, blocks, 3 * block]
    key_bias = b.op("Unsqueeze", [key_bias, _i64(b, "axes_1_3", [1, 3])])

    # |key - query| <= w: query a of a block, key k of its 3 blocks (k - block is the own block's start)
    length = b.op("Squeeze", [block, zero])
    queries = b.op("Unsqueeze", [b.op("Range", [b.scalar(0, np.int64), length, b.scalar(1, np.int64)]),
                                 _i64(b, "axes_1", [1])])
    three = b.op("Mul", [length, b.scalar(3, np.int64)])
    keys = b.op("Unsqueeze", [b.op("Range", [b.scalar(0, np.int64), three, b.scalar(1, np.int64)]),
                              zero])
    distance = b.op("Abs", [b.op("Sub", [b.op("Sub", [keys, length]), queries])])
    outside = b.op("Greater", [distance, b.scalar(one_sided, np.int64)])
    band = b.op("Where", [outside, b.scalar(MASK_VALUE), b.scalar(0.0)])  # [block, 3 * block]
    bias = b.op("Add", [key_bias, band], out=f"{p}bias")
    return Band(blocks, seq_len, pads_q, pads_k, shape_q, shape_k, bias)


def _neighbours(b: GraphBuilder, x: str, blocks: str, *, axis: int, concat_axis: int) -> str:
    """Blocks ``c-1``, ``c`` and ``c+1`` of ``x`` (``blocks + 2`` blocks on ``axis``, one of padding at
    each end) side by side on ``concat_axis``: one entry per real block ``c``."""
    ax = _i64(b, f"axis_{axis}", [axis])
    parts = []
    for start in range(3):
        begin = _i64(b, f"block_start_{start}", [start])
        end = b.op("Add", [blocks, begin]) if start else blocks
        parts.append(b.op("Slice", [x, begin, end, ax]))
    return b.op("Concat", parts, axis=concat_axis)


def _blocks(b: GraphBuilder, x: str, band: Band, *, keys: bool) -> str:
    """[B, S, hidden] -> queries [B, heads, blocks, block, D], or keys/values [B, heads, blocks + 2, block, D]
    (padded with one block of zeros before and after)."""
    padded = b.op("Pad", [x, band.pads_k if keys else band.pads_q, b.scalar(0.0)])
    split = b.op("Reshape", [padded, band.shape_k if keys else band.shape_q])
    return b.op("Transpose", [split], perm=[0, 3, 1, 2, 4])


def _heads(b: GraphBuilder, x: str, config: LongformerConfig, perm: list[int]) -> str:
    """[B, S, hidden] -> [B, S, heads, D] permuted by ``perm``."""
    shape = _i64(b, "heads_shape", [0, 0, config.num_heads, config.head_size])
    return b.op("Transpose", [b.op("Reshape", [x, shape])], perm=perm)


def _local_attention(b: GraphBuilder, x: str, w: Mapping[str, np.ndarray], p: str, config: LongformerConfig,
                     band: Band, global_first: bool) -> str:
    """The sliding-window context [B, S, hidden] before the output projection. ``global_first``: with global
    attention on the first token, the band mask excludes that key and every query attends to it
    through one extra score (transformers' global key column), with the same local projections."""
    q = b.op("Div", [linear(b, x, w, f"{p}attention.self.query"), b.scalar(math.sqrt(config.head_size))])
    k = linear(b, x, w, f"{p}attention.self.key")
    v = linear(b, x, w, f"{p}attention.self.value")
    q_blocks = _blocks(b, q, band, keys=False)  # [B, N, nb, block, D]
    k_blocks = b.op("Transpose", [_blocks(b, k, band, keys=True)], perm=[0, 1, 2, 4, 3])  # [B, N, nb+2, D, block]
    keys = _neighbours(b, k_blocks, band.blocks, axis=2, concat_axis=4)  # [B, N, nb, D, 3 block]
    values = _neighbours(b, _blocks(b, v, band, keys=True), band.blocks, axis=2, concat_axis=3)  # [.., 3 block, D]
    scores = b.op("Add", [b.op("MatMul", [q_blocks, keys]), band.bias])  # [B, N, nb, block, 3 block]
    if not global_first:
        context = b.op("MatMul", [b.op("Softmax", [scores], axis=-1), values])
    else:
        one = _i64(b, "one_i64", [1])
        zero = _i64(b, "zero_i64", [0])
        per_head = _i64(b, "first_key_shape", [0, config.num_heads, 1, config.head_size, 1])
        k_first = b.op("Reshape", [b.op("Slice", [k, zero, one, one]), per_head])  # [B, N, 1, D, 1]
        with_first = b.op("Concat", [scores, b.op("MatMul", [q_blocks, k_first])], axis=-1)
        probs = b.op("Softmax", [with_first], axis=-1)
        last = _i64(b, "minus_one_i64", [-1])
        banded = b.op("Slice", [probs, zero, last, last])
        to_first = b.op("Slice", [probs, last, _i64(b, "max_i64", [np.iinfo(np.int64).max]), last])
        v_shape = _i64(b, "first_value_shape", [0, config.num_heads, 1, 1, config.head_size])
        v_first = b.op("Reshape", [b.op("Slice", [v, zero, one, one]), v_shape])  # [B, N, 1, 1, D]
        context = b.op("Add", [b.op("MatMul", [banded, values]), b.op("Mul", [to_first, v_first])])
    merged = b.op("Reshape", [b.op("Transpose", [context], perm=[0, 2, 3, 1, 4]),
                              _i64(b, "merge_shape", [0, -1, config.hidden_size])])
    return b.op("Slice", [merged, _i64(b, "zero_i64", [0]), band.seq_len, _i64(b, "one_i64", [1])])


def _global_row(b: GraphBuilder, x: str, w: Mapping[str, np.ndarray], p: str, config: LongformerConfig,
                padding_bias: str) -> str:
    """The first token's context [B, 1, hidden]: it attends to every real token of its row through
    the ``*_global`` projections (transformers' ``_compute_global_attn_output_from_hidden``)."""
    zero, one = _i64(b, "zero_i64", [0]), _i64(b, "one_i64", [1])
    first = b.op("Slice", [x, zero, one, one])
    q = b.op("Div", [linear(b, first, w, f"{p}attention.self.query_global"), b.scalar(math.sqrt(config.head_size))])
    q = _heads(b, q, config, [0, 2, 1, 3])  # [B, N, 1, D]
    k = _heads(b, linear(b, x, w, f"{p}attention.self.key_global"), config, [0, 2, 3, 1])  # [B, N, D, S]
    v = _heads(b, linear(b, x, w, f"{p}attention.self.value_global"), config, [0, 2, 1, 3])  # [B, N, S, D]
    probs = b.op("Softmax", [b.op("Add", [b.op("MatMul", [q, k]), padding_bias])], axis=-1)
    context = b.op("Transpose", [b.op("MatMul", [probs, v])], perm=[0, 2, 1, 3])
    return b.op("Reshape", [context, _i64(b, "merge_shape", [0, -1, config.hidden_size])])


def _feed_forward(b: GraphBuilder, h1: str, w: Mapping[str, np.ndarray], p: str, config: LongformerConfig,
                  graph: str) -> str:
    """The intermediate activation: BiasGelu (exact erf GELU) / FastGelu in the fused graph, plain ops otherwise."""
    if graph != "fused" or config.hidden_act == "relu":
        return activation(b, linear(b, h1, w, f"{p}intermediate.dense"), config.hidden_act)
    bias = b.const(f"{p}intermediate.dense.bias", w[f"{p}intermediate.dense.bias"])
    op = "BiasGelu" if config.hidden_act in EXACT_GELU else "FastGelu"
    return b.op(op, [linear(b, h1, w, f"{p}intermediate.dense", bias=False), bias], domain=MS_DOMAIN)


def _layer(b: GraphBuilder, x: str, w: Mapping[str, np.ndarray], n: int, config: LongformerConfig, graph: str,
           band: Band, padding_bias: str | None, out: str) -> str:
    """One LongformerLayer: windowed attention, residual + LayerNorm, feed-forward, residual + LayerNorm."""
    p = f"encoder.layer.{n}."
    eps = config.layer_norm_eps
    context = _local_attention(b, x, w, p, config, band, padding_bias is not None)
    if padding_bias is not None:  # the first token's row is its global attention's
        rest = b.op("Slice", [context, _i64(b, "one_i64", [1]), band.seq_len, _i64(b, "one_i64", [1])])
        context = b.op("Concat", [_global_row(b, x, w, p, config, padding_bias), rest], axis=1)
    attn = linear(b, context, w, f"{p}attention.output.dense", bias=False)
    h1 = residual_layer_norm(b, attn, x, w, f"{p}attention.output", eps)
    ffn = linear(b, _feed_forward(b, h1, w, p, config, graph), w, f"{p}output.dense", bias=False)
    return residual_layer_norm(b, ffn, h1, w, f"{p}output", eps, out=out)


def _key_keep(b: GraphBuilder, seq_len: str, global_first: bool) -> str:
    """[B, S] float: 1 for the keys the window reads (real tokens; not the first token when it is global)."""
    from onnx import TensorProto

    keep = b.op("Cast", ["attention_mask"], to=TensorProto.FLOAT)
    if not global_first:
        return keep
    steps = b.op("Range", [b.scalar(0, np.int64), b.op("Squeeze", [seq_len, _i64(b, "zero_i64", [0])]),
                           b.scalar(1, np.int64)])
    later = b.op("Cast", [b.op("Greater", [steps, b.scalar(0, np.int64)])], to=TensorProto.FLOAT)
    return b.op("Mul", [keep, later])


def build_model(config: LongformerConfig, weights: Mapping[str, np.ndarray], *, graph: GraphVariant = DEFAULT_GRAPH,
                metadata: Mapping[str, Any] | None = None):
    """The ONNX ``ModelProto`` for ``config`` and LongformerModel-named ``weights``."""
    b, w, with_pooler = start_graph(FAMILY, config, weights, graph)

    seq_len = sequence_length(b)
    x = _embeddings(b, w, config, seq_len)
    keep = _key_keep(b, seq_len, config.global_first_token)
    padding_bias = key_mask_bias(b) if config.global_first_token else None
    bands: dict[int, Band] = {}
    for n, window in enumerate(config.attention_window):
        if window // 2 not in bands:
            bands[window // 2] = _band(b, config, window // 2, seq_len, keep)
        last = n == config.num_layers - 1
        x = _layer(b, x, w, n, config, graph, bands[window // 2], padding_bias,
                   "last_hidden_state" if last else f"hidden_state_{n + 1}")
    b.op("Identity", [x], out=f"hidden_state_{config.num_layers}")

    if with_pooler:
        tanh_pooler(b, x, w)
    uses_ms = any(node.domain == MS_DOMAIN for node in b.nodes)
    info = {**asdict(config), "model_type": MODEL_TYPE, "max_position_embeddings": config.positions,
            "position_table_size": config.max_position_embeddings,
            "global_attention": "first_token" if config.global_first_token else "none"}
    return finish_model(b, MODEL_TYPE, hidden_size=config.hidden_size, num_layers=config.num_layers, graph=graph,
                        with_pooler=with_pooler, ms_domain=uses_ms, info=info, metadata=metadata,
                        value_info=[("embeddings_sum", ["batch", "sequence", config.hidden_size])])


FAMILY = Family(
    name="Longformer",
    model_types=(MODEL_TYPE,),
    config_class=LongformerConfig,
    rename=rename,
    layout=_layout,
    sizes=encoder_sizes,
    build_model=build_model,
    max_length=lambda config: config.positions,
)
