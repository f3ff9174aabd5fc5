"""A BERT-family checkpoint (config + numpy weights) as an ONNX graph, built with onnx.helper.

Two graph variants compute the same function:

- ``"fused"``: onnxruntime's com.microsoft kernels, each exact: ``Attention`` (packed QKV
  projection, scaled dot product, additive mask, softmax) and ``BiasGelu`` (erf GELU, not the
  tanh ``FastGelu``); residual + LayerNorm stay Add + ``LayerNormalization`` (faster here
  than the ``SkipLayerNormalization`` kernel, see ``_residual_layer_norm``).
- ``"standard"``: plain ONNX opset-17 ops (MatMul/Add/Softmax, LayerNormalization, Erf
  GELU), left to onnxruntime's own graph fusions.

``benchmarks/engine_graph.py`` measures both; ``DEFAULT_GRAPH`` is the faster one.

Interface (docs/DESIGN.md): inputs ``input_ids`` / ``attention_mask`` int64 [batch,
sequence]; outputs ``last_hidden_state``, ``hidden_state_0..L`` (transformers'
``hidden_states[i]``) and ``pooler_output`` when the checkpoint has a pooler.
token_type_ids are always 0: the type-0 embedding is folded into the position table.

The families whose graph is this one with small changes (RoBERTa, DistilBERT, ELECTRA,
ALBERT) describe the changes as an :class:`EncoderPlan` (position offset, no token types,
an embedding projection, which weights each layer reads) and call :func:`build_encoder`;
their ``rename`` maps stored names onto the names read here.
"""
from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..choices import GRAPH_VARIANTS, GraphVariant
from ..errors import ConversionError
from .families import Family

DEFAULT_GRAPH: GraphVariant = "fused"  # measured faster: see benchmarks/engine_graph.py
OPSET = 17  # LayerNormalization is a standard op from 17
MS_OPSET = 1
# 3: weights as external data; int8 keeps layer 0 FFN output fp32. 4: metadata names the model_type.
# Bump whenever the graph for the same weights changes
CONVERTER_VERSION = "5"  # 5: per-token int8 (convert/int8.py); 4: model_type in the metadata. Covers every family: bump whenever a graph for the same weights changes
METADATA_KEY = "nlu_lite"

# transformers' hidden_act names -> how we compute them
_EXACT_GELU = ("gelu",)
_TANH_GELU = ("gelu_new", "gelu_pytorch_tanh", "gelu_fast")
ACTIVATIONS = _EXACT_GELU + _TANH_GELU + ("relu",)
_MASK_VALUE = -10000.0  # added to masked keys' scores: exp() of it is 0 in float32


# Limits on config.json's sizes: far above any BERT-family model (BERT-large: 30,522 x 1,024,
# 24 layers, 335 M parameters), low enough that a hostile config cannot make us build huge
# tables or lists before the weights are looked at. Values outside them are refused by name.
CONFIG_LIMITS = {
    "vocab_size": 1 << 24,
    "hidden_size": 1 << 16,
    "num_hidden_layers": 1 << 10,
    "num_attention_heads": 1 << 10,
    "intermediate_size": 1 << 18,
    "max_position_embeddings": 1 << 20,
    "type_vocab_size": 1 << 10,
}
MAX_PARAMETERS = 1 << 32  # 4.3 billion: 13x BERT-large
_BERT_BASE = {"vocab_size": 30522, "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
              "intermediate_size": 3072, "max_position_embeddings": 512, "type_vocab_size": 2}
