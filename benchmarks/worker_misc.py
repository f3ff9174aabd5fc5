"""Child-process jobs besides throughput: first (converting) load, and streaming to parquet.

    python -m benchmarks.worker_misc first_load FOLDER
    python -m benchmarks.worker_misc convert FOLDER GRAPH
    python -m benchmarks.worker_misc stream FOLDER WORK PIECES THREADS [on|off]
    python -m benchmarks.worker_misc profile FOLDER TEXTS THREADS [fp32|int8]

``stream`` embeds a lazily generated synthetic corpus (blocks of 2,000 seeded sentences,
never held whole) of at least PIECES word pieces at token level with
``nlu_lite.stream.predict_to_parquet`` and reports the time, the file, the peak RSS and the
RSS sampled between chunks. ``on|off`` is onnxruntime's CPU memory arena (default: on, as
``load()`` opens sessions).

``profile`` runs one token-level ``predict`` over TEXTS (a JSON list) with onnxruntime's
profiler on and reports where the engine's time goes: kernel time per operator type, the
rate of the dense MatMul kernels themselves (FLOPs from their shapes), and how many rows the
model computes per counted word piece ([CLS], [SEP] and padding are computed, not counted).
"""
from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path

CHUNK_SIZE = 1000


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize() / 2**20


def _peak_mb() -> float:
    # this process's own high-water mark: getrusage's ru_maxrss carries the parent's peak across
    # fork and exec on Linux, so a child of a big benchmark process would report at least that
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # not Linux: the best there is


def first_load(folder: str) -> dict:
    import nlu_lite

    out = {}
    for precision in ("fp32", "int8"):
        t = time.perf_counter()
        try:
            nlu_lite.load(path=folder, precision=precision, threads=1)
        except Exception as exc:  # reported in the table rather than stopping the whole run
            out[f"{precision}_error"] = f"{type(exc).__name__}: {exc}"[:300]
            continue
        out[f"{precision}_s"] = time.perf_counter() - t
    return out


def convert(folder: str, graph: str) -> dict:
    from nlu_lite.convert import ensure_onnx

    return {p: str(ensure_onnx(folder, precision=p, graph=graph)) for p in ("fp32", "int8")}


def stream(folder: str, work: str, pieces: int, threads: int, arena: str = "on") -> dict:
    import nlu_lite
    from nlu_lite.stream import predict_to_parquet
    from tokenizers import Tokenizer

    from . import corpus

    pipe = nlu_lite.load(path=folder, threads=threads)
    if arena == "off":
        from nlu_lite.runtime import OnnxEncoder

        pipe.encoder = OnnxEncoder.from_path(pipe.model_path, threads=threads, enable_arena=False)
    tok = Tokenizer.from_file(str(Path(folder) / "tokenizer.json"))
    counted = {"pieces": 0, "rows": 0}
    samples: list[float] = []

    def sentences():
        seed = 100
        while counted["pieces"] < pieces:
            block = corpus.synthetic(tok, n=2000, seed=seed).sentences
            seed += 1
            lengths = [len(e.ids) for e in tok.encode_batch(block, add_special_tokens=False)]
            for text, n in zip(block, lengths):
                if counted["pieces"] >= pieces:
                    return
                if counted["rows"] % CHUNK_SIZE == 0:
                    samples.append(_rss_mb())  # between chunks: the previous chunk is written
                counted["pieces"] += n
                counted["rows"] += 1
                yield text

    target = Path(work) / "stream.parquet"
    rss_loaded = _rss_mb()
    t = time.perf_counter()
    predict_to_parquet(pipe, sentences(), target, output_level="token", chunk_size=CHUNK_SIZE, progress=False)
    seconds = time.perf_counter() - t
    between = samples[1:] or [_rss_mb()]  # samples[0] is taken before the first chunk
    peak = _peak_mb()
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(str(target)).metadata
    out = {"pieces": counted["pieces"], "rows": counted["rows"], "seconds": seconds, "out_rows": meta.num_rows,
           "row_groups": meta.num_row_groups, "file_mb": target.stat().st_size / 2**20, "peak_rss_mb": peak,
           "rss_loaded_mb": rss_loaded, "rss_samples_mb": samples, "chunk_size": CHUNK_SIZE,
           "enable_arena": arena == "on", "tokens_s": counted["pieces"] / seconds,
           # between chunks, from the end of the first to the start of the last: flat if memory is bounded
           "rss_between_chunks_mb": [min(between), max(between)], "rss_first_chunk_mb": between[0],
           "rss_last_chunk_mb": between[-1], "growth_mb": between[-1] - between[0]}
    target.unlink()
    return out


