"""A DeBERTa-v2/v3 checkpoint (``model_type`` ``deberta-v2``; DebertaV2Model) as an ONNX graph.

What DeBERTa computes differently from BERT, and how the graph does it:

- Embeddings: word embeddings (plus absolute positions only when ``position_biased_input``,
  False in v3; plus token type 0 only when ``type_vocab_size`` > 0), ``embed_proj`` when
  ``embedding_size`` differs from ``hidden_size``, LayerNorm, then multiplied by the mask.
- Disentangled attention: scores = (content->content + content->position (``c2p``) +
  position->content (``p2c``)) / sqrt(head_size * (1 + len(pos_att_type))). The position
  terms read a table of relative-distance embeddings (``encoder.rel_embeddings``, LayerNorm'd
  when ``norm_rel_ebd`` says ``layer_norm``) projected by the layer's key / query
  projection (``share_att_key``) or by its own ``pos_key_proj`` / ``pos_query_proj``.

Everything that depends only on positions and weights is computed here in numpy, once: each
layer's projected position tables (``[heads, head_size, rows]``, the 1/scale folded in), and
which table row each relative distance i - j reads (``make_log_bucket_position``, clamped as
transformers clamps; 2 x max_position_embeddings - 1 entries). The graph builds the [S, S]
distance matrix from the sequence length, looks the rows up, multiplies (query or key) x the
table rows that length can reach and gathers: a sequence of 128 tokens multiplies by 255 of
v3's 512 rows. Padding adds -10000 to the scores of padded keys, as in every nlu_lite graph
(transformers fills them with the float minimum): real positions' outputs are the same.

Also converted (each tested against transformers): absolute positions and token types,
``share_att_key`` False (``pos_key_proj`` / ``pos_query_proj``), no buckets
(``position_buckets`` <= 0), ``relative_attention`` False, c2p or p2c alone, no LayerNorm on
the relative table, an ``embed_proj``, the tanh GELUs and relu.

Both graph variants build attention from standard opset-17 ops: onnxruntime's com.microsoft
``Attention`` computes softmax(QK^T) from its own packed projection and cannot express the
c2p/p2c terms, which depend on the query and key content and a relative-position gather.
(``MultiHeadAttention`` can add them as a precomputed ``attention_bias``; measured on
deberta-v3-base's shape, batch 16 x 128, 2 threads, it ran no faster than these plain ops,
1.66 s vs 1.68 s, so it is not used.) ``graph="fused"`` differs only in its feed-forward
activation, com.microsoft ``BiasGelu`` (exact erf GELU), which onnxruntime's own fusion makes
of the standard graph's Erf pattern anyway.

Refused by name: ``conv_kernel_size`` > 0 (deberta-v2-xlarge's convolution after layer 0),
``pos_att_type`` entries other than ``c2p`` / ``p2c``, ``norm_rel_ebd`` entries other than
``layer_norm`` / ``none``, an ``attention_head_size`` other than hidden_size / heads.
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
from .graph import (
    ACTIVATIONS,
    DEFAULT_GRAPH,
    EXACT_GELU,
    MASK_VALUE,
    GraphBuilder,
    activation,
    finish_model,
    layer_norm,
    linear,
    shown,
)

MODEL_TYPE = "deberta-v2"
# Limits on config.json's sizes, as for BERT: far above any DeBERTa (v3-large: 128,100 x 1,024,
# 24 layers; v2-xxlarge 1,536 wide, 48 layers), low enough that a hostile config cannot make us
# build huge tables before the weights are looked at.
SIZE_LIMITS = {
    "vocab_size": 1 << 24,
    "hidden_size": 1 << 16,
    "num_hidden_layers": 1 << 10,
    "num_attention_heads": 1 << 10,
    "intermediate_size": 1 << 18,
    "max_position_embeddings": 1 << 13,  # the graph holds [length, length] index tables
    "embedding_size": 1 << 16,
    "type_vocab_size": 1 << 10,
    "position_buckets": 1 << 13,
    "max_relative_positions": 1 << 13,
}
_V3_BASE = {"vocab_size": 128100, "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
            "intermediate_size": 3072, "max_position_embeddings": 512, "embedding_size": 768, "type_vocab_size": 0,
            "position_buckets": 256, "max_relative_positions": -1}
POSITION_ATTENTION = ("c2p", "p2c")
REL_NORMS = ("layer_norm", "none")


@dataclass(frozen=True)
class DebertaConfig(EncoderSizes):
    """The fields of a DeBERTa-v2/v3 ``config.json`` the graph depends on, defaults as transformers'.

    ``position_buckets`` 0 means no log buckets; ``max_relative_positions`` is already resolved
    (transformers' -1 becomes ``max_position_embeddings``); ``pos_att_type`` is a sorted tuple.
    """

    hidden_act: str = "gelu"
    layer_norm_eps: float = 1e-7
    max_position_embeddings: int = 512
    type_vocab_size: int = 0
    embedding_size: int = 0  # 0: hidden_size
    position_biased_input: bool = True
    relative_attention: bool = False
    pos_att_type: tuple[str, ...] = ()
    share_att_key: bool = False
    position_buckets: int = 0
    max_relative_positions: int = 512
    norm_rel_ebd: bool = False  # LayerNorm on the relative embeddings
    model_type: str = MODEL_TYPE

    @property
    def embedding_width(self) -> int:
        return self.embedding_size or self.hidden_size

    @property
    def attention_span(self) -> int:
        """transformers' ``pos_ebd_size``: the relative table has twice as many rows."""
        return self.position_buckets or self.max_relative_positions

    @property
    def position_terms(self) -> bool:
        """Whether attention adds c2p / p2c terms (and so reads the relative table)."""
        return self.relative_attention and bool(self.pos_att_type)

    @property
    def scale(self) -> float:
        """sqrt(head_size * scale_factor), scale_factor = 1 + how many position terms there are."""
        return math.sqrt(self.head_size * (1 + len(self.pos_att_type)))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "config.json") -> DebertaConfig:
        """Validate a transformers DeBERTa-v2 config; errors name the field, its allowed values and the fix."""
        if not isinstance(data, Mapping):
            raise ConversionError(f"{where} holds a JSON {type(data).__name__}, not an object with DeBERTa's fields "
                                  "(hidden_size, num_hidden_layers, ...); download the checkpoint again")
        _refuse_unsupported(data, where)
        size = {f: _size(data, f, where) for f in ("vocab_size", "hidden_size", "num_hidden_layers",
                                                   "num_attention_heads", "intermediate_size")}
        max_positions = _size(data, "max_position_embeddings", where, default=512)
        max_relative = _int(data, "max_relative_positions", where, default=-1, low=-(1 << 13))
        config = cls(
            vocab_size=size["vocab_size"],
            hidden_size=size["hidden_size"],
            num_layers=size["num_hidden_layers"],
            num_heads=size["num_attention_heads"],
            intermediate_size=size["intermediate_size"],
            hidden_act=_activation(data, where),
            layer_norm_eps=_eps(data, where),
            max_position_embeddings=max_positions,
            type_vocab_size=_int(data, "type_vocab_size", where, default=0, low=0),
            embedding_size=_size(data, "embedding_size", where, default=size["hidden_size"]),
            position_biased_input=_flag(data, "position_biased_input", where, default=True),
            relative_attention=_flag(data, "relative_attention", where, default=False),
            pos_att_type=_position_attention(data, where),
            share_att_key=_flag(data, "share_att_key", where, default=False),
            position_buckets=max(_int(data, "position_buckets", where, default=-1, low=-(1 << 13)), 0),
            max_relative_positions=max_relative if max_relative >= 1 else max_positions,
            norm_rel_ebd=_rel_norm(data, where),
        )
        _check_heads(config, data, where)
        _check_buckets(config, where)
        return config


