"""Qwen3 checkpoints (``model_type`` 'qwen3', e.g. Qwen/Qwen3-Embedding-0.6B) as ONNX.

The graph is transformers' ``Qwen3Model`` (``modeling_qwen3.py``, eager attention), a causal
decoder with pre-RMSNorm layers:

- ``hidden_state_0`` is the token embedding alone (``embed_tokens``): no positions are added;
- each layer: ``x + attention(RMSNorm(x))``, then ``x + mlp(RMSNorm(x))`` (``rms_norm_eps``);
  attention projects q, k, v (biases only with ``attention_bias``), RMS-normalises every head of q
  and k over ``head_dim`` (``q_norm``/``k_norm``), rotates them (rotary, ``rope_theta``, the
  rotate-half form), and lets query ``i`` see keys ``j <= i`` that are not padding; grouped-query
  attention: query head ``h`` reads key/value head ``h // (heads / num_key_value_heads)``;
  the MLP is SwiGLU: ``down(silu(gate(x)) * up(x))``;
- a final RMSNorm (``norm``) gives ``last_hidden_state``. transformers returns that normed state
  as ``hidden_states[-1]`` too (``capture_outputs`` replaces the last layer's raw output with it),
  so ``hidden_state_L`` is ``last_hidden_state`` and ``hidden_state_1..L-1`` are the raw residual
  stream after each layer, as there.

Input is right-padded, so token ``i`` of a row has position ``i`` and, attention being causal,
never sees the padding after it: real positions' states are those transformers gives the same
row alone (or left-padded with position ids counted from its first real token). Padded rows
attend to the real keys before them, so they stay finite; their outputs are never read.

The rotary cos/sin tables are computed here in numpy for ``min(max_position_embeddings,
ROTARY_TABLE_LIMIT)`` positions (that is the metadata's ``max_position_embeddings``) and sliced
to the sequence length. As transformers does, the inverse frequencies are float32 and the angle
``position * inv_freq`` is a float32 product; ``base ** (2i / head_dim)`` is rounded once from
float64, whereas torch's float32 ``pow`` is sometimes one unit in the last place off (one of 64
frequencies at ``rope_theta`` 1e6, ``head_dim`` 128). That moves an angle by about
``position * 6e-8`` radians: below 1e-5 for the first few hundred positions, up to 2e-3 at
position 32767, where float32's own spacing of an angle near 32767 is 4e-3.

Both graph variants are the same standard-op graph (``graph`` is recorded, nothing else
changes): onnxruntime's own fusions turn each RMSNorm into ``SimplifiedLayerNormalization``,
SiLU into ``QuickGelu`` and the score scaling into ``FusedMatMul`` (measured: 4 layers at the
0.6B width, 8 x 128 tokens, one thread: 2.12 s, PyTorch eager 2.35 s), and com.microsoft
``GroupQueryAttention`` assumes a KV cache and its own padding conventions. Under int8, RMSNorm
and SwiGLU outputs are neither LayerNorm nor GELU outputs to ``int8.py``: the family's int8 plan
names them, so they are quantised per token as LayerNorm outputs are. Masks are additive
and finite (``MASK_VALUE``), not transformers' ``finfo.min``: the same for any query that has one
real key before it, which every real position has.

Refused, by field: sliding-window layers (``use_sliding_window`` with layers past
``max_window_layers``, or a ``layer_types`` entry other than ``full_attention``), any rotary type
but ``default`` (``rope_scaling`` / ``rope_parameters``), ``partial_rotary_factor`` other than 1,
``hidden_act`` other than SiLU, and configs that ask for bidirectional attention (``is_causal``
false, ``use_bidirectional_attention``), which ``Qwen3Model`` does not compute.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..choices import GraphVariant
from ..errors import ConversionError
from .encoder import EncoderSizes
from .family import Family, start_graph
from .fields import eps_field, expect_mapping, flag_field, size_field
from .graph import (
    DEFAULT_GRAPH,
    MASK_VALUE,
    GraphBuilder,
    finish_model,
    key_mask_bias,
    linear,
    sequence_length,
    shown,
)

MODEL_TYPE = "qwen3"
ROTARY_TABLE_LIMIT = 32768  # Qwen3's trained context; 2 x 8 MB of cos/sin at head_dim 128
_SIZE_FIELDS = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                "max_position_embeddings")
_KEEP_PREFIXES = ("embed_tokens.", "layers.", "norm.")
# Qwen3-Embedding-0.6B's sizes, quoted in error messages
_QWEN3_BASE = {"vocab_size": 151669, "hidden_size": 1024, "num_hidden_layers": 28, "num_attention_heads": 16,
               "intermediate_size": 3072, "max_position_embeddings": 32768, "num_key_value_heads": 8,
               "head_dim": 128}
# what transformers' Qwen3Config gives a config.json without the field
_DEFAULTS = {"max_position_embeddings": 32768, "head_dim": 128}
_DEFAULT_ROPE_THETA = 10000.0  # transformers' RotaryEmbeddingConfigMixin.default_theta
_DEFAULT_MAX_WINDOW_LAYERS = 28
_SILU = ("silu", "swish")  # both are torch's SiLU in transformers' ACT2FN


@dataclass(frozen=True)
class Qwen3Config(EncoderSizes):
    """The fields of a Qwen3 ``config.json`` that the graph depends on (``num_heads``: attention heads).

    ``max_position_embeddings`` is the config's; :attr:`positions` is how many tokens the graph
    takes (capped at :data:`ROTARY_TABLE_LIMIT`).
    """

    num_key_value_heads: int = 8
    head_dim: int = 128
    rope_theta: float = _DEFAULT_ROPE_THETA
    rms_norm_eps: float = 1e-6
    max_position_embeddings: int = 32768
    attention_bias: bool = False

    @property
    def head_size(self) -> int:
        return self.head_dim

    @property
    def positions(self) -> int:
        """The longest sequence the graph takes: the rotary table's rows."""
        return min(self.max_position_embeddings, ROTARY_TABLE_LIMIT)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "config.json") -> Qwen3Config:
        """Validate a transformers Qwen3 config; errors name the field, its allowed values and the fix."""
        expect_mapping(data, where, "Qwen3")
        sizes = {field: size_field(data, field, where, model="Qwen3", base=_QWEN3_BASE, defaults=_DEFAULTS)
                 for field in _SIZE_FIELDS}
        heads, layers = sizes["num_attention_heads"], sizes["num_hidden_layers"]
        kv_heads = heads if data.get("num_key_value_heads") is None else size_field(
            data, "num_key_value_heads", where, model="Qwen3", base=_QWEN3_BASE, defaults={},
            kind="num_attention_heads")
        if heads % kv_heads:
            raise ConversionError(
                f"{where}: num_attention_heads {heads} is not a multiple of num_key_value_heads {kv_heads}; "
                f"fix num_key_value_heads in {where} (Qwen3-Embedding-0.6B has 16 / 8) or download the checkpoint again"
            )
        head_dim = size_field(data, "head_dim", where, model="Qwen3", base=_QWEN3_BASE, defaults=_DEFAULTS,
                              kind="hidden_size")
        if head_dim % 2:
            raise ConversionError(
                f"{where}: head_dim is {head_dim}, but rotary positions rotate pairs of dimensions, so it must be "
                f"even (Qwen3-Embedding-0.6B has 128); fix head_dim in {where} or download the checkpoint again"
            )
        _check_activation(data, where)
        _check_causal(data, where)
        _check_full_attention(data, layers, where)
        return cls(
            vocab_size=sizes["vocab_size"],
            hidden_size=sizes["hidden_size"],
            num_layers=layers,
            num_heads=heads,
            intermediate_size=sizes["intermediate_size"],
            num_key_value_heads=kv_heads,
            head_dim=head_dim,
            rope_theta=_rope_theta(data, where),
            rms_norm_eps=eps_field(data, where, field="rms_norm_eps", default=1e-6, model="Qwen3"),
            max_position_embeddings=sizes["max_position_embeddings"],
            attention_bias=flag_field(data, "attention_bias", where, default=False),
        )


