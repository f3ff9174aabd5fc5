"""A fastText-size static table: import, cached load, memory of one and of two processes, lookup speed.

    python -m benchmarks.static_tables                 # writes benchmarks/static_tables.md (~10 min at 2M rows)
    python -m benchmarks.static_tables --rows 200000   # a quicker run
    python -m benchmarks.static_tables --table cc.xx.300.vec.gz   # an existing .vec.gz (skips writing one)

The table is synthetic (random values printed with 4 decimals, as fastText's own text tables are) at the shape of
fastText's Common Crawl tables (2,000,000 words x 300, gzip-compressed ``.vec.gz``): no model hub is reachable
here, and the numbers measured do not depend on the values. Measured, each in a fresh process under an empty
cache: the first ``load(path=...)`` (read the .vec.gz, build the lookup tokenizer, write the checkpoint, convert
to ONNX) and its peak RSS; a cached load and its peak RSS; two processes holding the loaded table at once (their
PSS: shared pages of the memory-mapped table counted once); words per second looked up at token level (about
10,000 words spread over the table, in 20-word sentences, the frame built). The
comparison in the same run: the line-by-line reader nlu_lite used before (``np.array(line.split()[1:])`` per row)
on the same file's first rows, against the block reader now used.
"""
from __future__ import annotations

import argparse
import gzip
import io
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
PROBE = r"""
import json, os, resource, sys, time
import nlu_lite
t = time.perf_counter()
pipe = nlu_lite.load(path=sys.argv[1])
seconds = time.perf_counter() - t
words = [f"w{i}" for i in range(0, 2_000_000, 997)] * 5  # rows spread over the whole table
texts = [" ".join(words[i:i + 20]) + "." for i in range(0, len(words), 20)]  # 20-word sentences, one per text
t = time.perf_counter()
frame = pipe.predict(texts, output_level="token")
lookup = len(frame) / (time.perf_counter() - t)
pss = anon = None
try:
    for line in open("/proc/self/smaps_rollup"):
        if line.startswith("Pss:"):
            pss = int(line.split()[1]) / 1e6
    for line in open("/proc/self/status"):
        if line.startswith("RssAnon:"):
            anon = int(line.split()[1]) / 1e6
except OSError:
    pass
print(json.dumps({"seconds": seconds, "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,
                  "pss_gb": pss, "anon_gb": anon, "words_per_s": lookup}), flush=True)
if len(sys.argv) > 2:  # hold the table while another process loads it
    time.sleep(float(sys.argv[2]))
"""


def write_table(path: Path, rows: int, width: int = 300) -> None:
    rng = np.random.default_rng(0)
    with gzip.open(path, "wt", compresslevel=1) as fh:
        fh.write(f"{rows} {width}\n")
        for start in range(0, rows, 50_000):
            n = min(50_000, rows - start)
            buffer = io.StringIO()
            np.savetxt(buffer, rng.normal(size=(n, width)).astype(np.float32), fmt="%.4f")
            lines = buffer.getvalue().split("\n")
            fh.write("".join(f"w{start + i} {line}\n" for i, line in enumerate(lines[:n])))


def probe(table: Path, cache: Path, hold: float | None = None) -> subprocess.Popen:
    env = {**os.environ, "NLU_LITE_CACHE": str(cache), "NLU_LITE_PROGRESS": "0"}
    args = [sys.executable, "-c", PROBE, str(table)] + ([str(hold)] if hold else [])
    return subprocess.Popen(args, env=env, stdout=subprocess.PIPE, text=True)


def result(process: subprocess.Popen) -> dict:
    line = process.stdout.readline()
    if not line:
        raise SystemExit(f"the probe failed (exit {process.wait()})")
    return json.loads(line)


def line_by_line(table: Path, rows: int) -> float:
    """Seconds for the first ``rows`` rows, as nlu_lite read text tables before (one numpy array per line)."""
    t = time.perf_counter()
    with gzip.open(table, "rt", encoding="utf-8") as fh:
        fh.readline()
        out = [np.array(next(fh).rstrip("\n").split(" ")[1:], dtype=np.float32) for _ in range(rows)]
    np.vstack(out)
    return time.perf_counter() - t


