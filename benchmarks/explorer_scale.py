"""How the explorer's plots scale: 10,000 and 100,000 points, from the frame to the first drawn view.

    python -m benchmarks.explorer_scale          # writes benchmarks/explorer_scale.md (~1 min)

A sentence-level frame of n rows (384-dim vectors around six centres, short texts), as predict() returns it.
Per n: PCA + figure build (``plot_embeddings(df, max_points=None)``), the figure's JSON (plotly 6 sends numpy
arrays as base64 binary, lists as JSON text), the ``Explorer`` built (projection, traces, hover texts), and
the first view in headless Chromium: a static HTML page of the figure with plotly.js inline, from navigation
to plotly's ``plotly_afterplot`` event (WebGL past 2,000 points). Best of 3. The CPU is named in the table.
"""
from __future__ import annotations

import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from nlu_lite.frame import build_frame

ROOT = Path(__file__).resolve().parent.parent
SIZES = (10_000, 100_000)


def frame(n: int):
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(6, 384)) * 2
    labels = rng.integers(0, 6, size=n)
    matrix = (centres[labels] + rng.normal(size=(n, 384))).astype(np.float32)
    texts = [f"Sentence {i} about topic {t}, with a few more words." for i, t in enumerate(labels)]
    df = build_frame({"origin_index": np.arange(n), "sentence_index": 0, "sentence": texts, "begin": 0,
                      "end": [len(t) for t in texts], "windowed": False}, matrix, "bench_embeddings")
    df["topic"] = [f"topic {t}" for t in labels]
    return df


def best(call, repeats: int = 3):
    times, out = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        out = call()
        times.append(time.perf_counter() - started)
    return min(times), out


def browser_first_view(html: Path) -> float:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox", "--use-gl=swiftshader",
                                                                             "--enable-webgl", "--ignore-gpu-blocklist"])
        page = browser.new_page()
        seconds = []
        for _ in range(3):
            page.goto("about:blank")
            started = time.perf_counter()
            page.goto(html.as_uri(), wait_until="domcontentloaded")
            page.wait_for_function("() => { const gd = document.querySelector('.js-plotly-plot');"
                                   " return gd && gd._fullLayout && gd.querySelector('.gl-container canvas, "
                                   ".scatterlayer .point'); }", timeout=120_000)
            seconds.append(time.perf_counter() - started)
        browser.close()
    return min(seconds)


def cpu() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
        name = next(line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name"))
        flags = next(line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags"))
        return f"{name} ({', '.join(f for f in ('avx2', 'avx512f', 'avx512_vnni', 'amx_tile') if f in flags)})"
    except (OSError, StopIteration):
        return platform.processor() or "unknown CPU"


def main() -> None:
    import plotly

    from nlu_lite.viz import clear_cache, explore, plot_embeddings

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in SIZES:
            df = frame(n)

            def build(df=df):
                clear_cache()
                return plot_embeddings(df, max_points=None, color="topic")

            build_s, fig = best(build)
            json_s, text = best(fig.to_json)
            explorer_s, _ = best(lambda df=df: (clear_cache(), explore(df, max_points=None, color="topic"))[1])
            html = Path(tmp) / f"plot_{n}.html"
            fig.write_html(html, include_plotlyjs=True)
            view_s = browser_first_view(html)
            rows.append((n, build_s, len(text) / 1e6, json_s, explorer_s, view_s))
    lines = [
        "# Explorer scale: 10,000 and 100,000 points", "",
        f"CPU: {cpu()}; plotly {plotly.__version__}; `python -m benchmarks.explorer_scale`; best of 3.", "",
        "| points | PCA + figure (s) | figure JSON (MB) | to_json (s) | Explorer built (s) | first view in Chromium (s) |",
        "|---:|---:|---:|---:|---:|---:|",
        *(f"| {n:,} | {b:.2f} | {mb:.1f} | {j:.2f} | {e:.2f} | {v:.2f} |" for n, b, mb, j, e, v in rows), "",
        ("First view: navigation to the first drawn frame of a static page holding the figure and plotly.js; "
         "headless Chromium renders WebGL in software (SwiftShader), slower than a desktop GPU."),
    ]
    out = ROOT / "benchmarks" / "explorer_scale.md"
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