def _check_activation(data: Mapping[str, Any], where: str) -> None:
    act = data.get("hidden_act", "silu")
    if not isinstance(act, str) or act not in _SILU:
        raise ConversionError(
            f"{where}: hidden_act {shown(act)} is not supported; Qwen3's SwiGLU MLP uses 'silu'. "
            f"Fix hidden_act in {where} or download the checkpoint again"
        )


def _check_causal(data: Mapping[str, Any], where: str) -> None:
    """A config asking for bidirectional attention was made for other modelling code than Qwen3Model's."""
    if data.get("is_causal", True) is not True or data.get("use_bidirectional_attention", False) is not False:
        field = "is_causal" if data.get("is_causal", True) is not True else "use_bidirectional_attention"
        raise ConversionError(
            f"{where}: {field} is {shown(data[field])}, asking for bidirectional attention; transformers' Qwen3Model "
            "and nlu_lite's graph are causal (each token sees the tokens before it). Use a causal Qwen3 checkpoint"
        )


def _check_full_attention(data: Mapping[str, Any], layers: int, where: str) -> None:
    """Every layer attends to all earlier tokens: no sliding-window layer, as Qwen3Config decides them."""
    layer_types = data.get("layer_types")
    if layer_types is not None:
        if not isinstance(layer_types, list) or len(layer_types) != layers:
            raise ConversionError(
                f"{where}: layer_types must be a list of num_hidden_layers ({layers}) entries; got "
                f"{shown(layer_types)}. Fix it in {where} or download the checkpoint again"
            )
        other = [t for t in layer_types if t != "full_attention"]
        if other:
            raise ConversionError(
                f"{where}: layer_types has {shown(other[0])}; nlu_lite converts only 'full_attention' layers "
                "(no sliding window). Use a checkpoint whose layers all attend to the full sequence"
            )
        return
    if not flag_field(data, "use_sliding_window", where, default=False) or data.get("sliding_window") is None:
        return  # transformers then sets sliding_window to None: every layer is full attention
    first = data.get("max_window_layers", _DEFAULT_MAX_WINDOW_LAYERS)
    if type(first) is not int:
        raise ConversionError(f"{where}: max_window_layers is {shown(first)}, but it must be a whole number")
    if first < layers:
        raise ConversionError(
            f"{where}: use_sliding_window is true with sliding_window {shown(data['sliding_window'])} and "
            f"max_window_layers {first} < num_hidden_layers {layers}, so layers {max(first, 0)}..{layers - 1} "
            "attend through a sliding window, which nlu_lite does not compute. Set use_sliding_window to false "
            f"in {where} if the model was trained without it (Qwen3-Embedding has false)"
        )