_DEFAULTS = {"max_position_embeddings": 512, "type_vocab_size": 2}


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _size_field(data: Mapping[str, Any], field: str, where: str, *, kind: str | None = None, model: str = "BERT",
                base: Mapping[str, int] = _BERT_BASE, defaults: Mapping[str, int] = _DEFAULTS) -> int:
    """A positive whole number within ``CONFIG_LIMITS[kind]`` (``kind`` defaults to ``field``): no
    float, bool, string, NaN or infinity. Other families name their own ``model``, its ``base``
    sizes (quoted in the message) and the ``defaults`` transformers fills in for a missing field."""
    if field not in data:
        if field in defaults:
            return defaults[field]
        raise ConversionError(
            f"{where} lacks the field {field!r} that a {model} config has; add it ({model}-base has "
            f"{field}={base[field]}) or download the checkpoint again"
        )
    value, limit = data[field], CONFIG_LIMITS[kind or field]
    if type(value) is not int or not 1 <= value <= limit:
        raise ConversionError(
            f"{where}: {field} is {_shown(value)}, but it must be a whole number from 1 to {limit:,} "
            f"({model}-base has {base[field]}); fix {field} in {where} or download the checkpoint again"
        )
    return value


def _eps_field(data: Mapping[str, Any], where: str) -> float:
    value = data.get("layer_norm_eps", 1e-12)
    if type(value) not in (int, float) or not 0 < value < 1:  # NaN fails both comparisons
        raise ConversionError(
            f"{where}: layer_norm_eps is {_shown(value)}, but it must be a number between 0 and 1 "
            f"(BERT uses 1e-12); fix layer_norm_eps in {where} or download the checkpoint again"
        )
    return float(value)


def _activation_field(data: Mapping[str, Any], where: str, field: str = "hidden_act", default: str = "gelu") -> str:
    act = data.get(field, default)
    if not isinstance(act, str) or act not in ACTIVATIONS:
        raise ConversionError(f"{where}: {field} {_shown(act)} is not supported; use one of {list(ACTIVATIONS)}")
    return act


def _check_encoder_only(data: Mapping[str, Any], where: str) -> None:
    """Refuse what would make this graph compute something else: relative positions, a causal decoder."""
    position = data.get("position_embedding_type", "absolute")
    if position != "absolute":
        raise ConversionError(f"{where}: position_embedding_type {_shown(position)} is not supported; only 'absolute'")
    if data.get("is_decoder", False) is not False:  # a decoder attends causally: our graph attends both ways
        raise ConversionError(
            f"{where}: is_decoder is {_shown(data['is_decoder'])}; nlu_lite converts encoders (is_decoder false), "
            "whose tokens see the whole sequence. Use the encoder checkpoint of this model"
        )


def _check_heads(hidden: int, heads: int, where: str, fields: tuple[str, str] = ("hidden_size", "num_attention_heads"),
                 model: str = "BERT") -> None:
    if hidden % heads:
        raise ConversionError(
            f"{where}: {fields[0]} {hidden} is not divisible by {fields[1]} {heads}; "
            f"fix {fields[1]} in {where} ({model}-base has 768 / 12) or download the checkpoint again"
        )


def _bert_fields(data: Any, where: str, *, model: str = "BERT", base: Mapping[str, int] = _BERT_BASE,
                 defaults: Mapping[str, int] = _DEFAULTS, activation: str = "gelu") -> dict[str, Any]:
    """:class:`BertConfig`'s constructor arguments from a config.json with BERT's field names, validated."""
    if not isinstance(data, Mapping):
        raise ConversionError(
            f"{where} holds a JSON {type(data).__name__}, not an object with {model}'s fields (hidden_size, "
            "num_hidden_layers, ...); download the checkpoint again"
        )
    _check_encoder_only(data, where)
    act = _activation_field(data, where, default=activation)
    sizes = {name: _size_field(data, name, where, model=model, base=base, defaults=defaults) for name in CONFIG_LIMITS}
    _check_heads(sizes["hidden_size"], sizes["num_attention_heads"], where, model=model)
    return {
        "vocab_size": sizes["vocab_size"],
        "hidden_size": sizes["hidden_size"],
        "num_layers": sizes["num_hidden_layers"],
        "num_heads": sizes["num_attention_heads"],
        "intermediate_size": sizes["intermediate_size"],
        "hidden_act": act,
        "layer_norm_eps": _eps_field(data, where),
        "max_position_embeddings": sizes["max_position_embeddings"],
        "type_vocab_size": sizes["type_vocab_size"],
    }


