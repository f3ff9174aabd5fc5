"""explore(): controls redraw the FigureWidget, selections come back as rows, t-SNE runs in a
thread with a busy notice, search and neighbours highlight, and the static fallback renders."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ipywidgets")
pytest.importorskip("anywidget")
pytest.importorskip("sklearn")

from _viz_support import EMBEDDING as EMBEDDING_COLUMN
from _viz_support import decode, plotted, point_traces, sentence_frame, token_frame
from sklearn.decomposition import PCA

import nlu_lite.viz.widget as widget_module
from nlu_lite.errors import InputError
from nlu_lite.frame import to_matrix
from nlu_lite.viz import clear_cache, explore, nearest_neighbours, project

pytestmark = pytest.mark.usefixtures("fresh_projection_cache")


def _traces(explorer, role="points"):
    return [t for t in explorer.plot.data if t.meta == role]


def test_explorer_draws_every_row_coloured_as_asked():
    import plotly.graph_objects as go

    df = sentence_frame(clusters=3, per_cluster=10)
    ex = explore(df, color="topic", background=False)
    assert isinstance(ex.plot, go.FigureWidget)
    traces = _traces(ex)
    assert sorted(t.name for t in traces) == sorted(df.topic.unique())
    assert sorted(np.concatenate([t.customdata for t in traces]).tolist()) == list(range(len(df)))
    for trace in traces:
        assert set(df.topic.iloc[np.asarray(trace.customdata)]) == {trace.name}
    expected = PCA(n_components=2, svd_solver="full").fit_transform(to_matrix(df).astype(np.float64))  # float64 PCA
    first = traces[0]
    np.testing.assert_allclose(np.c_[first.x, first.y], expected[np.asarray(first.customdata)], atol=1e-6)
    assert ex.widget._repr_mimebundle_()["application/vnd.jupyter.widget-view+json"]["model_id"]
    assert "30 sentence rows" in repr(ex)


def test_changing_controls_redraws():
    df = sentence_frame(clusters=3, per_cluster=10)
    df["half"] = np.where(np.arange(len(df)) < 15, "first", "second")
    ex = explore(df, color="topic", background=False)
    ex.color.value = "half"  # as the dropdown would
    assert sorted(t.name for t in _traces(ex)) == ["first", "second"]
    ex.dimensions.value = 3
    assert {t.type for t in _traces(ex)} == {"scatter3d"}
    ex.set(method="tsne", dimensions=2, perplexity=5, max_iter=250, random_state=1)
    assert ex.plot.layout.title.text.startswith("t-SNE of 30 sentence embeddings (perplexity 5, 250 iterations)")
    expected = project(ex._matrix, "tsne", 2, perplexity=5, max_iter=250, random_state=1).coords
    got = np.concatenate([np.c_[t.x, t.y] for t in _traces(ex)])
    order = np.concatenate([t.customdata for t in _traces(ex)])
    np.testing.assert_allclose(got, expected[order])
    assert "t-SNE of 30 points in" in ex.status.value
    ex.set(method="pca")
    ex.set(method="tsne")  # back to a parameter set already fitted: no refit, and the status says so
    assert "t-SNE of 30 points (cached; fitted in" in ex.status.value
    assert ex._tsne_box.layout.display is None and ex._umap_box.layout.display == "none"
    with pytest.raises(InputError, match="unknown controls"):
        ex.set(colour="topic")


def test_tsne_runs_in_its_own_process_with_a_busy_notice():
    df = sentence_frame(clusters=2, per_cluster=10)
    ex = explore(df, color="topic")  # background=True, as in a notebook
    ex.set(method="tsne", perplexity=5)
    job = ex._job
    assert job is not None and job.pid > 0 and "running t-SNE on 20 points in its own process" in ex.status.value
    assert ex.plot.layout.title.text.startswith("PCA")  # the old plot stays while t-SNE runs
    assert ex._stop.layout.display is None  # the Stop button shows while it runs
    ex.color.value = "(none)"  # the kernel answers meanwhile: the old projection is redrawn
    assert [t.name for t in _traces(ex)] == ["points"]
    ex.wait(60)
    assert ex.plot.layout.title.text.startswith("t-SNE") and "t-SNE of 20 points" in ex.status.value
    assert ex._stop.layout.display == "none"
    clear_cache()
    expected = project(to_matrix(df), "tsne", 2, perplexity=5)  # the same fit in this process
    (trace,) = _traces(ex)
    np.testing.assert_allclose(np.c_[trace.x, trace.y], expected.coords[np.asarray(trace.customdata)], atol=1e-6)


def test_stop_ends_a_running_projection_and_its_process():
    """Issue 23: t-SNE at 20k points ran 141 s and kept the CPU busy after the user moved on."""
    import time

    from _viz_support import clustered_matrix

    from nlu_lite.viz import explore as explore_matrix

    matrix, _ = clustered_matrix(clusters=4, per_cluster=1500, dim=32)
    ex = explore_matrix(matrix, labels=[str(i) for i in range(len(matrix))], max_points=None)
    ex.set(method="tsne", max_iter=5000)
    job = ex._job
    assert job.running
    time.sleep(1.0)
    ex._stop.click()  # as the button would
    deadline = time.time() + 5
    while job._process.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert job._process.poll() is not None  # the process is gone: no CPU left busy
    ex.wait(10)
    assert "stopped after" in ex.status.value and ex.plot.layout.title.text.startswith("PCA")
    # switching method while a run is under way ends the older run too
    ex.set(method="tsne", max_iter=5000, perplexity=40)
    first = ex._job
    ex.set(method="svd")
    deadline = time.time() + 5
    while first._process.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert first._process.poll() is not None and ex.plot.layout.title.text.startswith("Truncated SVD")


def test_selection_from_the_browser_comes_back_as_rows():
    df = sentence_frame(clusters=3, per_cluster=10)
    ex = explore(df, color="topic", background=False)
    assert ex.selected.empty
    traces = _traces(ex)
    # the message plotly's frontend sends after a lasso selection
    ex.plot._js2py_pointsCallback = {
        "event_type": "plotly_selected",
        "points": {"trace_indexes": [0, 0, 2], "point_indexes": [1, 4, 0], "xs": [0, 0, 0], "ys": [0, 0, 0]},
        "selector": {"type": "lasso", "selector_state": {"xs": [0, 1, 1], "ys": [0, 0, 1]}},
    }
    expected = sorted([traces[0].customdata[1], traces[0].customdata[4], traces[2].customdata[0]])
    assert ex.selected.index.tolist() == df.index[expected].tolist()
    assert "3 selected" in ex._selection_info.value
    assert ex.select([2, 5]).index.tolist() == [2, 5]


def _lasso(ex, trace_indexes, point_indexes):
    ex.plot._js2py_pointsCallback = {
        "event_type": "plotly_selected",
        "points": {"trace_indexes": trace_indexes, "point_indexes": point_indexes,
                   "xs": [0] * len(point_indexes), "ys": [0] * len(point_indexes)},
        "selector": {"type": "lasso", "selector_state": {"xs": [0, 1, 1], "ys": [0, 0, 1]}},
    }


def _marked(ex):
    """The rows plotly.js is told to show selected, from every point trace's selectedpoints."""
    rows = []
    for trace in _traces(ex):
        if trace.selectedpoints is not None:
            rows += [int(trace.customdata[i]) for i in trace.selectedpoints]
    return sorted(rows)