def _rope_theta(data: Mapping[str, Any], where: str) -> float:
    """The rotary base as transformers resolves it: ``rope_scaling`` (the old name) wins over
    ``rope_parameters``; their ``rope_theta`` over the top-level one; only the ``default`` type."""
    params = data.get("rope_scaling") or data.get("rope_parameters") or {}
    field = "rope_scaling" if data.get("rope_scaling") else "rope_parameters"
    if not isinstance(params, Mapping):
        raise ConversionError(f"{where}: {field} is {shown(params)}, but it must be an object or null")
    rope_type = params.get("rope_type", params.get("type", "default"))
    if rope_type != "default":
        raise ConversionError(
            f"{where}: {field} has rope_type {shown(rope_type)}; nlu_lite computes only the 'default' rotary "
            "positions (no scaling, as Qwen3-Embedding). Use a checkpoint without rotary scaling"
        )
    factor = params.get("partial_rotary_factor", data.get("partial_rotary_factor", 1.0))
    if factor != 1.0:
        raise ConversionError(
            f"{where}: partial_rotary_factor is {shown(factor)}; nlu_lite rotates the whole head (1.0), as "
            f"Qwen3 does. Remove it from {where} if the model was trained without it"
        )
    theta = params.get("rope_theta", data.get("rope_theta", _DEFAULT_ROPE_THETA))
    if type(theta) not in (int, float) or not 1 < theta < 1e12:  # NaN fails both comparisons
        raise ConversionError(
            f"{where}: rope_theta is {shown(theta)}, but it must be a number above 1 (Qwen3-Embedding has "
            f"1000000); fix rope_theta in {where} or download the checkpoint again"
        )
    return float(theta)