def profile(folder: str, texts_path: str, threads: int, precision: str = "fp32") -> dict:
    import collections
    import os
    import tempfile

    import numpy as np
    import onnxruntime as ort

    import nlu_lite
    from nlu_lite.runtime import DISABLED_OPTIMIZERS, OnnxEncoder, session_options

    with open(texts_path, encoding="utf-8") as fh:
        texts = json.load(fh)
    pipe = nlu_lite.load(path=folder, threads=threads, precision=precision)
    options = session_options(threads=threads)
    options.enable_profiling = True
    options.profile_file_prefix = os.path.join(tempfile.mkdtemp(prefix="nlu_lite_profile_"), "ort")
    session = ort.InferenceSession(pipe.model_path, options, providers=["CPUExecutionProvider"],
                                   disabled_optimizers=list(DISABLED_OPTIMIZERS))
    pipe.encoder = OnnxEncoder(session, path=Path(pipe.model_path))
    shapes: list[tuple[int, int, int]] = []  # (rows, width, real positions) per call
    original = pipe.encoder.run

    def recording(ids, mask, outputs=("last_hidden_state",)):
        shapes.append((ids.shape[0], ids.shape[1], int(np.asarray(mask).sum())))
        return original(ids, mask, outputs)

    pipe.encoder.run = recording
    pipe.predict(texts[:64], output_level="token", progress=False)  # warm-up, not counted below
    warm_calls = len(shapes)
    t = time.perf_counter()
    pipe.predict(texts, output_level="token", progress=False, deduplicate=False)
    wall = time.perf_counter() - t
    trace = Path(session.end_profiling())
    events = json.loads(trace.read_text(encoding="utf-8"))
    trace.unlink()
    trace.parent.rmdir()
    runs = [e for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"]
    first_timed = runs[warm_calls]["ts"] if len(runs) > warm_calls else 0
    per_op: collections.Counter = collections.Counter()
    matmul_us, matmul_flop = 0, 0.0
    for e in events:
        if e.get("cat") != "Node" or not e["name"].endswith("_kernel_time") or e["ts"] < first_timed:
            continue
        op = e["args"]["op_name"]
        per_op[op] += e["dur"]
        if op == "MatMul":
            x = e["args"]["input_type_shape"][0]["float"]
            y = e["args"]["output_type_shape"][0]["float"]
            matmul_us += e["dur"]
            matmul_flop += 2.0 * float(np.prod(x[:-1])) * x[-1] * y[-1]
    timed = shapes[warm_calls:]
    pieces = sum(real - 2 * rows for rows, _, real in timed)
    kernel_us = sum(per_op.values())
    return {"wall_s": wall, "kernel_s": kernel_us / 1e6, "ops_s": {k: v / 1e6 for k, v in per_op.most_common()},
            "matmul_gflops": matmul_flop / matmul_us / 1e3 if matmul_us else None,
            "pieces": pieces, "rows_real": sum(real for _, _, real in timed),
            "rows_padded": sum(rows * width for rows, width, _ in timed), "calls": len(timed)}


def main(argv: list[str]) -> int:
    if argv[0] == "first_load":
        result = first_load(argv[1])
    elif argv[0] == "convert":
        result = convert(argv[1], argv[2])
    elif argv[0] == "profile":
        result = profile(argv[1], argv[2], int(argv[3]), *argv[4:5])
    elif argv[0] == "stream":
        result = stream(argv[1], argv[2], int(argv[3]), int(argv[4]), *(argv[5:6]))
    else:
        raise SystemExit(f"unknown job {argv[0]!r}")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
