"""XLNet checkpoints (``model_type`` 'xlnet', e.g. xlnet-base-cased) as ONNX.

The graph is the content stream of transformers' ``XLNetModel`` (``modeling_xlnet.py``) as it
runs for embeddings: no ``mems``, ``perm_mask`` or ``target_mapping`` (so no query stream and no
``mask_emb``), ``attn_type`` 'bi', ``bi_data`` false. Step for step:

- ``hidden_state_0`` is the word embedding alone (no position table, no LayerNorm): XLNet's
  ``hidden_states[0]``; ``hidden_state_n`` is layer n's output, the last one ``last_hidden_state``.
- Each layer is post-LayerNorm: relative attention, residual + LayerNorm, position-wise feed-forward
  (``ff_activation``), residual + LayerNorm. The attention scores are
  ``((q + r_w_bias) k  +  rel_shift((q + r_r_bias) k_r)  +  segment term) / sqrt(d_head)``, where
  ``k_r`` projects the sinusoid of the relative positions ``S, S-1, ..., -S+1`` (each clamped to
  ``clamp_len`` when it is positive) with the layer's ``r``. The sinusoid table is computed here in
  numpy, in float32 as transformers computes it, for the :data:`MAX_POSITIONS` longest sequence;
  the graph slices the rows of its sequence length and does transformers' ``rel_shift_bnij`` with
  the same reshapes. Only distances enter, so where the padding is does not matter: a real token's
  states are the same whether its row is padded right (our input) or left (XLNet's tokenizer).
- The stored ``q``/``k``/``v``/``o``/``r`` are [d_model, n_head, d_head] tensors (einsum layout),
  used here as [d_model, n_head * d_head] matrices (``o`` transposed).

Segments. The graph gets no token types. What it computes by default is what sentence-transformers
and transformers' feature-extraction pipeline give with transformers 5: XLNet's tokenizer there
returns no ``token_type_ids`` (its ``model_input_names`` are ``input_ids``, ``attention_mask``), so
``XLNetModel`` runs without the segment term; Spark NLP's XlnetEmbeddings feeds segment ids of all
0, which is the same (a segment term that is equal for every key of a query cancels in softmax).
With transformers 4 the tokenizer returned ``token_type_ids`` ``0 ... 0 0 2`` for
``pieces <sep> <cls>`` (the original XLNet's convention: ``<cls>`` in a segment of its own), and
those were passed on. ``XLNetConfig(cls_segment=True)`` builds that graph: the segment term
``(q_i + r_s_bias) . seg_embed[s]``, ``s`` = 1 where exactly one of tokens i, j is the final
``<cls>``. The final <cls> is derived, as the tokenizer assigns it: the row's last real token,
if its id is ``cls_token_id`` (config.json's when it has one, else 3, the ``<cls>`` of every
XLNet SentencePiece vocabulary); a ``<cls>`` elsewhere keeps type 0, a row without framing has
one segment. Only ``seg_embed[1] - seg_embed[0]`` is used: the ``seg_embed[0]`` part is the same
for every key of a query, so softmax is unchanged without it. (Spark NLP also frames the text
otherwise, as ``<cls> pieces <sep>``: its numbers differ from transformers' whatever the graph.)

Positions. XLNet has no position table and transformers no length limit (its config's
``max_position_embeddings`` is -1); the model was pretrained on 512-token sequences and Spark NLP
caps XlnetEmbeddings at 512, so the graph takes :data:`MAX_POSITIONS` = 512 tokens, framing
included (its metadata's ``max_position_embeddings``); the pipeline windows longer texts.

Graph variants: attention is built from standard ops in both (no com.microsoft attention kernel
takes XLNet's relative and segment terms); ``"fused"`` differs only in its feed-forward activation
(com.microsoft ``BiasGelu`` for erf GELU, ``FastGelu`` for the tanh forms). ``ff_activation``
may also be 'silu'/'swish' (x * sigmoid(x), which transformers' XLNet accepts; computed here by
:func:`silu`, a helper of this module).
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
    layer_norm,
    linear,
    sequence_length,
    shown,
)

MAX_POSITIONS = 512  # XLNet's pretraining length; Spark NLP's XlnetEmbeddings cap
CLS_ID = 3  # <cls> in XLNet's SentencePiece vocabularies (<unk> <s> </s> <cls> <sep> <pad> <mask> <eod> <eop>)
SILU = ("silu", "swish")
FF_ACTIVATIONS = ACTIVATIONS + SILU
SEGMENTS = "seg_embed rows (always 2)"  # the layout's name for seg_embed's first dimension
_KEEP_PREFIXES = ("word_embedding.", "layer.")
# config.json field -> (the size it is, transformers' XLNetConfig default when the field is missing)
_SIZE_FIELDS = {"vocab_size": ("vocab_size", 32000), "d_model": ("hidden_size", 1024),
                "n_layer": ("num_hidden_layers", 24), "n_head": ("num_attention_heads", 16),
                "d_inner": ("intermediate_size", 4096)}
_XLNET_BASE = {"vocab_size": 32000, "d_model": 768, "n_layer": 12, "n_head": 12, "d_inner": 3072}


@dataclass(frozen=True)
class XLNetConfig(EncoderSizes):
    """The fields of an XLNet ``config.json`` the graph depends on (``d_model`` is ``hidden_size``,
    ``n_layer`` ``num_layers``, ``n_head`` ``num_heads``, ``d_inner`` ``intermediate_size``).

    ``clamp_len``: relative distances are clamped to it when positive. ``max_position_embeddings``:
    the longest sequence the graph takes (XLNet has no table; :data:`MAX_POSITIONS`).
    ``cls_segment``: whether the final ``<cls>`` is in a segment of its own, as transformers 4's
    tokenizer said (``token_type_ids`` ``0 ... 0 2``); ``False`` (the default, and what
    :meth:`from_dict` gives): no segment term, as transformers 5 and Spark NLP run XLNet.
    ``cls_token_id``: the id of that ``<cls>``.
    """

    hidden_act: str = "gelu"
    layer_norm_eps: float = 1e-12
    clamp_len: int = -1
    cls_token_id: int = CLS_ID
    max_position_embeddings: int = MAX_POSITIONS
    cls_segment: bool = False

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "config.json") -> XLNetConfig:
        """Validate a transformers XLNet config; errors name the field, its allowed values and the fix."""
        expect_mapping(data, where, "XLNet")
        refuse_decoder(data, where)
        if "vocab_size" not in data and "n_token" in data:  # the field's name before transformers 2.x
            data = {**data, "vocab_size": data["n_token"]}
        sizes = {field: size_field(data, field, where, model="XLNet", base=_XLNET_BASE, kind=kind,
                                   defaults={field: default})
                 for field, (kind, default) in _SIZE_FIELDS.items()}
        check_heads(sizes["d_model"], sizes["n_head"], where, model="XLNet", fields=("d_model", "n_head"))
        _check_d_head(data, sizes, where)
        _check_attention(data, where)
        return cls(
            vocab_size=sizes["vocab_size"],
            hidden_size=sizes["d_model"],
            num_layers=sizes["n_layer"],
            num_heads=sizes["n_head"],
            intermediate_size=sizes["d_inner"],
            hidden_act=activation_field(data, where, field="ff_activation", choices=FF_ACTIVATIONS),
            layer_norm_eps=eps_field(data, where, model="XLNet"),
            clamp_len=_clamp_len_field(data, where),
            cls_token_id=_cls_field(data, where, sizes["vocab_size"]),
        )


def _check_d_head(data: Mapping[str, Any], sizes: Mapping[str, int], where: str) -> None:
    """transformers requires ``d_head == d_model // n_head`` (a missing or null d_head is that)."""
    want = sizes["d_model"] // sizes["n_head"]
    value = data.get("d_head")
    if value is not None and (type(value) is not int or value != want):
        raise ConversionError(
            f"{where}: d_head is {shown(value)}, but XLNet's d_head must be d_model // n_head = {want} "
            f"(xlnet-base-cased: 768 // 12 = 64); fix d_head, d_model or n_head in {where}"
        )