def _sizes(config: Qwen3Config) -> dict[str, int]:
    return {"vocab_size": config.vocab_size, "hidden_size": config.hidden_size,
            "intermediate_size": config.intermediate_size, "head_dim": config.head_dim,
            "num_attention_heads*head_dim": config.num_heads * config.head_dim,
            "num_key_value_heads*head_dim": config.num_key_value_heads * config.head_dim}


def _layout(config: Qwen3Config, with_pooler: bool) -> dict[str, tuple[str, ...]]:
    """Qwen3Model's weight names ([out, in]); q_norm/k_norm first, so that a wrong head_dim is named as such."""
    h, i, d = "hidden_size", "intermediate_size", "head_dim"
    q, kv = "num_attention_heads*head_dim", "num_key_value_heads*head_dim"
    layout: dict[str, tuple[str, ...]] = {"embed_tokens.weight": ("vocab_size", h)}
    for n in range(config.num_layers):
        p = f"layers.{n}."
        layout.update({
            f"{p}self_attn.q_norm.weight": (d,),
            f"{p}self_attn.k_norm.weight": (d,),
            f"{p}input_layernorm.weight": (h,),
            f"{p}self_attn.q_proj.weight": (q, h),
            f"{p}self_attn.k_proj.weight": (kv, h),
            f"{p}self_attn.v_proj.weight": (kv, h),
            f"{p}self_attn.o_proj.weight": (h, q),
            f"{p}post_attention_layernorm.weight": (h,),
            f"{p}mlp.gate_proj.weight": (i, h),
            f"{p}mlp.up_proj.weight": (i, h),
            f"{p}mlp.down_proj.weight": (h, i),
        })
        if config.attention_bias:
            layout.update({f"{p}self_attn.q_proj.bias": (q,), f"{p}self_attn.k_proj.bias": (kv,),
                           f"{p}self_attn.v_proj.bias": (kv,), f"{p}self_attn.o_proj.bias": (h,)})
    layout["norm.weight"] = (h,)
    return layout


def rename_weight(stored: str) -> str | None:
    """Qwen3Model's name for a stored weight: ``model.`` (Qwen3ForCausalLM & co.) stripped;
    ``None`` for what Qwen3Model does not use (``lm_head``, ``score``, rotary buffers)."""
    key = stored.removeprefix("model.")
    if not key.startswith(_KEEP_PREFIXES) or key.endswith("inv_freq"):
        return None
    return key


# --- rotary positions ----------------------------------------------------------------------


def inverse_frequencies(theta: float, head_dim: int) -> np.ndarray:
    """``1 / theta ** (2i / head_dim)`` in float32, as Qwen3RotaryEmbedding (pow rounded once from float64)."""
    exponents = np.arange(0, head_dim, 2, dtype=np.float32) / np.float32(head_dim)
    return np.float32(1.0) / (theta ** exponents.astype(np.float64)).astype(np.float32)


def rotary_tables(theta: float, head_dim: int, positions: int) -> tuple[np.ndarray, np.ndarray]:
    """cos and sin [positions, 1, head_dim / 2] of the float32 angles ``position * inv_freq``
    (transformers' tables are these twice over, concatenated on the last axis)."""
    angles = np.arange(positions, dtype=np.float32)[:, None] * inverse_frequencies(theta, head_dim)[None, :]
    wide = angles.astype(np.float64)[:, None, :]
    return np.cos(wide).astype(np.float32), np.sin(wide).astype(np.float32)


# --- the graph -----------------------------------------------------------------------------


def _ints(b: GraphBuilder, name: str, values: list[int]) -> str:
    return b.const(name, np.array(values, np.int64))


def _rms_norm(b: GraphBuilder, x: str, w: Mapping[str, np.ndarray], name: str, eps: float,
              out: str | None = None) -> str:
    """weight * x / sqrt(mean(x^2) + eps) over the last axis (the pattern onnxruntime fuses)."""
    mean = b.op("ReduceMean", [b.op("Pow", [x, b.scalar(2.0)])], axes=[-1], keepdims=1)
    normed = b.op("Div", [x, b.op("Sqrt", [b.op("Add", [mean, b.scalar(eps)])])])
    return b.op("Mul", [normed, b.const(name, w[name])], out=out)


