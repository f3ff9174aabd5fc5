"""ModernBERT checkpoints (``model_type`` 'modernbert', e.g. answerdotai/ModernBERT-base) as ONNX.

The graph computes what transformers' ``ModernBertModel`` computes with eager attention
(transformers 5: padded batches, no unpadding), step for step:

- embeddings: ``tok_embeddings`` then LayerNorm (bias only with ``norm_bias``); no position table;
- pre-norm layers: ``x + Wo(attention(attn_norm(x)))``, then ``x + mlp(mlp_norm(x))``; layer 0's
  ``attn_norm`` is the identity (it has no weights: the embedding LayerNorm came just before);
- attention: one packed ``Wqkv`` projection, rotary position embeddings on queries and keys
  (position ``i`` for token ``i`` of a right-padded row), softmax(q k^T / sqrt(d) + mask) v, ``Wo``;
  biases only with ``attention_bias``;
- every layer is global (``full_attention``) or local (``sliding_attention``), by ``layer_types``
  or, in older configs, ``global_attn_every_n_layers`` (layer ``i`` global when ``i % n == 0``).
  Local layers see keys with ``|i - j| <= local_attention // 2`` (64 for ModernBERT-base: transformers'
  ``create_bidirectional_sliding_window_mask``); each type has its own rotary theta
  (``global_rope_theta`` / ``local_rope_theta``, or ``rope_parameters``; 160,000 / 10,000);
- GeGLU MLP: ``Wi`` to ``2 * intermediate_size``, halves ``(input, gate)``, ``Wo(act(input) * gate)``;
- ``final_norm`` after the last layer: ``last_hidden_state``. transformers' ``hidden_states`` are
  the embedding output, each layer's output, and as the LAST entry ``last_hidden_state`` itself
  (its output capture replaces the last layer's raw output with the normed one, unless the config
  sets ``tie_last_hidden_states`` false); ``hidden_state_L`` follows the same rule.

The rotary cos/sin tables (``max_position_embeddings`` rows, float32) are computed here in numpy as
transformers computes them: float32 ``inv_freq``, float32 ``position * inv_freq``, then cos/sin.
transformers' float32 ``pow`` is not correctly rounded; we round the exact power, which agrees for
ModernBERT-base's head size 64 with both thetas and differs in the last bit for a few of other
(head size, theta) pairs (measured: 24 of 2,784 frequencies). sin carries rotate_half's sign, so
the rotation is ``x * cos + swap_halves(x) * signed_sin`` with no negation.

Local attention is banded, never [S, S]: queries in blocks of ``c = min(window, S)`` rows each see
the keys of their own block and of the blocks either side (3c keys), the band and the padding as an
additive mask: O(S * 3c) per head. Global layers attend over all keys one block of at most
:data:`QUERY_BLOCK` queries at a time (a Scan): O(512 * S) per head, not O(S^2). Both equal masked
full attention. Measured (ModernBERT-base shape, one 3,000-piece text, onnxruntime 1.32, one
thread): the run adds 454 MiB to the loaded session, against 1,170 MiB when global layers held
[S, S] scores; 36 s, against 50 s when every layer attended in full.

Both graph variants are this same standard-op graph: com.microsoft ``Attention`` /
``MultiHeadAttention`` take neither rotary positions nor a band without an [S, S] bias, and
onnxruntime's own fusions (GELU, LayerNorm, MatMul + Add) apply to the standard ops anyway.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..choices import GraphVariant
from ..errors import ConversionError
from .encoder import EncoderSizes
from .family import Family, start_graph
from .fields import (
    activation_field,
    check_heads,
    eps_field,
    expect_mapping,
    flag_field,
    size_field,
)
from .graph import (
    DEFAULT_GRAPH,
    MASK_VALUE,
    GraphBuilder,
    activation,
    finish_model,
    key_mask_bias,
    linear,
    sequence_length,
    shown,
)

GLOBAL, LOCAL = "full_attention", "sliding_attention"
_SIZE_FIELDS = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                "max_position_embeddings")
# ModernBERT-base's config; transformers' ModernBertConfig has the same defaults for a missing field
_MODERNBERT_BASE = {"vocab_size": 50368, "hidden_size": 768, "num_hidden_layers": 22, "num_attention_heads": 12,
                    "intermediate_size": 1152, "max_position_embeddings": 8192, "local_attention": 128,
                    "global_attn_every_n_layers": 3}
_DEFAULT_THETA = {GLOBAL: 160_000.0, LOCAL: 10_000.0}
_OLD_THETA_FIELDS = {GLOBAL: "global_rope_theta", LOCAL: "local_rope_theta"}
_KEEP_PREFIXES = ("embeddings.", "layers.", "final_norm.")
# the layout's names for the packed dimensions (Wqkv's rows, Wi's rows)
QKV_ROWS, WI_ROWS = "3 * hidden_size", "2 * intermediate_size"
# global layers attend in blocks of at most this many queries: scores [B, heads, 512, S], not [B, heads, S, S]
QUERY_BLOCK = 512


@dataclass(frozen=True)
class ModernBertConfig(EncoderSizes):
    """The fields of a ModernBERT ``config.json`` that the graph depends on.

    ``layer_types``: ``full_attention`` or ``sliding_attention`` per layer. ``local_attention``: the
    whole window; a local layer's token sees ``local_attention // 2`` tokens either side.
    ``rope_theta``: (global, local). ``tie_last_hidden_states``: whether ``hidden_states[-1]`` is
    ``last_hidden_state`` (after ``final_norm``, transformers' default) or the last layer's raw output.
    """

    hidden_act: str = "gelu"
    norm_eps: float = 1e-5
    norm_bias: bool = False
    attention_bias: bool = False
    mlp_bias: bool = False
    max_position_embeddings: int = 8192
    local_attention: int = 128
    layer_types: tuple[str, ...] = ()
    rope_theta: tuple[float, float] = (_DEFAULT_THETA[GLOBAL], _DEFAULT_THETA[LOCAL])
    tie_last_hidden_states: bool = True

    @property
    def sliding_window(self) -> int:
        """How far a local layer's token sees to either side (transformers' ``config.sliding_window``)."""
        return self.local_attention // 2

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "config.json") -> ModernBertConfig:
        """Validate a transformers ModernBERT config; errors name the field, its allowed values and the fix."""
        expect_mapping(data, where, "ModernBERT")
        sizes = {field: size_field(data, field, where, model="ModernBERT", base=_MODERNBERT_BASE,
                                   defaults=_MODERNBERT_BASE) for field in _SIZE_FIELDS}
        hidden, heads = sizes["hidden_size"], sizes["num_attention_heads"]
        check_heads(hidden, heads, where, model="ModernBERT")
        _check_head_size(data, hidden, heads, where)
        return cls(
            vocab_size=sizes["vocab_size"],
            hidden_size=hidden,
            num_layers=sizes["num_hidden_layers"],
            num_heads=heads,
            intermediate_size=sizes["intermediate_size"],
            hidden_act=activation_field(data, where, field="hidden_activation"),
            norm_eps=eps_field(data, where, field="norm_eps", default=1e-5, model="ModernBERT"),
            norm_bias=flag_field(data, "norm_bias", where, default=False),
            attention_bias=flag_field(data, "attention_bias", where, default=False),
            mlp_bias=flag_field(data, "mlp_bias", where, default=False),
            max_position_embeddings=sizes["max_position_embeddings"],
            local_attention=_local_attention(data, where),
            layer_types=_layer_types(data, sizes["num_hidden_layers"], where),
            rope_theta=_rope_theta(data, where),
            tie_last_hidden_states=flag_field(data, "tie_last_hidden_states", where, default=True),
        )


def _check_head_size(data: Mapping[str, Any], hidden: int, heads: int, where: str) -> None:
    """Rotary embeddings rotate half of each head: an even head size, and no ``head_dim`` that
    would give the rotary tables another width than the heads (transformers would fail or differ)."""
    size = hidden // heads
    if size % 2:
        raise ConversionError(
            f"{where}: hidden_size {hidden} / num_attention_heads {heads} gives heads of {size}, an odd size; "
            "rotary position embeddings need an even head size (ModernBERT-base: 768 / 12 = 64). "
            f"Fix num_attention_heads in {where} or download the checkpoint again"
        )
    head_dim = data.get("head_dim")
    if head_dim is not None and head_dim != size:
        raise ConversionError(
            f"{where}: head_dim is {shown(head_dim)} but hidden_size / num_attention_heads is {size}; ModernBERT's "
            f"attention uses {size}, so its rotary tables would not fit. Remove head_dim from {where} or set it to {size}"
        )


def _local_attention(data: Mapping[str, Any], where: str) -> int:
    value = size_field(data, "local_attention", where, model="ModernBERT", base=_MODERNBERT_BASE,
                       defaults=_MODERNBERT_BASE, kind="max_position_embeddings")
    if value < 2:
        raise ConversionError(
            f"{where}: local_attention is {value}, a window of no neighbours (each side sees local_attention // 2); "
            f"it must be at least 2 (ModernBERT-base has 128). Fix it in {where}"
        )
    return value


def _layer_types(data: Mapping[str, Any], layers: int, where: str) -> tuple[str, ...]:
    """``layer_types`` if given, else every ``global_attn_every_n_layers``-th layer global (from 0),
    as ``ModernBertConfig.__post_init__`` does."""
    given = data.get("layer_types")
    if given is None:
        every = size_field(data, "global_attn_every_n_layers", where, model="ModernBERT", base=_MODERNBERT_BASE,
                           defaults=_MODERNBERT_BASE, kind="num_hidden_layers")
        return tuple(LOCAL if i % every else GLOBAL for i in range(layers))
    if (not isinstance(given, list) or len(given) != layers
            or not all(isinstance(t, str) and t in (GLOBAL, LOCAL) for t in given)):
        raise ConversionError(
            f"{where}: layer_types is {shown(given)}, but it must list {layers} entries (num_hidden_layers), each "
            f"{GLOBAL!r} or {LOCAL!r}. Fix it in {where}, or remove it to use global_attn_every_n_layers"
        )
    return tuple(given)


def _theta(value: Any, field: str, where: str, default: float) -> float:
    if type(value) not in (int, float) or not 0 < value < math.inf:  # NaN fails too
        raise ConversionError(
            f"{where}: {field} is {shown(value)}, but it must be a positive number (ModernBERT-base: {default:g}); "
            f"fix it in {where} or download the checkpoint again"
        )
    return float(value)


def _rope_theta(data: Mapping[str, Any], where: str) -> tuple[float, float]:
    """(global, local) theta, read as ``ModernBertConfig.convert_rope_params_to_dict`` does:
    ``rope_parameters[type]['rope_theta']``, else the old ``global_rope_theta`` / ``local_rope_theta``,
    else 160,000 / 10,000. Only the default rope type is computed here; ``rope_scaling`` is refused."""
    scaling = data.get("rope_scaling")
    if scaling is not None:
        raise ConversionError(
            f"{where}: rope_scaling is {shown(scaling)}; nlu_lite converts ModernBERT with plain rotary embeddings "
            f"only (rope_scaling null, as in ModernBERT-base). Remove it from {where} only if the model was trained "
            "without it"
        )
    params = data.get("rope_parameters")
    if params is not None and not isinstance(params, Mapping):
        raise ConversionError(f"{where}: rope_parameters is {shown(params)}, but it must be an object with "
                              f"{GLOBAL!r} and {LOCAL!r} entries; fix it in {where}")
    thetas = []
    for kind in (GLOBAL, LOCAL):
        old = _OLD_THETA_FIELDS[kind]
        entry = (params or {}).get(kind) or {}
        if not isinstance(entry, Mapping):
            raise ConversionError(f"{where}: rope_parameters[{kind!r}] is {shown(entry)}, not an object; fix it in {where}")
        rope_type = entry.get("rope_type", entry.get("type", "default"))
        if rope_type != "default":
            raise ConversionError(
                f"{where}: rope_parameters[{kind!r}] has rope_type {shown(rope_type)}; nlu_lite converts only "
                f"'default' rotary embeddings (ModernBERT-base's). Fix rope_parameters in {where}"
            )
        if "rope_theta" in entry:
            thetas.append(_theta(entry["rope_theta"], f"rope_parameters[{kind!r}]['rope_theta']", where,
                                 _DEFAULT_THETA[kind]))
        else:
            thetas.append(_theta(data.get(old, _DEFAULT_THETA[kind]), old, where, _DEFAULT_THETA[kind]))
    return thetas[0], thetas[1]


def _sizes(config: ModernBertConfig) -> dict[str, int]:
    return {"vocab_size": config.vocab_size, "hidden_size": config.hidden_size,
            "intermediate_size": config.intermediate_size, QKV_ROWS: 3 * config.hidden_size,
            WI_ROWS: 2 * config.intermediate_size}


def _layout(config: ModernBertConfig, with_pooler: bool) -> dict[str, tuple[str, ...]]:
    """ModernBertModel's weight names, each dimension named by the config field that sets it ([out, in]).

    In each layer the weights with a plain field come before the packed ones (``Wo`` before ``Wqkv``
    and ``Wi``), so that a size mismatch is reported by the field to fix. No pooler: ``with_pooler``
    is always false (ModernBertModel has none)."""
    h, i = "hidden_size", "intermediate_size"

    def norm(name: str, bias: bool) -> dict[str, tuple[str, ...]]:
        return {f"{name}.weight": (h,), **({f"{name}.bias": (h,)} if bias else {})}

    def dense(name: str, rows: str, cols: str, bias: bool) -> dict[str, tuple[str, ...]]:
        return {f"{name}.weight": (rows, cols), **({f"{name}.bias": (rows,)} if bias else {})}

    layout = {"embeddings.tok_embeddings.weight": ("vocab_size", h), **norm("embeddings.norm", config.norm_bias)}
    for n in range(config.num_layers):
        p = f"layers.{n}."
        if n:
            layout.update(norm(p + "attn_norm", config.norm_bias))
        layout.update({
            **dense(p + "attn.Wo", h, h, config.attention_bias),
            **dense(p + "attn.Wqkv", QKV_ROWS, h, config.attention_bias),
            **norm(p + "mlp_norm", config.norm_bias),
            **dense(p + "mlp.Wo", h, i, config.mlp_bias),
            **dense(p + "mlp.Wi", WI_ROWS, h, config.mlp_bias),
        })
    layout.update(norm("final_norm", config.norm_bias))
    return layout


def rename_weight(stored: str) -> str | None:
    """ModernBertModel's name for a stored weight: ``model.`` (ModernBertForMaskedLM & co.) stripped;
    ``None`` for what ModernBertModel does not use (``head.*``, ``decoder.*``, ``classifier.*``)."""
    key = stored.removeprefix("model.")
    return key if key.startswith(_KEEP_PREFIXES) else None


# --- rotary position embeddings ----------------------------------------------------------


def inverse_frequencies(theta: float, head_size: int) -> np.ndarray:
    """transformers' ``1 / theta ** (arange(0, d, 2) / d)`` in float32: the exponent in float32, the power
    rounded from its exact value (torch's float32 pow may differ in the last bit), the division in float32."""
    exponents = np.arange(0, head_size, 2, dtype=np.float32) / np.float32(head_size)
    powers = np.power(np.float64(np.float32(theta)), exponents.astype(np.float64)).astype(np.float32)
    return np.float32(1.0) / powers


def rotary_tables(theta: float, head_size: int, positions: int) -> tuple[np.ndarray, np.ndarray]:
    """(cos, signed sin) [positions, head_size] float32: ``freqs = position * inv_freq`` in float32,
    doubled as ``cat(freqs, freqs)``; sin's first half negated, for ``rotate_half``'s ``cat(-x2, x1)``."""
    angles = np.arange(positions, dtype=np.float32)[:, None] * inverse_frequencies(theta, head_size)[None, :]
    cos = np.cos(angles.astype(np.float64)).astype(np.float32)
    sin = np.sin(angles.astype(np.float64)).astype(np.float32)
    return np.concatenate([cos, cos], axis=1), np.concatenate([-sin, sin], axis=1)


# --- graph pieces --------------------------------------------------------------------------


def _i64(b: GraphBuilder, *values: int) -> str:
    return b.const("i64_" + "_".join(map(str, values)), np.array(values, np.int64))


def _last_axis(b: GraphBuilder, x: str, start: int, stop: int) -> str:
    """``x[..., start:stop]``."""
    return b.op("Slice", [x, _i64(b, start), _i64(b, stop), _i64(b, -1)])


def _norm(b: GraphBuilder, x: str, w: Mapping[str, np.ndarray], name: str, config: ModernBertConfig,
          out: str | None = None) -> str:
    """nn.LayerNorm(bias=norm_bias): LayerNormalization without its optional bias input when there is none."""
    inputs = [x, b.const(f"{name}.weight", w[f"{name}.weight"])]
    if config.norm_bias:
        inputs.append(b.const(f"{name}.bias", w[f"{name}.bias"]))
    return b.op("LayerNormalization", inputs, out=out, axis=-1, epsilon=config.norm_eps)


def _rotary(b: GraphBuilder, config: ModernBertConfig, kind: str, theta: float, seq_len: str) -> tuple[str, str]:
    """The (cos, signed sin) tables' first S rows as [S, 1, d], to broadcast over [B, S, heads, d]."""
    tables = rotary_tables(theta, config.head_size, config.max_position_embeddings)
    return tuple(b.op("Unsqueeze", [b.op("Slice", [b.const(f"rotary.{kind}.{name}", table), _i64(b, 0), seq_len]),
                                    _i64(b, 1)])
                 for name, table in zip(("cos", "signed_sin"), tables))


def _rotate(b: GraphBuilder, x: str, rotary: tuple[str, str], head_size: int) -> str:
    """x * cos + rotate_half(x) * sin, as x * cos + cat(x2, x1) * cat(-sin, sin): the same products."""
    cos, signed_sin = rotary
    half = head_size // 2
    swapped = b.op("Concat", [_last_axis(b, x, half, head_size), _last_axis(b, x, 0, half)], axis=-1)
    return b.op("Add", [b.op("Mul", [x, cos]), b.op("Mul", [swapped, signed_sin])])


@dataclass(frozen=True)
class _Band:
    """What every local layer shares. Queries go in blocks of ``c = min(window, S)`` rows (the
    sequence padded to ``nb * c``); each block sees the keys of its own block and of the blocks
    either side (3c keys, the sequence padded by ``c`` more either side). Tensor names: ``length``,
    S; the Pad ``pads`` of queries and of keys / values ([B, S, heads, d]); ``block_shape``
    [0, -1, c, heads, d]; the three key blocks' (start, end) along the padded sequence; ``bias``
    [B, 1, nb, c, 3c], 0 where the key is real and within the window, ``MASK_VALUE`` elsewhere."""

    length: str
    query_pads: str
    key_pads: str
    block_shape: str
    key_blocks: tuple[tuple[str, str], ...]
    bias: str


def _band(b: GraphBuilder, config: ModernBertConfig, seq_len: str) -> _Band:
    from onnx import TensorProto

    c = b.op("Min", [seq_len, _i64(b, config.sliding_window)])
    blocks = b.op("Div", [b.op("Sub", [b.op("Add", [seq_len, c]), _i64(b, 1)]), c])  # ceil(S / c)
    padded = b.op("Mul", [blocks, c])
    tail = b.op("Sub", [padded, seq_len])
    tail_c = b.op("Add", [tail, c])
    starts = [_i64(b, 0), c, b.op("Add", [c, c])]
    key_blocks = tuple((start, b.op("Add", [start, padded])) for start in starts)
    block_shape = b.op("Concat", [_i64(b, 0, -1), c, _i64(b, config.num_heads, config.head_size)], axis=0)

    # the key mask of the padded sequence, in the same blocks: [B, 1, nb, 1, 3c]
    real = b.op("Cast", ["attention_mask"], to=TensorProto.FLOAT)
    keys = b.op("Mul", [b.op("Sub", [b.scalar(1.0), real]), b.scalar(MASK_VALUE)])
    keys = b.op("Pad", [keys, b.op("Concat", [_i64(b, 0), c, _i64(b, 0), tail_c], axis=0), b.scalar(MASK_VALUE)])
    rows_of = b.op("Concat", [_i64(b, 0, -1), c], axis=0)
    key_rows = b.op("Concat", [b.op("Reshape", [b.op("Slice", [keys, start, end, _i64(b, 1)]), rows_of])
                               for start, end in key_blocks], axis=-1)
    key_rows = b.op("Unsqueeze", [key_rows, _i64(b, 1, 3)])

    # the window within a block: query i (0..c-1) and key slot j (0..3c-1) are j - c - i apart
    c0 = b.op("Squeeze", [c, _i64(b, 0)])
    queries = b.op("Unsqueeze", [b.op("Range", [b.scalar(0, np.int64), c0, b.scalar(1, np.int64)]), _i64(b, 1)])
    slots = b.op("Range", [b.scalar(0, np.int64), b.op("Mul", [c0, b.scalar(3, np.int64)]), b.scalar(1, np.int64)])
    distance = b.op("Abs", [b.op("Sub", [b.op("Sub", [slots, c]), queries])])
    outside = b.op("Cast", [b.op("Greater", [distance, _i64(b, config.sliding_window)])], to=TensorProto.FLOAT)
    band = b.op("Mul", [outside, b.scalar(MASK_VALUE)])
    bias = b.op("Add", [band, key_rows], out="local_attention_bias")
    return _Band(length=seq_len, query_pads=b.op("Concat", [_i64(b, 0, 0, 0, 0, 0), tail, _i64(b, 0, 0)], axis=0),
                 key_pads=b.op("Concat", [_i64(b, 0), c, _i64(b, 0, 0, 0), tail_c, _i64(b, 0, 0)], axis=0),
                 block_shape=block_shape, key_blocks=key_blocks, bias=bias)


def _local_context(b: GraphBuilder, q: str, k: str, v: str, band: _Band, config: ModernBertConfig) -> str:
    """Banded attention of [B, S, heads, d] queries, keys and values -> [B, S, hidden]."""
    query = b.op("Transpose", [b.op("Reshape", [b.op("Pad", [q, band.query_pads]), band.block_shape])],
                 perm=[0, 3, 1, 2, 4])  # [B, N, nb, c, d]

    def blocks(x: str, perm: list[int]) -> str:  # [B, nb, 3c, N, d], transposed by perm
        padded = b.op("Pad", [x, band.key_pads])
        parts = [b.op("Reshape", [b.op("Slice", [padded, start, end, _i64(b, 1)]), band.block_shape])
                 for start, end in band.key_blocks]
        return b.op("Transpose", [b.op("Concat", parts, axis=2)], perm=perm)

    scores = b.op("Mul", [b.op("MatMul", [query, blocks(k, [0, 3, 1, 4, 2])]), b.scalar(config.head_size ** -0.5)])
    probs = b.op("Softmax", [b.op("Add", [scores, band.bias])], axis=-1)
    context = b.op("Transpose", [b.op("MatMul", [probs, blocks(v, [0, 3, 1, 2, 4])])], perm=[0, 2, 3, 1, 4])
    merged = b.op("Reshape", [context, _i64(b, 0, -1, config.hidden_size)])  # [B, nb * c, hidden]
    return b.op("Slice", [merged, _i64(b, 0), band.length, _i64(b, 1)])  # padded query rows dropped


@dataclass(frozen=True)
class _QueryBlocks:
    """What every global layer shares: queries in ``count = ceil(S / QUERY_BLOCK)`` blocks of
    ``ceil(S / count)`` rows (the sequence padded by fewer than ``count`` rows), each block attending
    to all keys. Tensor names: ``length``, S; the queries' Pad ``pads`` ([B, S, heads, d]);
    ``block_shape`` [0, -1, rows, heads, d]; ``bias``, the [B, 1, 1, S] key mask."""

    length: str
    query_pads: str
    block_shape: str
    bias: str


def _query_blocks(b: GraphBuilder, config: ModernBertConfig, seq_len: str) -> _QueryBlocks:
    count = b.op("Div", [b.op("Add", [seq_len, _i64(b, QUERY_BLOCK - 1)]), _i64(b, QUERY_BLOCK)])
    rows = b.op("Div", [b.op("Sub", [b.op("Add", [seq_len, count]), _i64(b, 1)]), count])
    tail = b.op("Sub", [b.op("Mul", [count, rows]), seq_len])
    return _QueryBlocks(
        length=seq_len,
        query_pads=b.op("Concat", [_i64(b, 0, 0, 0, 0, 0), tail, _i64(b, 0, 0)], axis=0),
        block_shape=b.op("Concat", [_i64(b, 0, -1), rows, _i64(b, config.num_heads, config.head_size)], axis=0),
        bias=key_mask_bias(b),
    )


def _block_attention(b: GraphBuilder, p: str, key: str, value: str, bias: str, scale: str) -> Any:
    """Scan's body: one block of queries [B, heads, rows, d] -> its context, over all keys [B, heads, d, S]
    and values [B, heads, S, d] of the enclosing graph. Its tensors' names start with ``p`` (unique)."""
    from onnx import TensorProto

    h = b.helper
    names = {step: f"{p}block.{step}" for step in ("query", "qk", "scores", "biased", "probs", "context")}
    nodes = [
        h.make_node("MatMul", [names["query"], key], [names["qk"]]),
        h.make_node("Mul", [names["qk"], scale], [names["scores"]]),
        h.make_node("Add", [names["scores"], bias], [names["biased"]]),
        h.make_node("Softmax", [names["biased"]], [names["probs"]], axis=-1),
        h.make_node("MatMul", [names["probs"], value], [names["context"]]),
    ]
    dims = ["batch", "heads", "rows", "head_size"]
    return h.make_graph(nodes, f"{p}block_attention",
                        [h.make_tensor_value_info(names["query"], TensorProto.FLOAT, dims)],
                        [h.make_tensor_value_info(names["context"], TensorProto.FLOAT, dims)])


def _global_context(b: GraphBuilder, p: str, q: str, k: str, v: str, blocks: _QueryBlocks,
                    config: ModernBertConfig) -> str:
    """Full attention of [B, S, heads, d] queries, keys and values -> [B, S, hidden], one block of
    queries at a time (a Scan): scores take [B, heads, rows, S], never [B, heads, S, S]."""
    key = b.op("Transpose", [k], perm=[0, 2, 3, 1])  # [B, N, d, S]
    value = b.op("Transpose", [v], perm=[0, 2, 1, 3])  # [B, N, S, d]
    queries = b.op("Reshape", [b.op("Pad", [q, blocks.query_pads]), blocks.block_shape])  # [B, count, rows, N, d]
    body = _block_attention(b, p, key, value, blocks.bias, b.scalar(config.head_size ** -0.5))
    context = b.op("Scan", [b.op("Transpose", [queries], perm=[1, 0, 3, 2, 4])], body=body, num_scan_inputs=1)
    merged = b.op("Reshape", [b.op("Transpose", [context], perm=[1, 0, 3, 2, 4]), _i64(b, 0, -1, config.hidden_size)])
    return b.op("Slice", [merged, _i64(b, 0), blocks.length, _i64(b, 1)])  # padded query rows dropped


@dataclass(frozen=True)
class _Context:
    """What the layers share: the rotary tables and the attention bias of each layer type."""

    rotary: Mapping[str, tuple[str, str]]
    query_blocks: _QueryBlocks | None
    band: _Band | None


def _attention(b: GraphBuilder, x: str, w: Mapping[str, np.ndarray], p: str, config: ModernBertConfig,
               kind: str, shared: _Context) -> str:
    """ModernBertAttention: packed Wqkv, rotary q and k, global or banded attention, Wo."""
    h, shape = config.hidden_size, _i64(b, 0, 0, config.num_heads, config.head_size)
    qkv = linear(b, x, w, p + "attn.Wqkv", bias=config.attention_bias)
    q, k, v = (b.op("Reshape", [_last_axis(b, qkv, n * h, (n + 1) * h), shape]) for n in range(3))
    q, k = (_rotate(b, t, shared.rotary[kind], config.head_size) for t in (q, k))
    if kind == GLOBAL:
        context = _global_context(b, p, q, k, v, shared.query_blocks, config)
    else:
        context = _local_context(b, q, k, v, shared.band, config)
    return linear(b, context, w, p + "attn.Wo", bias=config.attention_bias)


def _mlp(b: GraphBuilder, x: str, w: Mapping[str, np.ndarray], p: str, config: ModernBertConfig) -> str:
    """ModernBertMLP (GeGLU): Wi, then act(first half) * second half, then Wo."""
    inner = linear(b, x, w, p + "mlp.Wi", bias=config.mlp_bias)
    size = config.intermediate_size
    gated = b.op("Mul", [activation(b, _last_axis(b, inner, 0, size), config.hidden_act),
                         _last_axis(b, inner, size, 2 * size)])
    return linear(b, gated, w, p + "mlp.Wo", bias=config.mlp_bias)


def _layer(b: GraphBuilder, x: str, w: Mapping[str, np.ndarray], n: int, config: ModernBertConfig,
           shared: _Context, out: str) -> str:
    """ModernBertEncoderLayer: pre-norm attention and MLP, each added to the residual stream."""
    p = f"layers.{n}."
    normed = _norm(b, x, w, p + "attn_norm", config) if n else x  # layer 0's attn_norm is nn.Identity
    x = b.op("Add", [x, _attention(b, normed, w, p, config, config.layer_types[n], shared)])
    return b.op("Add", [x, _mlp(b, _norm(b, x, w, p + "mlp_norm", config), w, p, config)], out=out)


def build_model(config: ModernBertConfig, weights: Mapping[str, np.ndarray], *, graph: GraphVariant = DEFAULT_GRAPH,
                metadata: Mapping[str, Any] | None = None):
    """The ONNX ``ModelProto`` for ``config`` and ModernBertModel-named ``weights``; ``graph``
    ("fused" or "standard") builds the same standard-op graph (see the module docstring)."""
    b, w, _ = start_graph(FAMILY, config, weights, graph)

    seq_len = sequence_length(b)
    table = b.const("embeddings.tok_embeddings.weight", w["embeddings.tok_embeddings.weight"])
    x = _norm(b, b.op("Gather", [table, "input_ids"]), w, "embeddings.norm", config, out="hidden_state_0")
    kinds = set(config.layer_types)
    shared = _Context(
        rotary={kind: _rotary(b, config, kind, theta, seq_len)
                for kind, theta in zip((GLOBAL, LOCAL), config.rope_theta) if kind in kinds},
        query_blocks=_query_blocks(b, config, seq_len) if GLOBAL in kinds else None,
        band=_band(b, config, seq_len) if LOCAL in kinds else None,
    )
    last = config.num_layers
    raw_last = f"hidden_state_{last}" if not config.tie_last_hidden_states else "last_layer_output"
    for n in range(last):
        x = _layer(b, x, w, n, config, shared, raw_last if n == last - 1 else f"hidden_state_{n + 1}")
    _norm(b, x, w, "final_norm", config, out="last_hidden_state")
    if config.tie_last_hidden_states:  # transformers' hidden_states[-1] is last_hidden_state
        b.op("Identity", ["last_hidden_state"], out=f"hidden_state_{last}")

    info = {**asdict(config), "model_type": "modernbert", "sliding_window": config.sliding_window}
    return finish_model(b, "modernbert", hidden_size=config.hidden_size, num_layers=last, graph=graph,
                        with_pooler=False, ms_domain=False, info=info, metadata=metadata)


FAMILY = Family(
    name="ModernBERT",
    model_types=("modernbert",),
    config_class=ModernBertConfig,
    rename=rename_weight,
    layout=_layout,
    sizes=_sizes,
    build_model=build_model,
    layers_prefix="layers.",
    # int8: the GeGLU product and the attention context per token, as LayerNorm outputs already are
    # (base shape, random weights: per-token cosine 0.99762 mean / 0.99588 min; 0.99341 / 0.98776 without)
    int8_per_token=("*mlp.Wo.weight_t", "*attn.Wo.weight_t"),
)