@dataclass(frozen=True)
class EncoderSizes:
    """The sizes every family's config has, by BertConfig's names (each family reads its own
    ``config.json`` spelling into them and adds its own fields)."""

    vocab_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int

    @property
    def head_size(self) -> int:
        return self.hidden_size // self.num_heads


@dataclass(frozen=True)
class BertConfig(EncoderSizes):
    """The architecture fields of a BERT-family ``config.json`` that the graph depends on."""

    hidden_act: str = "gelu"
    layer_norm_eps: float = 1e-12
    max_position_embeddings: int = 512
    type_vocab_size: int = 2

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "config.json") -> BertConfig:
        """Validate a transformers BERT config; errors name the field, its allowed values and the fix."""
        config = cls(**_bert_fields(data, where))
        count = parameter_count(config, with_pooler=True)
        if count > MAX_PARAMETERS:
            raise ConversionError(
                f"{where}: vocab_size, hidden_size, num_hidden_layers and intermediate_size imply {count:,} "
                f"parameters, more than the {MAX_PARAMETERS:,} nlu_lite converts (BERT-large has 335 M); "
                f"fix the sizes in {where} or download the checkpoint again"
            )
        return config


def _sizes(config: BertConfig) -> dict[str, int]:
    return {"vocab_size": config.vocab_size, "hidden_size": config.hidden_size,
            "intermediate_size": config.intermediate_size,
            "max_position_embeddings": config.max_position_embeddings, "type_vocab_size": config.type_vocab_size}


@dataclass(frozen=True)
class EncoderPlan:
    """What a BERT-like family changes in BERT's graph (the defaults are BERT itself).

    ``position_offset``: the position-table row of a sequence's first token (RoBERTa:
    padding_idx + 1), so the model takes ``max_position_embeddings - position_offset`` tokens.
    ``token_types``: whether an ``embeddings.token_type_embeddings`` table exists (type 0 is
    added). ``projection``: an ``embeddings.projection`` Linear from ``embedding_size`` to
    ``hidden_size`` after the embedding LayerNorm (ELECTRA, ALBERT); its output is
    ``hidden_state_0``, as in transformers. ``layer_prefixes``: the weights layer n reads
    (ALBERT shares them; each shared tensor is stored once); ``None``: ``encoder.layer.{n}.``.
    ``size_names``: (BERT's field, the family's config.json field) pairs, so that the layout's
    dimensions, and the errors about them, name the field the user's config.json has.
    """

    model_type: str = "bert"
    position_offset: int = 0
    token_types: bool = True
    projection: bool = False
    layer_prefixes: tuple[str, ...] | None = None
    size_names: tuple[tuple[str, str], ...] = ()

    def prefixes(self, num_layers: int) -> tuple[str, ...]:
        return self.layer_prefixes or tuple(f"encoder.layer.{n}." for n in range(num_layers))


_BERT_PLAN = EncoderPlan()


def _feed_forward_layout(p: str, h: str, i: str) -> dict[str, tuple[str, ...]]:
    """The feed-forward block of layer prefix ``p`` as BERT names it (MPNet and DeBERTa too): dense in,
    dense out, LayerNorm; dimensions named by the config fields ``h`` and ``i`` ([out, in])."""
    return {
        f"{p}intermediate.dense.weight": (i, h),
        f"{p}intermediate.dense.bias": (i,),
        f"{p}output.dense.weight": (h, i),
        f"{p}output.dense.bias": (h,),
        f"{p}output.LayerNorm.weight": (h,),
        f"{p}output.LayerNorm.bias": (h,),
    }