def test_the_selection_survives_a_recolour_a_method_switch_and_3d():
    df = sentence_frame(clusters=3, per_cluster=10)
    df["half"] = np.where(np.arange(len(df)) < 15, "first", "second")
    ex = explore(df, color="topic", background=False)
    traces = _traces(ex)
    _lasso(ex, [0, 0, 1, 2], [1, 4, 3, 0])
    chosen = sorted([traces[0].customdata[1], traces[0].customdata[4], traces[1].customdata[3],
                     traces[2].customdata[0]])
    assert ex.selected.index.tolist() == df.index[chosen].tolist()
    for change in ({"color": "half"}, {"method": "tsne", "perplexity": 5, "max_iter": 250}, {"dimensions": 3},
                   {"color": None, "dimensions": 2, "method": "svd"}):
        ex.set(**change)
        assert ex.selected.index.tolist() == df.index[chosen].tolist(), change
        if ex.dimensions.value == 2:  # plotly.js draws a selection in 2D only
            assert _marked(ex) == chosen, change  # drawn as selected in the new traces
        assert "4 selected" in ex._selection_info.value, change
    # plotly.js's own re-selection after a relayout (no lasso / box behind it) changes nothing
    ex.plot._js2py_pointsCallback = {"event_type": "plotly_selected", "points": {
        "trace_indexes": [], "point_indexes": [], "xs": [], "ys": []}, "selector": None}
    assert ex.selected.index.tolist() == df.index[chosen].tolist()
    assert _marked(ex) == chosen  # plotly.py emptied every trace's selectedpoints: marked again
    # a new lasso after the redraw replaces the carried selection, it does not add to it
    now = _traces(ex)
    _lasso(ex, [0], [2])
    assert ex.selected.index.tolist() == [df.index[now[0].customdata[2]]]
    # a double-click (deselect) clears it
    ex.plot._js2py_pointsCallback = {"event_type": "plotly_deselect", "points": {
        "trace_indexes": [], "point_indexes": [], "xs": [], "ys": []}, "selector": None}
    assert ex.selected.empty
    assert "no points selected" in ex._selection_info.value


def test_a_selection_set_from_python_is_drawn_and_kept():
    df = sentence_frame(clusters=3, per_cluster=10)
    ex = explore(df, color="topic", background=False)
    ex.select([7, 2, 2, 19])
    assert _marked(ex) == [2, 7, 19]
    ex.set(color=None)
    assert _marked(ex) == [2, 7, 19] and ex.selected.index.tolist() == df.index[[2, 7, 19]].tolist()
    ex.select([])
    assert _marked(ex) == [] and ex.selected.empty


def test_clicking_a_point_lists_its_neighbours_and_circles_them():
    df = sentence_frame(clusters=3, per_cluster=10)
    ex = explore(df, color="topic", background=False)
    clicked = int(_traces(ex)[1].customdata[2])
    ex.plot._js2py_pointsCallback = {
        "event_type": "plotly_click",
        "points": {"trace_indexes": [1], "point_indexes": [2], "xs": [0], "ys": [0]},
        "device_state": None,
    }
    expected = nearest_neighbours(df, clicked, k=10)
    assert ex.neighbours.position.tolist() == expected.position.tolist()
    highlight = {t.name: sorted(t.customdata) for t in _traces(ex, "highlight")}
    assert highlight == {"query": [clicked], "10 nearest (cosine)": sorted(expected.position)}
    assert f"nearest to row {clicked}" in ex._neighbour_table.value


