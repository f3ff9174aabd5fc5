"""How the explorer's plots scale: 10,000 and 100,000 points, from the frame to the first drawn view.

    python -m benchmarks.explorer_scale          # writes benchmarks/explorer_scale.md (~5 min)

A sentence-level frame of n rows (384-dim vectors around six centres, short texts), as predict() returns it.
Per n: PCA + figure build (``plot_embeddings(df, max_points=None)``), the figure's JSON (plotly 6 sends numpy
arrays as base64 binary, lists as JSON text), the ``Explorer`` built (projection, traces, hover texts), and
the first view in headless Chromium: a static HTML page of the figure with plotly.js inline, from navigation
to plotly's ``plotly_afterplot`` event (WebGL past 2,000 points). Best of 3. The CPU is named in the table.
"""
from __future__ import annotations

import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from nlu_lite.frame import build_frame

ROOT = Path(__file__).resolve().parent.parent
SIZES = (10_000, 100_000)
SESSIONS = 3  # fresh JupyterLab sessions per path and size: one run varies by ±0.4 s here


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


NOTEBOOK_SETUP = """import sys
sys.path.insert(0, {root!r})
import nlu_lite
from benchmarks.explorer_scale import frame
df = frame({n})
if {plain!r}:  # the previous path: plotly's own FigureWidget, its bundle in the widget's state
    import nlu_lite.viz.widget
    nlu_lite.viz.widget.plot_widget_class = lambda: __import__("plotly.graph_objects").graph_objects.FigureWidget
print("MARK-A")"""


def jupyterlab_first_view(n: int, plain: bool = False) -> tuple[float, float | None, float | None, float]:
    """Seconds from running an explorer's cell (one cell, as Shift-Enter does) to its plot holding all ``n``
    points in JupyterLab's page (the widget path: kernel, comm messages, plotly.js), headless Chromium: the
    first explorer of the session (imports, plotly.js's bundle loaded by the page), with the seconds at which
    the page had imported plotly's bundle and had the figure's state (the loader's marks; None for ``plain``),
    then a second explorer. ``plain``: plotly's own FigureWidget, as the explorer used it before (its bundle in
    the widget's state)."""
    import json
    import secrets
    import socket
    import subprocess
    import sys
    import urllib.request

    import nbformat
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_code_cell(NOTEBOOK_SETUP.format(root=str(ROOT), n=n, plain=plain)),
                    nbformat.v4.new_code_cell('ex = nlu_lite.explore(df, max_points=None, color="topic")\nex'),
                    nbformat.v4.new_code_cell('again = nlu_lite.explore(df, max_points=None, color="topic")\nagain')]
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(nb, root / "scale.ipynb")
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        token = secrets.token_hex(16)
        env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(root / ".runtime"), "JUPYTER_CONFIG_DIR": str(root / ".config"),
               "JUPYTERLAB_WORKSPACES_DIR": str(root / ".workspaces"), "NLU_LITE_PROGRESS": "0"}
        server = subprocess.Popen(
            [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", "--ip=127.0.0.1", f"--port={port}",
             f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}", "--LabApp.expose_app_in_browser=True",
             "--LabApp.news_url=None"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
        try:
            for _ in range(180):
                try:
                    json.load(urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2))
                    break
                except OSError:
                    time.sleep(0.5)
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path="/usr/bin/chromium",
                                            args=["--no-sandbox", "--use-gl=swiftshader", "--enable-webgl",
                                                  "--ignore-gpu-blocklist"])
                page = browser.new_page(viewport={"width": 1400, "height": 1300})
                page.goto(f"{url}/lab/tree/scale.ipynb?token={token}")
                page.wait_for_function(
                    "() => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;"
                    " const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;"
                    " return k && k.status === 'idle'; }", timeout=180_000)
                # the set-up cell has printed its mark (in an output: the cell's source holds the text too) and the
                # kernel is idle, so no set-up work runs inside the timed cell
                idle = ("() => window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.status === 'idle'"
                        " && [...document.querySelectorAll('.jp-OutputArea-output')]"
                        ".some((e) => e.innerText.includes('MARK-A'))")
                page.evaluate("""(n) => {
                    window.__complete = (i) => {
                        const gd = document.querySelectorAll('.nlu-lite-explorer .js-plotly-plot')[i];
                        if (!gd || !gd.data || !gd.querySelector('.gl-container canvas, .scatterlayer .point')) return false;
                        return gd.data.filter(t => t.meta === 'points').reduce((s, t) => s + t.x.length, 0) === n;
                    };
                    window.__run = (i) => new Promise((resolve) => {  // run cell i; resolve with the seconds until
                        const nb = window.jupyterapp.shell.currentWidget.content;  // its plot holds every point
                        nb.activeCellIndex = i;
                        performance.clearMarks();
                        const start = performance.now();
                        const mark = (name) => {  // the plot loader's marks (nlu_lite/viz/plotwidget.py)
                          const m = performance.getEntriesByName('nlu_lite:' + name)[0];
                          return m ? (m.startTime - start) / 1000 : null;
                        };
                        const tick = () => window.__complete(i - 1)
                          ? resolve([(performance.now() - start) / 1000, mark('bundle-imported'), mark('synced')])
                          : requestAnimationFrame(tick);
                        window.jupyterapp.commands.execute('notebook:run-cell');
                        requestAnimationFrame(tick);
                    });
                    const nb = window.jupyterapp.shell.currentWidget.content;
                    nb.activeCellIndex = 0;
                    window.jupyterapp.commands.execute('notebook:run-cell');
                }""", n)
                page.wait_for_function(idle, timeout=300_000)
                first = page.evaluate("() => window.__run(1)")
                page.wait_for_function(idle, timeout=300_000)
                again = page.evaluate("() => window.__run(2)")
                seconds = (*first, again[0])
                browser.close()
        finally:
            server.terminate()
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()
    return seconds


