"""T5 encoders (``model_type`` 't5', 'mt5', 'umt5': sentence-t5, GTR, T5 v1.1, mT5, umT5) as ONNX.

The graph is the encoder stack as transformers' ``T5EncoderModel`` / ``MT5EncoderModel`` /
``UMT5EncoderModel`` compute it (``modeling_t5.py``), step for step:

- token embedding ``shared.weight`` only: no positions, no scaling, no norm;
- each block: pre-norm RMS norm (``T5LayerNorm``: ``w * x / sqrt(mean(x^2) + eps)``, no mean
  subtraction, no bias), self-attention ``num_heads`` x ``d_kv`` (the inner width
  ``num_heads * d_kv`` may differ from ``d_model``) with no bias and NO ``1/sqrt(d_kv)`` scaling,
  plus the relative position bias and the padding mask; residual; RMS norm, feed-forward
  (``wi`` -> act -> ``wo``, or gated: ``act(wi_0 x) * wi_1 x`` -> ``wo``); residual;
- ``encoder.final_layer_norm`` last.

The relative position bias is bucketed bidirectionally (``relative_attention_num_buckets``,
log-spaced up to ``relative_attention_max_distance``). T5 and mT5 compute it in block 0 and
share it with every block; umT5 gives every block its own table. Every distance at or past
``max_distance`` falls into the same (last) bucket of its sign, so the bias of distances
``-D..D`` (``D = max_distance``) is computed here in numpy once, as a [2D+1, heads] table; the graph
clamps the [S, S] key-minus-query distances to ``-D..D`` and gathers. The graph therefore
computes T5 exactly at any length; ``max_position_embeddings`` in the metadata is only the length
the pipeline windows at: ``n_positions`` of config.json (512 in t5 / sentence-t5 / GTR
configs), else 512, T5's pre-training input length and sentence-transformers' GTR
``max_seq_length``.

The outputs follow transformers' ``output_hidden_states``: ``hidden_state_0`` is the embedding,
``hidden_state_i`` (0 < i < L) block i's output, and ``hidden_state_L`` the LAST block's output
AFTER ``final_layer_norm``, equal to ``last_hidden_state`` (transformers overwrites the last
entry; the last block's raw output is never an output). T5 has no pooler.

Activation: ``feed_forward_proj`` ("relu", "gated-gelu" = gated ``gelu_new``, "gelu", ...), as
``T5Config`` derives ``dense_act_fn`` / ``is_gated_act`` from it; a config.json that holds
``dense_act_fn`` / ``is_gated_act`` themselves overrides that derivation, as in transformers.

Both graph variants use standard ops for attention and the RMS norm (onnxruntime fuses the
norm's Pow/ReduceMean/Add/Sqrt/Div/Mul into ``SimplifiedLayerNormalization``); ``"fused"``
differs only in its activation, com.microsoft ``FastGelu`` (exactly ``gelu_new``'s tanh form) or
``Gelu`` (erf). com.microsoft ``Attention`` is not used: int8 used to rewrite it to ``QAttention``,
which drops the relative bias (see ``mpnet.py``).

Weight names: ``T5EncoderModel``'s (``shared.weight``, ``encoder.*``); a full T5 checkpoint's
``decoder.*`` and ``lm_head`` are dropped, as are heads (``transformer.`` prefix stripped). The
encoder's embedding is always ``shared.weight`` (transformers ties ``encoder.embed_tokens`` to
it; a file holding both holds the same table twice). ``encoder.block.N.`` is read as
``encoder.layer.N.`` so that the generic layer-count check sees the blocks.
"""
from __future__ import annotations

import math
import re
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
    eps_field,
    expect_mapping,
    flag_field,
    refuse_decoder,
    size_field,
)
from .graph import (
    ACTIVATIONS,
    DEFAULT_GRAPH,
    EXACT_GELU,
    MS_DOMAIN,
    GraphBuilder,
    activation,
    finish_model,
    key_mask_bias,
    sequence_length,
    shown,
)