def test_the_neighbour_list_walks_from_row_to_row():
    """Issue 23: the neighbour table is clickable: its rows are listed (rank, text, similarity); picking one lists
    that row's own neighbours and circles them, as clicking its point would; a failed query empties the list."""
    df = sentence_frame(clusters=3, per_cluster=10)
    ex = explore(df, color="topic", background=False)
    table = ex.find_neighbours(4, k=5)
    listed = ex.neighbour_list.options
    assert [value for _, value in listed] == table.position.tolist() and ex.neighbour_list.value is None
    first_label = listed[0][0]
    assert first_label.startswith("1. ") and f"{table.similarity.iloc[0]:.3f}" in first_label
    assert str(df.sentence.iloc[table.position.iloc[0]])[:20] in first_label
    assert ex.neighbour_list.layout.display == "flex"
    target = int(table.position.iloc[2])
    ex.neighbour_list.value = target  # as a click on the third row would
    expected = nearest_neighbours(df, target, k=5)
    assert ex.neighbours.position.tolist() == expected.position.tolist()
    assert [value for _, value in ex.neighbour_list.options] == expected.position.tolist()
    assert f"nearest to row {target}" in ex._neighbour_table.value
    highlight = {t.name: sorted(t.customdata) for t in _traces(ex, "highlight")}
    assert highlight["query"] == [target] and highlight["5 nearest (cosine)"] == sorted(expected.position)
    ex.find_neighbours("zz-no-such-row-and-no-pipe", k=5)
    assert ex.neighbour_list.options == () and ex.neighbour_list.layout.display == "none"


def test_search_and_neighbour_box_highlight_rows():
    df = token_frame(["the bank of the river", "money in the bank", "a river bank"])
    ex = explore(df, background=False)
    ex.search_box.value = "Bank"
    assert ex.matches.token.tolist() == ["bank"] * 3
    (circled,) = _traces(ex, "highlight")
    assert sorted(circled.customdata) == np.flatnonzero(df.token == "bank").tolist()
    assert "3 matches" in ex._search_info.value
    ex.search_box.value = "nowhere"
    assert ex.matches.empty and not _traces(ex, "highlight") and "no token matches" in ex._search_info.value
    ex.k.value = 2
    ex.neighbour_query.value = "river"
    assert ex.neighbours.position.tolist() == nearest_neighbours(df, "river", k=2).position.tolist()


def test_sentence_search_matches_substrings():
    df = sentence_frame(clusters=3, per_cluster=10)
    ex = explore(df, background=False)
    assert ex.search("about nature").topic.unique().tolist() == ["nature"]
    assert len(ex.matches) == 10


def test_static_figure_and_fallback_without_anywidget(monkeypatch):
    import plotly.graph_objects as go

    df = sentence_frame(clusters=2, per_cluster=10)
    ex = explore(df, color="topic", background=False)
    static = ex.figure
    assert type(static) is go.Figure and len(plotted(static)) == 20
    monkeypatch.setattr(widget_module, "plot_widget_class", lambda: None)
    fallback = explore(df, color="topic", background=False)
    (output,) = fallback.plot.outputs
    figure = output["data"]["application/vnd.plotly.v1+json"]
    counts = [len(decode(t["x"])) for t in figure["data"] if t.get("meta") == "points"]
    assert sorted(counts) == [10, 10]
    fallback.color.value = "(none)"
    (output,) = fallback.plot.outputs
    assert [t["name"] for t in output["data"]["application/vnd.plotly.v1+json"]["data"]] == ["points"]


def test_large_frames_are_sampled_once_for_every_view():
    df = sentence_frame(clusters=2, per_cluster=300)
    ex = explore(df, max_points=100, background=False)
    assert len(ex.positions) == 100
    assert "random sample of 100 of 600 rows" in ex.status.value
    assert sorted(np.concatenate([t.customdata for t in _traces(ex)]).tolist()) == ex.positions.tolist()
    assert {t["type"] for t in point_traces(ex.figure)} == {"scatter"}


def test_umap_without_umap_learn_is_a_clear_error_naming_the_install(monkeypatch):
    """Issue 23: explore(df, method='umap') without umap-learn was a raw TraitError from the dropdown. (The dev
    extra installs umap-learn: its absence is simulated.)"""
    import sys

    from nlu_lite.errors import MissingDependencyError

    monkeypatch.setitem(sys.modules, "umap", None)  # import umap -> ImportError
    monkeypatch.setattr(widget_module, "umap_available", lambda: False)
    df = sentence_frame(clusters=2, per_cluster=5)
    assert "umap" not in [key for _label, key in explore(df, background=False).method.options]
    with pytest.raises(MissingDependencyError, match="umap-learn is needed") as info:
        explore(df, method="umap", background=False)
    assert "pip install 'nlu-lite[viz]'" in str(info.value) and "pip install -e '.[viz]'" in str(info.value)


