"""Grouped int8 through onnxruntime's MatMulNBits (bits=8, accuracy_level=4: int8 weights in blocks along K,
activations quantised per row and block) against the library's per-token int8 MatMul and fp32, on one
all-mpnet-base-v2-shaped feed-forward MatMul (768 x 3072, 4,096 rows, 2 threads, random weights).

    python benchmarks/int8_matmulnbits.py      # prints a table (benchmarks/int8.md)

Per row: best of 7 (ms) after two warm runs, the lowest row cosine to numpy's fp32 product, and whether a row run alone gives the same
bits as inside the batch (issue 22's promise)."""
import time

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from nlu_lite.convert.int8 import Plan, rewrite

K, N, ROWS = 768, 3072, 4096
rng = np.random.default_rng(0)
W = (rng.normal(size=(K, N)) * 0.05).astype(np.float32)
A = rng.normal(size=(ROWS, K)).astype(np.float32)
SIGNATURE = ([helper.make_tensor_value_info("A", TensorProto.FLOAT, [None, K])],
             [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None, N])])
OPSETS = [helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]


def model(nodes, initializers):
    return helper.make_model(helper.make_graph(nodes, "g", *SIGNATURE, initializers), opset_imports=OPSETS)


def fp32():
    return model([helper.make_node("MatMul", ["A", "W"], ["Y"])], [numpy_helper.from_array(W, "W")])


def nbits(block):
    blocks = W.T.reshape(N, K // block, block)
    scale = np.abs(blocks).max(-1) / 127.0
    q = (np.clip(np.rint(blocks / scale[..., None]), -127, 127) + 128).astype(np.uint8)
    node = helper.make_node("MatMulNBits", ["A", "B", "S"], ["Y"], domain="com.microsoft", K=K, N=N, bits=8,
                            block_size=block, accuracy_level=4)
    return model([node], [numpy_helper.from_array(q, "B"), numpy_helper.from_array(scale.reshape(-1).astype(np.float32), "S")])


def per_token():  # the library's own rewrite: symmetric u8 per row, MatMulIntegerToFloat, int8 weights per column
    return rewrite(fp32(), Plan(kinds={"A": "token"}))


options = ort.SessionOptions()
options.intra_op_num_threads = 2
reference = A @ W
print(f"onnxruntime {ort.__version__}; {K} x {N}, {ROWS:,} rows, 2 threads\n")
print("| MatMul | ms (best of 7) | x fp32 | min row cosine to fp32 | alone vs in the batch (max abs) |")
print("|---|---:|---:|---:|---:|")
base = None
for name, proto in [("fp32", fp32()), ("library per-token int8", per_token()),
                    *((f"MatMulNBits 8-bit, blocks of {b}", nbits(b)) for b in (32, 64, 128, 256))]:
    session = ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])
    y = session.run(None, {"A": A})[0]
    session.run(None, {"A": A})  # warm
    times = []
    for _ in range(7):
        start = time.perf_counter()
        session.run(None, {"A": A})
        times.append(time.perf_counter() - start)
    base = base or min(times)
    alone = max(float(np.abs(session.run(None, {"A": A[r:r + 1]})[0][0] - y[r]).max()) for r in (0, 1, 7, 100, 4095))
    cos = (y * reference).sum(1) / np.linalg.norm(y, axis=1) / np.linalg.norm(reference, axis=1)
    print(f"| {name} | {min(times) * 1000:.1f} | {base / min(times):.2f} | {cos.min():.6f} | {alone:.1e} |")
