"""A real browser: JupyterLab on 127.0.0.1 runs the exploration notebook in headless Chromium.

The explorer must render its plotly plot with one point per sentence, and redraw when a
control changes (colour-by, then PCA → t-SNE). A second test opens a static HTML export of a
notebook with the network cut and counts the points plotly.js drew. Screenshots go to
test-artifacts/browser/. Needs ``playwright`` (pip) and Debian's ``/usr/bin/chromium``
(apt), never a browser downloaded by playwright; where ``CI`` is set a missing one fails.
"""
from __future__ import annotations

import json
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from _viz_support import ARTIFACTS, KERNEL_NAME, NOTEBOOKS, notebook_environment

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = os.environ.get("NLU_LITE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
SHOTS = ARTIFACTS / "browser"
PLOT = ".nlu-lite-explorer .js-plotly-plot"
# [title, [[trace name, [customdata...], [x...]], ...]] of the explorer's point traces
READ_PLOT = f"""() => {{
  const gd = document.querySelector('{PLOT}');
  if (!gd || !gd.data || !gd.layout) return null;
  const traces = gd.data.filter(t => t.meta === 'points');
  return [String(gd.layout.title && gd.layout.title.text),
          traces.map(t => [t.name, Array.from(t.customdata), Array.from(t.x)])];
}}"""


def _needs(what: str, ok: bool) -> None:
    if not ok:
        message = f"the browser test needs {what}"
        if os.environ.get("CI"):
            pytest.fail(message + " (CI must install it: see the test module's docstring)")
        pytest.skip(message)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _needs("playwright (pip install playwright; no `playwright install`)", False)
    _needs(f"Chromium at {CHROMIUM} (apt-get install -y chromium)", Path(CHROMIUM).exists())
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium_profile")), executable_path=CHROMIUM, headless=True,
            args=CHROMIUM_ARGS, viewport={"width": 1400, "height": 1300},
        )
        yield context
        context.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def jupyter_lab(tmp_path, tmp_path_factory, minilm_wheel):
    """JupyterLab serving tmp_path/work on 127.0.0.1 with a token; yields (url, token, root)."""
    pytest.importorskip("jupyterlab")
    env = {**os.environ, **notebook_environment(tmp_path_factory, minilm_wheel), "NLU_LITE_PROGRESS": "0"}
    settings = tmp_path / "lab_settings"
    notification = settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    notification.parent.mkdir(parents=True)
    notification.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}), encoding="utf-8")
    env.update(JUPYTERLAB_SETTINGS_DIR=str(settings), JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "lab_workspaces"))
    root = tmp_path / "work"
    root.mkdir()
    port, token = _free_port(), secrets.token_hex(16)
    log = (tmp_path / "jupyter.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", "--ip=127.0.0.1", f"--port={port}",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}", "--LabApp.expose_app_in_browser=True",
         "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError("Jupyter did not start:\n" + (tmp_path / "jupyter.log").read_text()) from None
                time.sleep(0.5)
        yield url, token, root
    finally:
        server.send_signal(signal.SIGINT)  # Jupyter shuts its kernels down on SIGINT (asks twice)
        time.sleep(0.2)
        server.send_signal(signal.SIGINT)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(10)
        log.close()


def _trimmed_explore_notebook(target: Path) -> None:
    """explore.ipynb up to its widget cell (tag "explorer"), on the test kernel."""
    nbformat = pytest.importorskip("nbformat")
    nb = nbformat.read(NOTEBOOKS / "explore.ipynb", as_version=4)
    last = next(i for i, c in enumerate(nb.cells) if "explorer" in c.metadata.get("tags", []))
    nb.cells = nb.cells[: last + 1]
    nb.metadata["kernelspec"] = {"name": KERNEL_NAME, "display_name": "nlu_lite test", "language": "python"}
    nbformat.write(nb, target)