def test_a_frame_of_several_models_is_explored_by_column():
    """Issue 23: explore() of a two-model frame failed saying column=, which it did not take."""
    df = sentence_frame(clusters=2, per_cluster=6)
    embedding = next(c for c in df.columns if c.endswith("_embeddings"))
    both = df.assign(other_model_embeddings=df[embedding].map(lambda v: -v))
    with pytest.raises(InputError, match="pass column="):
        explore(both, background=False)
    ex = explore(both, column="other_model_embeddings", background=False)
    np.testing.assert_array_equal(ex._matrix, -to_matrix(df))


def test_a_matrix_with_labels_is_explored():
    df = sentence_frame(clusters=2, per_cluster=6)
    ex = explore(to_matrix(df), labels=df["sentence"].tolist(), background=False)
    np.testing.assert_array_equal(ex._matrix, to_matrix(df))
    assert ex.df["document"].tolist() == df["sentence"].tolist()


class _FakePipe:
    def __init__(self, vector):
        self.vector = np.asarray(vector, dtype=np.float32)

    def predict(self, text, output_level=None):
        from _viz_support import EMBEDDING

        from nlu_lite.frame import build_frame

        return build_frame({"origin_index": [0], "sentence_index": [0], "sentence": [text], "begin": [0],
                            "end": [len(text)], "windowed": [False]}, self.vector[None, :], EMBEDDING)


def test_neighbours_outside_the_sample_and_a_typed_query_are_drawn_where_the_method_can_place_them():
    """Issue 23: 9 of 10 neighbours were outside the sample and nothing said so; a typed query was never drawn."""
    df = sentence_frame(clusters=3, per_cluster=40)
    m = to_matrix(df)
    query = m[5] + 0.05
    ex = explore(df, max_points=30, background=False, pipe=_FakePipe(query))
    table = ex.find_neighbours("a text that is not in the frame", k=10)
    rows = table.position.to_numpy()
    assert not np.isin(rows, ex.positions).all()  # some neighbours are outside the 30 plotted rows
    (near,) = _traces(ex, "highlight")
    assert sorted(near.customdata) == sorted(rows) and "drawn" not in near.name  # every one of them drawn
    pca = PCA(n_components=2, svd_solver="full").fit(m[ex.positions].astype(np.float64))
    placed = dict(zip(near.customdata, zip(near.x, near.y)))
    for row in rows:
        np.testing.assert_allclose(placed[row], pca.transform(m[[row]])[0], atol=1e-4)
    (star,) = _traces(ex, "query")
    np.testing.assert_allclose([star.x[0], star.y[0]], pca.transform(query[None, :])[0], atol=1e-4)
    assert star.name == "query: a text that is not in the frame"
    # t-SNE places only the rows it fitted: the plot and the panel say how many are drawn
    ex.set(method="tsne", perplexity=5, max_iter=250)
    (near,) = _traces(ex, "highlight")
    inside = int(np.isin(rows, ex.positions).sum())
    assert near.name.endswith(f"{inside} of 10 drawn (t-SNE places only the rows it fitted)")
    assert len(near.customdata) == inside
    (star,) = _traces(ex, "query")
    assert "not drawn" in star.name and len(star.x) == 0
    ex.find_neighbours("a text that is not in the frame", k=10)
    assert f"{inside} of 10 drawn" in ex._neighbour_table.value


def test_a_saved_state_reopens_the_same_view():
    import json

    df = sentence_frame(clusters=3, per_cluster=20)
    ex = explore(df, color="topic", background=False, max_points=50, sample_seed=3)
    ex.set(method="tsne", perplexity=7, max_iter=300, random_state=4)
    ex.select([1, 5, 9])
    ex.search_box.value = "Sentence 1"
    ex.find_neighbours(7, k=4)
    ex.plot.update_layout(xaxis_range=[-3, 2], yaxis_range=[0, 1])  # as a zoom in the browser would
    state = json.loads(json.dumps(ex.state()))  # saved as JSON (a file, notebook metadata)
    assert state["method"] == "tsne" and state["parameters"]["perplexity"] == 7 and state["selection"] == [1, 5, 9]
    again = explore(df, state=state, background=False)
    assert again.state() == state
    assert again.positions.tolist() == ex.positions.tolist()  # the same sample
    np.testing.assert_allclose(again.points.projection.coords, ex.points.projection.coords)
    assert again.selected.index.tolist() == [1, 5, 9] and again.neighbours.position.tolist() == \
        ex.neighbours.position.tolist()
    assert again.matches.index.tolist() == ex.matches.index.tolist()
    assert list(again.plot.layout.xaxis.range) == [-3, 2]
    with pytest.raises(InputError, match="frame of 60 rows, not 59"):
        explore(df.iloc[:59], state=state)
    with pytest.raises(InputError, match="explorer.state"):
        explore(df, state={"method": "pca"})