def _check_attention(data: Mapping[str, Any], where: str) -> None:
    """Only the bidirectional content stream: 'uni' is Transformer-XL's causal mask, and ``bi_data``
    runs half the batch with reversed positions."""
    attn_type = data.get("attn_type", "bi")
    if attn_type != "bi":
        raise ConversionError(
            f"{where}: attn_type {shown(attn_type)} is not supported; nlu_lite converts XLNet's bidirectional "
            "attention (attn_type 'bi', as every released XLNet has). 'uni' is a causal Transformer-XL mask"
        )
    if flag_field(data, "bi_data", where, default=False):
        raise ConversionError(
            f"{where}: bi_data is true; it makes XLNet run half of each batch with reversed positions (a "
            "pretraining setting). nlu_lite converts bi_data false (xlnet-base-cased's value): set it in "
            f"{where} if the checkpoint is meant for inference"
        )


def _clamp_len_field(data: Mapping[str, Any], where: str) -> int:
    value = data.get("clamp_len", -1)
    if type(value) is not int:
        raise ConversionError(
            f"{where}: clamp_len is {shown(value)}, but it must be a whole number (-1: no clamping, as in "
            f"xlnet-base-cased); fix it in {where}"
        )
    return value


def _cls_field(data: Mapping[str, Any], where: str, vocab_size: int) -> int:
    value = data.get("cls_token_id")
    if value is None:
        return CLS_ID
    if type(value) is not int or not 0 <= value < vocab_size:
        raise ConversionError(
            f"{where}: cls_token_id is {shown(value)}, but it must be a token id from 0 to {vocab_size - 1} "
            f"(XLNet's <cls> is {CLS_ID}); fix it in {where} or remove it"
        )
    return value


