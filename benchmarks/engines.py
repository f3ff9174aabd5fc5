"""predict() on Spark local[2] and a Dask LocalCluster (2 workers x 1 thread) against
single-process predict() with both threads, on the same corpus, in the same run.

    python -m benchmarks.engines            # about 4 minutes on 2 cores; writes benchmarks/engines.md
    python -m benchmarks.engines --quick    # 300 sentences, 2 repeats

Token level, small BERT L4/H512 (benchmarks/models.py), the synthetic corpus (benchmarks/corpus.py).
Steady state: each engine is started and warmed up with one job first (start-up and the
first job, which loads the model on every worker, are reported apart); then each timed job
runs the whole corpus end to end and discards the result where it is made (Spark's ``noop``
sink; Dask computes every partition on the workers and returns only its length), so no
time goes into collecting vectors to the driver. Overhead per job: a 4-row job, steady state.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _timed(fn, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return times


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", type=Path, default=Path.home() / ".cache" / "nlu_lite-bench")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "engines.md")
    p.add_argument("--sentences", type=int, default=2000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--quick", action="store_true")
    args = p.parse_args(argv)
    n, repeats = (300, 2) if args.quick else (args.sentences, args.repeats)
    os.environ.setdefault("NLU_LITE_PROGRESS", "0")
    os.environ["NLU_LITE_CACHE"] = str(args.work / "engines_cache")
    os.environ["PYSPARK_PYTHON"] = os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
    from tokenizers import Tokenizer

    import nlu_lite

    from . import corpus, models
    from .run import _load_average, _machine

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    model = models.small_bert(args.work)
    texts = corpus.synthetic(Tokenizer.from_file(str(model / "tokenizer.json")), n=n).sentences
    pieces = sum(len(e.ids) for e in Tokenizer.from_file(str(model / "tokenizer.json")).encode_batch(
        texts, add_special_tokens=False))
    load_start = _load_average()
    rows: list[dict] = []

    pipe = nlu_lite.load(path=model, threads=2)
    pipe.predict(texts[:64])
    single = _timed(lambda: pipe.predict(texts, output_level="token", deduplicate=False), repeats)
    rows.append({"system": "predict(), one process, 2 threads", "times": single, "start": None, "first": None})
    log(f"single process: {statistics.median(single):.2f} s")

    import pandas as pd

    frame = pd.DataFrame({"text": texts})
    from pyspark.sql import SparkSession

    import nlu_lite.spark

    started = time.perf_counter()
    spark = (SparkSession.builder.master("local[2]").appName("nlu_lite engines benchmark")
             .config("spark.ui.enabled", "false").config("spark.driver.memory", "2g").getOrCreate())
    spark_start = time.perf_counter() - started
    sdf = spark.createDataFrame(frame).repartition(4).cache()
    sdf.count()
    tiny = spark.createDataFrame(frame.iloc[:4]).cache()
    tiny.count()

    def spark_job(data):
        nlu_lite.spark.predict(data, pipe, "token", deduplicate=False).write.format("noop").mode("overwrite").save()

    first = _timed(lambda: spark_job(sdf), 1)[0]
    times = _timed(lambda: spark_job(sdf), repeats)
    overhead = statistics.median(_timed(lambda: spark_job(tiny), repeats))
    rows.append({"system": "Spark local[2] (2 tasks x 1 thread)", "times": times, "start": spark_start,
                 "first": first, "overhead": overhead})
    log(f"spark: start {spark_start:.1f} s, first job {first:.1f} s, steady {statistics.median(times):.2f} s")
    spark.stop()

    import dask.dataframe as dd
    import distributed

    import nlu_lite.dask

    started = time.perf_counter()
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            distributed.Client(cluster):
        dask_start = time.perf_counter() - started
        ddf = dd.from_pandas(frame, npartitions=4).persist()
        small = dd.from_pandas(frame.iloc[:4], npartitions=1).persist()

        def dask_job(data):
            nlu_lite.dask.predict(data, pipe, "token", deduplicate=False).map_partitions(len).compute()

        first = _timed(lambda: dask_job(ddf), 1)[0]
        times = _timed(lambda: dask_job(ddf), repeats)
        overhead = statistics.median(_timed(lambda: dask_job(small), repeats))
    rows.append({"system": "Dask LocalCluster (2 workers x 1 thread)", "times": times, "start": dask_start,
                 "first": first, "overhead": overhead})
    log(f"dask: start {dask_start:.1f} s, first job {first:.1f} s, steady {statistics.median(times):.2f} s")

    machine = _machine()
    base = statistics.median(single)
    lines = [
        "## nlu_lite on Spark and Dask",
        "",
        f"Machine: {machine.get('cpu')}, {machine.get('cores')} cores ({machine.get('isa', '')}); Python "
        f"{machine.get('python')}. {time.strftime('%Y-%m-%d %H:%M')}. Load average at start {load_start}, at end "
        f"{_load_average()}.",
        f"Model: small BERT L4/H512 (random seeded weights, real vocabulary). Corpus: {n:,} synthetic sentences, "
        f"{pieces:,} word pieces; token level; median of {repeats} jobs after a warm-up job.",
        "",
        "| system | s per job | tokens/s | × one process | engine start s | first job s | overhead per job s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        median = statistics.median(r["times"])
        fmt = lambda v: "" if v is None else f"{v:.2f}"  # noqa: E731
        lines.append(f"| {r['system']} | {median:.2f} | {pieces / median:,.0f} | {base / median:.2f}× | "
                     f"{fmt(r['start'])} | {fmt(r['first'])} | {fmt(r.get('overhead'))} |")
    text = "\n".join(lines) + "\n"
    print(text)
    args.out.write_text(text, encoding="utf-8")
    log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