def _layout(num_layers: int, *, with_pooler: bool, plan: EncoderPlan = _BERT_PLAN) -> dict[str, tuple[str, ...]]:
    """BertModel's weight names (or ``plan``'s variant of them), each dimension named by the
    config field that sets it ([out, in]); a shared layer's weights are listed once."""
    names = dict(plan.size_names)
    h, i = names.get("hidden_size", "hidden_size"), names.get("intermediate_size", "intermediate_size")
    e = "embedding_size" if plan.projection else h
    layout: dict[str, tuple[str, ...]] = {
        "embeddings.word_embeddings.weight": ("vocab_size", e),
        "embeddings.position_embeddings.weight": ("max_position_embeddings", e),
    }
    if plan.token_types:
        layout["embeddings.token_type_embeddings.weight"] = ("type_vocab_size", e)
    layout.update({"embeddings.LayerNorm.weight": (e,), "embeddings.LayerNorm.bias": (e,)})
    if plan.projection:
        layout.update({"embeddings.projection.weight": (h, e), "embeddings.projection.bias": (h,)})
    for p in dict.fromkeys(plan.prefixes(num_layers)):
        for part in ("query", "key", "value"):
            layout[f"{p}attention.self.{part}.weight"] = (h, h)
            layout[f"{p}attention.self.{part}.bias"] = (h,)
        layout.update({
            f"{p}attention.output.dense.weight": (h, h),
            f"{p}attention.output.dense.bias": (h,),
            f"{p}attention.output.LayerNorm.weight": (h,),
            f"{p}attention.output.LayerNorm.bias": (h,),
            **_feed_forward_layout(p, h, i),
        })
    if with_pooler:
        layout["pooler.dense.weight"] = (h, h)
        layout["pooler.dense.bias"] = (h,)
    return layout


def expected_shapes(config: BertConfig, *, with_pooler: bool) -> dict[str, tuple[int, ...]]:
    """BertModel's weight names and shapes for ``config`` (torch Linear layout: [out, in])."""
    sizes, layout = _sizes(config), _layout(config.num_layers, with_pooler=with_pooler)
    return {name: tuple(sizes[f] for f in dims) for name, dims in layout.items()}


def parameter_count(config: BertConfig, *, with_pooler: bool) -> int:
    """How many numbers the weights of ``config`` hold: the sum over :func:`expected_shapes`, without building it."""
    h, i = config.hidden_size, config.intermediate_size
    embeddings = (config.vocab_size + config.max_position_embeddings + config.type_vocab_size + 2) * h
    layer = 4 * (h * h + h) + 2 * h + (i * h + i) + (h * i + h) + 2 * h
    return embeddings + config.num_layers * layer + (h * h + h if with_pooler else 0)


def check_weights(config: Any, weights: Mapping[str, np.ndarray]) -> bool:
    """Raise :class:`ConversionError` unless ``weights`` fit ``config``; return whether a pooler is present."""
    from .families import check_shapes

    return check_shapes(config, {name: array.shape for name, array in weights.items()})


class _Builder:
    """Collects nodes and initializers; every tensor name is unique."""

    def __init__(self) -> None:
        from onnx import helper, numpy_helper

        self.helper = helper
        self.numpy_helper = numpy_helper
        self.nodes: list = []
        self.initializers: list = []
        self._count = 0
        self._scalars: dict[tuple[str, float], str] = {}
        self._consts: dict[str, Any] = {}

    def __contains__(self, name: str) -> bool:
        """Whether an initializer ``name`` exists (a caller may then skip computing it again)."""
        return name in self._consts

    def const(self, name: str, array: np.ndarray) -> str:
        """An initializer; a name given again is the same tensor, stored once (ALBERT's shared
        layers). Different contents under one name are a bug in the caller, never silently merged."""
        tensor = self.numpy_helper.from_array(np.asarray(array, order="C"), name)
        if name in self._consts:
            if self._consts[name] != tensor:
                raise ValueError(f"two different tensors named {name!r} in one graph")
            return name
        self._consts[name] = tensor
        self.initializers.append(tensor)
        return name

    def scalar(self, value: float, dtype: Any = np.float32) -> str:
        """A shared scalar constant."""
        key = (np.dtype(dtype).name, value)
        if key not in self._scalars:
            self._scalars[key] = self.const(f"scalar_{len(self._scalars)}", np.array(value, dtype))
        return self._scalars[key]

    def op(self, op_type: str, inputs: list[str], *, out: str | None = None, domain: str = "", **attrs: Any) -> str:
        self._count += 1
        output = out or f"{op_type.lower()}_{self._count}"
        kwargs = {"domain": domain} if domain else {}
        self.nodes.append(
            self.helper.make_node(op_type, inputs, [output], name=f"{op_type}_{self._count}", **kwargs, **attrs)
        )
        return output


