"""Plot functions read through fig.to_dict(): points, hover texts, colours, symbols, PCA / t-SNE
coordinates against scikit-learn on the same matrix, sampling, WebGL, heatmap, neighbours."""
from __future__ import annotations

import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

pytest.importorskip("plotly")
pytest.importorskip("sklearn")

from _viz_support import (
    EMBEDDING,
    decode,
    plotted,
    point_traces,
    sentence_frame,
    token_frame,
)
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE
from sklearn.metrics.pairwise import cosine_similarity, euclidean_distances
from sklearn.neighbors import NearestNeighbors

from nlu_lite.errors import InputError, MissingDependencyError
from nlu_lite.frame import build_frame, to_matrix
from nlu_lite.viz import (
    nearest_neighbours,
    plot_embeddings,
    plot_neighbours,
    plot_similarity,
    project,
)
from nlu_lite.viz.frames import hover_texts

pytestmark = pytest.mark.usefixtures("fresh_projection_cache")


def test_importing_nlu_lite_and_viz_does_not_import_plotly_sklearn_or_widgets():
    code = (
        "import sys, nlu_lite, nlu_lite.viz; "
        "heavy = [m for m in ('plotly', 'sklearn', 'ipywidgets', 'anywidget') if m in sys.modules]; "
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("dimensions", [2, 3])
def test_pca_coordinates_match_scikit_learn_on_the_same_matrix(dimensions):
    """The reference is scikit-learn's full-SVD PCA of the matrix in float64: nlu_lite's PCA sums in float64, so it
    is closer to that than scikit-learn's own float32 PCA is (5e-6 apart here)."""
    df = sentence_frame()
    expected = PCA(n_components=dimensions, svd_solver="full").fit_transform(to_matrix(df).astype(np.float64))
    points = plotted(plot_embeddings(df, "pca", dimensions, color="topic"))
    assert sorted(points.position) == list(range(len(df)))  # every row once
    axes = ["x", "y", "z"][:dimensions]
    got = points.sort_values("position")[axes].to_numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=2e-6)  # the figure holds float32 coordinates
    assert set(points.type) == {"scatter3d" if dimensions == 3 else "scatter"}


@settings(max_examples=40, deadline=None)
@given(n=st.integers(2, 120), d=st.integers(1, 48), k=st.integers(1, 3), seed=st.integers(0, 2**16),
       scale=st.sampled_from([1e-3, 1.0, 1e3]), offset=st.sampled_from([0.0, 50.0]))
def test_pca_is_scikit_learns_float64_pca_signs_variance_and_placement(n, d, k, seed, scale, offset):
    """PrincipalAxes against scikit-learn's full-SVD PCA of the float64 matrix: the same coordinates (its sign rule
    too), explained variance ratio and placement of new rows, for few or many rows, narrow or wide, far from the
    origin. Clustered rows keep the leading eigenvalues apart (equal ones leave the axes free to rotate)."""
    from nlu_lite.viz.reduce import PrincipalAxes

    k = min(k, n - 1, d)
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k + 1, d)) * np.linspace(8, 4, k + 1)[:, None]
    x = ((centres[rng.integers(0, k + 1, n)] + rng.normal(size=(n, d)) * 0.1) * scale + offset).astype(np.float32)
    reference = PCA(n_components=k, svd_solver="full").fit(x.astype(np.float64))
    values = np.linalg.eigvalsh(np.cov(x.astype(np.float64), rowvar=False).reshape(d, d))[::-1][:k + 1]
    gaps = np.abs(np.diff(values))
    # axes the data determines: no repeated eigenvalue among the first k + 1, no zero one
    assume(values[k - 1] >= 1e-6 * values[0] and not (gaps.size and gaps.min() < 1e-3 * values[0]))
    ours = PrincipalAxes(x, k)
    fresh = rng.normal(size=(5, d)).astype(np.float32) * scale + offset
    size = np.abs(reference.transform(x.astype(np.float64))).max()
    np.testing.assert_allclose(ours.transform(x), reference.transform(x.astype(np.float64)), atol=1e-6 * size)
    np.testing.assert_allclose(ours.transform(fresh), reference.transform(fresh.astype(np.float64)), atol=1e-6 * size)
    np.testing.assert_allclose(ours.explained_variance_ratio_, reference.explained_variance_ratio_, atol=1e-9)