def _sizes(config: XLNetConfig) -> dict[str, int]:
    return {"vocab_size": config.vocab_size, "d_model": config.hidden_size, "n_head": config.num_heads,
            "d_head": config.head_size, "d_inner": config.intermediate_size, SEGMENTS: 2}


def _layout(config: XLNetConfig, with_pooler: bool = False) -> dict[str, tuple[str, ...]]:
    """XLNetModel's weight names the graph reads, each dimension named by its config field
    (the attention tensors in their stored einsum layout; the feed-forward Linears [out, in])."""
    h, n, d, i = "d_model", "n_head", "d_head", "d_inner"
    layout: dict[str, tuple[str, ...]] = {"word_embedding.weight": ("vocab_size", h)}
    for layer in range(config.num_layers):
        p = f"layer.{layer}."
        for part in ("q", "k", "v", "o", "r"):
            layout[f"{p}rel_attn.{part}"] = (h, n, d)
        for part in ("r_w_bias", "r_r_bias") + (("r_s_bias", "seg_embed") if config.cls_segment else ()):
            layout[f"{p}rel_attn.{part}"] = (SEGMENTS, n, d) if part == "seg_embed" else (n, d)
        layout.update({
            f"{p}rel_attn.layer_norm.weight": (h,),
            f"{p}rel_attn.layer_norm.bias": (h,),
            f"{p}ff.layer_1.weight": (i, h),
            f"{p}ff.layer_1.bias": (i,),
            f"{p}ff.layer_2.weight": (h, i),
            f"{p}ff.layer_2.bias": (h,),
            f"{p}ff.layer_norm.weight": (h,),
            f"{p}ff.layer_norm.bias": (h,),
        })
    return layout


def rename_weight(stored: str) -> str | None:
    """XLNetModel's name for a stored weight: ``transformer.`` (XLNetLMHeadModel & co.) stripped;
    ``None`` for what the content stream does not use (``mask_emb``, ``lm_loss``, ``sequence_summary``,
    ``logits_proj``, question-answering heads)."""
    key = stored.removeprefix("transformer.")
    return key if key.startswith(_KEEP_PREFIXES) else None


# --- relative positions --------------------------------------------------------------------