def _linear(b: _Builder, x: str, weights: Mapping[str, np.ndarray], prefix: str, *, bias: bool = True) -> str:
    y = b.op("MatMul", [x, b.const(prefix + ".weight_t", weights[prefix + ".weight"].T)])
    return b.op("Add", [y, b.const(prefix + ".bias", weights[prefix + ".bias"])]) if bias else y


def _layer_norm(b: _Builder, x: str, weights: Mapping[str, np.ndarray], prefix: str, eps: float, out: str | None = None) -> str:
    scale = b.const(prefix + ".weight", weights[prefix + ".weight"])
    shift = b.const(prefix + ".bias", weights[prefix + ".bias"])
    return b.op("LayerNormalization", [x, scale, shift], out=out, axis=-1, epsilon=eps)


def _activation_standard(b: _Builder, x: str, act: str) -> str:
    if act == "relu":
        return b.op("Relu", [x])
    if act in _EXACT_GELU:  # x * 0.5 * (1 + erf(x / sqrt(2))): the pattern ORT fuses into Gelu
        erf = b.op("Erf", [b.op("Div", [x, b.scalar(math.sqrt(2.0))])])
        return b.op("Mul", [b.op("Mul", [x, b.op("Add", [erf, b.scalar(1.0)])]), b.scalar(0.5)])
    # tanh approximation: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
    cube = b.op("Mul", [b.op("Mul", [x, x]), x])
    inner = b.op("Add", [x, b.op("Mul", [cube, b.scalar(0.044715)])])
    tanh = b.op("Tanh", [b.op("Mul", [inner, b.scalar(math.sqrt(2 / math.pi))])])
    return b.op("Mul", [b.op("Mul", [x, b.op("Add", [tanh, b.scalar(1.0)])]), b.scalar(0.5)])


def _standard_context(b: _Builder, x: str, w: Mapping[str, np.ndarray], p: str, cfg: Any,
                      projections: Sequence[str], scores_bias: str) -> str:
    """Multi-head attention from standard ops, before the output projection: the query, key and
    value ``projections`` (weight name prefixes) of ``x``, softmax(q k^T / sqrt(d) + ``scores_bias``) v,
    heads merged back to [B, S, hidden]. ``cfg``: ``num_heads``, ``head_size``, ``hidden_size``."""
    heads, size = cfg.num_heads, cfg.head_size
    split_shape = b.const(f"{p}split_shape", np.array([0, 0, heads, size], np.int64))
    merge_shape = b.const(f"{p}merge_shape", np.array([0, 0, cfg.hidden_size], np.int64))

    def heads_of(name: str, perm: list[int]) -> str:
        return b.op("Transpose", [b.op("Reshape", [_linear(b, x, w, name), split_shape])], perm=perm)

    query, key, value = projections
    q = heads_of(query, [0, 2, 1, 3])  # [B, N, S, D]
    k = heads_of(key, [0, 2, 3, 1])  # [B, N, D, S]
    v = heads_of(value, [0, 2, 1, 3])
    scores = b.op("Div", [b.op("MatMul", [q, k]), b.scalar(math.sqrt(size))])
    probs = b.op("Softmax", [b.op("Add", [scores, scores_bias])], axis=-1)
    return b.op("Reshape", [b.op("Transpose", [b.op("MatMul", [probs, v])], perm=[0, 2, 1, 3]), merge_shape])