def test_pca_of_vectors_wider_than_the_exact_limit_is_scikit_learns(monkeypatch):
    from nlu_lite.viz import reduce

    x = to_matrix(sentence_frame())
    monkeypatch.setattr(reduce, "EXACT_PCA_FEATURES", x.shape[1] - 1)
    got = reduce.project(x, "pca", cache=False)
    expected = PCA(n_components=2, random_state=0)
    np.testing.assert_array_equal(got.coords, expected.fit_transform(x))
    assert got.explained_variance_ratio == tuple(float(r) for r in expected.explained_variance_ratio_)


def test_a_fresh_explorer_imports_no_scikit_learn_and_nothing_beside_its_import_worker():
    """A session's first explorer (PCA, the default) does not pay scikit-learn's import (1.2-1.4 s here). And
    while its worker thread imports plotly's widget module, the calling thread imports nothing: two threads
    importing modules that import each other deadlock, which Python raises as ``_DeadlockError`` (the explorer
    once imported IPython meanwhile and failed so). A fresh process, outside a kernel, as a script would run it."""
    code = """
import sys, threading
sys.path.insert(0, 'tests')
during = []
def audit(event, args):
    if event == 'import' and threading.current_thread() is threading.main_thread() and any(
            t.name.startswith('nlu_lite: import') for t in threading.enumerate()):
        during.append(args[0])
sys.addaudithook(audit)
from _viz_support import sentence_frame
import nlu_lite
ex = nlu_lite.explore(sentence_frame(), color='topic')
assert len(ex.positions) == 60 and 'plotly.graph_objs._figurewidget' in sys.modules
print([m for m in ('sklearn', 'scipy') if m in sys.modules], during)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parent.parent).stdout
    assert out.strip() == "[] []"


def test_pca_axis_titles_give_scikit_learns_explained_variance():
    df = sentence_frame()
    ratio = PCA(n_components=2).fit(to_matrix(df)).explained_variance_ratio_
    layout = plot_embeddings(df).to_dict()["layout"]
    assert layout["xaxis"]["title"]["text"] == f"PC1 ({ratio[0]:.1%} of variance)"
    assert layout["yaxis"]["title"]["text"] == f"PC2 ({ratio[1]:.1%} of variance)"


def test_colours_follow_the_column_asked_for():
    df = sentence_frame(clusters=3, per_cluster=10)
    df["shuffled"] = np.random.default_rng(1).permutation(df["topic"].to_numpy())  # unlike the clusters
    for column in ("topic", "shuffled"):
        points = plotted(plot_embeddings(df, color=column))
        assert set(points.trace) == set(df[column])
        for name, group in points.groupby("trace"):
            assert set(df[column].iloc[group.position]) == {name}  # each trace holds only its value
            assert group.colour.nunique() == 1
        assert points.groupby("trace").colour.first().nunique() == 3  # one colour per value
        # every row of a value is in that value's trace
        for value in df[column].unique():
            assert set(points.position[points.trace == value]) == set(np.flatnonzero(df[column] == value))


def test_colour_by_values_aligned_with_the_frame_and_by_origin_row():
    df = sentence_frame(clusters=2, per_cluster=5)
    labels = np.array(["odd" if i % 2 else "even" for i in range(len(df))])
    points = plotted(plot_embeddings(df, color=labels))
    assert all((p % 2 == 1) == (t == "odd") for p, t in zip(points.position, points.trace))
    by_row = plotted(plot_embeddings(df, color="origin_index"))
    assert (by_row.trace.astype(int) == df.origin_index.iloc[by_row.position].to_numpy()).all()


def test_numeric_column_with_many_values_gets_a_colour_scale():
    df = sentence_frame(clusters=2, per_cluster=30)
    df["score"] = np.linspace(0.0, 1.0, len(df))[::-1]
    fig = plot_embeddings(df, color="score")
    points = plotted(fig)
    assert len(point_traces(fig)) == 1
    np.testing.assert_allclose(points.colour.astype(float), df.score.iloc[points.position])
    assert fig.to_dict()["layout"]["coloraxis"]["colorbar"]["title"]["text"] == "score"


def test_rare_values_fold_into_other():
    df = sentence_frame(clusters=1, per_cluster=40)
    df["word"] = [f"w{i}" if i >= 10 else "common" for i in range(len(df))]  # 1 common value, 30 singletons
    points = plotted(plot_embeddings(df, color="word", max_categories=5))
    assert points.trace.nunique() == 5
    assert (points.trace == "common").sum() == 10
    assert (points.trace == "(other)").sum() == 40 - 10 - 3
    assert points.colour[points.trace == "(other)"].unique().tolist() == ["#b0b0b0"]


def test_missing_and_empty_values_get_their_own_named_trace():
    df = sentence_frame(clusters=1, per_cluster=6)
    df["label"] = ["x", "", None, "x", "", "y"]
    points = plotted(plot_embeddings(df, color="label"))
    groups = points.groupby("trace").position.apply(sorted).to_dict()
    assert groups == {"x": [0, 3], "(empty)": [1, 4], "(missing)": [2], "y": [5]}
    colours = points.groupby("trace").colour.first()
    assert colours["(empty)"] == colours["(missing)"] == "#b0b0b0" != colours["x"] != colours["y"]


def test_symbol_by_a_column_and_colour_by_another():
    df = sentence_frame(clusters=2, per_cluster=6)
    df["half"] = np.where(np.arange(len(df)) < 6, "first", "second")
    df["parity"] = np.where(np.arange(len(df)) % 2 == 0, "even", "odd")
    points = plotted(plot_embeddings(df, color="half", symbol="parity"))
    for _, group in points.groupby("trace"):
        rows = df.iloc[group.position]
        assert rows.half.nunique() == 1 and rows.parity.nunique() == 1
    symbol_of = points.groupby(df.parity.iloc[points.position].to_numpy()).symbol.unique()
    assert symbol_of["even"].tolist() != symbol_of["odd"].tolist()
    assert len(symbol_of["even"]) == 1 and len(symbol_of["odd"]) == 1


def test_hover_shows_the_token_in_its_sentence():
    df = token_frame(["We sat on the bank of the river.", "I <3 NLP"])
    hover = dict(zip(zip(df.origin_index, df.begin), hover_texts(df)))
    assert hover[(0, 10)] == "We sat on <b>the</b> bank of the river.<br>row 0"
    assert hover[(0, 14)] == "We sat on the <b>bank</b> of the river.<br>row 0"
    assert hover[(0, 22)] == "We sat on the bank of <b>the</b> river.<br>row 0"  # the second "the"
    assert hover[(1, 2)] == "I <b>&lt;3</b> NLP<br>row 1"
    points = plotted(plot_embeddings(df))
    assert points.set_index("position").hover[4] == "We sat on the <b>bank</b> of the river.<br>row 0"


def test_hover_trims_long_context_and_shows_sentences_whole():
    text = "word " * 40 + "target " + "tail " * 40
    df = token_frame([text.strip()])
    target = hover_texts(df)[40]
    assert target.startswith("…") and target.endswith("…<br>row 0") and "<b>target</b>" in target
    assert len(target) < 170
    sentences = sentence_frame(clusters=1, per_cluster=3)
    assert hover_texts(sentences)[2] == "Sentence 2 about finance.<br>row 2"


@settings(max_examples=200, deadline=None)
@given(text=st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=200), width=st.integers(5, 90))
def test_a_sentence_hover_keeps_every_word_escaped_in_lines_of_the_width(text, width):
    """Sentence-level hover text: the words in order, single-spaced, HTML-escaped, broken into lines no longer
    than ``width`` unless one word is; short texts (one line) and long ones alike."""
    import html as html_module

    from nlu_lite.viz.frames import _wrap

    out = _wrap(text, width)
    lines = [html_module.unescape(line) for line in out.split("<br>")]
    assert " ".join(lines).split() == text.split() and all(line == " ".join(line.split()) for line in lines)
    assert all(len(line) <= width or " " not in line for line in lines)
    assert "<" not in out.replace("<br>", "") and ">" not in out.replace("<br>", "")
    if len(text) <= width:
        assert len(lines) == 1


def test_webgl_past_the_threshold_and_svg_below():
    small = sentence_frame(clusters=2, per_cluster=50)
    big = sentence_frame(clusters=2, per_cluster=1_100)
    assert {t["type"] for t in point_traces(plot_embeddings(small, color="topic"))} == {"scatter"}
    assert {t["type"] for t in point_traces(plot_embeddings(big, color="topic"))} == {"scattergl"}
    assert {t["type"] for t in point_traces(plot_embeddings(small, webgl=True))} == {"scattergl"}


def test_sampling_past_max_points_says_so_and_keeps_highlighted_rows(caplog):
    df = sentence_frame(clusters=3, per_cluster=400)
    keep = [5, 777, 1199]
    with caplog.at_level("WARNING"):
        fig = plot_embeddings(df, max_points=300, highlight=keep, sample_seed=3)
    points = plotted(fig)
    assert len(points) == 300 and points.position.is_unique
    assert set(keep) <= set(points.position)
    title = fig.to_dict()["layout"]["title"]["text"]
    assert "random sample of 300 of 1,200 rows" in title and "seed 3" in title
    assert "random sample of 300 of 1200 rows" in caplog.text
    highlight = point_traces(fig, "highlight")
    assert sorted(decode(highlight[0]["customdata"]).tolist()) == keep
    # the sample's PCA is the PCA of the sampled rows
    sampled = points.sort_values("position")
    expected = PCA(n_components=2, svd_solver="full").fit_transform(to_matrix(df.iloc[sampled.position]).astype(np.float64))
    np.testing.assert_allclose(sampled[["x", "y"]].to_numpy(), expected, rtol=1e-5, atol=1e-5)
    again = plotted(plot_embeddings(df, max_points=300, highlight=keep, sample_seed=3))
    assert sorted(again.position) == sorted(points.position)


class _CountingTSNE(TSNE):
    fits: list[dict] = []

    def fit_transform(self, X, y=None):
        type(self).fits.append(self.get_params())
        return super().fit_transform(X, y)


def test_tsne_uses_the_parameters_matches_scikit_learn_and_is_fitted_once_per_parameter_set(monkeypatch):
    import sklearn.manifold

    monkeypatch.setattr(sklearn.manifold, "TSNE", _CountingTSNE)
    _CountingTSNE.fits = []
    df = sentence_frame(clusters=3, per_cluster=12)
    kwargs = dict(perplexity=8, learning_rate=150, max_iter=300, random_state=7)
    first = plotted(plot_embeddings(df, "t-SNE", color="topic", **kwargs))
    plotted(plot_embeddings(df, "tsne", color=None, **kwargs))  # recolour: no refit
    assert len(_CountingTSNE.fits) == 1
    params = _CountingTSNE.fits[0]
    used = (params["perplexity"], params["learning_rate"], params["max_iter"], params["random_state"])
    assert used == (8, 150, 300, 7)
    expected = TSNE(n_components=2, perplexity=8, learning_rate=150, max_iter=300, random_state=7,
                    init="pca").fit_transform(to_matrix(df))
    got = first.sort_values("position")[["x", "y"]].to_numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
    plot_embeddings(df, "tsne", **{**kwargs, "perplexity": 5})
    assert len(_CountingTSNE.fits) == 2


def test_tsne_lowers_perplexity_for_few_points_and_refuses_too_few():
    matrix = sentence_frame(clusters=2, per_cluster=5).pipe(to_matrix)
    result = project(matrix, "tsne", perplexity=30, max_iter=250)
    assert result.params["perplexity"] == pytest.approx(3.0) and result.coords.shape == (10, 2)
    with pytest.raises(InputError, match="at least 4 points"):
        project(matrix[:3], "tsne")
    with pytest.raises(InputError, match="unknown method"):
        project(matrix, "lda")


def test_umap_missing_names_the_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "umap", None)  # import umap -> ImportError
    with pytest.raises(MissingDependencyError, match="umap-learn"):
        project(np.zeros((10, 4)), "umap")


def test_umap_gets_its_parameters(monkeypatch):
    seen = {}

    class FakeUMAP:
        def __init__(self, **params):
            seen.update(params)

        def fit_transform(self, x):
            return x[:, : seen["n_components"]] * 2

    monkeypatch.setitem(sys.modules, "umap", types.SimpleNamespace(UMAP=FakeUMAP))
    df = sentence_frame(clusters=2, per_cluster=5)
    points = plotted(plot_embeddings(df, "umap", 3, n_neighbors=50, min_dist=0.3, random_state=4))
    assert seen == {"n_components": 3, "n_neighbors": 9, "min_dist": 0.3, "random_state": 4, "metric": "euclidean",
                    "verbose": False}  # verbose only in the child process, whose epoch lines are progress
    np.testing.assert_allclose(points.sort_values("position")[["x", "y", "z"]].to_numpy(),
                               to_matrix(df)[:, :3] * 2, rtol=1e-6)


def test_similarity_heatmap_is_scikit_learns_cosine_on_the_chosen_rows():
    df = token_frame(["the bank of the river", "money in the bank", "a river bank"], dim=12)
    fig = plot_similarity(df, ["bank", "river"])
    heat = fig.to_dict()["data"][0]
    chosen = np.concatenate([np.flatnonzero(df.token == "bank"), np.flatnonzero(df.token == "river")])
    np.testing.assert_allclose(decode(heat["z"]), cosine_similarity(to_matrix(df)[chosen]), atol=1e-6)
    ticks = fig.to_dict()["layout"]["xaxis"]["ticktext"]
    assert ticks == [f"bank [{p}]" for p in chosen[:3]] + [f"river [{p}]" for p in chosen[3:]]
    assert list(decode(heat["x"])) == list(range(5))  # integer axes: repeated labels stay apart
    distances = plot_similarity(df, chosen.tolist(), metric="euclidean").to_dict()["data"][0]
    np.testing.assert_allclose(decode(distances["z"]), euclidean_distances(to_matrix(df)[chosen]), atol=1e-4)


def test_similarity_heatmap_takes_a_mask_and_refuses_too_many_rows():
    df = sentence_frame(clusters=2, per_cluster=30)
    mask = (df.topic == "nature").to_numpy()
    fig = plot_similarity(df, mask, labels="topic")
    assert fig.to_dict()["layout"]["yaxis"]["ticktext"][0] == f"nature [{np.flatnonzero(mask)[0]}]"
    assert decode(fig.to_dict()["data"][0]["z"]).shape == (30, 30)
    with pytest.raises(InputError, match="at most 50"):
        plot_similarity(df, max_rows=50)


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_nearest_neighbours_match_scikit_learn(metric):
    df = sentence_frame(clusters=3, per_cluster=15)
    matrix = to_matrix(df)
    nn = NearestNeighbors(n_neighbors=7, metric=metric, algorithm="brute").fit(matrix)
    distances, indices = nn.kneighbors(matrix[[17]])
    table = nearest_neighbours(df, 17, k=6, metric=metric)
    assert table.position.tolist() == indices[0][1:].tolist()  # sklearn's first is the query itself
    score = 1 - table.similarity if metric == "cosine" else table.distance
    np.testing.assert_allclose(score.to_numpy(), distances[0][1:], atol=1e-5)
    assert table["rank"].tolist() == list(range(1, 7))
    assert EMBEDDING not in table.columns and (table.index == df.index[table.position]).all()


def test_neighbours_of_a_text_average_its_rows_and_leave_them_out():
    df = token_frame(["river bank water", "money bank loan", "bank"], dim=6)
    matrix = to_matrix(df)
    table = nearest_neighbours(df, "BANK", k=3)
    banks = np.flatnonzero(df.token == "bank")
    centre = matrix[banks].mean(axis=0)
    others = np.setdiff1d(np.arange(len(df)), banks)
    sims = cosine_similarity(matrix[others], centre[None, :])[:, 0]
    assert table.position.tolist() == others[np.argsort(-sims)][:3].tolist()
    assert not set(table.position) & set(banks)


def test_neighbours_of_an_unknown_text_need_a_pipe():
    df = token_frame(["river bank water"], dim=4)

    class Pipe:
        def predict(self, text):
            assert text == "stream"
            return build_frame({"token": ["stream"]}, np.array([[1.0, 0, 0, 0]]), "x_embeddings")

    with pytest.raises(InputError, match="pass pipe="):
        nearest_neighbours(df, "stream")
    table = nearest_neighbours(df, "stream", k=3, pipe=Pipe())
    expected = np.argsort(-cosine_similarity(to_matrix(df), [[1.0, 0, 0, 0]])[:, 0])
    assert table.position.tolist() == expected.tolist()


def test_plot_neighbours_circles_the_query_and_its_neighbours():
    df = sentence_frame(clusters=3, per_cluster=10)
    fig = plot_neighbours(df, 4, k=5, color="topic")
    table = nearest_neighbours(df, 4, k=5)
    highlight = {t["name"]: decode(t["customdata"]).tolist() for t in point_traces(fig, "highlight")}
    assert highlight == {"query": [4], "5 nearest (cosine)": sorted(table.position.tolist())}
    assert "neighbours of row 4" in fig.to_dict()["layout"]["title"]["text"]


def test_plot_functions_never_show(monkeypatch):
    import plotly.basedatatypes

    def refuse(*_args, **_kwargs):
        raise AssertionError("show() called")

    monkeypatch.setattr(plotly.basedatatypes.BaseFigure, "show", refuse)
    df = sentence_frame(clusters=2, per_cluster=5)
    plot_embeddings(df)
    plot_similarity(df)
    plot_neighbours(df, 0, k=2)


def test_frames_without_a_text_column_are_refused_with_the_fix():
    df = build_frame({"origin_index": [0, 1]}, np.eye(2), "x_embeddings")
    with pytest.raises(InputError, match="predict"):
        plot_embeddings(df)
    with pytest.raises(InputError, match="not a column"):
        plot_embeddings(sentence_frame(), color="nope")


def test_a_frame_of_several_models_is_plotted_and_searched_by_column():
    """Issue 23: a two-model frame (load('A B')) could not be plotted or searched: the error said column=, which
    none of the functions took."""
    one = sentence_frame(clusters=3, per_cluster=8, seed=1)
    other = sentence_frame(clusters=3, per_cluster=8, seed=2)
    second = "en_embed_sentence_other_embeddings"
    both = one.copy()
    both[second] = other[EMBEDDING].to_numpy()
    with pytest.raises(InputError, match="pass column="):
        plot_embeddings(both)
    alone = one.drop(columns=[EMBEDDING]).assign(**{second: other[EMBEDDING].to_numpy()})
    np.testing.assert_array_equal(plotted(plot_embeddings(both, column=second)), plotted(plot_embeddings(alone)))
    got, want = nearest_neighbours(both, 0, 5, column=second), nearest_neighbours(alone, 0, 5)
    assert got["position"].tolist() == want["position"].tolist()
    np.testing.assert_allclose(got["similarity"], want["similarity"])
    assert nearest_neighbours(both, 0, 5, column=EMBEDDING)["position"].tolist() == \
        nearest_neighbours(one, 0, 5)["position"].tolist()
    plot_similarity(both, column=second)
    plot_neighbours(both, 0, 3, column=second)
    with pytest.raises(InputError, match="column='nope' is not an embedding column"):
        plot_embeddings(both, column="nope")


def test_a_matrix_with_its_labels_plots_as_its_frame_would():
    """Issue 23: pipe.embed()'s matrix could not be plotted (an AttributeError); any (n, dim) matrix with a label
    frame (or texts) is taken, its texts naming the points and its columns colouring them."""
    import pandas as pd

    df = sentence_frame(clusters=3, per_cluster=8)
    matrix = to_matrix(df)
    labels = pd.DataFrame({"text": df["sentence"].tolist(), "topic": df["topic"].tolist()})
    from_matrix = plotted(plot_embeddings(matrix, labels=labels, color="topic"))
    from_frame = plotted(plot_embeddings(df, color="topic"))
    np.testing.assert_array_equal(from_matrix[["x", "y"]].to_numpy(), from_frame[["x", "y"]].to_numpy())
    assert sorted(set(from_matrix["trace"])) == sorted(set(from_frame["trace"]))  # one trace per topic
    got = nearest_neighbours(matrix, 0, 4, labels=df["sentence"].tolist())
    assert got["position"].tolist() == nearest_neighbours(df, 0, 4)["position"].tolist()
    assert got["document"].tolist() == df["sentence"].iloc[got["position"]].tolist()
    plot_neighbours(matrix, 2, 3)  # row numbers name the points
    with pytest.raises(InputError, match="labels has 5 rows but the matrix 24"):
        plot_embeddings(matrix, labels=labels.iloc[:5])
    with pytest.raises(InputError, match="2-D and numeric"):
        plot_embeddings(matrix[0])
    with pytest.raises(InputError, match="labels= goes with a matrix"):
        plot_embeddings(df, labels=labels)