DEFAULT_POSITIONS = 512  # when config.json has no n_positions: T5's pre-training input length
MAX_BUCKETS = 1 << 12
MAX_DISTANCE = 1 << 12  # the bias table has 2 * max_distance + 1 rows; released models use 128
INNER = "num_heads*d_kv"  # the attention's inner width: no single config.json field sets it
_SIZE_KINDS = {"vocab_size": "vocab_size", "d_model": "hidden_size", "num_layers": "num_hidden_layers",
               "num_heads": "num_attention_heads", "d_ff": "intermediate_size", "d_kv": "hidden_size",
               "n_positions": "max_position_embeddings"}  # CONFIG_LIMITS' name for each size field
_BASE = {"vocab_size": 32128, "d_model": 768, "num_layers": 12, "num_heads": 12, "d_ff": 3072, "d_kv": 64,
         "relative_attention_num_buckets": 32, "relative_attention_max_distance": 128, "n_positions": 512}
# transformers' config defaults, which a config.json without the field gets (T5Config, MT5Config, UMT5Config)
_DEFAULTS = {
    "t5": {"vocab_size": 32128, "d_model": 512, "d_kv": 64, "d_ff": 2048, "num_layers": 6, "num_heads": 8,
           "feed_forward_proj": "relu"},
    "mt5": {"vocab_size": 250112, "d_model": 512, "d_kv": 64, "d_ff": 1024, "num_layers": 8, "num_heads": 6,
            "feed_forward_proj": "gated-gelu"},
}
_DEFAULTS["umt5"] = _DEFAULTS["mt5"]
_SHARED_DEFAULTS = {"relative_attention_num_buckets": 32, "relative_attention_max_distance": 128,
                    "n_positions": DEFAULT_POSITIONS}
_BLOCK = re.compile(r"encoder\.block\.(\d+)\.")


@dataclass(frozen=True)
class T5EncoderConfig(EncoderSizes):
    """The fields of a T5 / mT5 / umT5 ``config.json`` the encoder graph depends on.

    ``hidden_size`` is ``d_model``, ``intermediate_size`` ``d_ff``; :attr:`head_size` is ``d_kv``
    (not ``d_model / num_heads``). ``max_position_embeddings``: the length the pipeline windows at
    (``n_positions``, default 512); the graph itself has no limit.
    """

    d_kv: int = 64
    dense_act_fn: str = "relu"
    is_gated_act: bool = False
    layer_norm_epsilon: float = 1e-6
    relative_attention_num_buckets: int = 32
    relative_attention_max_distance: int = 128
    max_position_embeddings: int = DEFAULT_POSITIONS
    model_type: str = "t5"

    @property
    def head_size(self) -> int:
        return self.d_kv

    @property
    def inner_size(self) -> int:
        return self.num_heads * self.d_kv

    @property
    def bias_per_layer(self) -> bool:
        """umT5 gives every block its own relative bias table; T5 and mT5 share block 0's."""
        return self.model_type == "umt5"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "config.json") -> T5EncoderConfig:
        """Validate a transformers T5 / mT5 / umT5 config; errors name the field, its allowed values and the fix."""
        expect_mapping(data, where, "T5")
        model_type = data.get("model_type", "t5")
        if model_type not in _DEFAULTS:
            raise ConversionError(f"{where}: model_type {shown(model_type)} is not a T5 encoder; use one of {list(_DEFAULTS)}")
        refuse_decoder(data, where)
        if data.get("tie_last_hidden_states", True) is not True:
            raise ConversionError(
                f"{where}: tie_last_hidden_states is {shown(data['tie_last_hidden_states'])}; nlu_lite's last hidden "
                "state is transformers' default (after final_layer_norm). Remove the field from " + where
            )
        defaults = {**_SHARED_DEFAULTS, **_DEFAULTS[model_type]}

        def size(field: str, **limit: int) -> int:
            return size_field(data, field, where, model="T5", base=_BASE, defaults=defaults,
                              kind=_SIZE_KINDS.get(field), **limit)

        act, gated = _activation_fields(data, where, defaults["feed_forward_proj"])
        config = cls(
            vocab_size=size("vocab_size"),
            hidden_size=size("d_model"),
            num_layers=size("num_layers"),
            num_heads=size("num_heads"),
            intermediate_size=size("d_ff"),
            d_kv=size("d_kv"),
            dense_act_fn=act,
            is_gated_act=gated,
            layer_norm_epsilon=eps_field(data, where, field="layer_norm_epsilon", default=1e-6, model="T5"),
            relative_attention_num_buckets=size("relative_attention_num_buckets", limit=MAX_BUCKETS),
            relative_attention_max_distance=size("relative_attention_max_distance", limit=MAX_DISTANCE),
            max_position_embeddings=size("n_positions"),
            model_type=model_type,
        )
        _check_buckets(config, where)
        return config