def _layer_standard(b: _Builder, x: str, w: Mapping[str, np.ndarray], p: str, cfg: BertConfig, mask_bias: str, out: str) -> str:
    context = _standard_context(b, x, w, p, cfg, [f"{p}attention.self.{n}" for n in ("query", "key", "value")],
                                mask_bias)
    attn = _linear(b, context, w, f"{p}attention.output.dense")
    h1 = _layer_norm(b, b.op("Add", [attn, x]), w, f"{p}attention.output.LayerNorm", cfg.layer_norm_eps)
    inter = _activation_standard(b, _linear(b, h1, w, f"{p}intermediate.dense"), cfg.hidden_act)
    ffn = _linear(b, inter, w, f"{p}output.dense")
    return _layer_norm(b, b.op("Add", [ffn, h1]), w, f"{p}output.LayerNorm", cfg.layer_norm_eps, out=out)


def _layer_fused(b: _Builder, x: str, w: Mapping[str, np.ndarray], p: str, cfg: BertConfig, mask_index: str, out: str) -> str:
    ms = "com.microsoft"
    parts = [f"{p}attention.self.{name}" for name in ("query", "key", "value")]
    qkv_w, qkv_b = f"{p}attention.qkv.weight_t", f"{p}attention.qkv.bias"
    if qkv_w not in b:  # a shared layer (ALBERT) packs its weights once
        b.const(qkv_w, np.concatenate([w[q + ".weight"].T for q in parts], axis=1))
        b.const(qkv_b, np.concatenate([w[q + ".bias"] for q in parts]))
    context = b.op("Attention", [x, qkv_w, qkv_b, mask_index], domain=ms,
                   num_heads=cfg.num_heads, mask_filter_value=_MASK_VALUE)
    attn = _linear(b, context, w, f"{p}attention.output.dense", bias=False)
    h1 = _residual_layer_norm(b, attn, x, w, p + "attention.output", cfg.layer_norm_eps)
    inter = _linear(b, h1, w, f"{p}intermediate.dense", bias=False)
    bias = b.const(f"{p}intermediate.dense.bias", w[f"{p}intermediate.dense.bias"])
    if cfg.hidden_act == "relu":
        inter = b.op("Relu", [b.op("Add", [inter, bias])])
    else:  # BiasGelu is erf GELU; FastGelu is the tanh form, exactly what gelu_new computes
        inter = b.op("BiasGelu" if cfg.hidden_act in _EXACT_GELU else "FastGelu", [inter, bias], domain=ms)
    ffn = _linear(b, inter, w, f"{p}output.dense", bias=False)
    return _residual_layer_norm(b, ffn, h1, w, p + "output", cfg.layer_norm_eps, out=out)


def _residual_layer_norm(b: _Builder, x: str, skip: str, w: Mapping[str, np.ndarray], p: str, eps: float,
                         out: str | None = None) -> str:
    """LayerNorm(x + dense bias + skip) as Add + standard LayerNormalization.

    Not com.microsoft SkipLayerNormalization: its onnxruntime 1.32 CPU kernel measured 8% slower
    end to end on small BERT (benchmarks/engine_graph.py); the runtime also turns off
    onnxruntime's SkipLayerNormFusion so the Adds stay as they are (runtime.DISABLED_OPTIMIZERS).
    """
    biased = b.op("Add", [x, b.const(f"{p}.dense.bias", w[f"{p}.dense.bias"])])
    return _layer_norm(b, b.op("Add", [biased, skip]), w, f"{p}.LayerNorm", eps, out=out)


