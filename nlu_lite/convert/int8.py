"""Dynamic int8 for nlu_lite's ONNX graphs: one activation scale per token, everywhere.

onnxruntime's ``quantize_dynamic`` gives every MatMul ONE activation scale per call, over the
whole ``[batch * sequence, K]`` input, so a single outlier token coarsens every token of the
batch, and a text's vector depends on what else is in its call (all-MiniLM-L6-v2: a sentence
alone vs inside 260 others, up to 0.034 apart). Here every activation is quantised per token,
from that token's own values: integer products are exact and every other step is elementwise or
per row, so a text's int8 vectors are the same bits whatever shares its batch, as fp32's are. On all-MiniLM-L6-v2 that costs per-token cosine to fp32 0.991 mean, 0.952 min
(``benchmarks/int8.md``). Measured per MatMul (one quantised at a time), the error sits in the
feed-forward MatMuls and, less, in the QKV projection; the attention output projection is
nearly free at any granularity. So each weight MatMul is quantised by what feeds it:

- a LayerNorm output (QKV, feed-forward input, ELECTRA/ALBERT's projection): its outliers are
  whole channels (the same few of 384 in every token), which no per-token scale fixes. They are
  first divided out, SmoothQuant-style: ``x / s`` into the MatMul, ``s * W`` into the weights,
  ``s = amax(x)^0.5 / amax(W)^0.5`` per input channel. ``amax(x)`` is calibrated once, here, on
  seeded random token ids: the outlier channels are the model's own, not the text's (MiniLM,
  all MatMuls per token: mean cosine 0.99864 with this calibration, 0.99864 calibrated on the
  benchmark's real text itself). Then the input is quantised per token (symmetric, u8 with zero
  point 128), multiplied by the int8 weights with ``MatMulIntegerToFloat`` (the u8s8 path MLAS
  runs fastest) and the product by each token's scale. The fused graph's ``Attention`` has no
  per-token form in onnxruntime: its Q/K/V projection is quantised per token like any MatMul, and
  onnxruntime's fp32 ``MultiHeadAttention`` runs the rest.
- a GELU or ReLU output (the feed-forward output projection): per token, asymmetric, since the
  input is bounded below (GELU >= -0.17, ReLU >= 0): a fixed zero point of 16 (0 for ReLU) and
  the scale ``max(row max / 239, 0.17 / 16)``, twice the resolution of a symmetric scale.
  Smoothing here was measured to hurt (every alpha tried), so there is none.
- anything else (the attention context, the pooler's [CLS] row, ALBERT's projected embeddings):
  per token, symmetric, without smoothing. (onnxruntime's ``DynamicQuantizeMatMul`` and ``QAttention``,
  one scale per call, were a little faster but made vectors depend on their batch.)

Weights are int8 per output channel, symmetric (scale ``max |w| / 127``). The word-embedding table
is int8 per row (a scale per token id): 4x smaller, and per-row it costs no measurable accuracy.

The graph keeps nlu_lite's interface; the model's metadata records ``"int8_method"``.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

INT8_METHOD = "per-token-dynamic-2"  # 2: every activation per token (batch-invariant); 1 kept per-call scales
MS_DOMAIN = "com.microsoft"
# MiniLM mean cosine by alpha: 0.45 -> 0.99855, 0.5 -> 0.99860, 0.55 -> 0.99862, 0.6 -> 0.99856 (its min the worst)
SMOOTHING_ALPHA = 0.5
SMOOTHING_STEPS = 16  # factors are powers of 2^(1/16)
# GELU's minimum is -0.16997; a zero point of 16 keeps it representable at the finest scale used
BOUNDED_ZERO_POINT = {"gelu": 16, "relu": 0}
GELU_MIN = 0.17
CALIBRATION_SEED = 0
CALIBRATION_SHAPES = ((8, 16), (8, 64), (4, 128))  # (rows, tokens); tokens capped at the model's positions
_GELU_OPS = ("BiasGelu", "Gelu", "FastGelu", "BiasFastGelu", "QuickGelu")
_TINY = 1e-30  # the scale of an all-zero row: quantises it to exact zeros


@dataclass
class Plan:
    """What the rewrite does to each MatMul input: computed from the graph before anything changes.

    ``kinds``: activation -> ``"ln"`` (symmetric per token, smoothed), ``"gelu"`` / ``"relu"`` (per token,
    bounded below), ``"token"`` (symmetric per token, not smoothed). ``smoothing``: activation or weight ->
    per-input-channel factors (activations are divided by them, weight rows multiplied). The fused
    ``Attention``'s Q/K/V projection is quantised per token too, then runs fp32 ``MultiHeadAttention``
    (``QAttention`` takes one input scale per call: it made vectors depend on their batch). Measured on
    all-MiniLM-L6-v2 (``benchmarks/int8.md``): more accurate (per-token cosine mean 0.99884 / min 0.99250
    against 0.99861 / 0.99109) and 10-16% slower than ``QAttention``.
    """

    kinds: dict[str, str] = field(default_factory=dict)
    smoothing: dict[str, np.ndarray] = field(default_factory=dict)
    fp32: set[str] = field(default_factory=set)  # weights whose MatMuls stay fp32 (the family's int8 plan)


class _Graph:
    """Read-only views of a GraphProto: producers, initializers as arrays (decoded once)."""

    def __init__(self, graph: Any) -> None:
        self.graph = graph
        self.producer = {out: node for node in graph.node for out in node.output}
        self.initializers = {t.name: t for t in graph.initializer}
        self._arrays: dict[str, np.ndarray] = {}

    def array(self, name: str) -> np.ndarray:
        from onnx import numpy_helper

        if name not in self._arrays:
            self._arrays[name] = numpy_helper.to_array(self.initializers[name])
        return self._arrays[name]

    def float_matrix(self, name: str) -> np.ndarray | None:
        """The initializer ``name`` if it is a 2-D float32 matrix (a weight), else ``None``."""
        from onnx import TensorProto

        tensor = self.initializers.get(name)
        if tensor is None or tensor.data_type != TensorProto.FLOAT or len(tensor.dims) != 2:
            return None
        return self.array(name)

    def is_scalar(self, name: str, value: float) -> bool:
        tensor = self.initializers.get(name)
        return tensor is not None and tensor.dims in ([], [1]) and np.isclose(float(self.array(name).reshape(-1)[0]), value)


# --- what feeds each MatMul ----------------------------------------------------------------


def _standard_gelu(g: _Graph, node: Any) -> bool:
    """graph.activation's GELU: Mul(Mul(x, Add(Erf(..) | Tanh(..), 1)), 0.5)."""
    if node.op_type != "Mul" or not any(g.is_scalar(i, 0.5) for i in node.input):
        return False
    inner = [g.producer.get(i) for i in node.input if i not in g.initializers]
    if len(inner) != 1 or inner[0] is None or inner[0].op_type != "Mul":
        return False
    adds = [g.producer.get(i) for i in inner[0].input]
    return any(a is not None and a.op_type == "Add" and any(
        (p := g.producer.get(i)) is not None and p.op_type in ("Erf", "Tanh") for i in a.input) for a in adds)


