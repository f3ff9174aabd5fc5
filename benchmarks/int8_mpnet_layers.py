"""Which layers' feed-forward output to keep fp32 on all-mpnet-base-v2 (issue 22): the self-check keeps all twelve
(1.68x fp32); would a few do?

    python benchmarks/int8_mpnet_layers.py      # about 10 minutes; results: benchmarks/int8.md

Every MatMul int8 first, then each layer's feed-forward output (GELU-fed) MatMul alone kept fp32, on the self-check's
own corpus and sequences (nlu_lite.int8_check); the layers ranked by the mean they recover; the top 2, 3, 4, 6 kept
fp32 together. Then, on the topics corpus (not the check corpus; tests/test_real_mpnet.py's batches), per-token
cosine to fp32 and speed (every batch, best of 3, interleaved, 2 threads) of every MatMul int8, the top 3 and 4,
and the twelve kept fp32 (the graph load(precision='int8') serves). Reads the folder at
~/.cache/nlu_lite-bench/all-mpnet-base-v2 (benchmarks.int8_accuracy makes it); scratch under /tmp/exp22_layers.
"""
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("NLU_LITE_CACHE", "/tmp/exp22_layers/cache")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import numpy as np
import onnx
from _engine_support import cosine_per_token
from test_real_mpnet import _batches, topics_corpus

import nlu_lite
from nlu_lite import int8_check
from nlu_lite.convert import ensure_onnx
from nlu_lite.convert import int8 as quant
from nlu_lite.convert.store import save_model
from nlu_lite.runtime import OnnxEncoder

MP = Path.home() / ".cache" / "nlu_lite-bench" / "all-mpnet-base-v2"
SCRATCH = Path("/tmp/exp22_layers")
pipe = nlu_lite.load(path=MP)
fp32_path = ensure_onnx(MP)
sequences = int8_check._sequences(pipe.tokenizer, 384)
reference = int8_check._states(fp32_path, sequences, 2)


def ffn_out(layer: int) -> str:
    return f"encoder.layer.{layer}.output.dense.weight_t"


def build(name: str, keep: tuple[str, ...]) -> Path:
    model = onnx.load_model(str(fp32_path))
    metadata = json.loads({p.key: p.value for p in model.metadata_props}["nlu_lite"])
    quant.quantize_model(model, metadata, keep, (), ())
    path = SCRATCH / f"{name}.onnx"
    path.parent.mkdir(parents=True, exist_ok=True)
    save_model(model, path)
    return path


def check(path: Path) -> dict:
    return int8_check.measure(reference, int8_check._states(path, sequences, 2))


graphs = {"every MatMul int8": build("all_int8", ())}
base = check(graphs["every MatMul int8"])
print("## The check corpus (2,360 positions)\n\n| feed-forward output kept fp32 | token mean | token min | sentence mean |")
print("|---|---:|---:|---:|")
print(f"| none | {base['token_mean']:.6f} | {base['token_min']:.6f} | {base['sentence_mean']:.6f} |", flush=True)
gains = []
for layer in range(12):
    figures = check(build(f"keep_{layer}", (ffn_out(layer),)))
    gains.append((figures["token_mean"] - base["token_mean"], layer))
    print(f"| layer {layer} | {figures['token_mean']:.6f} | {figures['token_min']:.6f} | "
          f"{figures['sentence_mean']:.6f} |", flush=True)
order = [layer for _, layer in sorted(gains, reverse=True)]
for k in (2, 3, 4, 6):
    path = build(f"top_{k}", tuple(ffn_out(layer) for layer in order[:k]))
    figures = check(path)
    if k in (3, 4):
        graphs[f"layers {', '.join(map(str, order[:k]))} kept fp32"] = path
    print(f"| layers {', '.join(map(str, order[:k]))} | {figures['token_mean']:.6f} | {figures['token_min']:.6f} | "
          f"{figures['sentence_mean']:.6f} |", flush=True)
graphs["all twelve kept fp32 (as served)"] = Path(nlu_lite.load(path=MP, precision="int8").model_path)

batches = _batches(pipe, topics_corpus())
encoders = {"fp32": OnnxEncoder.from_path(fp32_path, threads=2)}
encoders.update({name: OnnxEncoder.from_path(path, threads=2) for name, path in graphs.items()})
states = {name: [e.run(i, m)["last_hidden_state"] for i, m in batches] for name, e in encoders.items()}
best = dict.fromkeys(encoders, float("inf"))
for _ in range(3):
    for name, encoder in encoders.items():
        started = time.perf_counter()
        for ids, mask in batches:
            encoder.run(ids, mask)
        best[name] = min(best[name], time.perf_counter() - started)
print(f"\n## The topics corpus ({sum(int(m.sum()) for _, m in batches):,} positions), speed over its batches\n")
print("| graph | token mean | p1 | min | s (best of 3) | x fp32 |\n|---|---:|---:|---:|---:|---:|")
for name in graphs:
    cos = np.concatenate([cosine_per_token(q, r, m) for q, r, (_, m) in zip(states[name], states["fp32"], batches)])
    print(f"| {name} | {cos.mean():.5f} | {np.percentile(cos, 1):.4f} | {cos.min():.4f} | {best[name]:.2f} | "
          f"{best['fp32'] / best[name]:.2f} |")
print(f"| fp32 | 1 | 1 | 1 | {best['fp32']:.2f} | 1.00 |")