def _activation_fields(data: Mapping[str, Any], where: str, default: str) -> tuple[str, bool]:
    """(dense_act_fn, is_gated_act) as T5Config derives them from ``feed_forward_proj``, or as
    config.json states them (transformers lets the stored fields win)."""
    proj = data.get("feed_forward_proj", default)
    parts = proj.split("-") if isinstance(proj, str) else []
    if not parts or (len(parts) > 1 and parts[0] != "gated") or len(parts) > 2:
        raise ConversionError(
            f"{where}: feed_forward_proj {shown(proj)} is not valid; transformers takes '{{ACT_FN}}' or "
            "'gated-{ACT_FN}', e.g. 'relu' (t5) or 'gated-gelu' (T5 v1.1, sentence-t5, GTR, mT5)"
        )
    derived = "gelu_new" if proj == "gated-gelu" else parts[-1]
    if "dense_act_fn" in data:
        act = activation_field(data, where, field="dense_act_fn")
    elif derived not in ACTIVATIONS:
        raise ConversionError(
            f"{where}: feed_forward_proj {shown(proj)} applies the activation {derived!r}, which nlu_lite does not "
            f"compute; it computes {list(ACTIVATIONS)} ('gated-gelu' is gated gelu_new)"
        )
    else:
        act = derived
    return act, flag_field(data, "is_gated_act", where, default=parts[0] == "gated")


def _check_buckets(config: T5EncoderConfig, where: str) -> None:
    """transformers' bucketing divides by ``log(max_distance / max_exact)`` with ``max_exact = buckets // 4``:
    fewer than 4 buckets or a max_distance not above max_exact gives NaN or negative buckets there."""
    max_exact = config.relative_attention_num_buckets // 4
    if max_exact < 1:
        raise ConversionError(
            f"{where}: relative_attention_num_buckets is {config.relative_attention_num_buckets}, but T5's "
            "bidirectional buckets need at least 4 (t5-base has 32); fix it in " + where
        )
    if config.relative_attention_max_distance <= max_exact:
        raise ConversionError(
            f"{where}: relative_attention_max_distance is {config.relative_attention_max_distance}, but with "
            f"relative_attention_num_buckets {config.relative_attention_num_buckets} it must be above {max_exact} "
            f"(t5-base has 128); fix it in {where}"
        )


def _sizes(config: T5EncoderConfig) -> dict[str, int]:
    return {"vocab_size": config.vocab_size, "d_model": config.hidden_size, "d_ff": config.intermediate_size,
            "num_heads": config.num_heads, INNER: config.inner_size,
            "relative_attention_num_buckets": config.relative_attention_num_buckets}


def _bias_name(n: int) -> str:
    return f"encoder.layer.{n}.layer.0.SelfAttention.relative_attention_bias.weight"