def _input_kind(g: _Graph, tensor: str) -> str:
    """How to quantise ``tensor`` (see the module docstring): by the op that produced it."""
    node = g.producer.get(tensor)
    if node is None:
        return "token"
    if node.op_type == "LayerNormalization":
        return "ln"
    if node.op_type in _GELU_OPS or _standard_gelu(g, node):
        return "gelu"
    if node.op_type == "Relu":
        return "relu"
    return "token"


def _weight_matmuls(g: _Graph) -> list[Any]:
    return [n for n in g.graph.node if n.op_type == "MatMul" and n.domain in ("", "ai.onnx")
            and g.float_matrix(n.input[1]) is not None]


def _plain_attention(node: Any) -> bool:
    """A com.microsoft Attention that MultiHeadAttention computes alike: no past, no extra bias, known attributes."""
    attrs = {a.name for a in node.attribute}
    return (node.op_type == "Attention" and node.domain == MS_DOMAIN and len(node.input) <= 4
            and attrs <= {"num_heads", "mask_filter_value", "scale", "unidirectional"})


def _attentions(g: _Graph) -> list[Any]:
    return [n for n in g.graph.node if _plain_attention(n) and g.float_matrix(n.input[1]) is not None
            and (len(n.input) < 3 or n.input[2] in g.initializers)]


def _word_embeddings(g: _Graph) -> list[Any]:
    """The Gather of a float table by ``input_ids``: the word-embedding lookup."""
    return [n for n in g.graph.node if n.op_type == "Gather" and n.input[1] == "input_ids"
            and g.float_matrix(n.input[0]) is not None]


