"""The ONNX building blocks every family's graph is made of: no model knowledge here.

:class:`GraphBuilder` collects nodes and initializers (each tensor stored once); the functions
below add the pieces families share (a Linear, a LayerNorm, an activation, multi-head attention
from standard ops, the additive key mask) and :func:`finish_model` declares the interface every
graph has (docs/DESIGN.md): inputs ``input_ids`` / ``attention_mask`` int64 [batch, sequence];
outputs ``last_hidden_state``, ``hidden_state_0..L`` (transformers' ``hidden_states[i]``) and
``pooler_output`` when the checkpoint has a pooler; metadata under ``nlu_lite``.
"""
from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from ..choices import GraphVariant

DEFAULT_GRAPH: GraphVariant = "fused"  # measured faster: see benchmarks/engine_graph.py
OPSET = 17  # LayerNormalization is a standard op from 17
MS_OPSET = 1
MS_DOMAIN = "com.microsoft"
# Covers every family: bump whenever a graph for the same weights changes.
# 5: per-token int8 (convert/int8.py); 4: model_type in the metadata; 3: weights as external data
CONVERTER_VERSION = "5"
METADATA_KEY = "nlu_lite"

# transformers' hidden_act names -> how we compute them
EXACT_GELU = ("gelu",)
TANH_GELU = ("gelu_new", "gelu_pytorch_tanh", "gelu_fast")
ACTIVATIONS = EXACT_GELU + TANH_GELU + ("relu",)
MASK_VALUE = -10000.0  # added to masked keys' scores: exp() of it is 0 in float32


# A tensor this large never enters the graph's protobuf (which cannot hold 2 GB): the builder makes it an
# external-data tensor whose location names the array held here, and save_model writes it from the array itself
# (a 2M-word x 300 vector table: 2.4 GB, written once, never copied into the proto)
LARGE_TENSOR_BYTES = 1 << 30
PENDING_PREFIX = "nlu-lite-pending:"
_PENDING: dict[str, np.ndarray] = {}


def nlu_metadata(model: Any) -> dict[str, Any]:
    """A ModelProto's nlu_lite metadata (``METADATA_KEY``), or {} for a graph without it."""
    props = {p.key: p.value for p in model.metadata_props}
    return json.loads(props[METADATA_KEY]) if METADATA_KEY in props else {}


def pending_array(location: str) -> np.ndarray | None:
    """The array a pending external tensor's ``location`` names (removed from the registry), or None."""
    return _PENDING.pop(location[len(PENDING_PREFIX):], None) if location.startswith(PENDING_PREFIX) else None


class GraphBuilder:
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
        array = np.asarray(array)
        tensor = (self._pending(array, name) if array.nbytes >= LARGE_TENSOR_BYTES
                  else self.numpy_helper.from_array(np.asarray(array, order="C"), name))
        if name in self._consts:
            if self._consts[name] != tensor:
                raise ValueError(f"two different tensors named {name!r} in one graph")
            return name
        self._consts[name] = tensor
        self.initializers.append(tensor)
        return name

    def _pending(self, array: np.ndarray, name: str):
        """A tensor whose bytes stay in ``array`` until :func:`~nlu_lite.convert.store.save_model` writes them."""
        import uuid

        from onnx import TensorProto, helper

        token = uuid.uuid4().hex
        _PENDING[token] = np.ascontiguousarray(array)
        tensor = TensorProto()
        tensor.name = name
        tensor.data_type = helper.np_dtype_to_tensor_dtype(array.dtype)
        tensor.dims.extend(array.shape)
        tensor.data_location = TensorProto.EXTERNAL
        entry = tensor.external_data.add()
        entry.key, entry.value = "location", PENDING_PREFIX + token
        return tensor

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


def linear(b: GraphBuilder, x: str, weights: Mapping[str, np.ndarray], prefix: str, *, bias: bool = True) -> str:
    """``x @ W^T (+ b)`` for torch Linear ``prefix.weight`` [out, in] (and ``prefix.bias``)."""
    y = b.op("MatMul", [x, b.const(prefix + ".weight_t", weights[prefix + ".weight"].T)])
    return b.op("Add", [y, b.const(prefix + ".bias", weights[prefix + ".bias"])]) if bias else y


def layer_norm(b: GraphBuilder, x: str, weights: Mapping[str, np.ndarray], prefix: str, eps: float,
               out: str | None = None) -> str:
    """Standard ``LayerNormalization`` over the last axis with ``prefix.weight`` / ``prefix.bias``."""
    scale = b.const(prefix + ".weight", weights[prefix + ".weight"])
    shift = b.const(prefix + ".bias", weights[prefix + ".bias"])
    return b.op("LayerNormalization", [x, scale, shift], out=out, axis=-1, epsilon=eps)


def activation(b: GraphBuilder, x: str, act: str) -> str:
    """``act`` (one of :data:`ACTIVATIONS`) from standard ops, in the patterns onnxruntime fuses."""
    if act == "relu":
        return b.op("Relu", [x])
    if act in EXACT_GELU:  # x * 0.5 * (1 + erf(x / sqrt(2))): the pattern ORT fuses into Gelu
        erf = b.op("Erf", [b.op("Div", [x, b.scalar(math.sqrt(2.0))])])
        return b.op("Mul", [b.op("Mul", [x, b.op("Add", [erf, b.scalar(1.0)])]), b.scalar(0.5)])
    # tanh approximation: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
    cube = b.op("Mul", [b.op("Mul", [x, x]), x])
    inner = b.op("Add", [x, b.op("Mul", [cube, b.scalar(0.044715)])])
    tanh = b.op("Tanh", [b.op("Mul", [inner, b.scalar(math.sqrt(2 / math.pi))])])
    return b.op("Mul", [b.op("Mul", [x, b.op("Add", [tanh, b.scalar(1.0)])]), b.scalar(0.5)])


