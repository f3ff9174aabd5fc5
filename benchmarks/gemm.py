"""The machine's matrix-multiply rate through onnxruntime itself, measured in the same run.

A one-node ONNX ``MatMul`` (activations [M, K] times a constant [K, N] weight, float32) is
timed with ``threads`` intra-op threads for the encoder's shapes (M = 1024 tokens, about one
batch of 32 sentences). The fastest shape's rate is the fp32 peak used for the bound, so the
bound is an upper one. The same graphs quantised with onnxruntime's ``quantize_dynamic``
(weights QInt8, activations quantised on the fly: DynamicQuantizeLinear + MatMulInteger)
give the int8 rate, counting the same 2*M*K*N operations.

    python -m benchmarks.gemm   # prints the rates as JSON
"""
from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SHAPES = ((512, 2048), (2048, 512), (512, 512), (512, 1536))  # (K, N) of the encoder's dense layers
TOKENS = 1024


def _matmul_model(k: int, n: int, path: Path) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array((rng.standard_normal((k, n)) * 0.05).astype(np.float32), "W")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["A", "W"], ["C"])], "gemm",
        [helper.make_tensor_value_info("A", TensorProto.FLOAT, ["M", k])],
        [helper.make_tensor_value_info("C", TensorProto.FLOAT, ["M", n])],
        initializer=[weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(path))
    return path


def _rate(path: Path, m: int, k: int, n: int, threads: int, min_time: float) -> float:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    a = np.random.default_rng(1).standard_normal((m, k)).astype(np.float32)
    for _ in range(3):
        sess.run(None, {"A": a})
    best = float("inf")
    for _ in range(5):  # best of 5 rounds, each long enough to time
        reps, t0 = 0, time.perf_counter()
        while True:
            sess.run(None, {"A": a})
            reps += 1
            elapsed = time.perf_counter() - t0
            if elapsed >= min_time / 5:
                break
        best = min(best, elapsed / reps)
    return 2.0 * m * k * n / best


def measure(threads: int = 2, min_time: float = 2.0, tokens: int = TOKENS) -> dict:
    """fp32 and dynamic-int8 MatMul rates (GFLOP/s, GOP/s) per (K, N) shape, and the peaks."""
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    logging.getLogger().setLevel(logging.ERROR)  # quantize_dynamic advises pre-processing via the root logger

    out: dict = {"threads": threads, "tokens": tokens, "fp32": {}, "int8": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for k, n in SHAPES:
            fp32 = _matmul_model(k, n, Path(tmp) / f"mm_{k}_{n}.onnx")
            int8 = Path(tmp) / f"mm_{k}_{n}.int8.onnx"
            quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8)
            out["fp32"][f"{k}x{n}"] = _rate(fp32, tokens, k, n, threads, min_time) / 1e9
            out["int8"][f"{k}x{n}"] = _rate(int8, tokens, k, n, threads, min_time) / 1e9
    out["fp32_peak"] = max(out["fp32"].values())
    out["int8_peak"] = max(out["int8"].values())
    return out


if __name__ == "__main__":
    threads = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    print(json.dumps(measure(threads)))