def _smoothing_groups(g: _Graph, kinds: Mapping[str, str], fp32: Iterable[str] = ()) -> list[tuple[set[str], set[str]]]:
    """Activations and the weights they meet, joined wherever they share one, for the groups to smooth.

    One smoothing vector per group: a weight shared by several inputs (ALBERT's layers, whose
    first input is no LayerNorm output) or an input shared by several weights (Q, K, V) stays one
    tensor, and every input that meets a smoothed weight is divided alike. Smoothed: the groups
    with a LayerNorm output among their inputs and no GELU/ReLU output (whose lower bound
    smoothing would move).
    """
    edges = [(n.input[0], n.input[1]) for n in _weight_matmuls(g) + _attentions(g) if n.input[0] in kinds
             and n.input[1] not in fp32]
    parent: dict[str, str] = {}

    def root(x: str) -> str:
        while parent.setdefault(x, x) != x:
            x = parent[x]
        return x

    for act, weight in edges:
        parent[root("a:" + act)] = root("w:" + weight)
    groups: dict[str, tuple[set[str], set[str]]] = {}
    for act, weight in edges:
        acts, weights = groups.setdefault(root("w:" + weight), (set(), set()))
        acts.add(act)
        weights.add(weight)
    chosen = []
    for key in sorted(groups):
        acts, weights = groups[key]
        found = {kinds[a] for a in acts}
        if "ln" in found and not found & set(BOUNDED_ZERO_POINT):
            chosen.append((acts, weights))
    return chosen


def smoothing_factors(activation_max: np.ndarray, weights: Iterable[np.ndarray], alpha: float = SMOOTHING_ALPHA) -> np.ndarray:
    """Per input channel ``s = amax(x)^alpha / amax(W)^(1 - alpha)``, rounded to 1/16 of an octave.

    ``weights`` are [K, N] matrices read by the same input channels. The rounding makes the
    factors (so the int8 weights) the same on machines whose calibration differs in the last
    bits. Coarser rounding costs accuracy (MiniLM mean cosine: exact 0.99859, 1/16 octave 0.99860,
    1/4 octave 0.99856, powers of two 0.99831).
    """
    w_max = np.max([np.abs(w).max(axis=1) for w in weights], axis=0)
    raw = np.maximum(activation_max, 1e-5) ** alpha / np.maximum(w_max, 1e-5) ** (1 - alpha)
    return np.exp2(np.round(np.log2(raw) * SMOOTHING_STEPS) / SMOOTHING_STEPS).astype(np.float32)


# --- calibration ---------------------------------------------------------------------------


def _calibration_inputs(g: _Graph, metadata: Mapping[str, Any]) -> list[dict[str, np.ndarray]]:
    """Seeded random token ids (every id of the vocabulary equally likely), all positions real."""
    tables = _word_embeddings(g)
    vocab = int(g.float_matrix(tables[0].input[0]).shape[0]) if tables else int(metadata.get("vocab_size", 1000))
    longest = int(metadata.get("max_position_embeddings", 512))
    rng = np.random.default_rng(CALIBRATION_SEED)
    batches = []
    for rows, tokens in CALIBRATION_SHAPES:
        ids = rng.integers(0, vocab, size=(rows, min(tokens, longest)), dtype=np.int64)
        batches.append({"input_ids": ids, "attention_mask": np.ones_like(ids)})
    return batches


def _probe_outputs(model: Any, tensors: list[str], threads: int = 1) -> Any:
    """An onnxruntime session of the fp32 ``model`` that also returns ``tensors`` (``model`` is left as it was)."""
    import onnx
    import onnxruntime as ort

    known = {o.name for o in model.graph.output}
    extra = [onnx.helper.make_tensor_value_info(t, onnx.TensorProto.FLOAT, None) for t in tensors if t not in known]
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.log_severity_level = 3
    model.graph.output.extend(extra)  # for the probe only: removed below
    try:
        return _probe_session(model, options)
    finally:
        del model.graph.output[len(model.graph.output) - len(extra):]