def _layout(config: T5EncoderConfig, with_pooler: bool) -> dict[str, tuple[str, ...]]:
    """The encoder's weight names (blocks read as ``encoder.layer.N``), each dimension named by the config
    field that sets it ([out, in]). The bias tables come first, so that a wrong num_heads is named as such."""
    d, f = "d_model", "d_ff"
    layout: dict[str, tuple[str, ...]] = {"shared.weight": ("vocab_size", d)}
    for n in range(config.num_layers if config.bias_per_layer else 1):
        layout[_bias_name(n)] = ("relative_attention_num_buckets", "num_heads")
    for n in range(config.num_layers):
        p = f"encoder.layer.{n}."
        layout[f"{p}layer.0.layer_norm.weight"] = (d,)
        for part in ("q", "k", "v"):
            layout[f"{p}layer.0.SelfAttention.{part}.weight"] = (INNER, d)
        layout[f"{p}layer.0.SelfAttention.o.weight"] = (d, INNER)
        layout[f"{p}layer.1.layer_norm.weight"] = (d,)
        ff = f"{p}layer.1.DenseReluDense."
        for part in (("wi_0", "wi_1") if config.is_gated_act else ("wi",)):
            layout[f"{ff}{part}.weight"] = (f, d)
        layout[f"{ff}wo.weight"] = (d, f)
    layout["encoder.final_layer_norm.weight"] = (d,)
    return layout


def rename_weight(stored: str) -> str | None:
    """The builder's name for a stored weight: ``transformer.`` (T5For*Classification) stripped,
    ``encoder.block.N.`` read as ``encoder.layer.N.``; ``None`` for the decoder, ``lm_head``, heads
    and ``encoder.embed_tokens.weight`` (tied to ``shared.weight``, which is read instead)."""
    key = stored.removeprefix("transformer.")
    if key == "shared.weight":
        return key
    if not key.startswith("encoder.") or key == "encoder.embed_tokens.weight":
        return None
    return _BLOCK.sub(r"encoder.layer.\1.", key, count=1)


# --- the relative position bias ----------------------------------------------------------


def relative_position_bucket(relative: np.ndarray, num_buckets: int = 32, max_distance: int = 128) -> np.ndarray:
    """transformers' ``T5Attention._relative_position_bucket`` (bidirectional) for key minus query
    distances, in numpy, step for step in float32 (a distance on a bucket boundary lands where PyTorch puts it)."""
    relative = np.asarray(relative, np.int64)
    half = num_buckets // 2
    ret = (relative > 0).astype(np.int64) * half
    n = np.abs(relative)
    max_exact = half // 2
    ratio = np.maximum(n, max_exact).astype(np.float32) / np.float32(max_exact)  # >= 1: no log(0)
    scaled = np.log(ratio) / np.float32(math.log(max_distance / max_exact)) * np.float32(half - max_exact)
    large = np.minimum(max_exact + scaled.astype(np.int64), half - 1)
    return ret + np.where(n < max_exact, n, large)


def bias_by_distance(table: np.ndarray, num_buckets: int, max_distance: int) -> np.ndarray:
    """Row ``d + max_distance`` is the bias [heads] of key minus query distance ``d`` in
    ``-max_distance..max_distance``; any farther distance has the bias of the nearest end row."""
    distances = np.arange(-max_distance, max_distance + 1, dtype=np.int64)
    return np.ascontiguousarray(table[relative_position_bucket(distances, num_buckets, max_distance)], dtype=np.float32)


def _distance_index(b: GraphBuilder, config: T5EncoderConfig, seq_len: str) -> str:
    """[S, S] int64: ``clip(j - i, -D, D) + D`` for query i, key j (D = max_distance), the bias table's row."""
    far = config.relative_attention_max_distance
    length = b.op("Squeeze", [seq_len, b.const("axis_0", np.array([0], np.int64))])
    steps = b.op("Range", [b.scalar(0, np.int64), length, b.scalar(1, np.int64)])
    rows = b.op("Unsqueeze", [steps, b.const("axis_1", np.array([1], np.int64))])  # query i
    cols = b.op("Unsqueeze", [steps, "axis_0"])  # key j
    clipped = b.op("Max", [b.op("Min", [b.op("Sub", [cols, rows]), b.scalar(far, np.int64)]), b.scalar(-far, np.int64)])
    return b.op("Add", [clipped, b.scalar(far, np.int64)], out="relative_distance_index")


