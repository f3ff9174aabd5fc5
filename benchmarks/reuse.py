"""Reuse of repeated sentences: the same corpus with a share of repeats, predict() with reuse on and off.

    python -m benchmarks.reuse            # about 2 minutes on 2 cores; writes benchmarks/reuse.md

Token level, small BERT L4/H512 (benchmarks/models.py), 2 threads. The corpus: the synthetic
sentences (benchmarks/corpus.py) of which ``--repeat`` of the rows are copies of other rows,
drawn with a seed and shuffled in, as headers, boilerplate and retweets repeat in real corpora.
Reuse on and off alternate, median of ``--repeats`` runs each; the frames are checked equal.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", type=Path, default=Path.home() / ".cache" / "nlu_lite-bench")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "reuse.md")
    p.add_argument("--rows", type=int, default=2000)
    p.add_argument("--repeat", type=float, default=0.3, help="share of rows that repeat another row")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json", type=Path, default=None, help="also write the two times here (for benchmarks.run)")
    args = p.parse_args(argv)
    os.environ.setdefault("NLU_LITE_PROGRESS", "0")
    os.environ["NLU_LITE_CACHE"] = str(args.work / "reuse_cache")
    import numpy as np
    from tokenizers import Tokenizer

    import nlu_lite

    from . import corpus, models
    from .run import _load_average, _machine

    model = models.small_bert(args.work)
    distinct_n = round(args.rows * (1 - args.repeat))
    distinct = corpus.synthetic(Tokenizer.from_file(str(model / "tokenizer.json")), n=distinct_n).sentences
    rng = random.Random(0)
    texts = distinct + [rng.choice(distinct) for _ in range(args.rows - distinct_n)]
    rng.shuffle(texts)
    pipe = nlu_lite.load(path=model, threads=2)
    pipe.predict(texts[:64])
    times: dict[bool, list[float]] = {True: [], False: []}
    frames = {}
    for _ in range(args.repeats):
        for reuse in (False, True):
            started = time.perf_counter()
            frames[reuse] = pipe.predict(texts, output_level="token", deduplicate=reuse)
            times[reuse].append(time.perf_counter() - started)
    np.testing.assert_array_equal(nlu_lite.to_matrix(frames[True]), nlu_lite.to_matrix(frames[False]))
    off, on = statistics.median(times[False]), statistics.median(times[True])
    machine = _machine()
    text = "\n".join([
        "## Reuse of repeated sentences",
        "",
        f"Machine: {machine.get('cpu')}, {machine.get('cores')} cores ({machine.get('isa', '')}). "
        f"{time.strftime('%Y-%m-%d %H:%M')}; load average {_load_average()}.",
        f"{args.rows:,} synthetic sentences, {args.rows - distinct_n:,} of them ({args.repeat:.0%}) repeats of others; "
        f"token level, small BERT L4/H512, 2 threads, median of {args.repeats} alternated runs; frames equal.",
        "",
        "| predict() | s | rows/s | speed-up |",
        "|---|---:|---:|---:|",
        f"| reuse off (`deduplicate=False`) | {off:.2f} | {args.rows / off:,.0f} | 1.00× |",
        f"| reuse on (default) | {on:.2f} | {args.rows / on:,.0f} | {off / on:.2f}× |",
        "",
    ])
    print(text)
    args.out.write_text(text, encoding="utf-8")
    if args.json:
        args.json.write_text(json.dumps({"off_s": off, "on_s": on, "rows": args.rows, "repeat": args.repeat}),
                             encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