def attention_context(b: GraphBuilder, x: str, w: Mapping[str, np.ndarray], p: str, cfg: Any,
                      projections: Sequence[str], scores_bias: str) -> str:
    """Multi-head attention from standard ops, before the output projection: the query, key and
    value ``projections`` (weight name prefixes) of ``x``, softmax(q k^T / sqrt(d) + ``scores_bias``) v,
    heads merged back to [B, S, hidden]. ``cfg``: ``num_heads``, ``head_size``, ``hidden_size``."""
    heads, size = cfg.num_heads, cfg.head_size
    split_shape = b.const(f"{p}split_shape", np.array([0, 0, heads, size], np.int64))
    merge_shape = b.const(f"{p}merge_shape", np.array([0, 0, cfg.hidden_size], np.int64))

    def heads_of(name: str, perm: list[int]) -> str:
        return b.op("Transpose", [b.op("Reshape", [linear(b, x, w, name), split_shape])], perm=perm)

    query, key, value = projections
    q = heads_of(query, [0, 2, 1, 3])  # [B, N, S, D]
    k = heads_of(key, [0, 2, 3, 1])  # [B, N, D, S]
    v = heads_of(value, [0, 2, 1, 3])
    scores = b.op("Div", [b.op("MatMul", [q, k]), b.scalar(math.sqrt(size))])
    probs = b.op("Softmax", [b.op("Add", [scores, scores_bias])], axis=-1)
    return b.op("Reshape", [b.op("Transpose", [b.op("MatMul", [probs, v])], perm=[0, 2, 1, 3]), merge_shape])


def key_mask_bias(b: GraphBuilder) -> str:
    """The additive key mask [B, 1, 1, S] from ``attention_mask``: 0 for real tokens,
    :data:`MASK_VALUE` for padding (finite, so an all-padding row stays finite)."""
    from onnx import TensorProto

    mask_f = b.op("Cast", ["attention_mask"], to=TensorProto.FLOAT)
    inverted = b.op("Sub", [b.scalar(1.0), mask_f])
    return b.op("Unsqueeze", [b.op("Mul", [inverted, b.scalar(MASK_VALUE)]),
                              b.const("mask_axes", np.array([1, 2], np.int64))])


def sequence_length(b: GraphBuilder) -> str:
    """``input_ids``' sequence length as a 1-element int64 tensor (for slicing tables)."""
    one, two = b.const("one_i64", np.array([1], np.int64)), b.const("two_i64", np.array([2], np.int64))
    return b.op("Slice", [b.op("Shape", ["input_ids"]), one, two])


def tanh_pooler(b: GraphBuilder, x: str, w: Mapping[str, np.ndarray]) -> str:
    """BERT's pooler: tanh(dense(first position's state)) as ``pooler_output``."""
    first = b.op("Gather", [x, b.scalar(0, np.int64)], axis=1)
    return b.op("Tanh", [linear(b, first, w, "pooler.dense")], out="pooler_output")


def finish_model(b: GraphBuilder, name: str, *, hidden_size: int, num_layers: int, graph: GraphVariant,
                 with_pooler: bool, ms_domain: bool, info: Mapping[str, Any],
                 metadata: Mapping[str, Any] | None = None,
                 value_info: Iterable[tuple[str, Sequence[Any]]] = ()):
    """The ``ModelProto`` of ``b``'s nodes with nlu_lite's interface: the inputs, ``last_hidden_state``,
    ``hidden_state_0..num_layers`` (and ``pooler_output`` when ``with_pooler``), opset 17 (plus
    com.microsoft when ``ms_domain``). ``info``: the family's metadata (its config, ``model_type``,
    the usable ``max_position_embeddings``); the common keys and ``metadata`` are added on top.
    ``value_info``: (name, float32 shape) of intermediates whose shape helps onnxruntime's fusions."""
    from onnx import TensorProto, helper

    dims = ["batch", "sequence", hidden_size]
    outputs = [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, dims)]
    outputs += [helper.make_tensor_value_info(f"hidden_state_{i}", TensorProto.FLOAT, dims) for i in range(num_layers + 1)]
    if with_pooler:
        outputs.append(helper.make_tensor_value_info("pooler_output", TensorProto.FLOAT, ["batch", hidden_size]))
    inputs = [helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", "sequence"]) for n in ("input_ids", "attention_mask")]
    known = [helper.make_tensor_value_info(n, TensorProto.FLOAT, list(shape)) for n, shape in value_info]
    graph_proto = helper.make_graph(b.nodes, name, inputs, outputs, initializer=b.initializers,
                                    value_info=known or None)
    opsets = [helper.make_opsetid("", OPSET)] + ([helper.make_opsetid(MS_DOMAIN, MS_OPSET)] if ms_domain else [])
    model = helper.make_model(graph_proto, opset_imports=opsets, producer_name="nlu_lite", producer_version=CONVERTER_VERSION)
    model.ir_version = 8  # readable by onnxruntime >= 1.14
    full = {**info, "has_pooler": with_pooler, "graph": graph, "converter_version": CONVERTER_VERSION, "opset": OPSET,
            **(metadata or {})}
    helper.set_model_props(model, {METADATA_KEY: json.dumps(full, sort_keys=True)})
    return model


def shown(value: Any) -> str:
    """``repr(value)`` cut to 60 characters, for error messages quoting a config's value."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