def _scores_bias(b: GraphBuilder, w: Mapping[str, np.ndarray], config: T5EncoderConfig, n: int, index: str,
                 mask: str) -> str:
    """[B, heads, S, S]: layer ``n``'s relative bias (bias[h, i, j] = table[bucket(j - i), h]) plus the
    additive key mask (0 for real keys, ``MASK_VALUE`` for padding)."""
    table = bias_by_distance(w[_bias_name(n)], config.relative_attention_num_buckets,
                             config.relative_attention_max_distance)
    per_pair = b.op("Gather", [b.const(f"{_bias_name(n)}.by_distance", table), index])  # [S, S, heads]
    bias = b.op("Unsqueeze", [b.op("Transpose", [per_pair], perm=[2, 0, 1]), "axis_0"], out=f"position_bias_{n}")
    return b.op("Add", [bias, mask], out=f"scores_bias_{n}")


# --- layers ------------------------------------------------------------------------------


def _matmul(b: GraphBuilder, x: str, w: Mapping[str, np.ndarray], name: str) -> str:
    """``x @ W^T`` for a bias-free torch Linear weight ``name`` [out, in]."""
    return b.op("MatMul", [x, b.const(name.removesuffix(".weight") + ".weight_t", w[name].T)])


def rms_norm(b: GraphBuilder, x: str, w: Mapping[str, np.ndarray], name: str, eps: float, out: str | None = None) -> str:
    """``T5LayerNorm``: ``weight * x / sqrt(mean(x^2) + eps)`` over the last axis, in the op pattern
    onnxruntime fuses into ``SimplifiedLayerNormalization``."""
    mean_square = b.op("ReduceMean", [b.op("Pow", [x, b.scalar(2.0)])], axes=[-1], keepdims=1)
    rms = b.op("Sqrt", [b.op("Add", [mean_square, b.scalar(eps)])])
    return b.op("Mul", [b.op("Div", [x, rms]), b.const(name, w[name])], out=out)


def _attention(b: GraphBuilder, x: str, w: Mapping[str, np.ndarray], p: str, cfg: T5EncoderConfig,
               scores_bias: str) -> str:
    """softmax(q k^T + relative bias + mask) v, NOT scaled by 1/sqrt(d_kv), then the output projection."""
    split_shape = b.const("attention_split_shape", np.array([0, 0, cfg.num_heads, cfg.d_kv], np.int64))
    merge_shape = b.const("attention_merge_shape", np.array([0, 0, cfg.inner_size], np.int64))

    def heads_of(part: str, perm: list[int]) -> str:
        projected = _matmul(b, x, w, f"{p}layer.0.SelfAttention.{part}.weight")
        return b.op("Transpose", [b.op("Reshape", [projected, split_shape])], perm=perm)

    q, k, v = heads_of("q", [0, 2, 1, 3]), heads_of("k", [0, 2, 3, 1]), heads_of("v", [0, 2, 1, 3])
    probs = b.op("Softmax", [b.op("Add", [b.op("MatMul", [q, k]), scores_bias])], axis=-1)
    context = b.op("Reshape", [b.op("Transpose", [b.op("MatMul", [probs, v])], perm=[0, 2, 1, 3]), merge_shape])
    return _matmul(b, context, w, f"{p}layer.0.SelfAttention.o.weight")


def _activation(b: GraphBuilder, x: str, act: str, graph: str) -> str:
    """com.microsoft ``Gelu`` (erf) / ``FastGelu`` (tanh) in the fused graph, plain ops otherwise."""
    if graph != "fused" or act == "relu":
        return activation(b, x, act)
    return b.op("Gelu" if act in EXACT_GELU else "FastGelu", [x], domain=MS_DOMAIN)


