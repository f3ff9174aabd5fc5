"""The shared encoder builder: the post-LayerNorm transformer encoder (BERT's shape) as ONNX.

Families whose graph is this encoder with small changes (BERT, RoBERTa, DistilBERT, ELECTRA,
ALBERT) describe the changes as an :class:`EncoderPlan` (position offset, token types, an
embedding projection, which weights each layer reads) and get their :class:`Family` from
:func:`encoder_family`; their ``rename`` maps stored names onto the names read here
(BertModel's). Nothing here is one family's: no default plan, no default sizes.

Two graph variants compute the same function:

- ``"fused"``: onnxruntime's com.microsoft kernels, each exact: ``Attention`` (packed QKV
  projection, scaled dot product, additive mask, softmax) and ``BiasGelu`` (erf GELU, not the
  tanh ``FastGelu``); residual + LayerNorm stay Add + ``LayerNormalization`` (faster here
  than the ``SkipLayerNormalization`` kernel, see :func:`residual_layer_norm`).
- ``"standard"``: plain ONNX opset-17 ops (MatMul/Add/Softmax, LayerNormalization, Erf
  GELU), left to onnxruntime's own graph fusions.

``benchmarks/engine_graph.py`` measures both; ``DEFAULT_GRAPH`` is the faster one.
token_type_ids are always 0: the type-0 embedding is folded into the position table.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..choices import GraphVariant
from ..errors import ConversionError
from .family import Family, start_graph
from .fields import (
    CONFIG_LIMITS,
    activation_field,
    check_heads,
    eps_field,
    expect_mapping,
    refuse_decoder,
    size_field,
)
from .graph import (
    DEFAULT_GRAPH,
    EXACT_GELU,
    MASK_VALUE,
    GraphBuilder,
    activation,
    attention_context,
    finish_model,
    key_mask_bias,
    layer_norm,
    linear,
    shown,
    tanh_pooler,
)


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
class EncoderConfig(EncoderSizes):
    """The fields of a BERT-shaped ``config.json`` the shared encoder reads (each family's config
    class subclasses it, with its own defaults and extra fields)."""

    hidden_act: str
    layer_norm_eps: float
    max_position_embeddings: int
    type_vocab_size: int


def check_encoder_only(data: Mapping[str, Any], where: str) -> None:
    """Refuse what would make this graph compute something else: relative positions, a causal decoder."""
    position = data.get("position_embedding_type", "absolute")
    if position != "absolute":
        raise ConversionError(f"{where}: position_embedding_type {shown(position)} is not supported; only 'absolute'")
    refuse_decoder(data, where)


def encoder_fields(data: Any, where: str, *, model: str, base: Mapping[str, int],
                   defaults: Mapping[str, int], activation: str = "gelu") -> dict[str, Any]:
    """:class:`EncoderConfig`'s constructor arguments from a config.json with BERT's field names, validated.
    ``model``, ``base`` and ``defaults``: the family's name, its base model's sizes, transformers' defaults."""
    expect_mapping(data, where, model)
    check_encoder_only(data, where)
    act = activation_field(data, where, default=activation)
    sizes = {name: size_field(data, name, where, model=model, base=base, defaults=defaults) for name in CONFIG_LIMITS}
    check_heads(sizes["hidden_size"], sizes["num_attention_heads"], where, model=model)
    return {
        "vocab_size": sizes["vocab_size"],
        "hidden_size": sizes["hidden_size"],
        "num_layers": sizes["num_hidden_layers"],
        "num_heads": sizes["num_attention_heads"],
        "intermediate_size": sizes["intermediate_size"],
        "hidden_act": act,
        "layer_norm_eps": eps_field(data, where),
        "max_position_embeddings": sizes["max_position_embeddings"],
        "type_vocab_size": sizes["type_vocab_size"],
    }


def encoder_sizes(config: Any) -> dict[str, int]:
    """The layout's dimension names -> sizes, by BERT's config.json names."""
    return {"vocab_size": config.vocab_size, "hidden_size": config.hidden_size,
            "intermediate_size": config.intermediate_size,
            "max_position_embeddings": config.max_position_embeddings, "type_vocab_size": config.type_vocab_size}