def blocks(table: Path, rows: int) -> float:
    """The same rows through the block reader (nlu_lite.convert.static), on a file cut to them."""
    from nlu_lite.convert.static import read_table

    with tempfile.TemporaryDirectory() as tmp:
        cut = Path(tmp) / "cut.vec.gz"
        with gzip.open(table, "rt", encoding="utf-8") as src, gzip.open(cut, "wt", compresslevel=1) as dst:
            width = src.readline().split()[1]
            dst.write(f"{rows} {width}\n")
            for _ in range(rows):
                dst.write(next(src))
        t = time.perf_counter()
        read_table(cut, spare=1)
        return time.perf_counter() - t


def cpu() -> str:
    name = platform.processor() or "unknown"
    flags = ""
    try:
        info = Path("/proc/cpuinfo").read_text()
        name = next(line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name"))
        flag_line = next(line for line in info.splitlines() if line.startswith("flags"))
        flags = " ".join(f for f in flag_line.split(":", 1)[1].split() if f.startswith(("avx", "amx")))
    except (OSError, StopIteration):
        pass
    return f"{name}, {os.cpu_count()} cores; {flags}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--table", type=Path, help="an existing .vec.gz to measure instead of writing one")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "static_tables.md")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="nlu_lite_static_") as tmp:
        tmp = Path(tmp)
        table = args.table or tmp / f"cc.synthetic.{args.rows}.vec.gz"
        if args.table is None:
            t = time.perf_counter()
            write_table(table, args.rows)
            print(f"wrote {table} in {time.perf_counter() - t:.0f} s", flush=True)
        with gzip.open(table, "rt") as fh:
            rows = int(fh.readline().split()[0])
        cache = tmp / "cache"
        first = result(probe(table, cache))
        cached = result(probe(table, cache))
        a = probe(table, cache, hold=60)
        one = result(a)
        b = probe(table, cache, hold=1)
        two = result(b)
        a.kill()
        b.wait()
        sample = min(rows, 100_000)
        before, now = line_by_line(table, sample), blocks(table, sample)
        size = table.stat().st_size / 1e9
    lines = [
        "# A fastText-size static table",
        "",
        (f"`python -m benchmarks.static_tables` ({'--table ' + args.table.name if args.table else f'--rows {rows}'}),"
        f" {time.strftime('%Y-%m-%d')}. CPU: {cpu()}. Python {platform.python_version()}."),
        "",
        f"Table: {rows:,} words x 300, `.vec.gz` of {size:.2f} GB (synthetic values, fastText's format and shape).",
        "Each row a fresh process; the cache empty before the first.",
        "",
        "| step | seconds | peak RSS (GB) | PSS (GB) | private (GB) | words/s at token level |",
        "|---|---:|---:|---:|---:|---:|",
        (f"| first load: read, import, convert | {first['seconds']:.1f} | {first['peak_rss_gb']:.2f} | "
        f"{first['pss_gb'] or float('nan'):.2f} | {first['anon_gb'] or float('nan'):.2f} | {first['words_per_s']:,.0f} |"),
        (f"| cached load | {cached['seconds']:.2f} | {cached['peak_rss_gb']:.2f} | {cached['pss_gb'] or float('nan'):.2f} |"
        f" {cached['anon_gb'] or float('nan'):.2f} | {cached['words_per_s']:,.0f} |"),
        (f"| two processes at once: the first | {one['seconds']:.2f} | {one['peak_rss_gb']:.2f} | "
        f"{one['pss_gb'] or float('nan'):.2f} | {one['anon_gb'] or float('nan'):.2f} | {one['words_per_s']:,.0f} |"),
        (f"| two processes at once: the second | {two['seconds']:.2f} | {two['peak_rss_gb']:.2f} | "
        f"{two['pss_gb'] or float('nan'):.2f} | {two['anon_gb'] or float('nan'):.2f} | {two['words_per_s']:,.0f} |"),
        "",
        (f"Reading the first {sample:,} rows of the same file: line by line (one numpy array per row, nlu_lite's reader "
        f"before) {before:.2f} s; in blocks through pandas' C parser (now) {now:.2f} s: {before / now:.1f}x."),
        "",
        "The table is memory-mapped by onnxruntime from the converted model's `model.onnx.data`: its pages are the",
        "file's page cache, shared by every process and reclaimable; RSS and PSS count those mapped into a process",
        "(the kernel maps a freshly written file in large folios, so one looked-up row can map megabytes of it:",
        "right after the conversion most of the table shows in RSS; on a cache written earlier, far less). Private",
        "memory (RssAnon: the tokenizer's 2M-word vocabulary, the frame) is what each process adds.",
    ]
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