# what a failure report shows of the page: the kernel's status, whether plotly's bundle has arrived, each
# explorer's plot (drawn, waiting for plotly, traces)
PAGE_STATE = """() => {
    const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
    const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
    const cache = globalThis.__nluLitePlotly;
    return JSON.stringify({kernel: k ? k.status : null, bundle: cache ? !!cache.module : null,
        pending: cache ? cache.pending.size : null,
        explorers: [...document.querySelectorAll('.nlu-lite-explorer')].map(e => {
            const gd = e.querySelector('.js-plotly-plot');
            return {drawn: !!gd, waiting: !!e.querySelector('.nlu-lite-waiting'),
                    traces: gd && gd.data ? gd.data.length : 0};
        })});
}"""


def _run_all(page, url: str, token: str, name: str) -> None:
    """Open notebook ``name`` in JupyterLab, wait for its kernel, run every cell."""
    page.goto(f"{url}/lab/tree/{name}?token={token}")
    page.wait_for_function(
        "() => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;"
        " const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;"
        " return k && k.status === 'idle'; }", timeout=120_000)
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")


def _points(snapshot) -> dict[int, float]:
    """customdata (row position) → x, over the explorer's point traces."""
    return {int(p): x for _, positions, xs in snapshot[1] for p, x in zip(positions, xs)}


def _wait_plot(page, predicate: str, timeout_s: float):
    page.wait_for_function(f"() => {{ const s = ({READ_PLOT})(); return s && ({predicate}); }}",
                           timeout=timeout_s * 1000)
    return page.evaluate(READ_PLOT)


SELECTED_ROWS = (f"() => document.querySelector('{PLOT}').data.filter(t => t.meta === 'points')"
                 ".flatMap(t => (t.selectedpoints || []).map(i => t.customdata[i])).sort((a, b) => a - b)")


def _assert_selection_kept(page, marked: list[int], after: str) -> None:
    """The lasso's rows are still selected in plotly.js's new traces and in the kernel's count."""
    count = (f"document.querySelector('{PLOT}').data.filter(t => t.meta === 'points')"
             ".reduce((n, t) => n + (t.selectedpoints ? t.selectedpoints.length : 0), 0)")
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:  # the selection is restyled into the new traces just after they are drawn
        page.wait_for_function(f"() => {count} === {len(marked)}", timeout=30_000)
    except PlaywrightTimeout:
        logging.getLogger(__name__).warning("the selection was not drawn in 30 s (%s)", after)  # asserted below
    drawn = page.evaluate(SELECTED_ROWS)
    reported = page.locator(".nlu-lite-explorer .nlu-lite-selected").inner_text()
    assert (len(drawn), reported) == (len(marked), f"{len(marked)} selected"), after
    assert drawn == marked, after  # the same rows, wherever the new projection put them