def _size(data: Mapping[str, Any], field: str, where: str, default: int | None = None) -> int:
    """A positive whole number within ``SIZE_LIMITS``: no float, bool, string, NaN or infinity."""
    if field not in data and default is not None:
        return default
    if field not in data:
        raise ConversionError(f"{where} lacks the field {field!r} that a DeBERTa-v2 config has; add it "
                              f"(deberta-v3-base has {field}={_V3_BASE[field]}) or download the checkpoint again")
    value, limit = data[field], SIZE_LIMITS[field]
    if type(value) is not int or not 1 <= value <= limit:
        raise ConversionError(
            f"{where}: {field} is {shown(value)}, but it must be a whole number from 1 to {limit:,} "
            f"(deberta-v3-base has {_V3_BASE[field]}); fix {field} in {where} or download the checkpoint again")
    return value


def _int(data: Mapping[str, Any], field: str, where: str, *, default: int, low: int) -> int:
    """A whole number from ``low`` up to ``SIZE_LIMITS[field]`` (fields where 0 or -1 mean 'none')."""
    value, limit = data.get(field, default), SIZE_LIMITS[field]
    if type(value) is not int or not low <= value <= limit:
        raise ConversionError(
            f"{where}: {field} is {shown(value)}, but it must be a whole number from {low:,} to {limit:,} "
            f"(deberta-v3-base has {_V3_BASE[field]}); fix {field} in {where} or download the checkpoint again")
    return value