def _median(values: list[float | None]) -> float | None:
    known = sorted(v for v in values if v is not None)
    return known[len(known) // 2] if known else None


def _s(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.2f}"


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
            ours = [jupyterlab_first_view(n) for _ in range(SESSIONS)]
            plain = [jupyterlab_first_view(n, plain=True) for _ in range(SESSIONS)]
            lab_first, imported, synced, lab_again = (_median([r[i] for r in ours]) for i in range(4))
            plain_first, plain_again = (_median([r[i] for r in plain]) for i in (0, 3))
            spread = f"{min(r[0] for r in ours):.2f}-{max(r[0] for r in ours):.2f}"
            rows.append((n, build_s, len(text) / 1e6, json_s, explorer_s, view_s, lab_first, spread, imported,
                         synced, lab_again, plain_first, plain_again))
    lines = [
        "# Explorer scale: 10,000 and 100,000 points", "",
        (f"CPU: {cpu()}; plotly {plotly.__version__}; `python -m benchmarks.explorer_scale`; best of 3 in one "
         f"process; JupyterLab columns: the median of {SESSIONS} fresh JupyterLab sessions each."), "",
        ("| points | PCA + figure (s) | figure JSON (MB) | to_json (s) | Explorer built (s) | first view in Chromium "
         "(s) | JupyterLab: first explorer (s) | its range (s) | of which: page has plotly (s) | page has the figure "
         "(s) | JupyterLab: another (s) | previous widget: first (s) | previous widget: another (s) |"),
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        *(f"| {n:,} | {b:.2f} | {mb:.1f} | {j:.2f} | {e:.2f} | {v:.2f} | {lab:.2f} | {spread} | {_s(imp)} | "
          f"{_s(syn)} | {again:.2f} | {pf:.2f} | {pa:.2f} |"
          for n, b, mb, j, e, v, lab, spread, imp, syn, again, pf, pa in rows), "",
        ("First view: navigation to the first drawn frame of a static page holding the figure and plotly.js; "
         "headless Chromium renders WebGL in software (SwiftShader), slower than a desktop GPU."),
        ("JupyterLab: the widget path end to end, from running the explorer's cell alone (as Shift-Enter does: "
         "`explore(df, max_points=None)`: projection, traces, hover texts in the kernel; the widget's state over the "
         "comm; plotly.js drawing) to every point in the page's plot, the same headless Chromium, once the set-up "
         "cell has finished (the frame built, nlu_lite imported). The first "
         "explorer of a session also imports the viz stack in the kernel and loads plotly.js's bundle in the page; "
         "another explorer after it is the steady state. 'previous widget': plotly's own FigureWidget, as the "
         "explorer used it before, its 4.96 MB bundle in every widget's state (a fresh JupyterLab session, same run). "
         "A kernel's first explorer sends plotly's bundle as its cell starts (a short-lived widget's opening "
         "state), so the page imports plotly while the kernel works ('page has plotly', from the cell's start); "
         "the plot asks the kernel for the figure's state once the kernel is free ('page has the figure'), then "
         "plotly.js draws: under Run All it is drawn when the notebook's cells have finished (the kept static copy "
         "shows meanwhile), as the explorer's controls answer only then too."),
    ]
    out = ROOT / "benchmarks" / "explorer_scale.md"
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