def _embeddings(b: _Builder, w: Mapping[str, np.ndarray], config: BertConfig, plan: EncoderPlan = _BERT_PLAN) -> str:
    """word + (position + token type 0), then LayerNorm (then ``plan``'s projection):
    transformers' ``hidden_states[0]``. Input is right-padded, so token i sits at position
    ``position_offset + i``: the table is sliced, never indexed per token."""
    word = b.op("Gather", [b.const("embeddings.word_embeddings.weight", w["embeddings.word_embeddings.weight"]), "input_ids"])
    table = w["embeddings.position_embeddings.weight"][plan.position_offset:]
    if plan.token_types:
        table, name = table + w["embeddings.token_type_embeddings.weight"][0], "embeddings.position_plus_type0"
    else:
        name = "embeddings.positions"
    one, two = b.const("one_i64", np.array([1], np.int64)), b.const("two_i64", np.array([2], np.int64))
    seq_len = b.op("Slice", [b.op("Shape", ["input_ids"]), one, two])
    positions = b.op("Slice", [b.const(name, table), b.const("zero_i64", np.array([0], np.int64)), seq_len])
    summed = b.op("Add", [word, positions], out="embeddings_sum")
    if not plan.projection:
        return _layer_norm(b, summed, w, "embeddings.LayerNorm", config.layer_norm_eps, out="hidden_state_0")
    normed = _layer_norm(b, summed, w, "embeddings.LayerNorm", config.layer_norm_eps)
    projected = _linear(b, normed, w, "embeddings.projection", bias=False)
    return b.op("Add", [projected, b.const("embeddings.projection.bias", w["embeddings.projection.bias"])],
                out="hidden_state_0")


def build_model(config: BertConfig, weights: Mapping[str, np.ndarray], *, graph: GraphVariant = DEFAULT_GRAPH,
                metadata: Mapping[str, Any] | None = None):
    """The ONNX ``ModelProto`` for ``config`` and BertModel-named ``weights``."""
    return build_encoder(config, weights, _BERT_PLAN, graph=graph, metadata=metadata)