def test_two_models_explored_side_by_side_share_their_selection():
    """Issue 23: compare with linked plots: select in one, the same rows are selected in the other."""
    import nlu_lite

    df = sentence_frame(clusters=3, per_cluster=10)
    other = df.copy()
    other[EMBEDDING_COLUMN] = list(np.random.default_rng(2).permutation(to_matrix(df)))
    linked = nlu_lite.compare(df, other, k=3, names=("A", "B")).explore(background=False)
    left, right = linked.left, linked.right
    assert {t.name for t in _traces(left)} <= {str(v / 3) for v in range(4)}  # coloured by overlap@3
    trace = _traces(left)[0]
    left.plot._js2py_pointsCallback = {
        "event_type": "plotly_selected",
        "points": {"trace_indexes": [0, 0], "point_indexes": [0, 1], "xs": [0, 0], "ys": [0, 0]},
        "selector": {"type": "lasso", "selector_state": {"xs": [0, 1, 1], "ys": [0, 0, 1]}},
    }
    chosen = sorted(int(p) for p in np.asarray(trace.customdata)[[0, 1]])
    assert left.selected.index.tolist() == right.selected.index.tolist() == chosen
    assert sorted(int(trace.customdata[i]) for trace in _traces(right) if trace.selectedpoints
                  for i in trace.selectedpoints) == chosen  # drawn as selected on the right too
    right.select([4])
    assert left.selected.index.tolist() == [4] and linked.selected.index.tolist() == [4]
    assert "nlu-lite-linked" in linked.widget._dom_classes


def test_search_takes_a_regular_expression_or_a_column_value():
    df = sentence_frame(clusters=3, per_cluster=10)
    ex = explore(df, color="topic", background=False)
    import re

    pattern = r"sentence [12]\d? about (finance|nature)"
    hits = ex.search(f"/{pattern}/")
    expected = [i for i, t in enumerate(df.sentence) if re.search(pattern, t, re.IGNORECASE)]
    assert hits.index.tolist() == df.index[expected].tolist() and len(expected) > 0
    assert ex.search("topic:Nature").index.tolist() == df.index[df.topic == "nature"].tolist()
    assert ex.search("TOPIC:finance").index.tolist() == df.index[df.topic == "finance"].tolist()
    ex.search("topic:weather")
    assert "no row has topic = &#x27;weather&#x27;" in ex._search_info.value and ex.matches.empty
    ex.search("/([a/")
    assert "not a regular expression" in ex._search_info.value
    assert ex.search("Sentence 3 about").index.tolist() == [3]  # plain text as before


def test_semantic_axes_are_a_method_of_the_explorer():
    """Issue 23: semantic axes in the widget: the method 'Semantic axes' places every plotted row on the typed
    axes (the same numbers as nlu_lite.semantic_axes), fills 3D with the rest's principal direction, says what
    is missing, places a typed query with the axes' own transform, and survives state()."""
    from nlu_lite.viz import semantic_axes

    df = sentence_frame(clusters=3, per_cluster=10)
    a, b = df.sentence.iloc[0], df.sentence.iloc[15]
    ex = explore(df, color="topic", background=False)
    ex.set(method="Semantic axes", x=(a, b))
    expected = semantic_axes(df, (a, b))
    got = {int(p): (x, y) for t in _traces(ex) for p, x, y in zip(t.customdata, t.x, t.y)}
    names = expected.attrs["axes"]
    for position in range(len(df)):
        np.testing.assert_allclose(got[position], expected[names].iloc[position], atol=1e-6)
    assert ex.plot.layout.xaxis.title.text == names[0] and "Semantic axes" in ex.plot.layout.title.text
    assert got[0][0] == pytest.approx(-1.0) and got[15][0] == pytest.approx(1.0)
    c = df.sentence.iloc[25]
    ex.set(y=([a, c], b))  # a pole of two texts: their mean
    two = semantic_axes(df, (a, b), ([a, c], b))
    traces = {int(p): y for t in _traces(ex) for p, y in zip(t.customdata, t.y)}
    np.testing.assert_allclose([traces[i] for i in range(len(df))], two[two.attrs["axes"][1]], atol=1e-6)
    assert ex.y_from.value == f"{a} | {c}"
    ex.set(y=None, dimensions=3)
    assert {t.type for t in _traces(ex)} == {"scatter3d"}
    assert ex.plot.layout.scene.zaxis.title.text == "second component of the rest"
    state = ex.state()
    assert state["method"] == "axes" and state["axes"]["x"] == [a, b]
    again = explore(df, state=state, background=False)
    assert again.method.value == "axes" and again.x_from.value == a and again.points.projection.titles[0] == names[0]
    ex.set(dimensions=2)
    ex.x_to.value = ""  # half an axis: said, the plot kept
    assert "needs both poles" in ex.status.value
    ex.set(x=(a, "no such text and no pipe"))
    assert "no such text" in ex.status.value or "pipe" in ex.status.value