def test_explorer_renders_and_redraws_in_jupyterlab(browser, jupyter_lab):
    url, token, root = jupyter_lab
    _trimmed_explore_notebook(root / "explore.ipynb")
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    SHOTS.mkdir(parents=True, exist_ok=True)
    try:
        _run_all(page, url, token, "explore.ipynb")

        first = _wait_plot(page, "s[1].reduce((n, t) => n + t[1].length, 0) > 0", 240)
        assert first[0].startswith("PCA of 360 sentence embeddings")
        assert sorted(name for name, _, _ in first[1]) == \
            ["cooking", "finance", "health", "nature", "sports", "technology"]
        pca = _points(first)
        assert sorted(pca) == list(range(360))  # every sentence once, in plotly.js's data
        drawn = page.locator(f"{PLOT} .scatterlayer .point").count()
        assert drawn == 360  # and as SVG markers on screen (under 2,000 points: no WebGL)
        # the kernel's first explorer sent plotly's bundle while its cell ran, and that is the one the page
        # imported (the plot may have asked the kernel too if it started first; the kernel's answer then finds
        # the module there), once
        marks = page.evaluate("() => performance.getEntriesByType('mark').map(m => m.name)")
        assert "nlu_lite:bundle-carried" in marks and "nlu_lite:bundle-received" not in marks, marks
        assert marks.count("nlu_lite:bundle-imported") == 1, marks
        page.locator(PLOT).scroll_into_view_if_needed()
        page.screenshot(path=str(SHOTS / "explore_pca_by_topic.png"), full_page=True)

        # lasso the left half of the plot: plotly.js marks points, the kernel must get the same rows
        box = page.locator(f"{PLOT} .nsewdrag").first.bounding_box()
        left, top, bottom = box["x"] + 4, box["y"] + 4, box["y"] + box["height"] - 4
        middle = box["x"] + box["width"] / 2
        page.mouse.move(left, top)
        page.mouse.down()
        for x, y in ((middle, top), (middle, bottom), (left, bottom), (left, top + 1)):
            page.mouse.move(x, y, steps=8)
        page.mouse.up()
        marked = page.wait_for_function(
            f"() => {{ const gd = document.querySelector('{PLOT}');"
            " const n = gd.data.filter(t => t.meta === 'points')"
            ".reduce((n, t) => n + (t.selectedpoints ? t.selectedpoints.length : 0), 0);"
            " return n > 0 ? n : null; }", timeout=30_000).json_value()
        page.wait_for_selector(".nlu-lite-explorer .nlu-lite-selected", timeout=30_000)
        reported = page.locator(".nlu-lite-explorer .nlu-lite-selected").inner_text()
        assert reported == f"{marked} selected" and 10 < marked < 350, (reported, marked)
        page.screenshot(path=str(SHOTS / "explore_lasso_selection.png"), full_page=True)
        lassoed = page.evaluate(SELECTED_ROWS)
        assert len(lassoed) == marked

        page.locator(".nlu-lite-explorer .widget-dropdown", has_text="Colour").locator("select") \
            .select_option(label="keyword")
        recoloured = _wait_plot(page, "s[1].length === 10", 60)
        assert sorted(name for name, _, _ in recoloured[1]) == \
            ["(empty)", "apple", "bank", "bat", "cell", "chip", "cookie", "mouse", "python", "virus"]
        assert _points(recoloured) == pca  # same points, new colours
        _assert_selection_kept(page, lassoed, "recolour")

        page.locator(".nlu-lite-explorer .widget-dropdown", has_text="Method").locator("select") \
            .select_option(label="t-SNE")
        page.wait_for_selector(".nlu-lite-explorer .nlu-lite-busy", timeout=30_000)  # the busy notice
        all_points = "s[1].reduce((n, t) => n + t[1].length, 0) === 360"
        tsne = _wait_plot(page, f"s[0].startsWith('t-SNE') && {all_points}", 240)
        assert tsne[0].startswith("t-SNE of 360 sentence embeddings (perplexity 30, 1000 iterations, "
                                  "on 50 principal components)")
        moved = _points(tsne)
        assert sorted(moved) == list(range(360))
        assert sum(abs(moved[p] - pca[p]) > 1e-6 for p in pca) > 300  # the points really moved
        assert "t-SNE of 360 points" in page.locator(".nlu-lite-explorer .nlu-lite-done").inner_text()
        _assert_selection_kept(page, lassoed, "method switch")
        page.locator(PLOT).scroll_into_view_if_needed()
        page.screenshot(path=str(SHOTS / "explore_tsne_by_keyword.png"), full_page=True)

        # click a point: its neighbours are listed; pick the third in the list: the walk goes on from that row
        page.locator(f"{PLOT} .scatterlayer .point").nth(5).click(force=True)
        header = page.locator(".nlu-lite-explorer b", has_text="nearest to row")
        header.wait_for(timeout=30_000)
        first_header = header.inner_text()
        walk = page.locator(".nlu-lite-explorer .widget-select select")
        walk.wait_for(timeout=30_000)
        options = walk.locator("option")
        assert options.count() == 10 and options.nth(0).inner_text().replace("\xa0", " ").startswith("1. ")
        third = options.nth(2).get_attribute("value")
        walk.select_option(index=2)
        page.wait_for_function(
            "(before) => { const b = [...document.querySelectorAll('.nlu-lite-explorer b')]"
            ".find(e => e.textContent.includes('nearest to row')); return b && b.textContent !== before; }",
            arg=first_header, timeout=30_000)
        assert header.inner_text() != first_header and third is not None
        page.locator(".nlu-lite-explorer .widget-select").scroll_into_view_if_needed()
        page.screenshot(path=str(SHOTS / "explore_neighbour_walk.png"), full_page=True)

        # Semantic axes: pick the method, type two poles (embedded by the explorer's pipe): rows move onto the axis
        page.locator(".nlu-lite-explorer .widget-dropdown", has_text="Method").locator("select") \
            .select_option(label="Semantic axes")
        for label, text in (("x from", "money and loans"), ("to", "rivers and forests")):
            box = page.locator(".nlu-lite-explorer .widget-text", has_text=label).first.locator("input")
            box.fill(text)
            box.press("Enter")
        axes = _wait_plot(page, f"s[0].startsWith('Semantic axes') && {all_points}", 60)
        assert sorted(_points(axes)) == list(range(360))
        from nlu_lite.viz import load_corpus

        topics = load_corpus().topic.to_numpy()  # the notebook's frame is the corpus, row for row
        placed = _points(axes)
        xs = {topic: np.mean([x for p, x in placed.items() if topics[p] == topic]) for topic in set(topics)}
        assert xs["finance"] < 0 < xs["nature"], xs  # money's end and the river's end
        x_title = page.evaluate(f"() => document.querySelector('{PLOT}').layout.xaxis.title.text")
        assert x_title == "money and loans ↔ rivers and forests"
        page.locator(PLOT).scroll_into_view_if_needed()
        page.screenshot(path=str(SHOTS / "explore_semantic_axes.png"), full_page=True)

        # the kept copy of the first view: hidden under the live widget, shown once the notebook is reopened
        # without the widget (its kernel gone)
        # (its picture: jupyterlab-plotly shows the copy's PNG and draws no plotly graph for it while it is hidden)
        copy = page.evaluate(
            "() => { const w = document.querySelector('.nlu-lite-explorer');"
            " const next = w && w.closest('.jp-OutputArea-child').nextElementSibling;"
            " const img = next && next.querySelector('.jp-RenderedPlotly img.plot-img');"
            " return img ? [getComputedStyle(next).display, img.src.slice(0, 22),"
            " !!next.querySelector('.js-plotly-plot')] : null; }")
        assert copy == ["none", "data:image/png;base64,", False], copy
        page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")
        page.wait_for_function("() => !window.jupyterapp.shell.currentWidget.context.model.dirty", timeout=30_000)
        saved = (root / "explore.ipynb").stat().st_size
        assert saved < 2_000_000, saved  # outputs and the kept copy, no widget bundle: JupyterLab saves no widget state
        sessions = json.load(urllib.request.urlopen(f"{url}/api/sessions?token={token}", timeout=10))
        for session in sessions:  # the kernel ends: its widgets with it
            urllib.request.urlopen(urllib.request.Request(f"{url}/api/sessions/{session['id']}?token={token}",
                                                          method="DELETE"), timeout=30)
        page.reload()
        kept = page.locator(".jp-OutputArea-child .js-plotly-plot", has_text="kept with the notebook")
        # JupyterLab draws only the cells in view (windowed notebook): bring the explorer cell there
        page.wait_for_function("() => { const nb = window.jupyterapp?.shell?.currentWidget?.content;"
                               " return nb && nb.widgets && nb.widgets.length >= 5; }", timeout=60_000)
        page.evaluate("() => { const nb = window.jupyterapp.shell.currentWidget.content;"
                      " const i = nb.widgets.findIndex(c => (c.model.getMetadata('tags') || []).includes('explorer'));"
                      " nb.activeCellIndex = i; return nb.scrollToItem(i, 'start'); }")
        # the copy comes back as its picture (the PNG nlu_lite put in it); plotly.js draws the graph from the copy's
        # data on mouseenter
        picture = page.locator(".jp-OutputArea-child .jp-RenderedPlotly img.plot-img").first
        picture.wait_for(state="visible", timeout=60_000)
        assert picture.evaluate("(img) => img.complete && img.naturalWidth > 0 && img.naturalHeight === 600")
        page.screenshot(path=str(SHOTS / "explore_reopened_picture.png"), full_page=True)
        page.locator(".jp-OutputArea-child .jp-RenderedPlotly").first.hover(timeout=60_000)
        kept.first.wait_for(timeout=120_000)
        reopened = page.evaluate(
            "() => [...document.querySelectorAll('.jp-OutputArea-child .js-plotly-plot')]"
            ".filter(gd => gd.layout && gd.layout.title.text.includes('kept with the notebook'))"
            ".map(gd => [gd.layout.title.text, gd.querySelectorAll('.scatterlayer .point').length,"
            " getComputedStyle(gd).display])")  # 360 points drawn as SVG markers
        assert len(reopened) == 1 and reopened[0][0].startswith("PCA of 360") and reopened[0][1] == 360
        assert reopened[0][2] != "none" and page.locator(".nlu-lite-explorer").count() == 0
        kept.first.scroll_into_view_if_needed()
        page.screenshot(path=str(SHOTS / "explore_reopened.png"), full_page=True)
        assert not errors, errors
    except Exception:
        page.screenshot(path=str(SHOTS / "explore_failure.png"), full_page=True)
        print("page state at the failure:", page.evaluate(PAGE_STATE))
        raise
    finally:
        page.close()