def _flag(data: Mapping[str, Any], field: str, where: str, *, default: bool) -> bool:
    value = data.get(field, default)
    if type(value) is not bool:
        raise ConversionError(f"{where}: {field} is {shown(value)}, but it must be true or false; fix it in {where}")
    return value


def _eps(data: Mapping[str, Any], where: str) -> float:
    value = data.get("layer_norm_eps", 1e-7)
    if type(value) not in (int, float) or not 0 < value < 1:  # NaN fails both comparisons
        raise ConversionError(f"{where}: layer_norm_eps is {shown(value)}, but it must be a number between 0 and 1 "
                              f"(DeBERTa uses 1e-7); fix layer_norm_eps in {where} or download the checkpoint again")
    return float(value)


def _activation(data: Mapping[str, Any], where: str) -> str:
    act = data.get("hidden_act", "gelu")
    if not isinstance(act, str) or act not in ACTIVATIONS:
        raise ConversionError(f"{where}: hidden_act {shown(act)} is not supported; use one of {list(ACTIVATIONS)}")
    return act


def _names(value: Any) -> list[Any] | None:
    """transformers' reading of a '|'-joined string (lower-cased) or a list of names; None if neither."""
    if isinstance(value, str):
        return [x.strip() for x in value.lower().split("|")]
    return list(value) if isinstance(value, list) else None


def _position_attention(data: Mapping[str, Any], where: str) -> tuple[str, ...]:
    raw = data.get("pos_att_type")
    names = [] if raw is None else _names(raw)
    if names is None or any(n not in POSITION_ATTENTION for n in names):
        raise ConversionError(
            f"{where}: pos_att_type {shown(raw)} is not supported; nlu_lite computes the position terms "
            f"{list(POSITION_ATTENTION)} (a list, or joined by '|' as in 'p2c|c2p'), any subset of them")
    return tuple(sorted(set(names)))


def _rel_norm(data: Mapping[str, Any], where: str) -> bool:
    raw = data.get("norm_rel_ebd", "none")
    names = [x.strip() for x in raw.lower().split("|")] if isinstance(raw, str) else None
    if names is None or any(n not in REL_NORMS for n in names):
        raise ConversionError(f"{where}: norm_rel_ebd {shown(raw)} is not supported; use 'layer_norm' or 'none'")
    return "layer_norm" in names


def _refuse_unsupported(data: Mapping[str, Any], where: str) -> None:
    conv = data.get("conv_kernel_size", 0)
    if type(conv) is not int or conv > 0:
        raise ConversionError(
            f"{where}: conv_kernel_size {shown(conv)} asks for the convolution layer after layer 0 "
            "(deberta-v2-xlarge/xxlarge), which nlu_lite does not convert; DeBERTa-v3 checkpoints have none")


