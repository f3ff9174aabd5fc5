"""int8 (nlu_lite.convert.int8 via store.quantize_int8): per-token scales, exactness, determinism, fidelity.

Hand-built graphs check the rewrite itself (exact when every row and weight column is exactly
representable; a weight shared by a LayerNorm output and another input stays consistent); the
session's tiny BERT checks the whole conversion in both graph variants; the real MiniLM checks
the bounds that benchmarks/int8.md measures on a larger corpus.
"""
from __future__ import annotations

import collections
import csv
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from _engine_support import cosine_per_token, padded_batch

from nlu_lite.convert import (
    convert_checkpoint,
    data_path_for,
    ensure_onnx,
    int8,
    quantize_int8,
)
from nlu_lite.runtime import OnnxEncoder

TOPICS = Path(__file__).resolve().parent.parent / "nlu_lite" / "data" / "topics.csv"


def _session(model):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def _matmul_model(weight: np.ndarray, rank: int = 2):
    """x [..., K] -> MatMul(x, weight): the smallest graph the rewrite applies to."""
    from onnx import TensorProto, helper, numpy_helper

    k = weight.shape[0]
    dims = [None] * (rank - 1) + [k]
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, dims)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              initializer=[numpy_helper.from_array(weight, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def _representable_weight(rng, k: int, n: int) -> np.ndarray:
    """Integer columns in [-127, 127] reaching 127, times a power of two per column: int8 per channel holds it exactly."""
    q = rng.integers(-127, 128, size=(k, n)).astype(np.float32)
    q[rng.integers(0, k, n), np.arange(n)] = 127
    return q * np.exp2(rng.integers(-9, -2, n)).astype(np.float32)


def _representable_rows(rng, rows: int, k: int, low: int, high: int, floor: float) -> np.ndarray:
    """Integer rows in [low, high] reaching ``high``, times a power of two per row (at least ``floor``), one zero row."""
    q = rng.integers(low, high + 1, size=(rows, k)).astype(np.float32)
    q[np.arange(rows), rng.integers(0, k, rows)] = high
    scales = np.exp2(rng.integers(-6, 3, rows)).astype(np.float32)
    x = q * np.maximum(scales, floor)[:, None]
    x[1] = 0.0
    return x


@pytest.mark.parametrize(("kind", "low", "high"), [("ln", -127, 127), ("gelu", -16, 239), ("relu", 0, 255)])
def test_per_token_rewrite_is_exact_for_representable_rows(kind, low, high):
    rng = np.random.default_rng(3)
    weight = _representable_weight(rng, 48, 20)
    floor = int8.GELU_MIN / int8.BOUNDED_ZERO_POINT["gelu"] if kind == "gelu" else 0.0
    x = _representable_rows(rng, 12, 48, low, high, floor)
    model = int8.rewrite(_matmul_model(weight), int8.Plan(kinds={"x": kind}))
    ops = collections.Counter(n.op_type for n in model.graph.node)
    assert ops["MatMulIntegerToFloat"] == 1 and ops["MatMul"] == 0, ops
    got = _session(model).run(["y"], {"x": x})[0]
    want = x.astype(np.float64) @ weight.astype(np.float64)  # exact: integers times powers of two
    # the only rounding left is float32's in the scales (1 / 127 is not a float): 1e-7 relative
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    assert not got[1].any()  # the all-zero row stays exactly zero


def test_per_token_rewrite_keeps_leading_dimensions():
    rng = np.random.default_rng(4)
    weight = _representable_weight(rng, 16, 7)
    x = _representable_rows(rng, 2 * 5, 16, -127, 127, 0.0).reshape(2, 5, 16)
    model = int8.rewrite(_matmul_model(weight, rank=3), int8.Plan(kinds={"x": "ln"}))
    got = _session(model).run(["y"], {"x": x})[0]
    assert got.shape == (2, 5, 7)
    np.testing.assert_allclose(got, x.astype(np.float64) @ weight, rtol=1e-6, atol=1e-6)


def test_one_scale_per_token_keeps_a_small_row_precise():
    """The point of per-token scales: a row 1,000x smaller than its neighbour keeps its precision."""
    rng = np.random.default_rng(5)
    weight = rng.normal(size=(64, 32)).astype(np.float32)
    x = rng.normal(size=(2, 64)).astype(np.float32)
    x[0] *= 1000.0
    per_token = _session(int8.rewrite(_matmul_model(weight), int8.Plan(kinds={"x": "ln"}))).run(["y"], {"x": x})[0]
    scale = np.abs(x).max() / 127  # what one scale per call (onnxruntime's DynamicQuantizeMatMul) would do
    per_call = (np.clip(np.rint(x / scale), -127, 127) * scale) @ weight
    want = x @ weight

    def relative(y):
        return np.linalg.norm(y[1] - want[1]) / np.linalg.norm(want[1])

    # measured: 0.0074 per token; 1.0 per call (the small row rounds to zeros)
    assert relative(per_token) < 0.02 and relative(per_call) > 0.5, (relative(per_token), relative(per_call))


def _shared_weight_model(rng, k: int = 24, vocab: int = 50):
    """ids -> Gather -> LayerNorm (a few large channels) -> MatMul(W) -> + the LayerNorm output -> MatMul(W):
    one weight read by a LayerNorm output and by a sum, as ALBERT's shared layers read theirs."""
    from onnx import TensorProto, helper, numpy_helper

    gamma = np.ones(k, np.float32)
    gamma[[3, 11]] = 30.0  # outlier channels: smoothing factors far from 1
    tensors = {"emb": rng.normal(size=(vocab, k)).astype(np.float32), "gamma": gamma,
               "beta": (rng.normal(size=k) * 0.1).astype(np.float32),
               "w": (rng.normal(size=(k, k)) * 0.2).astype(np.float32)}
    nodes = [helper.make_node("Gather", ["emb", "input_ids"], ["e"]),
             helper.make_node("LayerNormalization", ["e", "gamma", "beta"], ["h"], axis=-1),
             helper.make_node("MatMul", ["h", "w"], ["a"]),
             helper.make_node("Add", ["a", "h"], ["s"]),
             helper.make_node("MatMul", ["s", "w"], ["last_hidden_state"])]
    inputs = [helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", "sequence"]) for n in ("input_ids", "attention_mask")]
    graph = helper.make_graph(nodes, "shared", inputs,
                              [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, None)],
                              initializer=[numpy_helper.from_array(v, n) for n, v in tensors.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def test_a_weight_shared_with_an_unnormalised_input_is_smoothed_consistently():
    """Both readers of the smoothed weight are divided by the same factors (ALBERT's first layer reads its
    shared weights from a projection, not a LayerNorm: undivided, it measured 0.9989 instead of 0.999993)."""
    rng = np.random.default_rng(6)
    fp32 = _shared_weight_model(rng)
    plan = int8.make_plan(fp32, {"vocab_size": 50, "max_position_embeddings": 64})
    assert plan.kinds == {"h": "ln", "s": "token"}
    assert set(plan.smoothing) == {"h", "s", "w"} and plan.smoothing["w"].max() > 2  # the outliers are divided out
    ids = rng.integers(0, 50, size=(4, 9))
    feed = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
    want = _session(fp32).run(["last_hidden_state"], feed)[0]
    quantized = int8.rewrite(_shared_weight_model(np.random.default_rng(6)), plan)
    got = _session(quantized).run(["last_hidden_state"], feed)[0]
    cos = cosine_per_token(got, want, np.ones(ids.shape, np.int64))
    # measured: mean 0.99981, min 0.99874; with the sum left undivided: mean 0.964, min 0.897
    assert cos.mean() >= 0.999 and cos.min() >= 0.995, (cos.mean(), cos.min())


# --- the conversion, on the session's tiny BERT --------------------------------------------


@pytest.fixture(scope="module")
def tiny_fp32(tiny_bert_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("int8_tiny")
    return {graph: convert_checkpoint(tiny_bert_dir, folder / graph / "model.onnx", graph=graph)
            for graph in ("fused", "standard")}


def _bytes_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes() + data_path_for(path).read_bytes()).hexdigest()


def test_quantize_int8_is_deterministic(tiny_fp32, tmp_path):
    first = quantize_int8(tiny_fp32["fused"], tmp_path / "a" / "model.onnx")
    second = quantize_int8(tiny_fp32["fused"], tmp_path / "b" / "model.onnx")
    assert _bytes_digest(first) == _bytes_digest(second)


def test_a_model_past_protobufs_limit_calibrates_through_a_file(tiny_fp32, tmp_path, monkeypatch):
    """A graph over 2 GiB (Qwen3-Embedding-0.6B's fp32: 2.4 GB) cannot be serialised for the calibration
    probe; it is saved with external data instead. Forced here with a tiny limit: the same bytes come out,
    and the model's weights are back in it afterwards (the rewrite reads them)."""
    from nlu_lite.convert import int8

    normal = quantize_int8(tiny_fp32["fused"], tmp_path / "a" / "model.onnx")
    sessions = []
    real = int8._probe_session
    monkeypatch.setattr(int8, "PROTOBUF_LIMIT", 1000)
    monkeypatch.setattr(int8, "_probe_session", lambda model, options: sessions.append(model.ByteSize()) or
                        real(model, options))
    through_file = quantize_int8(tiny_fp32["fused"], tmp_path / "b" / "model.onnx")
    assert sessions and sessions[0] > 1000  # the file path was taken
    assert _bytes_digest(through_file) == _bytes_digest(normal)


# ops of the tiny BERT (2 layers, pooler) after quantize_int8, by graph variant
# (every weight MatMul per token: fused, Q/K/V + output + two feed-forward per layer, then fp32 MultiHeadAttention;
# standard, q, k, v, output and two feed-forward; and the pooler. No op with one scale per call is left)
EXPECTED_OPS = {
    "fused": {"QAttention": 0, "MultiHeadAttention": 2, "MatMulIntegerToFloat": 2 * 4 + 1, "DynamicQuantizeMatMul": 0,
              "DynamicQuantizeLinear": 0},
    "standard": {"QAttention": 0, "MultiHeadAttention": 0, "MatMulIntegerToFloat": 2 * 6 + 1,
                 "DynamicQuantizeMatMul": 0, "DynamicQuantizeLinear": 0},
}
# per-token cosine to fp32 on random ids, measured (tiny BERTs of seeds 0-2, both graphs): mean 0.999994,
# min 0.99998, pooler min 0.99996. Random weights quantise well; MiniLM's real ones are the hard case, below
TINY_MEAN, TINY_MIN = 0.9999, 0.9995


@pytest.mark.parametrize("graph", ["fused", "standard"])
def test_int8_close_to_fp32_on_the_tiny_bert(tiny_fp32, tmp_path, graph):
    import onnx

    path = quantize_int8(tiny_fp32[graph], tmp_path / "model.onnx")
    model = onnx.load(str(path), load_external_data=False)
    ops = collections.Counter(n.op_type for n in model.graph.node)
    assert {op: ops[op] for op in EXPECTED_OPS[graph]} == EXPECTED_OPS[graph], ops
    floats = {t.name for t in model.graph.initializer if t.data_type == onnx.TensorProto.FLOAT and len(t.dims) == 2}
    assert not [n for n in model.graph.node if n.op_type == "MatMul" and n.input[1] in floats]  # no fp32 weight MatMul left
    zero_points = {int(onnx.numpy_helper.to_array(t)) for t in model.graph.initializer if t.name.startswith("int8/zero_point")}
    assert zero_points == {16, 128}  # GELU-aware feed-forward output, symmetric LayerNorm-fed inputs
    assert any(t.name.endswith("/inv_smoothing") for t in model.graph.initializer)

    fp32, quantized = OnnxEncoder.from_path(tiny_fp32[graph]), OnnxEncoder.from_path(path)
    assert quantized.metadata["precision"] == "int8" and quantized.metadata["int8_method"] == int8.INT8_METHOD
    assert {k: v for k, v in quantized.metadata.items() if k not in ("precision", "int8_method")} == \
        {k: v for k, v in fp32.metadata.items() if k != "precision"}
    ids, mask = padded_batch(quantized.vocab_size, [7, 40, 1, 23], seed=1)
    names = ("last_hidden_state", "pooler_output")
    want, got = fp32.run(ids, mask, names), quantized.run(ids, mask, names)
    cos = cosine_per_token(got["last_hidden_state"], want["last_hidden_state"], mask)
    assert cos.mean() >= TINY_MEAN and cos.min() >= TINY_MIN, (cos.mean(), cos.min())
    assert 1 - cos.mean() > 1e-7  # it really is a different (quantized) model
    pooled = cosine_per_token(got["pooler_output"][:, None], want["pooler_output"][:, None], np.ones((4, 1)))
    assert pooled.min() >= TINY_MIN


# --- the real MiniLM ------------------------------------------------------------------------


def _minilm_corpus(folder: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    """topics.csv's 360 sentences, the tests' hostile texts and the sentences joined into long documents,
    cut into 256-position windows (MiniLM's max_seq_length), in length-sorted batches of 32."""
    from _tokenizers import EXTRA_TEXTS
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.no_truncation()
    with TOPICS.open(encoding="utf-8", newline="") as fh:
        topics = [row["text"] for row in csv.DictReader(fh) if row["text"].strip()]
    texts = topics + EXTRA_TEXTS + [" ".join(topics[i:i + 60]) for i in range(0, len(topics), 60)]
    sequences = []
    for encoding in tokenizer.encode_batch(texts, add_special_tokens=False):
        for start in range(0, max(len(encoding.ids), 1), 254):
            sequences.append([101, *encoding.ids[start:start + 254], 102])
    sequences.sort(key=len)
    batches = []
    for i in range(0, len(sequences), 32):
        chunk = sequences[i:i + 32]
        ids = np.zeros((len(chunk), len(chunk[-1])), np.int64)
        for row, seq in enumerate(chunk):
            ids[row, :len(seq)] = seq
        batches.append((ids, (ids != 0).astype(np.int64)))
    return batches


@pytest.mark.slow
def test_minilm_int8_per_token_fidelity(minilm_dir, isolated_cache):
    """all-MiniLM-L6-v2: the bounds benchmarks/int8.md measures (there on 36k positions, 0.9986 mean,
    0.993 min; the previous one-scale-per-call int8 had 0.9914 and 0.952)."""
    import onnx

    fp32 = OnnxEncoder.from_path(ensure_onnx(minilm_dir), threads=2)
    path = ensure_onnx(minilm_dir, precision="int8")
    quantized = OnnxEncoder.from_path(path, threads=2)
    assert data_path_for(path).stat().st_size < 0.35 * data_path_for(fp32.path).stat().st_size  # measured 0.318
    ops = collections.Counter(n.op_type for n in onnx.load(str(path), load_external_data=False).graph.node)
    assert (ops["QAttention"], ops["MultiHeadAttention"], ops["MatMulIntegerToFloat"], ops["DynamicQuantizeMatMul"],
            ops["MatMul"]) == (0, 6, 6 * 4 + 1, 0, 0), ops
    assert json.loads((path.parent / "manifest.json").read_text())["precision"] == "int8"
    assert quantized.metadata["int8_method"] == int8.INT8_METHOD == "per-token-dynamic-2"
    cosines = []
    for ids, mask in _minilm_corpus(minilm_dir):
        cosines.append(cosine_per_token(quantized.run(ids, mask)["last_hidden_state"],
                                        fp32.run(ids, mask)["last_hidden_state"], mask))
    cos = np.concatenate(cosines)
    assert cos.size > 8000
    # measured: mean 0.99901, min 0.9960 over 8,917 positions (one scale per call for the attention context and
    # QAttention, the method before: 0.99866 and 0.9946)
    assert cos.mean() >= 0.9985 and cos.min() >= 0.994, (cos.mean(), cos.min())


@pytest.mark.slow
def test_minilm_int8_vectors_do_not_depend_on_their_batch(minilm_dir, isolated_cache):
    """The same text, the same int8 bits: alone or among 260 others, with deduplicate on or off, in batches of
    any size, at token and sentence level (issue 22: one scale per call made them differ by up to 0.16)."""
    import nlu_lite

    with TOPICS.open(encoding="utf-8", newline="") as fh:
        corpus = [row["text"] for row in csv.DictReader(fh) if row["text"].strip()][:260]
    pipe = nlu_lite.load(path=minilm_dir, precision="int8")
    target = "The committee postponed its decision on the new railway line until next spring."
    mixed = corpus[:130] + [target] + corpus[130:] + corpus[:40]  # with repeats: deduplicate has work to do
    where = 130
    for level in ("token", "sentence"):
        alone = nlu_lite.to_matrix(pipe.predict([target], output_level=level))
        for options in ({}, {"deduplicate": False}, {"batch_size": 7}, {"max_batch_tokens": 4096, "batch_size": 256}):
            frame = pipe.predict(mixed, output_level=level, **options)
            rows = frame["origin_index"].to_numpy() == where
            np.testing.assert_array_equal(nlu_lite.to_matrix(frame)[rows], alone, err_msg=f"{level} {options}")
        repeated = pipe.predict(mixed, output_level=level, deduplicate=False)
        deduplicated = pipe.predict(mixed, output_level=level)
        np.testing.assert_array_equal(nlu_lite.to_matrix(repeated), nlu_lite.to_matrix(deduplicated))