def test_static_html_export_draws_every_point_offline(browser, tmp_path, tmp_path_factory, minilm_wheel,
                                                      monkeypatch):
    """The static path: an executed notebook exported to HTML shows its figures with no network."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nbconvert = pytest.importorskip("nbconvert")
    for name, value in notebook_environment(tmp_path_factory, minilm_wheel).items():
        monkeypatch.setenv(name, value)
    source = """
import numpy as np, plotly.io as pio
from nlu_lite.frame import build_frame
from nlu_lite.viz import plot_embeddings
pio.renderers.default = "plotly_mimetype+notebook"
rng = np.random.default_rng(0)
df = build_frame({"origin_index": np.arange(150), "sentence": [f"s{i}" for i in range(150)]},
                 rng.normal(size=(150, 8)), "x_embeddings")
df["group"] = np.arange(150) % 3
plot_embeddings(df, color="group")
"""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)])
    nbclient.NotebookClient(nb, kernel_name=KERNEL_NAME, timeout=120,
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    html, _ = nbconvert.HTMLExporter().from_notebook_node(nb)
    page_file = tmp_path / "export.html"
    page_file.write_text(html, encoding="utf-8")
    page = browser.new_page()
    blocked: list[str] = []

    def only_local(route):
        if route.request.url.startswith("file://"):
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    page.route("**/*", only_local)
    try:
        page.goto(page_file.as_uri())
        page.wait_for_selector(".js-plotly-plot .scatterlayer .point", timeout=60_000)
        drawn = page.evaluate("() => Array.from(document.querySelectorAll('.js-plotly-plot .scatterlayer .trace'))"
                              ".map(t => t.querySelectorAll('.point').length)")
        assert drawn == [50, 50, 50]  # SVG markers plotly.js drew, one trace per group
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / "static_html_export.png"), full_page=True)
    finally:
        page.close()
    assert not [u for u in blocked if "plot.ly" in u]  # plotly.js came from the page, not a CDN


def test_the_question_figures_draw_in_a_browser(browser, tmp_path, minilm_dir, monkeypatch):
    """Issue 23's figures from the real MiniLM, drawn by plotly.js in Chromium: a semantic-axes plot of the 360
    corpus sentences, the senses of 'bank', fp32 vs int8 side by side (screenshots for a person to look at)."""
    import nlu_lite
    from nlu_lite.viz import load_corpus

    monkeypatch.setenv("NLU_LITE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("NLU_LITE_PROGRESS", "0")
    corpus = load_corpus()
    pipe = nlu_lite.load(path=minilm_dir)
    sentences = pipe.predict(corpus.text).join(corpus[["topic"]], on="origin_index")
    tokens = pipe.predict(corpus.text, output_level="token")
    int8 = nlu_lite.load(path=minilm_dir, precision="int8").predict(corpus.text)
    figures = {
        "semantic_axes": (nlu_lite.plot_axes(sentences, ("money", "river"), ("sport", "food"), pipe=pipe,
                                             color="topic"), 360),
        "senses_bank": (nlu_lite.senses(tokens, "bank").figure(), 10),
        "compare_fp32_int8": (nlu_lite.compare(sentences, int8, names=("fp32", "int8")).figure(), 720),
    }
    SHOTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page()
    try:
        for name, (fig, expected) in figures.items():
            path = tmp_path / f"{name}.html"
            fig.write_html(path, include_plotlyjs=True, full_html=True)
            page.goto(path.as_uri())
            page.wait_for_selector(".js-plotly-plot .scatterlayer .point", timeout=60_000)
            drawn = page.evaluate("() => document.querySelectorAll('.js-plotly-plot .scatterlayer .point').length")
            assert drawn == expected, name  # every point drawn as an SVG marker
            page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
    finally:
        page.close()


QUESTIONS_CELLS = [
    ("setup", """import numpy as np