def test_the_senses_box_clusters_a_words_occurrences_and_circles_each_sense():
    """Issue 23: word senses in the widget (token frames): the box (or the clicked token with the button) runs
    nlu_lite.senses; the panel shows its senses and contexts, and each sense's rows are circled in the plot."""
    from test_viz_questions import _bank_frame

    import nlu_lite

    df = _bank_frame()
    ex = explore(df, background=False)
    expected = nlu_lite.senses(df, "bank")
    ex.senses_word.value = "bank"
    assert ex.senses_result.k == expected.k == 2
    assert "2 senses" in ex._senses_panel.value and "river" in ex._senses_panel.value
    circled = {t.name: sorted(t.customdata) for t in _traces(ex, "highlight") if t.name.startswith("sense ")}
    bank_rows = np.flatnonzero(df.token.str.lower() == "bank")
    assert sorted(np.concatenate(list(circled.values())).tolist()) == bank_rows.tolist()
    for (sense, name), (label, rows) in zip(zip(expected.summary.sense, expected.summary.name), circled.items()):
        assert label == f"sense {sense}: {name}"
        assert rows == bank_rows[expected.occurrences.sense.to_numpy() == sense].tolist()
    ex.senses_word.value = "zzqx"
    assert "occurs 0 time" in ex._senses_panel.value and not [t for t in _traces(ex, "highlight")
                                                              if t.name.startswith("sense ")]
    # click a token point, then press Senses: the clicked word is used
    trace = next(t for t in _traces(ex) if "bank" in set(df.token.iloc[np.asarray(t.customdata)].str.lower()))
    index = int(np.flatnonzero(df.token.iloc[np.asarray(trace.customdata)].str.lower().to_numpy() == "bank")[0])
    ex.plot._js2py_pointsCallback = {"event_type": "plotly_click", "device_state": None,
                                     "points": {"trace_indexes": [list(ex.plot.data).index(trace)],
                                                "point_indexes": [index], "xs": [0], "ys": [0]}}
    ex.senses_word.value = ""
    ex._senses_button.click()
    assert ex.senses_result is not None and ex.senses_result.word.lower() == "bank"
    assert ex._senses_row.layout.display is None  # shown for tokens
    assert explore(sentence_frame(), background=False)._senses_row.layout.display == "none"  # not for sentences


def test_the_kept_copy_of_a_large_view_is_a_seeded_sample_that_says_so(monkeypatch):
    """A 100,000-point first view kept whole added 9.6 MB to the notebook: the copy draws SNAPSHOT_POINTS of them,
    a seeded sample across the colour groups, each drawn point still its own row (position, hover text)."""
    import IPython.display

    monkeypatch.setattr(widget_module, "SNAPSHOT_POINTS", 50)
    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda obj, raw=False: shown.append(obj))
    df = sentence_frame(clusters=3, per_cluster=60)
    ex = explore(df, color="topic", background=False, snapshot=True)
    ex._ipython_display_()
    copy = shown[1]["application/vnd.plotly.v1+json"]
    assert "50 of 180 points, kept with the notebook" in copy["layout"]["title"]["text"]
    points = [t for t in copy["data"] if t.get("meta") == "points"]
    live = {int(p): (x, h) for t in point_traces(ex.plot)
            for p, x, h in zip(decode(t["customdata"]), decode(t["x"]), t["hovertext"])}
    kept = []
    for trace in points:
        rows, xs = decode(trace["customdata"]).astype(int), decode(trace["x"])
        assert len(rows) == len(xs) == len(trace["hovertext"]) == len(decode(trace["y"]))
        assert len(rows) >= 5  # every colour group keeps its share
        for row, x, hover in zip(rows, xs, trace["hovertext"]):
            assert live[row] == (pytest.approx(x), hover)
        kept += rows.tolist()
    assert len(kept) == len(set(kept)) == 50
    shown.clear()
    explore(df, color="topic", background=False, snapshot=True)._ipython_display_()
    again = [decode(t["customdata"]).astype(int).tolist() for t in shown[1]["application/vnd.plotly.v1+json"]["data"]
             if t.get("meta") == "points"]
    assert sorted(x for rows in again for x in rows) == sorted(kept)  # seeded: the same sample each time


def test_the_explorer_keeps_a_static_copy_of_its_view_for_the_saved_notebook(monkeypatch):
    """Issue 23: a reopened notebook has no widgets (they live in the kernel): under the widget the explorer keeps
    a static copy of its first view (plotly's mimetype, which JupyterLab draws without a kernel); the widget's
    stylesheet hides it while the widget lives. On by default where Jupyter Server started the kernel, off in VS
    Code and plain IPython."""
    import IPython.display

    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda obj, raw=False: shown.append((obj, raw)))
    monkeypatch.setenv("JPY_SESSION_NAME", "/tmp/x.ipynb")
    monkeypatch.delenv("VSCODE_PID", raising=False)
    df = sentence_frame(clusters=3, per_cluster=10)
    ex = explore(df, color="topic", background=False)
    assert ex.snapshot
    ex._ipython_display_()
    assert shown[0] == (ex.widget, False) and shown[1][1] is True
    assert shown[1][0]["image/png"]  # its picture: jupyterlab-plotly shows it, and the graph on hover
    copy = shown[1][0]["application/vnd.plotly.v1+json"]
    assert copy["layout"]["title"]["text"].startswith("PCA of 30 sentence embeddings")
    assert "kept with the notebook" in copy["layout"]["title"]["text"]
    points = [t for t in copy["data"] if t.get("meta") == "points"]
    assert sorted(np.concatenate([decode(t["customdata"]) for t in points]).astype(int).tolist()) == list(range(30))
    # hidden under a live explorer unless its plot waits for plotly (no kernel to send it, or a busy one)
    assert any(".jp-OutputArea-child:has(.nlu-lite-explorer):not(:has(.nlu-lite-waiting)) + "
               ".jp-OutputArea-child:has(.jp-RenderedPlotly)"
               in str(getattr(c, "value", ""))
               for c in ex.widget.children)
    monkeypatch.setenv("VSCODE_PID", "1")
    assert not explore(df, background=False).snapshot
    monkeypatch.delenv("JPY_SESSION_NAME")
    monkeypatch.delenv("VSCODE_PID")
    plain = explore(df, background=False)
    shown.clear()
    plain._ipython_display_()
    assert not plain.snapshot and shown == [(plain.widget, False)]
    assert explore(df, background=False, snapshot=True).snapshot