def relative_sinusoids(d_model: int, positions: int = MAX_POSITIONS, clamp_len: int = -1) -> np.ndarray:
    """[2 * positions, d_model]: row t is XLNet's sinusoid of relative position ``positions - t``
    (``positions`` down to ``-positions + 1``), clamped to ``clamp_len`` when it is positive;
    float32 step for step as ``XLNetModel.relative_positional_encoding`` computes it."""
    exponent = np.arange(0, d_model, 2, dtype=np.int64).astype(np.float32) / np.float32(d_model)
    # torch's float32 pow is (nearly always) the correctly rounded power: numpy's float32 pow is not
    power = np.power(10000.0, exponent.astype(np.float64)).astype(np.float32)
    inv_freq = np.float32(1.0) / power
    pos = np.arange(positions, -positions, -1, dtype=np.int64).astype(np.float32)
    if clamp_len > 0:
        pos = np.clip(pos, -clamp_len, clamp_len)
    angles = pos[:, None] * inv_freq[None, :]
    return np.concatenate([np.sin(angles), np.cos(angles)], axis=-1).astype(np.float32)


def _position_rows(b: GraphBuilder, config: XLNetConfig, seq_len: str) -> str:
    """[2S, d_model]: the table's rows for relative positions S .. -S+1 (transformers' ``pos_emb``)."""
    table = b.const("relative_sinusoids", relative_sinusoids(config.hidden_size, config.max_position_embeddings,
                                                             config.clamp_len))
    middle = b.const("position_middle", np.array([config.max_position_embeddings], np.int64))
    start, end = b.op("Sub", [middle, seq_len]), b.op("Add", [middle, seq_len])
    return b.op("Slice", [table, start, end, b.const("axis_0", np.array([0], np.int64))], out="position_rows")


def _rel_shift(b: GraphBuilder, scores: str, seq_len: str) -> str:
    """transformers' ``rel_shift_bnij``: [B, N, S, 2S] -> [B, N, S, S], where entry (i, j) is the
    column of relative position i - j."""
    keep, whole = b.const("zeros_2", np.array([0, 0], np.int64)), b.const("minus_one", np.array([-1], np.int64))
    tall = b.op("Reshape", [scores, b.op("Concat", [keep, whole, seq_len], axis=0)])  # [B, N, 2S, S]
    big = b.const("int64_max", np.array([np.iinfo(np.int64).max], np.int64))
    one, two, three = (b.const(f"axis_{a}", np.array([a], np.int64)) for a in (1, 2, 3))
    dropped = b.op("Slice", [tall, one, big, two])  # the first row off: [B, N, 2S - 1, S]
    wide = b.op("Reshape", [dropped, b.op("Concat", [keep, seq_len, whole], axis=0)])  # [B, N, S, 2S - 1]
    return b.op("Slice", [wide, b.const("zero_i64", np.array([0], np.int64)), seq_len, three])


# --- segments ------------------------------------------------------------------------------


def _segment_pairs(b: GraphBuilder, config: XLNetConfig) -> str:
    """[B, 1, S, S] float: 1 where exactly one of tokens i, j is the final ``<cls>`` (its segment
    differs), else 0. The final <cls>: the last real token (its next position is padding or the
    end; so right or left padding alike), if its id is ``cls_token_id``."""
    from onnx import TensorProto

    mask = b.op("Cast", ["attention_mask"], to=TensorProto.FLOAT)
    big = b.const("int64_max", np.array([np.iinfo(np.int64).max], np.int64))
    after = b.op("Slice", [mask, b.const("axis_1", np.array([1], np.int64)), big, "axis_1"])
    next_real = b.op("Pad", [after, b.const("pad_end", np.array([0, 0, 0, 1], np.int64))])  # [B, S]: mask[j + 1]
    last = b.op("Mul", [mask, b.op("Sub", [b.scalar(1.0), next_real])])
    is_cls = b.op("Cast", [b.op("Equal", ["input_ids", b.scalar(config.cls_token_id, np.int64)])], to=TensorProto.FLOAT)
    final_cls = b.op("Mul", [last, is_cls], out="cls_segment")  # [B, S]: 1 at the final <cls>
    rows = b.op("Unsqueeze", [final_cls, b.const("axes_1_3", np.array([1, 3], np.int64))])  # [B, 1, S, 1]
    cols = b.op("Unsqueeze", [final_cls, b.const("axes_1_2", np.array([1, 2], np.int64))])  # [B, 1, 1, S]
    return b.op("Abs", [b.op("Sub", [rows, cols])], out="segment_differs")