@dataclass(frozen=True)
class EncoderPlan:
    """How one encoder family's graph differs from the plain post-LayerNorm encoder.

    ``model_type``: the graph's name and the metadata's ``model_type``.

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

    model_type: str
    token_types: bool
    position_offset: int = 0
    projection: bool = False
    layer_prefixes: tuple[str, ...] | None = None
    size_names: tuple[tuple[str, str], ...] = ()

    def prefixes(self, num_layers: int) -> tuple[str, ...]:
        return self.layer_prefixes or tuple(f"encoder.layer.{n}." for n in range(num_layers))


def feed_forward_layout(p: str, h: str, i: str) -> dict[str, tuple[str, ...]]:
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


def encoder_layout(num_layers: int, *, with_pooler: bool, plan: EncoderPlan) -> dict[str, tuple[str, ...]]:
    """The builder's weight names (BertModel's, as ``plan`` varies them), each dimension named by the
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
            **feed_forward_layout(p, h, i),
        })
    if with_pooler:
        layout["pooler.dense.weight"] = (h, h)
        layout["pooler.dense.bias"] = (h,)
    return layout


def _layer_standard(b: GraphBuilder, x: str, w: Mapping[str, np.ndarray], p: str, cfg: Any, mask_bias: str, out: str) -> str:
    context = attention_context(b, x, w, p, cfg, [f"{p}attention.self.{n}" for n in ("query", "key", "value")],
                                mask_bias)
    attn = linear(b, context, w, f"{p}attention.output.dense")
    h1 = layer_norm(b, b.op("Add", [attn, x]), w, f"{p}attention.output.LayerNorm", cfg.layer_norm_eps)
    inter = activation(b, linear(b, h1, w, f"{p}intermediate.dense"), cfg.hidden_act)
    ffn = linear(b, inter, w, f"{p}output.dense")
    return layer_norm(b, b.op("Add", [ffn, h1]), w, f"{p}output.LayerNorm", cfg.layer_norm_eps, out=out)


def _layer_fused(b: GraphBuilder, x: str, w: Mapping[str, np.ndarray], p: str, cfg: Any, mask_index: str, out: str) -> str:
    ms = "com.microsoft"
    parts = [f"{p}attention.self.{name}" for name in ("query", "key", "value")]
    qkv_w, qkv_b = f"{p}attention.qkv.weight_t", f"{p}attention.qkv.bias"
    if qkv_w not in b:  # a shared layer (ALBERT) packs its weights once
        b.const(qkv_w, np.concatenate([w[q + ".weight"].T for q in parts], axis=1))
        b.const(qkv_b, np.concatenate([w[q + ".bias"] for q in parts]))
    context = b.op("Attention", [x, qkv_w, qkv_b, mask_index], domain=ms,
                   num_heads=cfg.num_heads, mask_filter_value=MASK_VALUE)
    attn = linear(b, context, w, f"{p}attention.output.dense", bias=False)
    h1 = residual_layer_norm(b, attn, x, w, p + "attention.output", cfg.layer_norm_eps)
    inter = linear(b, h1, w, f"{p}intermediate.dense", bias=False)
    bias = b.const(f"{p}intermediate.dense.bias", w[f"{p}intermediate.dense.bias"])
    if cfg.hidden_act == "relu":
        inter = b.op("Relu", [b.op("Add", [inter, bias])])
    else:  # BiasGelu is erf GELU; FastGelu is the tanh form, exactly what gelu_new computes
        inter = b.op("BiasGelu" if cfg.hidden_act in EXACT_GELU else "FastGelu", [inter, bias], domain=ms)
    ffn = linear(b, inter, w, f"{p}output.dense", bias=False)
    return residual_layer_norm(b, ffn, h1, w, p + "output", cfg.layer_norm_eps, out=out)


def residual_layer_norm(b: GraphBuilder, x: str, skip: str, w: Mapping[str, np.ndarray], p: str, eps: float,
                         out: str | None = None) -> str:
    """LayerNorm(x + dense bias + skip) as Add + standard LayerNormalization.

    Not com.microsoft SkipLayerNormalization: its onnxruntime 1.32 CPU kernel measured 8% slower
    end to end on small BERT (benchmarks/engine_graph.py); the runtime also turns off
    onnxruntime's SkipLayerNormFusion so the Adds stay as they are (runtime.DISABLED_OPTIMIZERS).
    """
    biased = b.op("Add", [x, b.const(f"{p}.dense.bias", w[f"{p}.dense.bias"])])
    return layer_norm(b, b.op("Add", [biased, skip]), w, f"{p}.LayerNorm", eps, out=out)


def _embeddings(b: GraphBuilder, w: Mapping[str, np.ndarray], config: Any, plan: EncoderPlan) -> str:
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
        return layer_norm(b, summed, w, "embeddings.LayerNorm", config.layer_norm_eps, out="hidden_state_0")
    normed = layer_norm(b, summed, w, "embeddings.LayerNorm", config.layer_norm_eps)
    projected = linear(b, normed, w, "embeddings.projection", bias=False)
    return b.op("Add", [projected, b.const("embeddings.projection.bias", w["embeddings.projection.bias"])],
                out="hidden_state_0")