def _feed_forward(b: GraphBuilder, x: str, w: Mapping[str, np.ndarray], p: str, cfg: T5EncoderConfig,
                  graph: str) -> str:
    """``wo(act(wi x))``, or gated: ``wo(act(wi_0 x) * wi_1 x)``."""
    ff = f"{p}layer.1.DenseReluDense."
    if cfg.is_gated_act:
        gate = _activation(b, _matmul(b, x, w, f"{ff}wi_0.weight"), cfg.dense_act_fn, graph)
        inner = b.op("Mul", [gate, _matmul(b, x, w, f"{ff}wi_1.weight")])
    else:
        inner = _activation(b, _matmul(b, x, w, f"{ff}wi.weight"), cfg.dense_act_fn, graph)
    return _matmul(b, inner, w, f"{ff}wo.weight")


def _block(b: GraphBuilder, x: str, w: Mapping[str, np.ndarray], n: int, cfg: T5EncoderConfig, graph: str,
           scores_bias: str, out: str | None) -> str:
    """One T5Block: x + attention(norm(x)), then x + feed_forward(norm(x))."""
    p, eps = f"encoder.layer.{n}.", cfg.layer_norm_epsilon
    normed = rms_norm(b, x, w, f"{p}layer.0.layer_norm.weight", eps)
    x = b.op("Add", [x, _attention(b, normed, w, p, cfg, scores_bias)])
    normed = rms_norm(b, x, w, f"{p}layer.1.layer_norm.weight", eps)
    return b.op("Add", [x, _feed_forward(b, normed, w, p, cfg, graph)], out=out)


def build_model(config: T5EncoderConfig, weights: Mapping[str, np.ndarray], *, graph: GraphVariant = DEFAULT_GRAPH,
                metadata: Mapping[str, Any] | None = None):
    """The ONNX ``ModelProto`` for ``config`` and ``weights`` by the builder's names (:func:`rename_weight`)."""
    b, w, _ = start_graph(FAMILY, config, weights, graph)

    x = b.op("Gather", [b.const("shared.weight", w["shared.weight"]), "input_ids"], out="hidden_state_0")
    index, mask = _distance_index(b, config, sequence_length(b)), key_mask_bias(b)
    shared = _scores_bias(b, w, config, 0, index, mask)
    last = config.num_layers - 1
    for n in range(config.num_layers):
        scores_bias = _scores_bias(b, w, config, n, index, mask) if config.bias_per_layer and n else shared
        x = _block(b, x, w, n, config, graph, scores_bias, None if n == last else f"hidden_state_{n + 1}")
    x = rms_norm(b, x, w, "encoder.final_layer_norm.weight", config.layer_norm_epsilon, out="last_hidden_state")
    b.op("Identity", [x], out=f"hidden_state_{config.num_layers}")

    uses_ms = any(node.domain == MS_DOMAIN for node in b.nodes)
    return finish_model(b, config.model_type, hidden_size=config.hidden_size, num_layers=config.num_layers,
                        graph=graph, with_pooler=False, ms_domain=uses_ms, info=asdict(config), metadata=metadata)


FAMILY = Family(
    name="T5",
    model_types=("t5", "mt5", "umt5"),
    config_class=T5EncoderConfig,
    rename=rename_weight,
    layout=_layout,
    sizes=_sizes,
    build_model=build_model,
    layers_field="num_layers",
    # the FFN output's input is too wide-ranged for one scale per call (transformers keeps wo in fp32 too,
    # _keep_in_fp32_modules): int8 leaves those MatMuls fp32
    int8_fp32=("*DenseReluDense.wo.weight_t",),
    int8_per_token=("*SelfAttention.[qkvo].weight_t", "*DenseReluDense.wi*.weight_t"),  # RMS-normed inputs, context
)