import nlu_lite
from nlu_lite.viz import load_corpus

corpus = load_corpus()
token_pipe = nlu_lite.load("en.embed.minilm_l6")
tokens = token_pipe.predict(corpus[corpus.keyword == "bank"].text, output_level="token")
pipe = nlu_lite.load("en.embed_sentence.minilm_l6")
sentences = pipe.predict(corpus.text).join(corpus[["topic"]], on="origin_index")
token_means = token_pipe.predict(corpus.text, output_level="sentence").join(corpus[["topic"]], on="origin_index")"""),
    ("senses", 'senses_explorer = nlu_lite.explore(tokens)\nsenses_explorer'),
    ("compare", ('linked = nlu_lite.compare(sentences, token_means, names=("sentence model", "token model means"))'
                '.explore(color="topic")\nlinked')),
    ("stop", ('slow = nlu_lite.explore(np.random.default_rng(0).normal(size=(4000, 64)).astype("float32"), '
             'labels=[f"row {i}" for i in range(4000)], method="tsne", max_iter=5000)\nslow')),
]


def _fit_workers() -> list[int]:
    """Process ids of running projection workers (nlu_lite.viz._fit_worker)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if b"nlu_lite.viz._fit_worker" in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def _lasso(page, plot) -> None:
    box = plot.locator(".nsewdrag").first.bounding_box()
    left, top, bottom = box["x"] + 4, box["y"] + 4, box["y"] + box["height"] - 4
    middle = box["x"] + box["width"] / 2
    page.mouse.move(left, top)
    page.mouse.down()
    for x, y in ((middle, top), (middle, bottom), (left, bottom), (left, top + 1)):
        page.mouse.move(x, y, steps=8)
    page.mouse.up()