def build_encoder(config: Any, weights: Mapping[str, np.ndarray], plan: EncoderPlan, *,
                  graph: GraphVariant = DEFAULT_GRAPH, metadata: Mapping[str, Any] | None = None):
    """The ONNX ``ModelProto`` of BERT's graph changed as ``plan`` says, for ``weights`` by the
    builder's names. ``config`` has BertConfig's fields the graph reads (hidden_size,
    num_layers, num_heads, head_size, hidden_act, layer_norm_eps, max_position_embeddings)."""
    from onnx import TensorProto, helper

    if graph not in GRAPH_VARIANTS:
        raise ConversionError(f"unknown graph variant {graph!r}; use one of {list(GRAPH_VARIANTS)}")
    with_pooler = check_weights(config, weights)
    b = _Builder()
    w = {k: np.asarray(v, dtype=np.float32) for k, v in weights.items()}

    x = _embeddings(b, w, config, plan)
    if graph == "fused":
        mask = b.op("Cast", ["attention_mask"], to=TensorProto.INT32)
        layer = _layer_fused
    else:  # additive mask [B, 1, 1, S]: 0 for real tokens, large negative for padding
        mask_f = b.op("Cast", ["attention_mask"], to=TensorProto.FLOAT)
        inverted = b.op("Sub", [b.scalar(1.0), mask_f])
        mask = b.op("Unsqueeze", [b.op("Mul", [inverted, b.scalar(_MASK_VALUE)]),
                                  b.const("mask_axes", np.array([1, 2], np.int64))])
        layer = _layer_standard
    for n, prefix in enumerate(plan.prefixes(config.num_layers)):
        last = n == config.num_layers - 1
        x = layer(b, x, w, prefix, config, mask, "last_hidden_state" if last else f"hidden_state_{n + 1}")
    b.op("Identity", [x], out=f"hidden_state_{config.num_layers}")

    dims = ["batch", "sequence", config.hidden_size]
    outputs = [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, dims)]
    outputs += [helper.make_tensor_value_info(f"hidden_state_{i}", TensorProto.FLOAT, dims) for i in range(config.num_layers + 1)]
    if with_pooler:
        first = b.op("Gather", [x, b.scalar(0, np.int64)], axis=1)
        pooled = _linear(b, first, w, "pooler.dense")
        b.op("Tanh", [pooled], out="pooler_output")
        outputs.append(helper.make_tensor_value_info("pooler_output", TensorProto.FLOAT, ["batch", config.hidden_size]))

    inputs = [helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", "sequence"]) for n in ("input_ids", "attention_mask")]
    # the Slice of the position table hides that its length is the sequence length; saying so
    # lets onnxruntime's fusions match whichever outputs are declared
    width = config.embedding_size if plan.projection else config.hidden_size
    known = [helper.make_tensor_value_info("embeddings_sum", TensorProto.FLOAT, ["batch", "sequence", width])]
    graph_proto = helper.make_graph(b.nodes, plan.model_type, inputs, outputs, initializer=b.initializers,
                                    value_info=known)
    opsets = [helper.make_opsetid("", OPSET)] + ([helper.make_opsetid("com.microsoft", MS_OPSET)] if graph == "fused" else [])
    model = helper.make_model(graph_proto, opset_imports=opsets, producer_name="nlu_lite", producer_version=CONVERTER_VERSION)
    model.ir_version = 8  # readable by onnxruntime >= 1.14
    info = {**asdict(config), "has_pooler": with_pooler, "graph": graph, "converter_version": CONVERTER_VERSION,
            "opset": OPSET, "model_type": plan.model_type,
            # the longest input, framing included: the rows a sequence can use from its offset on
            "max_position_embeddings": config.max_position_embeddings - plan.position_offset, **(metadata or {})}
    helper.set_model_props(model, {METADATA_KEY: json.dumps(info, sort_keys=True)})
    return model


_KEEP_PREFIXES = ("embeddings.", "encoder.", "pooler.")


def _tf_names(key: str) -> str:
    """TF-era LayerNorm names: ``gamma``/``beta`` are ``weight``/``bias``."""
    if key.endswith(".gamma"):
        return key[: -len("gamma")] + "weight"
    if key.endswith(".beta"):
        return key[: -len("beta")] + "bias"
    return key


def rename_weight(stored: str, prefix: str = "bert.", keep: tuple[str, ...] = _KEEP_PREFIXES) -> str | None:
    """BertModel's name for a stored weight: ``prefix`` stripped, TF-era ``gamma``/``beta`` renamed;
    ``None`` for what BertModel does not use (``cls.*`` heads, the ``position_ids`` and
    ``token_type_ids`` buffers) and for anything outside ``keep``."""
    key = _tf_names(stored.removeprefix(prefix))
    if key.endswith(("position_ids", "token_type_ids")) or not key.startswith(keep):
        return None
    return key


def encoder_family(*, name: str, model_types: tuple[str, ...], config_class: type,
                   rename: Callable[[str], str | None], sizes: Callable[[Any], dict[str, int]],
                   plan: Callable[[Any], EncoderPlan], **options: Any) -> Family:
    """A :class:`Family` built on :func:`build_encoder`: ``plan(config)`` says how its encoder
    differs from BERT's, and both the weight layout and the graph follow it. ``options``: the
    other :class:`Family` fields (``layers_field``, ``pooler_weight``)."""

    def build_model(config: Any, weights: Mapping[str, np.ndarray], *, graph: GraphVariant = DEFAULT_GRAPH,
                    metadata: Mapping[str, Any] | None = None):
        return build_encoder(config, weights, plan(config), graph=graph, metadata=metadata)

    def layout(config: Any, with_pooler: bool) -> dict[str, tuple[str, ...]]:
        return _layout(config.num_layers, with_pooler=with_pooler, plan=plan(config))

    return Family(name=name, model_types=model_types, config_class=config_class, rename=rename, layout=layout,
                  sizes=sizes, build_model=build_model, **options)


FAMILY = Family(
    name="BERT",
    model_types=("bert",),
    config_class=BertConfig,
    rename=rename_weight,
    layout=lambda config, with_pooler: _layout(config.num_layers, with_pooler=with_pooler),
    sizes=_sizes,
    build_model=build_model,
)