def _rotate(b: GraphBuilder, x: str, cos: str, sin: str, half: int) -> str:
    """transformers' ``x * cos + rotate_half(x) * sin`` for x [B, S, heads, D], cos/sin [S, 1, D/2]:
    halves (x1 cos - x2 sin, x2 cos + x1 sin), the same float operations in the same order."""
    last = _ints(b, "axis_last", [-1])
    x1 = b.op("Slice", [x, _ints(b, "zero_i64", [0]), _ints(b, f"rotary_half_{half}", [half]), last])
    x2 = b.op("Slice", [x, f"rotary_half_{half}", _ints(b, f"rotary_end_{half}", [2 * half]), last])
    first = b.op("Sub", [b.op("Mul", [x1, cos]), b.op("Mul", [x2, sin])])
    second = b.op("Add", [b.op("Mul", [x2, cos]), b.op("Mul", [x1, sin])])
    return b.op("Concat", [first, second], axis=-1)


def _attention(b: GraphBuilder, x: str, w: Mapping[str, np.ndarray], p: str, cfg: Qwen3Config,
               rotary: tuple[str, str], scores_bias: str) -> str:
    """Grouped-query causal attention with per-head q/k RMSNorm and rotary, then o_proj.

    Queries are [B, kv_heads, group, S, D], keys [B, kv_heads, 1, D, S]: each key/value head
    broadcasts over its group of query heads, as transformers' ``repeat_kv``."""
    heads, kv, d = cfg.num_heads, cfg.num_key_value_heads, cfg.head_dim
    eps, bias = cfg.rms_norm_eps, cfg.attention_bias

    def projected(name: str, count: int) -> str:
        return b.op("Reshape", [linear(b, x, w, f"{p}self_attn.{name}", bias=bias),
                                _ints(b, f"heads_shape_{count}_{d}", [0, 0, count, d])])

    def normed_rotated(name: str, count: int) -> str:
        normed = _rms_norm(b, projected(f"{name}_proj", count), w, f"{p}self_attn.{name}_norm.weight", eps)
        return _rotate(b, normed, *rotary, d // 2)

    q = b.op("Reshape", [normed_rotated("q", heads), _ints(b, f"group_shape_{kv}_{d}", [0, 0, kv, heads // kv, d])])
    q = b.op("Transpose", [q], perm=[0, 2, 3, 1, 4])  # [B, kv, group, S, D]
    axis_2 = _ints(b, "axis_2", [2])
    k = b.op("Unsqueeze", [b.op("Transpose", [normed_rotated("k", kv)], perm=[0, 2, 3, 1]), axis_2])  # [B, kv, 1, D, S]
    v = b.op("Unsqueeze", [b.op("Transpose", [projected("v_proj", kv)], perm=[0, 2, 1, 3]), axis_2])  # [B, kv, 1, S, D]
    scores = b.op("Mul", [b.op("MatMul", [q, k]), b.scalar(d ** -0.5)])
    probs = b.op("Softmax", [b.op("Add", [scores, scores_bias])], axis=-1)
    context = b.op("Transpose", [b.op("MatMul", [probs, v])], perm=[0, 3, 1, 2, 4])  # [B, S, kv, group, D]
    merged = b.op("Reshape", [context, _ints(b, f"merge_shape_{heads * d}", [0, 0, heads * d])])
    return linear(b, merged, w, f"{p}self_attn.o_proj", bias=bias)


def _mlp(b: GraphBuilder, x: str, w: Mapping[str, np.ndarray], p: str) -> str:
    """down(silu(gate(x)) * up(x)), silu as x * sigmoid(x)."""
    gate = linear(b, x, w, f"{p}mlp.gate_proj", bias=False)
    up = linear(b, x, w, f"{p}mlp.up_proj", bias=False)
    silu = b.op("Mul", [gate, b.op("Sigmoid", [gate])])
    return linear(b, b.op("Mul", [silu, up]), w, f"{p}mlp.down_proj", bias=False)


def _layer(b: GraphBuilder, x: str, w: Mapping[str, np.ndarray], p: str, cfg: Qwen3Config,
           rotary: tuple[str, str], scores_bias: str, out: str) -> str:
    """One Qwen3DecoderLayer: pre-norm attention and MLP, each added to the residual stream."""
    eps = cfg.rms_norm_eps
    attended = b.op("Add", [x, _attention(b, _rms_norm(b, x, w, f"{p}input_layernorm.weight", eps), w, p, cfg,
                                          rotary, scores_bias)])
    mlp = _mlp(b, _rms_norm(b, attended, w, f"{p}post_attention_layernorm.weight", eps), w, p)
    return b.op("Add", [attended, mlp], out=out)


def _scores_bias(b: GraphBuilder, seq_len: str) -> str:
    """[B, 1, 1, S, S]: ``MASK_VALUE`` where the key is after the query or padding, else 0; once for all layers."""
    from onnx import TensorProto

    length = b.op("Squeeze", [seq_len, _ints(b, "axis_0", [0])])
    steps = b.op("Range", [b.scalar(0, np.int64), length, b.scalar(1, np.int64)])
    rows = b.op("Unsqueeze", [steps, _ints(b, "axis_1", [1])])  # query i
    cols = b.op("Unsqueeze", [steps, "axis_0"])  # key j
    future = b.op("Cast", [b.op("Greater", [cols, rows])], to=TensorProto.FLOAT)
    causal = b.op("Mul", [future, b.scalar(MASK_VALUE)])  # [S, S]
    both = b.op("Add", [key_mask_bias(b), causal])  # [B, 1, S, S]
    return b.op("Unsqueeze", [both, "axis_1"], out="scores_bias")


def build_model(config: Qwen3Config, weights: Mapping[str, np.ndarray], *, graph: GraphVariant = DEFAULT_GRAPH,
                metadata: Mapping[str, Any] | None = None):
    """The ONNX ``ModelProto`` for ``config`` and Qwen3Model-named ``weights`` (both variants: one graph)."""
    b, w, _ = start_graph(FAMILY, config, weights, graph)

    seq_len = sequence_length(b)
    cos_table, sin_table = rotary_tables(config.rope_theta, config.head_dim, config.positions)
    zero = _ints(b, "zero_i64", [0])
    rotary = (b.op("Slice", [b.const("rotary.cos", cos_table), zero, seq_len]),
              b.op("Slice", [b.const("rotary.sin", sin_table), zero, seq_len]))
    scores_bias = _scores_bias(b, seq_len)
    x = b.op("Gather", [b.const("embed_tokens.weight", w["embed_tokens.weight"]), "input_ids"], out="hidden_state_0")
    for n in range(config.num_layers):
        last = n == config.num_layers - 1
        x = _layer(b, x, w, f"layers.{n}.", config, rotary, scores_bias,
                   "final_residual" if last else f"hidden_state_{n + 1}")
    _rms_norm(b, x, w, "norm.weight", config.rms_norm_eps, out="last_hidden_state")
    b.op("Identity", ["last_hidden_state"], out=f"hidden_state_{config.num_layers}")

    info = {**asdict(config), "max_position_embeddings": config.positions,
            "config_max_position_embeddings": config.max_position_embeddings, "model_type": MODEL_TYPE,
            "causal": True}
    return finish_model(b, MODEL_TYPE, hidden_size=config.hidden_size, num_layers=config.num_layers, graph=graph,
                        with_pooler=False, ms_domain=False, info=info, metadata=metadata)


FAMILY = Family(
    name="Qwen3",
    model_types=(MODEL_TYPE,),
    config_class=Qwen3Config,
    rename=rename_weight,
    layout=_layout,
    sizes=_sizes,
    build_model=build_model,
    layers_prefix="layers.",
    max_length=lambda config: config.positions,
    default_pooling="lasttoken",  # sentence-transformers' Qwen3-Embedding: the appended <|endoftext|>'s state
    default_subtoken_pooling="last",  # causal: only a word's last piece has seen the whole word
    bare_framing=True,  # a Qwen3 tokenizer.json without the <|endoftext|> post-processor frames nothing, as in ST
    # int8: every MatMul input per token, as LayerNorm outputs are: RMS-normed (q/k/v, gate/up), the attention
    # context (o), the SwiGLU product (down). Tiny model: 0.99923 / 0.99480 mean/min cosine, 0.99793 / 0.9872 without
    int8_per_token=("*self_attn.[qkvo]_proj.weight_t", "*mlp.gate_proj.weight_t", "*mlp.up_proj.weight_t",
                    "*mlp.down_proj.weight_t"),
)