def test_the_explorers_questions_in_jupyterlab(browser, jupyter_lab):
    """Issue 23 in a real browser: the Senses box of a token explorer circles each sense of 'bank'; two linked
    explorers (compare) mirror a lasso selection; Stop ends a running t-SNE and its process (the CPU goes idle)."""
    nbformat = pytest.importorskip("nbformat")
    url, token, root = jupyter_lab
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source, metadata={"tags": [tag]}) for tag, source in QUESTIONS_CELLS]
    nb.metadata["kernelspec"] = {"name": KERNEL_NAME, "display_name": "nlu_lite test", "language": "python"}
    nbformat.write(nb, root / "questions.ipynb")
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    SHOTS.mkdir(parents=True, exist_ok=True)
    try:
        _run_all(page, url, token, "questions.ipynb")
        explorers = page.locator(".nlu-lite-explorer")
        page.wait_for_function("() => document.querySelectorAll('.nlu-lite-explorer').length === 4", timeout=240_000)

        # senses: type the word, the panel names two senses, the plot circles each one
        senses = explorers.nth(0)
        box = senses.locator(".widget-text", has_text="Senses of").locator("input")
        box.fill("bank")
        box.press("Enter")
        senses.locator("text=2 senses").first.wait_for(timeout=60_000)
        # the plot is drawn once the kernel, free after the last cell, has sent plotly's bundle (plotwidget.py)
        sense_traces = ("() => (document.querySelectorAll('.nlu-lite-explorer')[0].querySelector('.js-plotly-plot')"
                        "?.data || []).filter(t => t.meta === 'highlight' && t.name.startsWith('sense '))"
                        ".map(t => [t.name, t.customdata.length])")
        page.wait_for_function(f"() => ({sense_traces})().length === 2", timeout=60_000)
        names = page.evaluate(sense_traces)
        assert [n.split(":")[0] for n, _ in names] == ["sense 0", "sense 1"] and all(c > 0 for _, c in names), names
        senses.scroll_into_view_if_needed()
        page.screenshot(path=str(SHOTS / "explore_senses_bank.png"), full_page=True)

        # compare: a lasso in the left view selects the same rows in the right one
        linked = page.locator(".nlu-lite-linked")
        left_plot = linked.locator(".nlu-lite-explorer").nth(0).locator(".js-plotly-plot")
        left_plot.scroll_into_view_if_needed()
        _lasso(page, left_plot)
        read_counts = ("() => [...document.querySelectorAll('.nlu-lite-linked .nlu-lite-selected')]"
                       ".map(e => e.textContent)")
        # plotly.js may report a lasso in steps (a first, smaller selection, then the whole): wait until the two
        # views agree and stay so for a second, reading both at once
        deadline, stable, last = time.monotonic() + 30, 0, None
        while time.monotonic() < deadline and stable < 4:
            counts = page.evaluate(read_counts)
            agreed = len(counts) == 2 and counts[0] == counts[1] and counts[0] != "0 selected"
            stable = stable + 1 if agreed and counts == last else 0
            last = counts
            time.sleep(0.25)
        assert stable >= 4, last
        page.screenshot(path=str(SHOTS / "explore_compare_linked.png"), full_page=True)

        # stop: the t-SNE of 4,000 points runs in its own process; Stop ends it and the status says so
        slow = explorers.nth(3)
        slow.locator(".nlu-lite-busy").wait_for(timeout=60_000)
        deadline = time.monotonic() + 30
        while not _fit_workers() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _fit_workers(), "no projection process while t-SNE runs"
        slow.locator("button", has_text="Stop").click()
        slow.locator(".nlu-lite-stopped").wait_for(timeout=30_000)
        deadline = time.monotonic() + 10
        while _fit_workers() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _fit_workers(), "the projection process outlived Stop"
        assert "PCA is shown instead" in slow.locator(".nlu-lite-stopped").inner_text()
        page.wait_for_function("() => { const gd = document.querySelectorAll('.nlu-lite-explorer')[3]"
                               ".querySelector('.js-plotly-plot'); return gd && gd.layout && "
                               "String(gd.layout.title.text).startsWith('PCA of 4,000'); }", timeout=30_000)
        slow.scroll_into_view_if_needed()
        page.screenshot(path=str(SHOTS / "explore_tsne_stopped.png"), full_page=True)
        assert not errors, errors
    except Exception:
        page.screenshot(path=str(SHOTS / "questions_failure.png"), full_page=True)
        print("page state at the failure:", page.evaluate(PAGE_STATE))
        raise
    finally:
        page.close()