def calibrate(model: Any, tensors: list[str], metadata: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Per-channel max |x| of each of ``tensors`` over the calibration batches (fp32 model, one thread)."""
    if not tensors:
        return {}
    session = _probe_outputs(model, tensors)
    found = {t: np.zeros(0, np.float32) for t in tensors}
    for feed in _calibration_inputs(_Graph(model.graph), metadata):
        for name, value in zip(tensors, session.run(tensors, feed)):
            rows = np.abs(value.reshape(-1, value.shape[-1])).max(axis=0)
            found[name] = rows if found[name].size == 0 else np.maximum(found[name], rows)
    return found


# --- which bounded-input MatMuls cost most: the self-check's finer step ------------------------


def bounded_scale(kind: str) -> tuple[int, int, float]:
    """A GELU/ReLU output's per-token u8 quantisation: (zero point, levels above it, smallest scale); the scale
    is ``max(row max / levels, smallest)``. The rewrite builds it as graph nodes, the self-check's ranking in
    numpy (:func:`bounded_dequantised`)."""
    zero = BOUNDED_ZERO_POINT[kind]
    return zero, 255 - zero, (GELU_MIN / zero if zero else _TINY)


def bounded_dequantised(x: np.ndarray, kind: str) -> np.ndarray:
    """What the rewrite's per-token quantisation of a GELU/ReLU output (``kind``) gives back: ``x`` [rows, k]
    float32 rounded as its QuantizeLinear rounds it (half to even, saturated), then dequantised."""
    zero, levels, floor = bounded_scale(kind)
    scale = np.maximum(x.max(axis=-1, keepdims=True) * np.float32(1.0 / levels), np.float32(floor))
    return (np.clip(np.rint(x / scale) + zero, 0, 255) - zero).astype(np.float32) * scale


def _stream_sum(g: _Graph, consumers: Mapping[str, list[Any]], tensor: str) -> str:
    """The residual-stream sum a MatMul's output ``tensor`` joins: past an Add of its bias, the Add of another
    activation (``x + FFN(x)``); the MatMul's own output (with its bias) where the graph shows none."""
    out = tensor
    for _ in range(2):
        nodes = consumers.get(out, [])
        if len(nodes) != 1 or nodes[0].op_type != "Add":
            return out
        others = [i for i in nodes[0].input if i != out]
        out = nodes[0].output[0]
        if others and others[0] not in g.initializers:
            return out
    return out


def bounded_errors(model: Any, feeds: Iterable[Mapping[str, np.ndarray]], keep_fp32: Iterable[str] = (),
                   threads: int = 1) -> dict[str, float]:
    """How much int8 each GELU/ReLU-fed weight MatMul (the feed-forward output projection) would add, simulated
    on the fp32 ``model``'s own activations for ``feeds``: per position, the norm of the MatMul output's error
    (its input quantised per token as :func:`rewrite` does, its weight per output channel) over the norm of the
    residual-stream sum that output joins; the mean over positions, by weight name, largest first. MatMuls
    matching the family's ``keep_fp32`` patterns are left out (they stay fp32 anyway).

    Measured on all-mpnet-base-v2 (``benchmarks/int8.md``): the four largest, layers 5, 4, 6, 0, kept fp32 meet
    the 0.998 mean that the twelve met, where keeping each layer's alone and checking twelve graphs ranked
    5, 4, 0, 2 first (about ten times the time)."""
    import fnmatch

    g = _Graph(model.graph)
    keep = tuple(keep_fp32)
    targets = [(node, kind) for node in _weight_matmuls(g)
               if (kind := _input_kind(g, node.input[0])) in BOUNDED_ZERO_POINT
               and not any(fnmatch.fnmatchcase(node.input[1], p) for p in keep)]
    if not targets:
        return {}
    consumers: dict[str, list[Any]] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    sums = {node.input[1]: _stream_sum(g, consumers, node.output[0]) for node, _ in targets}
    tensors = sorted({node.input[0] for node, _ in targets} | set(sums.values()))
    session = _probe_outputs(model, tensors, threads)
    weights = {}
    for node, _ in targets:
        w = g.array(node.input[1])
        q, scale = quantize_weight(w)
        weights[node.input[1]] = (w, q.astype(np.float32) * scale)
    totals, positions = dict.fromkeys(weights, 0.0), 0
    for feed in feeds:
        values = dict(zip(tensors, session.run(tensors, dict(feed))))
        for node, kind in targets:
            w, w_int8 = weights[node.input[1]]
            x = values[node.input[0]].reshape(-1, w.shape[0])
            delta = bounded_dequantised(x, kind) @ w_int8 - x @ w
            stream = values[sums[node.input[1]]].reshape(x.shape[0], -1)
            totals[node.input[1]] += float((np.linalg.norm(delta, axis=-1)
                                            / np.maximum(np.linalg.norm(stream, axis=-1), _TINY)).sum())
        positions += x.shape[0]
    errors = {name: total / max(positions, 1) for name, total in totals.items()}
    return dict(sorted(errors.items(), key=lambda item: (-item[1], item[0])))


PROTOBUF_LIMIT = (2 << 30) - 1  # a serialised ModelProto larger than this cannot exist (protobuf's 2 GiB)


def _probe_session(model: Any, options: Any) -> Any:
    """An onnxruntime session of ``model`` as it is now: from its bytes, or, for a model past protobuf's
    2 GiB (Qwen3-Embedding-0.6B's fp32 graph is 2.4 GB), from a scratch file with its weights as external
    data (the save moves them out of ``model``; they are read back in before returning)."""
    import tempfile

    import onnx
    import onnxruntime as ort

    if model.ByteSize() <= PROTOBUF_LIMIT:
        return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    from ..errors import ConversionError

    with tempfile.TemporaryDirectory(prefix="nlu_lite_int8_") as tmp:
        path = f"{tmp}/probe.onnx"
        try:
            onnx.save_model(model, path, save_as_external_data=True, all_tensors_to_one_file=True,
                            location="probe.onnx.data")
            return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        except OSError as exc:
            raise ConversionError(f"int8 calibration could not write its {model.ByteSize():,}-byte scratch copy of the "
                                  f"model to {tmp} ({exc}); free space there (TMPDIR picks the folder)") from None
        finally:  # whatever the save moved out goes back into ``model``: the rewrite reads it
            onnx.load_external_data_for_model(model, tmp)


def make_plan(model: Any, metadata: Mapping[str, Any], keep_fp32: Iterable[str] = (),
              per_token: Iterable[str] = (), keep_kinds: Iterable[str] = ()) -> Plan:
    """Decide every MatMul's quantisation and calibrate the smoothing of LayerNorm-fed inputs.

    A family's int8 plan, as glob patterns of weight initializer names (the builder's, e.g.
    ``*.wo.weight_t``): ``keep_fp32`` (``Family.int8_fp32``), MatMuls that stay fp32, for inputs one
    scale cannot serve; ``per_token`` (``Family.int8_per_token``), MatMuls whose input is quantised
    per token like a LayerNorm output's (an RMS norm's, a gated product's), which the graph's
    own ops do not say. ``keep_kinds``: input kinds (``"gelu"``, ``"relu"``, ``"ln"``, ``"token"``) whose
    MatMuls stay fp32, the self-check's escalation (:mod:`nlu_lite.int8_check`)."""
    import fnmatch

    g = _Graph(model.graph)
    result = Plan()
    keep, token, kept_kinds = tuple(keep_fp32), tuple(per_token), frozenset(keep_kinds)
    for node in _weight_matmuls(g) + _attentions(g):
        if any(fnmatch.fnmatchcase(node.input[1], p) for p in keep):
            result.fp32.add(node.input[1])
            continue
        kind = _input_kind(g, node.input[0])
        if kind == "token" and any(fnmatch.fnmatchcase(node.input[1], p) for p in token):
            kind = "ln"
        if kind in kept_kinds:
            result.fp32.add(node.input[1])
            continue
        result.kinds[node.input[0]] = kind
    groups = _smoothing_groups(g, result.kinds, result.fp32)
    maxima = calibrate(model, sorted({a for acts, _ in groups for a in acts}), metadata)
    for acts, weights in groups:
        factors = smoothing_factors(np.max([maxima[a] for a in acts], axis=0), [g.array(w) for w in sorted(weights)])
        for name in acts | weights:
            result.smoothing[name] = factors
    return result


# --- the rewrite ---------------------------------------------------------------------------


def quantize_weight(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 per output channel (column of [K, N]): (int8 values, float32 scales [N])."""
    scale = np.abs(w).max(axis=0) / 127.0
    scale = np.where(scale > 0, scale, 1.0).astype(np.float32)
    return np.clip(np.rint(w / scale), -127, 127).astype(np.int8), scale


class _Rewriter:
    """Builds the new node list; constants are added once by name."""

    def __init__(self, model: Any, plan: Plan) -> None:
        self.g = _Graph(model.graph)
        self.plan = plan
        self.nodes: list[Any] = []
        self.added: dict[str, Any] = {}
        self.quantized: dict[str, tuple[str, str, str, str]] = {}  # activation -> (q, row scale, zero point, shape)
        self.divided: dict[str, str] = {}  # tensor -> its smoothed version
        self.count = 0
        opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 17)
        self.axes_as_input = opset >= 18  # ReduceMax/ReduceMin take axes as an input from opset 18

    def const(self, name: str, value: Any) -> str:
        from onnx import numpy_helper

        if name not in self.added and name not in self.g.initializers:
            self.added[name] = numpy_helper.from_array(np.asarray(value), name)
        return name

    def op(self, op_type: str, inputs: list[str], *, out: str | None = None, domain: str = "", **attrs: Any) -> str:
        from onnx import helper

        self.count += 1
        output = out or f"int8/{op_type}_{self.count}"
        self.nodes.append(helper.make_node(op_type, inputs, [output], name=f"int8/{op_type}_{self.count}",
                                           domain=domain, **attrs))
        return output

    def reduce(self, op_type: str, x: str) -> str:
        if self.axes_as_input:
            return self.op(op_type, [x, self.const("int8/axis_1", np.array([1], np.int64))], keepdims=0)
        return self.op(op_type, [x], axes=[1], keepdims=0)

    def weight(self, name: str) -> tuple[str, str]:
        """The int8 weight and its scales, the smoothing factors folded in (once per weight name)."""
        if name + "/int8" not in self.added:
            w = self.g.array(name)
            if name in self.plan.smoothing:
                w = w * self.plan.smoothing[name][:, None]
            q, scale = quantize_weight(w)
            self.const(name + "/int8", q)
            self.const(name + "/scale", scale)
        return name + "/int8", name + "/scale"

    def smoothed(self, x: str, source: str) -> str:
        """``x`` divided by the smoothing factors planned for the activation ``source`` (if any)."""
        if source not in self.plan.smoothing:
            return x
        if x not in self.divided:
            inverse = self.const(source + "/inv_smoothing", (1.0 / self.plan.smoothing[source]).astype(np.float32))
            self.divided[x] = self.op("Mul", [x, inverse])
        return self.divided[x]

    def per_token(self, x: str, k: int, kind: str) -> tuple[str, str, str, str]:
        """Quantise ``x`` [..., k] per row, once however many MatMuls read it."""
        if x in self.quantized:
            return self.quantized[x]
        rows = self.smoothed(self.op("Reshape", [x, self.const(f"int8/rows_{k}", np.array([-1, k], np.int64))]), x)
        high = self.reduce("ReduceMax", rows)
        if kind in ("ln", "token"):  # symmetric: max |x| without materialising |x|
            amax = self.op("Max", [high, self.op("Neg", [self.reduce("ReduceMin", rows)])])
            zero, levels, floor = 128, 127, _TINY
        else:  # bounded below: the low end needs `zero` steps
            zero, levels, floor = bounded_scale(kind)
            amax = high
        scale = self.op("Max", [self.op("Mul", [amax, self.const(f"int8/inv_{levels}", np.float32(1.0 / levels))]),
                                self.const(f"int8/floor_{floor:g}", np.float32(floor))])
        zp = self.const(f"int8/zero_point_{zero}", np.uint8(zero))
        zps = self.op("Expand", [zp, self.op("Shape", [scale])])
        q = self.op("QuantizeLinear", [rows, scale, zps], axis=0)
        column = self.op("Unsqueeze", [scale, self.const("int8/axis_1", np.array([1], np.int64))])
        lead = self.op("Shape", [x], end=-1)
        self.quantized[x] = (q, column, zp, lead)
        return self.quantized[x]

    def matmul(self, node: Any) -> None:
        x, name = node.input[0], node.input[1]
        k, n = self.g.array(name).shape
        wq, ws = self.weight(name)
        q, column, zp, lead = self.per_token(x, k, self.plan.kinds[x])
        y = self.op("MatMulIntegerToFloat", [q, wq, self.const("int8/one", np.float32(1.0)), ws, zp], domain=MS_DOMAIN)
        shape = self.op("Concat", [lead, self.const(f"int8/width_{n}", np.array([n], np.int64))], axis=0)
        self.op("Reshape", [self.op("Mul", [y, column]), shape], out=node.output[0])

    def attention_per_token(self, node: Any) -> None:
        """Attention -> the Q/K/V projection per token (as :meth:`matmul`), then onnxruntime's fp32
        ``MultiHeadAttention`` on the three parts, same mask and attributes."""
        from onnx import helper

        x, name = node.input[0], node.input[1]
        k, n = self.g.array(name).shape
        wq, ws = self.weight(name)
        q, column, zp, lead = self.per_token(x, k, self.plan.kinds[x])
        y = self.op("MatMulIntegerToFloat", [q, wq, self.const("int8/one", np.float32(1.0)), ws, zp], domain=MS_DOMAIN)
        shape = self.op("Concat", [lead, self.const(f"int8/width_{n}", np.array([n], np.int64))], axis=0)
        packed = self.op("Reshape", [self.op("Mul", [y, column]), shape])
        self.count += 1
        parts = [f"int8/{part}_{self.count}" for part in ("query", "key", "value")]
        equal = {"num_outputs": 3} if self.axes_as_input else {}  # opset 18 names the count, 17 splits equally
        self.nodes.append(helper.make_node("Split", [packed], parts, name=f"int8/Split_{self.count}", axis=2, **equal))
        bias = node.input[2] if len(node.input) > 2 else ""
        mask = node.input[3] if len(node.input) > 3 else ""
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}  # MultiHeadAttention has them all
        self.nodes.append(helper.make_node("MultiHeadAttention", [*parts, bias, mask], list(node.output),
                                           name=f"int8/MultiHeadAttention_{self.count}", domain=MS_DOMAIN, **attrs))

    def embeddings(self, node: Any) -> None:
        """Gather(table, ids) -> Gather(int8 table) * Gather(row scales): one scale per token id."""
        from onnx import TensorProto

        table = self.g.array(node.input[0])
        scale = np.abs(table).max(axis=1, keepdims=True) / 127.0
        scale = np.where(scale > 0, scale, 1.0).astype(np.float32)
        q = self.const(node.input[0] + "/int8", np.clip(np.rint(table / scale), -127, 127).astype(np.int8))
        rows = self.op("Cast", [self.op("Gather", [q, node.input[1]], axis=0)], to=TensorProto.FLOAT)
        scales = self.op("Gather", [self.const(node.input[0] + "/row_scale", scale), node.input[1]], axis=0)
        self.op("Mul", [rows, scales], out=node.output[0])


def rewrite(model: Any, plan: Plan) -> Any:
    """``model`` (changed in place and returned) with the word-embedding lookup and every weight MatMul
    and plain Attention whose input ``plan.kinds`` names quantised as it says (the others stay fp32);
    initializers nothing reads any more are dropped."""
    from onnx import helper

    r = _Rewriter(model, plan)
    matmuls = {id(n) for n in _weight_matmuls(r.g) if n.input[0] in plan.kinds and n.input[1] not in plan.fp32}
    attentions = {id(n) for n in _attentions(r.g) if n.input[0] in plan.kinds and n.input[1] not in plan.fp32}
    lookups = {id(n) for n in _word_embeddings(r.g)}
    for node in list(model.graph.node):
        if id(node) in matmuls:
            r.matmul(node)
        elif id(node) in attentions:
            r.attention_per_token(node)
        elif id(node) in lookups:
            r.embeddings(node)
        else:
            r.nodes.append(node)
    read = {i for n in r.nodes for i in n.input} | {o.name for o in model.graph.output}
    kept = [t for t in model.graph.initializer if t.name in read]
    del model.graph.node[:]
    model.graph.node.extend(r.nodes)
    del model.graph.initializer[:]
    model.graph.initializer.extend(kept + [t for name, t in r.added.items() if name in read])
    if not any(o.domain == MS_DOMAIN for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid(MS_DOMAIN, 1))
    return model


def quantize_model(model: Any, metadata: Mapping[str, Any] | None = None, keep_fp32: Iterable[str] = (),
                   per_token: Iterable[str] = (), keep_kinds: Iterable[str] = ()) -> Any:
    """The int8 version of an fp32 nlu_lite ``ModelProto`` (weights loaded), changed in place.

    ``metadata``: the model's nlu_lite metadata (``vocab_size`` and ``max_position_embeddings``
    bound the calibration ids when the graph does not show them). ``keep_fp32``, ``per_token``: the
    family's int8 plan, see :func:`make_plan`.
    """
    return rewrite(model, make_plan(model, metadata or {}, keep_fp32, per_token, keep_kinds))