def _check_heads(config: DebertaConfig, data: Mapping[str, Any], where: str) -> None:
    if config.hidden_size % config.num_heads:
        raise ConversionError(
            f"{where}: hidden_size {config.hidden_size} is not divisible by num_attention_heads {config.num_heads}; "
            f"fix num_attention_heads in {where} (deberta-v3-base has 768 / 12) or download the checkpoint again")
    head = data.get("attention_head_size", config.head_size)
    if head != config.head_size:
        raise ConversionError(
            f"{where}: attention_head_size {shown(head)} differs from hidden_size / num_attention_heads "
            f"({config.head_size}); nlu_lite converts only that head size: remove attention_head_size from {where}")


def _check_buckets(config: DebertaConfig, where: str) -> None:
    """Log buckets need a table the usable length can index; the formula divides by log((max - 1) / mid)."""
    if not config.position_terms or not config.position_buckets:
        return
    if config.position_buckets < 2:
        raise ConversionError(f"{where}: position_buckets is {config.position_buckets}; use 0 or -1 (no buckets) "
                              "or at least 2 (deberta-v3 has 256)")
    try:
        relative_index_tables(config)
    except FloatingPointError:
        raise ConversionError(
            f"{where}: position_buckets {config.position_buckets} and max_relative_positions "
            f"{config.max_relative_positions} give undefined log buckets (max_relative_positions - 1 must exceed "
            "position_buckets / 2 for sequences longer than that); fix them in the config") from None


# --- positions: everything that depends only on them is computed here, once ----------------


def log_bucket_position(relative: np.ndarray, bucket_size: int, max_position: int) -> np.ndarray:
    """transformers' ``make_log_bucket_position``, in float32 as torch computes it (exact match)."""
    sign = np.sign(relative)
    mid = bucket_size // 2
    abs_pos = np.where((relative < mid) & (relative > -mid), mid - 1, np.abs(relative))
    with np.errstate(all="ignore"):
        ratio = np.log(abs_pos.astype(np.float32) / np.float32(mid)) / np.log(np.float32((max_position - 1) / mid))
        log_pos = np.ceil(ratio * np.float32(mid - 1)) + mid
    far = abs_pos > mid
    if not np.isfinite(log_pos[far]).all():
        raise FloatingPointError("log buckets undefined")
    return np.where(far, log_pos * sign, relative.astype(np.float32)).astype(np.int64)


def relative_index_tables(config: DebertaConfig) -> tuple[np.ndarray, np.ndarray]:
    """Which row of the relative table a query at i reads for a key at j, by distance d = i - j.

    Index ``d + max_position_embeddings - 1`` holds, for c2p, clamp(bucket(d) + span) (the
    query reads the key-position table) and for p2c clamp(span - bucket(-d)) (transformers'
    p2c index, already transposed to [query, key]); clamped to the table as transformers clamps.
    """
    n, span = config.max_position_embeddings, config.attention_span
    distance = np.arange(-(n - 1), n, dtype=np.int64)
    relative = distance
    if config.position_buckets:
        relative = log_bucket_position(distance, config.position_buckets, config.max_relative_positions)
    c2p = np.clip(relative + span, 0, 2 * span - 1)
    p2c = np.clip(span - relative[::-1], 0, 2 * span - 1)  # relative[::-1][k] is bucket(-d)
    return c2p, p2c