def build_encoder(config: Any, weights: Mapping[str, np.ndarray], plan: EncoderPlan, family: Family, *,
                  graph: GraphVariant = DEFAULT_GRAPH, metadata: Mapping[str, Any] | None = None):
    """The ONNX ``ModelProto`` of the post-LayerNorm encoder as ``plan`` says, for ``weights`` by the
    builder's names (checked against ``family``'s layout first). ``config`` has the fields the graph
    reads: hidden_size, num_layers, num_heads, head_size, hidden_act, layer_norm_eps,
    max_position_embeddings (and embedding_size with a projection)."""
    from onnx import TensorProto

    b, w, with_pooler = start_graph(family, config, weights, graph)

    x = _embeddings(b, w, config, plan)
    if graph == "fused":
        mask = b.op("Cast", ["attention_mask"], to=TensorProto.INT32)
        layer = _layer_fused
    else:  # additive mask [B, 1, 1, S]: 0 for real tokens, large negative for padding
        mask = key_mask_bias(b)
        layer = _layer_standard
    for n, prefix in enumerate(plan.prefixes(config.num_layers)):
        last = n == config.num_layers - 1
        x = layer(b, x, w, prefix, config, mask, "last_hidden_state" if last else f"hidden_state_{n + 1}")
    b.op("Identity", [x], out=f"hidden_state_{config.num_layers}")

    if with_pooler:
        tanh_pooler(b, x, w)
    # the Slice of the position table hides that its length is the sequence length; saying so
    # lets onnxruntime's fusions match whichever outputs are declared
    width = config.embedding_size if plan.projection else config.hidden_size
    info = {**asdict(config), "model_type": plan.model_type,
            # the longest input, framing included: the rows a sequence can use from its offset on
            "max_position_embeddings": config.max_position_embeddings - plan.position_offset}
    return finish_model(b, plan.model_type, hidden_size=config.hidden_size, num_layers=config.num_layers, graph=graph,
                        with_pooler=with_pooler, ms_domain=graph == "fused", info=info, metadata=metadata,
                        value_info=[("embeddings_sum", ["batch", "sequence", width])])


_KEEP_PREFIXES = ("embeddings.", "encoder.", "pooler.")


def tf_names(key: str) -> str:
    """TF-era LayerNorm names: ``gamma``/``beta`` are ``weight``/``bias``."""
    if key.endswith(".gamma"):
        return key[: -len("gamma")] + "weight"
    if key.endswith(".beta"):
        return key[: -len("beta")] + "bias"
    return key


def rename_weight(stored: str, prefix: str, keep: tuple[str, ...] = _KEEP_PREFIXES) -> str | None:
    """The builder's (BertModel's) name for a stored weight: ``prefix`` stripped, TF-era ``gamma``/``beta`` renamed;
    ``None`` for what BertModel does not use (``cls.*`` heads, the ``position_ids`` and
    ``token_type_ids`` buffers) and for anything outside ``keep``."""
    key = tf_names(stored.removeprefix(prefix))
    if key.endswith(("position_ids", "token_type_ids")) or not key.startswith(keep):
        return None
    return key


def encoder_family(*, name: str, model_types: tuple[str, ...], config_class: type,
                   rename: Callable[[str], str | None], sizes: Callable[[Any], dict[str, int]],
                   plan: Callable[[Any], EncoderPlan], **options: Any) -> Family:
    """A :class:`Family` built on :func:`build_encoder`: ``plan(config)`` says how its encoder
    differs from the plain encoder, and the weight layout, the graph and the usable length
    (``max_position_embeddings`` less the plan's ``position_offset``) follow it. ``options``: the
    other :class:`Family` fields (``layers_field``, ``pooler_weight``, ``tokenizer_fallback``, ...)."""

    def build_model(config: Any, weights: Mapping[str, np.ndarray], *, graph: GraphVariant = DEFAULT_GRAPH,
                    metadata: Mapping[str, Any] | None = None):
        return build_encoder(config, weights, plan(config), family, graph=graph, metadata=metadata)

    def layout(config: Any, with_pooler: bool) -> dict[str, tuple[str, ...]]:
        return encoder_layout(config.num_layers, with_pooler=with_pooler, plan=plan(config))

    def max_length(config: Any) -> int:
        return config.max_position_embeddings - plan(config).position_offset

    family = Family(name=name, model_types=model_types, config_class=config_class, rename=rename, layout=layout,
                    sizes=sizes, build_model=build_model, **{"max_length": max_length, **options})
    return family
