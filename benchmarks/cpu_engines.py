"""Which path for which CPU: onnxruntime fp32 and int8 against OpenVINO f32 and bf16, at every level, on the
real all-MiniLM-L6-v2 and all-mpnet-base-v2 weights, in one run.

    python -m benchmarks.cpu_engines            # ~10 min on 2 cores; writes benchmarks/cpu_engines.md
    python -m benchmarks.cpu_engines --quick    # 200 sentences, one repeat: a smoke test

Each system is a pipeline as users load it (``load(path=..., engine=..., precision=...)``, threads=2),
timed on ``predict(texts, output_level=...)`` over the synthetic corpus (``benchmarks/corpus.py``; MiniLM 2,000
sentences, MPNet 600) at token and sentence level, and over documents of 40 of those sentences each; best
of 3 runs, the systems interleaved; each level starts only when the 1-minute load average is under 1.5.
Accuracy: each system's token vectors against onnxruntime fp32's (cosine per token: mean and min).
Batching cost: OpenVINO batches only sequences of one length (its results may depend on padding; that
keeps every text's vectors independent of its batch); the ``OpenVINO bf16, padded batches`` row runs the
same pipeline with onnxruntime's padded batching, to measure what the equal-length batches cost.
"""
from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import time
from pathlib import Path

import numpy as np

from . import corpus as corpora
from . import models
from .int8_accuracy import wait_for_quiet

ROOT = Path(__file__).resolve().parent.parent
FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_int8", "amx_bf16")
SYSTEMS = (("onnxruntime fp32", {}), ("onnxruntime int8", {"precision": "int8"}),
           ("OpenVINO f32", {"engine": "openvino"}), ("OpenVINO bf16", {"engine": "openvino", "precision": "bf16"}))


def cpu() -> str:
    text = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    fields = dict(re.findall(r"^([^:]+):\s*(.*)$", text, re.MULTILINE))
    flags = set(fields.get("Flags", "").split())
    return (f"{fields.get('Model name', platform.processor())}, {fields.get('CPU(s)', '?')} cores, flags "
            f"{' '.join(f for f in FLAGS if f in flags)}")


def _timed(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return best


def run_model(name: str, folder: Path, texts: list[str], documents: list[str], repeats: int, wait: bool,
              bf16: bool) -> list[dict]:
    import nlu_lite

    systems = [s for s in SYSTEMS if bf16 or s[1].get("precision") != "bf16"]
    pipes = {label: nlu_lite.load(path=folder, threads=2, progress=False, **kw) for label, kw in systems}
    if bf16:  # the same bf16 pipeline with padded batches: what equal-length batching costs
        from nlu_lite.openvino_engine import OpenVinoEncoder
        from nlu_lite.pipeline import Pipeline

        base = pipes["OpenVINO bf16"]
        encoder = OpenVinoEncoder.from_path(base.model_path, threads=2, precision="bf16")
        encoder.exact_with_padding = True  # this instance only: onnxruntime's padded batching
        pipes["OpenVINO bf16, padded batches"] = Pipeline(base.spec, encoder, base.tokenizer, head=base.head)
    reference = nlu_lite.to_matrix(pipes["onnxruntime fp32"].predict(texts, output_level="token"))
    rows = []
    for label, pipe in pipes.items():
        got = nlu_lite.to_matrix(pipe.predict(texts, output_level="token"))
        cos = (got * reference).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(reference, axis=1)
        rows.append({"model": name, "system": label, "cos_mean": float(np.nanmean(cos)),
                     "cos_min": float(np.nanmin(cos)), "tokens": len(got)})
    for level, data in (("token", texts), ("sentence", texts), ("document", documents)):
        if wait:
            wait_for_quiet()
        for row in rows:  # interleaved: every system once per repeat
            pipe = pipes[row["system"]]
            row[level] = _timed(lambda p=pipe, d=data, lv=level: p.predict(d, output_level=lv), repeats)
        print(f"  {name} {level}: " + ", ".join(f"{r['system']} {r[level]:.2f} s" for r in rows), flush=True)
    return rows


def report(rows: list[dict], info: dict) -> str:
    lines = ["# Which engine on which CPU: onnxruntime fp32 / int8, OpenVINO f32 / bf16", "",
             "Written by `python -m benchmarks.cpu_engines` (its docstring has the protocol).", "",
             f"- CPU: {info['cpu']}", f"- {info['versions']}, Python {platform.python_version()}",
             f"- corpus: {info['corpus']}", "",
             ("Seconds per `predict()` of the whole corpus (best of the repeats, threads=2; lower is better), the "
              "speed-up against onnxruntime fp32 at that level, and each system's token vectors against onnxruntime "
              "fp32's (cosine per token)."), "",
             "| model | system | token s | × | sentence s | × | document s | × | cosine mean | cosine min |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        base = next(r for r in rows if r["model"] == row["model"] and r["system"] == "onnxruntime fp32")
        cells = " | ".join(f"{row[lv]:.2f} | {base[lv] / row[lv]:.2f}×" for lv in ("token", "sentence", "document"))
        lines.append(f"| {row['model']} | {row['system']} | {cells} | {row['cos_mean']:.6f} | {row['cos_min']:.5f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path.home() / ".cache" / "nlu_lite-bench")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "cpu_engines.md")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    os.environ.setdefault("NLU_LITE_CACHE", str(args.work / "cache_engines"))
    os.environ.setdefault("NLU_LITE_PROGRESS", "0")
    import onnxruntime
    import openvino
    from tokenizers import Tokenizer

    from nlu_lite.openvino_engine import bf16_supported

    bf16 = bf16_supported()
    minilm, mpnet = models.minilm(args.work), models.mpnet(args.work)
    tokenizer = Tokenizer.from_file(str(minilm / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.no_truncation()
    sentences = corpora.synthetic(tokenizer, n=200 if args.quick else 2000).sentences
    repeats = 1 if args.quick else 3
    rows = []
    for name, folder, n in (("all-MiniLM-L6-v2", minilm, len(sentences)), ("all-mpnet-base-v2", mpnet, 600)):
        texts = sentences[:n]
        documents = [" ".join(texts[i:i + 40]) for i in range(0, len(texts), 40)]
        rows += run_model(name, folder, texts, documents, repeats, wait=not args.quick, bf16=bf16)
    info = {"cpu": cpu() + ("" if bf16 else " (OpenVINO reports no BF16 here: no bf16 rows)"),
            "versions": f"onnxruntime {onnxruntime.__version__}, OpenVINO {openvino.__version__.split('-')[0]}",
            "corpus": (f"{len(sentences):,} synthetic sentences (MiniLM; MPNet the first 600), documents of 40 of them; "
                       f"token counts: {', '.join(str(r['tokens']) for r in rows if r['system'] == 'onnxruntime fp32')}")}
    text = report(rows, info)
    print(text)
    if args.quick:
        return  # a smoke test: nothing written
    args.out.write_text(text, encoding="utf-8")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