def row_windows(c2p: np.ndarray, p2c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each sequence length S (index S; 0 unused): the first and one-past-last table row that
    distances -(S-1)..S-1 read. The graph multiplies states only by those rows."""
    n = (len(c2p) + 1) // 2
    both = np.stack([c2p, p2c])
    near = np.minimum(both[:, n - 1::-1].min(0), both[:, n - 1:].min(0))  # [s - 1]: distance -(s-1) or s-1
    far = np.maximum(both[:, n - 1::-1].max(0), both[:, n - 1:].max(0))
    lo = np.concatenate([[0], np.minimum.accumulate(near)]).astype(np.int64)
    end = np.concatenate([[1], np.maximum.accumulate(far) + 1]).astype(np.int64)
    return lo, end


@dataclass(frozen=True)
class PositionPlan:
    """The index tables the graph gathers from, relative to the table rows it keeps (``rows``):
    those that some sequence up to max_position_embeddings reaches."""

    c2p: np.ndarray  # [2L - 1] by distance
    p2c: np.ndarray
    lo: np.ndarray  # [L + 1] by sequence length
    end: np.ndarray
    rows: slice


def position_plan(config: DebertaConfig) -> PositionPlan:
    c2p, p2c = relative_index_tables(config)
    lo, end = row_windows(c2p, p2c)
    base, stop = int(lo[-1]), int(end[-1])
    return PositionPlan(c2p - base, p2c - base, np.maximum(lo - base, 0), end - base, slice(base, stop))


def position_tables(config: DebertaConfig, w: Mapping[str, np.ndarray], rows: slice) -> dict[int, dict[str, np.ndarray]]:
    """Per layer and term, the relative embeddings as the term reads them, ``[heads, head_size, rows]``:
    c2p through the key projection, p2c through the query projection (``share_att_key``; else
    ``pos_key_proj`` / ``pos_query_proj``). Computed in float64 and rounded once. The p2c table
    carries the 1/scale; the c2p term gets it from the scaled query."""
    rel = w["encoder.rel_embeddings.weight"].astype(np.float64)[: 2 * config.attention_span]
    if config.norm_rel_ebd:
        mean, var = rel.mean(-1, keepdims=True), rel.var(-1, keepdims=True)
        rel = (rel - mean) / np.sqrt(var + config.layer_norm_eps) * w["encoder.LayerNorm.weight"] + w["encoder.LayerNorm.bias"]
    rel = rel[rows]
    projection = {"c2p": "key_proj", "p2c": "query_proj"} if config.share_att_key else \
        {"c2p": "pos_key_proj", "p2c": "pos_query_proj"}
    scale = {"c2p": 1.0, "p2c": 1 / config.scale}
    tables: dict[int, dict[str, np.ndarray]] = {}
    for n in range(config.num_layers):
        tables[n] = {}
        for term in config.pos_att_type:
            p = f"encoder.layer.{n}.attention.self.{projection[term]}"
            projected = (rel @ w[p + ".weight"].T.astype(np.float64) + w[p + ".bias"]) * scale[term]
            heads = projected.reshape(-1, config.num_heads, config.head_size).transpose(1, 2, 0)
            tables[n][term] = np.ascontiguousarray(heads, dtype=np.float32)
    return tables


# --- the graph -------------------------------------------------------------------------------


def _embeddings(b: GraphBuilder, w: Mapping[str, np.ndarray], config: DebertaConfig, mask: str) -> str:
    """word (+ positions, + token type 0) -> embed_proj -> LayerNorm -> x mask: ``hidden_states[0]``."""
    x = b.op("Gather", [b.const("embeddings.word_embeddings.weight", w["embeddings.word_embeddings.weight"]), "input_ids"])
    if config.position_biased_input:
        table = w["embeddings.position_embeddings.weight"]
        if config.type_vocab_size:
            table = table + w["embeddings.token_type_embeddings.weight"][0]
        length = b.op("Slice", [b.op("Shape", ["input_ids"]), b.const("one_i64", np.array([1], np.int64)),
                                b.const("two_i64", np.array([2], np.int64))])
        positions = b.op("Slice", [b.const("embeddings.position_plus_type0", table),
                                   b.const("zero_i64", np.array([0], np.int64)), length])
        x = b.op("Add", [x, positions])
    elif config.type_vocab_size:
        x = b.op("Add", [x, b.const("embeddings.token_type0", w["embeddings.token_type_embeddings.weight"][0])])
    if config.embedding_width != config.hidden_size:
        x = linear(b, x, w, "embeddings.embed_proj", bias=False)
    x = layer_norm(b, x, w, "embeddings.LayerNorm", config.layer_norm_eps)
    return b.op("Mul", [x, b.op("Unsqueeze", [mask, b.const("last_axis", np.array([-1], np.int64))])],
                out="hidden_state_0")


@dataclass(frozen=True)
class _Positions:
    """Graph tensors every layer shares for this sequence length S."""

    lo: str  # first kept table row S reaches, [1]
    end: str  # one past the last, [1]
    c2p: str  # [S, S] Gather indices into the flattened [batch, heads, S x rows] products
    p2c: str
    row_axis: str
    flat_shape: str


def _positions(b: GraphBuilder, plan: PositionPlan) -> _Positions:
    """The [S, S] distance matrix i - j, looked up in the precomputed tables; then offset so one
    Gather over the flattened products picks each (query, key) pair's row."""
    seq = b.op("Slice", [b.op("Shape", ["input_ids"]), b.const("pos.one", np.array([1], np.int64)),
                         b.const("pos.two", np.array([2], np.int64))])  # [1]: S
    lo = b.op("Gather", [b.const("pos.row_start", plan.lo), seq])
    end = b.op("Gather", [b.const("pos.row_end", plan.end), seq])
    ids = b.op("Range", [b.scalar(0, np.int64), b.op("Squeeze", [seq]), b.scalar(1, np.int64)])
    axis0, axis1 = (b.const(f"pos.axis{a}", np.array([a], np.int64)) for a in (0, 1))
    shifted = b.op("Add", [ids, b.scalar(len(plan.lo) - 2, np.int64)])  # i + L - 1
    distance = b.op("Sub", [b.op("Unsqueeze", [shifted, axis1]), b.op("Unsqueeze", [ids, axis0])])  # [S, S]
    offsets = b.op("Mul", [ids, b.op("Sub", [end, lo])])  # [S]: where each query's / key's products start

    def flat(name: str, table: np.ndarray, axis: str) -> str:
        local = b.op("Sub", [b.op("Gather", [b.const(f"pos.{name}_by_distance", table), distance]), lo])
        return b.op("Add", [local, b.op("Unsqueeze", [offsets, axis])], out=f"pos.{name}_flat")

    # c2p products are [query, rows]: offset by the query (i, rows); p2c's are [key, rows]: by the key (j)
    return _Positions(lo, end, flat("c2p", plan.c2p, axis1), flat("p2c", plan.p2c, axis0),
                      b.const("pos.row_axis", np.array([2], np.int64)), b.const("pos.flat_shape", np.array([0, 0, -1], np.int64)))


def _position_term(b: GraphBuilder, states: str, table: str, pos: _Positions, index: str) -> str:
    """[B, N, S, D] x the rows S reaches [N, D, rows] -> [B, N, S, rows] -> gathered [B, N, S, S]."""
    rows = b.op("Slice", [table, pos.lo, pos.end, pos.row_axis])
    return b.op("Gather", [b.op("Reshape", [b.op("MatMul", [states, rows]), pos.flat_shape]), index], axis=2)


def _attention(b: GraphBuilder, x: str, w: Mapping[str, np.ndarray], p: str, cfg: DebertaConfig, mask_bias: str,
               tables: Mapping[str, np.ndarray], pos: _Positions | None) -> str:
    heads, size = cfg.num_heads, cfg.head_size
    proj = [f"{p}attention.self.{name}_proj" for name in ("query", "key", "value")]
    scale = np.array([1 / cfg.scale, 1.0, 1.0], np.float64)  # the query carries 1/scale into both its terms
    weight = np.concatenate([w[q + ".weight"].T * s for q, s in zip(proj, scale)], axis=1).astype(np.float32)
    bias = np.concatenate([w[q + ".bias"] * s for q, s in zip(proj, scale)]).astype(np.float32)
    qkv = b.op("Add", [b.op("MatMul", [x, b.const(f"{p}attention.qkv.weight_t", weight)]),
                       b.const(f"{p}attention.qkv.bias", bias)])
    split = b.op("Reshape", [qkv, b.const(f"{p}qkv_shape", np.array([0, 0, 3 * heads, size], np.int64))])
    by_head = b.op("Transpose", [split], perm=[0, 2, 1, 3])  # [B, 3N, S, D]
    q, k, v = (f"{p}{n}" for n in ("q", "k", "v"))
    b.nodes.append(b.helper.make_node("Split", [by_head, b.const(f"{p}qkv_split", np.array([heads] * 3, np.int64))],
                                      [q, k, v], name=f"{p}Split", axis=1))
    scores = b.op("MatMul", [q, b.op("Transpose", [k], perm=[0, 1, 3, 2])])
    if pos is not None and "c2p" in tables:  # query i . key-position table row of (i - j)
        table = b.const(f"{p}attention.c2p_table", tables["c2p"])
        scores = b.op("Add", [scores, _position_term(b, q, table, pos, pos.c2p)])
    if pos is not None and "p2c" in tables:  # key j . query-position table row of (j - i), transposed
        table = b.const(f"{p}attention.p2c_table", tables["p2c"])
        scores = b.op("Add", [scores, _position_term(b, k, table, pos, pos.p2c)])
    probs = b.op("Softmax", [b.op("Add", [scores, mask_bias])], axis=-1)
    context = b.op("Transpose", [b.op("MatMul", [probs, v])], perm=[0, 2, 1, 3])
    merged = b.op("Reshape", [context, b.const(f"{p}merge_shape", np.array([0, 0, cfg.hidden_size], np.int64))])
    return linear(b, merged, w, f"{p}attention.output.dense")


def _feed_forward(b: GraphBuilder, x: str, w: Mapping[str, np.ndarray], p: str, cfg: DebertaConfig, graph: str) -> str:
    if graph == "fused" and cfg.hidden_act in EXACT_GELU:  # BiasGelu is exact erf GELU
        inter = linear(b, x, w, f"{p}intermediate.dense", bias=False)
        bias = b.const(f"{p}intermediate.dense.bias", w[f"{p}intermediate.dense.bias"])
        inter = b.op("BiasGelu", [inter, bias], domain="com.microsoft")
    else:
        inter = activation(b, linear(b, x, w, f"{p}intermediate.dense"), cfg.hidden_act)
    return linear(b, inter, w, f"{p}output.dense")


def _layer(b: GraphBuilder, x: str, w: Mapping[str, np.ndarray], n: int, cfg: DebertaConfig, graph: str, mask_bias: str,
           tables: Mapping[str, np.ndarray], pos: _Positions | None, out: str) -> str:
    p, eps = f"encoder.layer.{n}.", cfg.layer_norm_eps
    attn = _attention(b, x, w, p, cfg, mask_bias, tables, pos)
    h1 = layer_norm(b, b.op("Add", [attn, x]), w, f"{p}attention.output.LayerNorm", eps)
    ffn = _feed_forward(b, h1, w, p, cfg, graph)
    return layer_norm(b, b.op("Add", [ffn, h1]), w, f"{p}output.LayerNorm", eps, out=out)


def build_model(config: DebertaConfig, weights: Mapping[str, np.ndarray], *, graph: GraphVariant = DEFAULT_GRAPH,
                metadata: Mapping[str, Any] | None = None):
    """The ONNX ``ModelProto`` for ``config`` and DebertaV2Model-named ``weights``."""
    from onnx import TensorProto

    b, w, _ = start_graph(FAMILY, config, weights, graph)

    mask_f = b.op("Cast", ["attention_mask"], to=TensorProto.FLOAT)
    x = _embeddings(b, w, config, mask_f)
    # additive key mask [B, 1, 1, S]: 0 for real tokens, large negative for padding
    mask_bias = b.op("Unsqueeze", [b.op("Mul", [b.op("Sub", [b.scalar(1.0), mask_f]), b.scalar(MASK_VALUE)]),
                                   b.const("mask_axes", np.array([1, 2], np.int64))])
    plan = position_plan(config) if config.position_terms else None
    tables = position_tables(config, w, plan.rows) if plan else {}
    pos = _positions(b, plan) if plan else None
    for n in range(config.num_layers):
        out = "last_hidden_state" if n == config.num_layers - 1 else f"hidden_state_{n + 1}"
        x = _layer(b, x, w, n, config, graph, mask_bias, tables.get(n, {}), pos, out)
    b.op("Identity", [x], out=f"hidden_state_{config.num_layers}")

    return finish_model(b, "deberta_v2", hidden_size=config.hidden_size, num_layers=config.num_layers, graph=graph,
                        with_pooler=False, ms_domain=graph == "fused", info=asdict(config), metadata=metadata)


# --- weights ---------------------------------------------------------------------------------

_KEEP_PREFIXES = ("embeddings.", "encoder.")


def rename_weight(stored: str) -> str | None:
    """DebertaV2Model's name for a stored weight (``deberta.`` stripped); ``None`` for heads
    (``lm_predictions``, ``cls``, ``mask_predictions``, ``pooler``, ``classifier``) and buffers."""
    key = stored.removeprefix("deberta.")
    if key.endswith("position_ids") or not key.startswith(_KEEP_PREFIXES):
        return None
    return key


def _relative_rows_field(config: DebertaConfig) -> str:
    return "2*position_buckets" if config.position_buckets else "2*max_relative_positions"


def _sizes(config: DebertaConfig) -> dict[str, int]:
    return {"vocab_size": config.vocab_size, "hidden_size": config.hidden_size,
            "intermediate_size": config.intermediate_size, "embedding_size": config.embedding_width,
            "max_position_embeddings": config.max_position_embeddings, "type_vocab_size": config.type_vocab_size,
            _relative_rows_field(config): 2 * config.attention_span}


def _layout(config: DebertaConfig, with_pooler: bool = False) -> dict[str, tuple[str, ...]]:
    """DebertaV2Model's weight names the graph reads, each dimension named by its config field ([out, in])."""
    h, i, e = "hidden_size", "intermediate_size", "embedding_size"
    layout: dict[str, tuple[str, ...]] = {"embeddings.word_embeddings.weight": ("vocab_size", e)}
    if config.position_biased_input:
        layout["embeddings.position_embeddings.weight"] = ("max_position_embeddings", e)
    if config.type_vocab_size:
        layout["embeddings.token_type_embeddings.weight"] = ("type_vocab_size", e)
    if config.embedding_width != config.hidden_size:
        layout["embeddings.embed_proj.weight"] = (h, e)
    layout["embeddings.LayerNorm.weight"] = layout["embeddings.LayerNorm.bias"] = (h,)
    if config.position_terms:
        layout["encoder.rel_embeddings.weight"] = (_relative_rows_field(config), h)
        if config.norm_rel_ebd:
            layout["encoder.LayerNorm.weight"] = layout["encoder.LayerNorm.bias"] = (h,)
    own = {"c2p": "pos_key_proj", "p2c": "pos_query_proj"}
    for n in range(config.num_layers):
        p = f"encoder.layer.{n}."
        parts = ["query_proj", "key_proj", "value_proj"]
        if config.position_terms and not config.share_att_key:
            parts += [own[t] for t in config.pos_att_type]
        for part in parts:
            layout[f"{p}attention.self.{part}.weight"] = (h, h)
            layout[f"{p}attention.self.{part}.bias"] = (h,)
        layout.update({
            f"{p}attention.output.dense.weight": (h, h), f"{p}attention.output.dense.bias": (h,),
            f"{p}attention.output.LayerNorm.weight": (h,), f"{p}attention.output.LayerNorm.bias": (h,),
            **feed_forward_layout(p, h, i),
        })
    return layout


FAMILY = Family(
    name="DeBERTa-v2",
    model_types=(MODEL_TYPE,),
    config_class=DebertaConfig,
    rename=rename_weight,
    layout=_layout,
    sizes=_sizes,
    build_model=build_model,
    pooler_weight="pooler.dense.weight",  # dropped by rename_weight: DebertaV2Model has no pooler
    sentencepiece=("deberta-v2",),
)