def test_token_tables_show_each_token_in_its_sentence():
    """Issue 23 (token mode that reads): neighbour and selection tables of a token explorer show each token inside
    its sentence, ``left [token] right``, at its own place (a word used twice in a sentence is found where it is)."""
    import html as html_lib

    df = token_frame(["the bank of the river bank", "a loan from the bank", "the river runs"], dim=6)
    ex = explore(df, background=False)
    table = ex.find_neighbours(5, k=4)  # the second "bank" of the first sentence
    shown = html_lib.unescape(ex._neighbour_table.value)
    for position in table.position:
        token, sentence = df.token.iloc[position], df.sentence.iloc[position]
        begin = int(df.begin.iloc[position])  # one sentence per text here: offsets in the text are in the sentence
        assert f"{sentence[:begin]}[{token}]{sentence[begin + len(token):]}" in shown
    ex.select([5, 10])
    selected = html_lib.unescape(ex._selection_info.value)
    assert "the bank of the river [bank]" in selected and "a loan from the [bank]" in selected
    assert "context" not in explore(sentence_frame(), background=False).find_neighbours(0, k=2).columns


def test_stopping_the_first_projection_shows_pca_instead_of_empty_axes():
    """An explorer opened on t-SNE and stopped before its first view fell back to nothing: empty axes. It now
    shows PCA, the method menu says so, and the status names what was stopped."""
    import time

    from _viz_support import clustered_matrix

    matrix, _ = clustered_matrix(clusters=4, per_cluster=1000, dim=32)
    ex = explore(matrix, labels=[str(i) for i in range(len(matrix))], max_points=None, method="tsne", max_iter=5000)
    assert ex.points is None and ex._job.running
    time.sleep(0.5)
    ex.stop()
    ex.wait(30)
    assert ex.method.value == "pca" and ex.points is not None and ex.plot.layout.title.text.startswith("PCA of 4,000")
    assert "t-SNE was stopped after" in ex.status.value and "PCA is shown instead" in ex.status.value


def test_the_plot_widget_keeps_plotlys_bundle_out_of_its_state_and_sends_it_on_request():
    """The explorer's plot: ``_esm`` (kept in saved widget state) is the 2 kB loader; the 4.96 MB bundle goes by
    one message when the page asks, and a sync request brings plotly's start-up state up to date with edits made
    before the page had plotly (the browser tests run the page side)."""
    from nlu_lite.viz.plotwidget import LOADER, plot_widget_class

    plot = plot_widget_class()(layout={"height": 300})
    sent = []
    plot.send = lambda content, buffers=None: sent.append((content, buffers))
    assert plot._esm == LOADER and len(plot._esm) < 4_000
    edits = []
    plot.observe(lambda change: change["new"] is not None and edits.append(change["name"]),
                 names=["_py2js_addTraces", "_py2js_restyle", "_py2js_relayout", "_py2js_update"])
    plot.add_scatter(x=[1.0, 2.0], y=[3.0, 4.0], name="later")  # edits after the widget exists, before a page
    plot.data[0].marker.color = "red"  # has plotly: not sent (the sync carries the figure whole)
    plot.layout.title = "before"
    assert plot._widget_data == [] and edits == []
    plot._answer(plot, {"type": "nlu_lite_bundle"}, [])
    (content, buffers), = sent
    assert content == {"type": "nlu_lite_bundle"} and len(buffers) == 1 and len(buffers[0]) > 4_000_000
    import plotly.basewidget

    bundle = Path(plotly.basewidget.__file__).parent / "package_data" / "widgetbundle.js"
    assert b"FigureModel" in buffers[0] and len(buffers[0]) == bundle.stat().st_size  # plotly's widget module, whole
    plot._answer(plot, {"type": "nlu_lite_sync"}, [])
    assert sent[-1] == ({"type": "nlu_lite_synced"}, None)
    assert [t["name"] for t in plot._widget_data] == ["later"] and plot._widget_layout["height"] == 300
    assert plot._widget_data[0]["marker"]["color"] == "red" and plot._widget_layout["title"]["text"] == "before"
    plot.add_scatter(x=[5.0], y=[6.0], name="after")  # a page has plotly now: edits go as plotly sends them
    plot.layout.title = "after"
    assert edits == ["_py2js_addTraces", "_py2js_relayout"]
    plot._answer(plot, {"type": "something else"}, [])
    plot._answer(plot, "not a dict", [])
    assert len(sent) == 2