# --- layers ------------------------------------------------------------------------------


def silu(b: GraphBuilder, x: str) -> str:
    """x * sigmoid(x): transformers' 'silu' / 'swish'."""
    return b.op("Mul", [x, b.op("Sigmoid", [x])])


def _matrix(w: Mapping[str, np.ndarray], name: str, *, transpose: bool = False) -> np.ndarray:
    """A stored [d_model, n_head, d_head] tensor as [d_model, n_head * d_head] (``transpose``: its transpose)."""
    array = w[name].reshape(w[name].shape[0], -1)
    return np.ascontiguousarray(array.T if transpose else array)


def _heads(b: GraphBuilder, x: str, w: Mapping[str, np.ndarray], name: str, cfg: XLNetConfig, perm: list[int]) -> str:
    """``x`` [..., d_model] times the stored projection ``name``, split into heads and transposed by ``perm``."""
    split = b.const("split_heads", np.array([0, 0, cfg.num_heads, cfg.head_size], np.int64))
    projected = b.op("MatMul", [x, b.const(name + ".matrix", _matrix(w, name))])
    return b.op("Transpose", [b.op("Reshape", [projected, split])], perm=perm)


def _plus_bias(b: GraphBuilder, q: str, w: Mapping[str, np.ndarray], name: str) -> str:
    """``q`` [B, N, S, D] + a stored [N, D] bias (as [N, 1, D])."""
    return b.op("Add", [q, b.const(name + ".by_head", w[name][:, None, :])])


def _attention(b: GraphBuilder, x: str, w: Mapping[str, np.ndarray], p: str, cfg: XLNetConfig, positions: str,
               segments: str, mask_bias: str, seq_len: str) -> str:
    """XLNet's relative attention of ``x`` [B, S, d_model], before the residual: the output projection's
    result. ``segments``: :func:`_segment_pairs`, or ``""`` for no segment term."""
    a = f"{p}rel_attn."
    q = _heads(b, x, w, a + "q", cfg, [0, 2, 1, 3])  # [B, N, S, D]
    k = _heads(b, x, w, a + "k", cfg, [0, 2, 3, 1])  # [B, N, D, S]
    v = _heads(b, x, w, a + "v", cfg, [0, 2, 1, 3])
    k_r = b.op("Transpose", [b.op("Reshape", [
        b.op("MatMul", [positions, b.const(a + "r.matrix", _matrix(w, a + "r"))]),
        b.const("split_positions", np.array([0, cfg.num_heads, cfg.head_size], np.int64))])], perm=[1, 2, 0])  # [N, D, 2S]
    content = b.op("MatMul", [_plus_bias(b, q, w, a + "r_w_bias"), k])
    position = _rel_shift(b, b.op("MatMul", [_plus_bias(b, q, w, a + "r_r_bias"), k_r]), seq_len)
    summed = b.op("Add", [content, position])
    if segments:
        seg_embed = w[a + "seg_embed"]
        seg_delta = b.const(a + "seg_embed.delta", (seg_embed[1] - seg_embed[0])[:, :, None])  # [N, D, 1]
        segment = b.op("Mul", [b.op("MatMul", [_plus_bias(b, q, w, a + "r_s_bias"), seg_delta]), segments])
        summed = b.op("Add", [summed, segment])
    scores = b.op("Add", [b.op("Mul", [summed, b.scalar(1.0 / math.sqrt(cfg.head_size))]), mask_bias])
    probs = b.op("Softmax", [scores], axis=-1)
    merge = b.const("merge_heads", np.array([0, 0, cfg.hidden_size], np.int64))
    context = b.op("Reshape", [b.op("Transpose", [b.op("MatMul", [probs, v])], perm=[0, 2, 1, 3]), merge])
    return b.op("MatMul", [context, b.const(a + "o.matrix_t", _matrix(w, a + "o", transpose=True))])