def test_a_kernels_first_explorer_sends_plotlys_bundle_at_once_and_empties_it_after_the_cell(monkeypatch):
    """The page imports plotly while the kernel is still busy with the cell (the plot's own request would wait
    for the cell to finish): the first explorer of a kernel opens a widget whose state is the bundle; after the
    cell (IPython's post_run_cell) its bundle is emptied and it is closed, so no saved widget state keeps 5 MB.
    Once per kernel; never outside one (plain IPython, scripts)."""
    import IPython
    from IPython.core.events import EventManager, available_events

    from nlu_lite.viz import plotwidget

    class Shell:
        kernel = object()

    shell = Shell()
    shell.events = EventManager(shell, available_events)
    monkeypatch.setattr(plotwidget, "_CARRIED", [])
    monkeypatch.setattr(IPython, "get_ipython", lambda: None)
    explore(sentence_frame(), background=False)
    assert plotwidget._CARRIED == []  # no kernel: nothing sent
    monkeypatch.setattr(IPython, "get_ipython", lambda: shell)
    explore(sentence_frame(), background=False)
    (carrier,) = plotwidget._CARRIED
    assert carrier.bundle == plotwidget.bundle_bytes() and b"FigureModel" in carrier.bundle
    assert carrier._esm == plotwidget.CARRIER and carrier.comm is not None
    states = []
    carrier.observe(lambda change: states.append(len(change["new"])), names="bundle")
    explore(sentence_frame(), background=False)  # the same cell: not sent again
    assert len(plotwidget._CARRIED) == 1
    shell.events.trigger("post_run_cell", None)
    assert states == [0] and carrier.bundle == b"" and carrier.comm is None  # emptied, then closed
    shell.events.trigger("post_run_cell", None)  # unregistered: a later cell does nothing
    explore(sentence_frame(), background=False)  # a later explorer of the kernel: its page has the bundle
    assert len(plotwidget._CARRIED) == 1


def test_the_plots_coordinates_go_to_the_page_as_binary_float32():
    """Issue 23's scale: the points' coordinates cross the comm as float32 buffers (plotly's widget serializer),
    not JSON lists, and the figure's JSON holds them as base64 float32."""
    import json

    from plotly.serializers import _py_to_js

    df = sentence_frame(clusters=3, per_cluster=10)
    ex = explore(df, color="topic", background=False)
    sent = _py_to_js(ex.plot._data, None)
    for trace in (t for t in sent if t.get("meta") == "points"):
        for axis in ("x", "y"):
            assert trace[axis]["dtype"] == "float32" and isinstance(trace[axis]["buffer"], memoryview)
        assert trace["customdata"]["dtype"] == "int32"
    exported = json.loads(ex.figure.to_json())
    assert all(t["x"]["dtype"] == "f4" for t in exported["data"] if t.get("meta") == "points")


def test_an_explorers_first_view_fits_once_and_hashes_its_matrix_once(monkeypatch):
    """The explorer's matrix is frozen (read-only) and hashed as it is read, while plotly's widget module
    imports in a worker; the first view's cache lookup and projection reuse that digest: one fit, one hash."""
    import hashlib

    from nlu_lite.viz import reduce

    fits, hashes = [], []
    real_fit, real_hash = reduce._FITS["pca"], hashlib.blake2b
    monkeypatch.setitem(reduce._FITS, "pca", lambda *a: fits.append(1) or real_fit(*a))
    monkeypatch.setattr(reduce.hashlib, "blake2b", lambda *a, **k: hashes.append(1) or real_hash(*a, **k))
    df = sentence_frame(clusters=3, per_cluster=10)
    ex = explore(df, color="topic", background=False)
    assert len(fits) == 1 and len(hashes) == 1 and len(_traces(ex)) == 3 and not ex._matrix.flags.writeable
    ex.dimensions.value = 3
    assert len(fits) == 2 and len(hashes) == 1


def test_plotlys_figure_widget_module_is_imported_in_a_worker_thread(tmp_path, monkeypatch):
    """The FigureWidget module's import chain (nbformat, jsonschema, rfc3987_syntax's lark grammars) measured
    2.5-6.4 s from the kernel's main thread inside the explorer's call, 1.4 s in a worker: the import runs in a
    worker that the caller waits for; a module that fails is left for the caller's own import to report."""
    import sys

    from nlu_lite._optional import require
    from nlu_lite.errors import MissingDependencyError
    from nlu_lite.viz.plotwidget import _import_in_worker, import_soon, importing

    (tmp_path / "nlu_lite_probe_ok.py").write_text("import threading\nTHREAD = threading.current_thread().name\n")
    (tmp_path / "nlu_lite_probe_bad.py").write_text("raise ImportError('no such thing')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("nlu_lite_probe_ok", "nlu_lite_probe_bad"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    _import_in_worker("nlu_lite_probe_ok")
    assert sys.modules["nlu_lite_probe_ok"].THREAD == "nlu_lite: import nlu_lite_probe_ok"
    # importing() starts it and runs its block at once; leaving the block joins that same worker (imported once)
    runs = tmp_path / "runs.txt"
    (tmp_path / "nlu_lite_probe_slow.py").write_text(
        f"import threading, time\nwith open({str(runs)!r}, 'a') as f:\n    f.write('run\\n')\ntime.sleep(0.3)\n"
        "THREAD = threading.current_thread().name\n")
    monkeypatch.delitem(sys.modules, "nlu_lite_probe_slow", raising=False)
    with importing("nlu_lite_probe_slow"):
        import_soon("nlu_lite_probe_slow")
        assert getattr(sys.modules.get("nlu_lite_probe_slow"), "THREAD", None) is None  # still importing
    assert sys.modules["nlu_lite_probe_slow"].THREAD == "nlu_lite: import nlu_lite_probe_slow"
    assert runs.read_text() == "run\n"
    _import_in_worker("nlu_lite_probe_ok")  # imported: nothing to do
    _import_in_worker("nlu_lite_probe_bad")
    assert "nlu_lite_probe_bad" not in sys.modules
    with pytest.raises(MissingDependencyError, match="pip install"):
        require("nlu_lite_probe_bad", "viz")