def _feed_forward(b: GraphBuilder, x: str, w: Mapping[str, np.ndarray], p: str, cfg: XLNetConfig, graph: str) -> str:
    """layer_2(act(layer_1(x))): BiasGelu / FastGelu in the fused graph, plain ops otherwise."""
    f = f"{p}ff."
    if cfg.hidden_act in SILU:
        inner = silu(b, linear(b, x, w, f + "layer_1"))
    elif graph != "fused" or cfg.hidden_act == "relu":
        inner = activation(b, linear(b, x, w, f + "layer_1"), cfg.hidden_act)
    else:
        bias = b.const(f + "layer_1.bias", w[f + "layer_1.bias"])
        op = "BiasGelu" if cfg.hidden_act in EXACT_GELU else "FastGelu"  # FastGelu is exactly gelu_new's tanh form
        inner = b.op(op, [linear(b, x, w, f + "layer_1", bias=False), bias], domain=MS_DOMAIN)
    return linear(b, inner, w, f + "layer_2")


def _layer(b: GraphBuilder, x: str, w: Mapping[str, np.ndarray], p: str, cfg: XLNetConfig, graph: str,
           context: tuple[str, str, str, str], out: str) -> str:
    """One XLNetLayer (content stream): attention, residual + LayerNorm, feed-forward, residual + LayerNorm."""
    eps = cfg.layer_norm_eps
    attn = _attention(b, x, w, p, cfg, *context)
    h1 = layer_norm(b, b.op("Add", [attn, x]), w, f"{p}rel_attn.layer_norm", eps)
    ffn = _feed_forward(b, h1, w, p, cfg, graph)
    return layer_norm(b, b.op("Add", [ffn, h1]), w, f"{p}ff.layer_norm", eps, out=out)


def build_model(config: XLNetConfig, weights: Mapping[str, np.ndarray], *, graph: GraphVariant = DEFAULT_GRAPH,
                metadata: Mapping[str, Any] | None = None):
    """The ONNX ``ModelProto`` for ``config`` and XLNetModel-named ``weights``."""
    b, w, _ = start_graph(FAMILY, config, weights, graph)

    seq_len = sequence_length(b)
    x = b.op("Gather", [b.const("word_embedding.weight", w["word_embedding.weight"]), "input_ids"], out="hidden_state_0")
    segments = _segment_pairs(b, config) if config.cls_segment else ""
    context = (_position_rows(b, config, seq_len), segments, key_mask_bias(b), seq_len)
    for n in range(config.num_layers):
        last = n == config.num_layers - 1
        x = _layer(b, x, w, f"layer.{n}.", config, graph, context,
                   "last_hidden_state" if last else f"hidden_state_{n + 1}")
    b.op("Identity", [x], out=f"hidden_state_{config.num_layers}")

    uses_ms = any(node.domain == MS_DOMAIN for node in b.nodes)
    info = {**asdict(config), "model_type": "xlnet", "position_encoding": "relative sinusoid"}
    return finish_model(b, "xlnet", hidden_size=config.hidden_size, num_layers=config.num_layers, graph=graph,
                        with_pooler=False, ms_domain=uses_ms, info=info, metadata=metadata,
                        value_info=[("position_rows", ["sequence2", config.hidden_size])])


FAMILY = Family(
    name="XLNet",
    model_types=("xlnet",),
    config_class=XLNetConfig,
    rename=rename_weight,
    layout=_layout,
    sizes=_sizes,
    build_model=build_model,
    pooler_weight="pooler.dense.weight",  # never present: XLNet has no pooler (rename drops its heads)
    layers_field="n_layer",
    layers_prefix="layer.",
    class_token_last=True,  # pieces <sep> <cls>: the summary token ends the sequence
)
