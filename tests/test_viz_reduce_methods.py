"""The manifold methods NLU's Streamlit views offer (truncated SVD, Kernel PCA, Isomap, MDS, spectral
embedding, LLE, beside PCA and t-SNE): each keeps what it promises on data with a known shape,
is deterministic, validates its parameters, refuses inputs too small or too big for it, answers
to NLU's spellings, and is offered by plot_embeddings and the explorer's method dropdown."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

pytest.importorskip("sklearn")
pytest.importorskip("plotly")

from _viz_support import plotted, sentence_frame
from scipy.spatial.distance import pdist
from scipy.stats import spearmanr
from sklearn.decomposition import PCA, KernelPCA, TruncatedSVD

from nlu_lite.errors import InputError
from nlu_lite.frame import to_matrix
from nlu_lite.viz import plot_embeddings, project
from nlu_lite.viz.reduce import (
    METHODS,
    cached_projection,
    normalize_method,
    umap_available,
)

NEW = ("svd", "kernel_pca", "isomap", "mds", "spectral", "lle")
LOCAL = {"tsne": {"perplexity": 10, "max_iter": 500}}  # keep t-SNE quick
NEIGHBOUR_GRAPH = ("isomap", "spectral", "lle")


pytestmark = pytest.mark.usefixtures("fresh_projection_cache")


def two_blobs(per_blob: int = 30, dim: int = 20, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two unit-variance Gaussian blobs whose centres are 20 standard deviations apart."""
    rng = np.random.default_rng(seed)
    centre = np.full(dim, 20 / np.sqrt(dim))
    x = np.vstack([rng.normal(size=(per_blob, dim)), centre + rng.normal(size=(per_blob, dim))])
    return x.astype(np.float32), np.repeat([0, 1], per_blob)


def spiral(n: int = 150, dim: int = 20, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """An Archimedean spiral (a curved 1-D manifold) on a random plane of ``dim``-space, and its parameter t.

    Its arms are ~6 apart and neighbouring points ~0.3: a k-neighbour graph follows the curve.
    """
    rng = np.random.default_rng(seed)
    t = np.linspace(np.pi / 2, 3 * np.pi, n)
    basis, _ = np.linalg.qr(rng.normal(size=(dim, 2)))
    x = np.c_[t * np.cos(t), t * np.sin(t)] @ basis.T + rng.normal(scale=0.01, size=(n, dim))
    return x, t


def nearest_in_own_group(coords: np.ndarray, labels: np.ndarray) -> float:
    """The share of points whose nearest other point (in ``coords``) has the same label."""
    d = ((coords[:, None, :] - coords[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    return float((labels[d.argmin(1)] == labels).mean())


# t-SNE only in 2-D: in 3-D scikit-learn's Barnes-Hut t-SNE strands 2-8 of these 60 points nearer the other blob
@pytest.mark.parametrize("method, dimensions", [
    (method, dimensions) for method in ("pca", "tsne", *NEW) for dimensions in (2, 3)
    if (method, dimensions) != ("tsne", 3)
])
def test_every_method_keeps_separated_blobs_apart(method, dimensions):
    x, labels = two_blobs()
    p = project(x, method, dimensions, **LOCAL.get(method, {}))
    assert p.coords.shape == (60, dimensions) and np.isfinite(p.coords).all()
    assert nearest_in_own_group(p.coords, labels) == 1.0
    assert p.label == METHODS[method]


def test_svd_is_scikit_learns_truncated_svd_and_not_centred():
    x, _ = two_blobs()
    p = project(x, "svd", random_state=3)
    expected = TruncatedSVD(n_components=2, random_state=3).fit(x)
    np.testing.assert_allclose(p.coords, expected.transform(x), rtol=1e-5, atol=1e-5)
    assert p.explained_variance_ratio == pytest.approx(tuple(expected.explained_variance_ratio_), abs=1e-6)
    assert p.axis_titles()[0] == f"SV1 ({expected.explained_variance_ratio_[0]:.1%} of variance)"
    # unlike PCA, no centring: the first axis follows the blobs' common offset from the origin
    assert not np.allclose(np.abs(p.coords), np.abs(project(x, "pca").coords), atol=1e-2)


def test_kernel_pca_with_a_linear_kernel_is_pca_up_to_sign():
    x, _ = two_blobs()
    kernel = project(x, "kernel_pca", kernel="linear").coords
    pca = PCA(n_components=2).fit_transform(x)
    signs = np.sign((kernel * pca).sum(0))
    np.testing.assert_allclose(kernel * signs, pca, rtol=1e-3, atol=1e-3)


def test_kernel_pca_uses_the_kernel_and_gamma():
    x, _ = two_blobs()
    got = project(x, "kernel_pca", kernel="rbf", gamma=0.01, random_state=0)
    expected = KernelPCA(n_components=2, kernel="rbf", gamma=0.01, random_state=0).fit_transform(x)
    np.testing.assert_allclose(got.coords, expected, rtol=1e-5, atol=1e-6)
    assert got.params == {"kernel": "rbf", "gamma": 0.01, "random_state": 0}
    assert not np.allclose(project(x, "kernel_pca", gamma=0.1).coords, got.coords)
    assert project(x, "kernel_pca", kernel="cosine").params == {"kernel": "cosine", "random_state": 0}


@pytest.mark.parametrize("method", NEIGHBOUR_GRAPH)
def test_neighbour_graph_methods_unroll_a_spiral_that_pca_cannot(method):
    x, t = spiral()
    p = project(x, method, n_neighbors=8)
    assert abs(spearmanr(p.coords[:, 0], t)[0]) > 0.99  # the first axis runs along the curve
    assert p.params["n_neighbors"] == 8
    assert max(abs(spearmanr(project(x, "pca").coords[:, i], t)[0]) for i in range(2)) < 0.5


def test_mds_keeps_pairwise_distances():
    x, _ = spiral()  # lies on a plane: 2 axes can hold every distance
    p = project(x, "mds")
    original, kept = pdist(x), pdist(p.coords)
    assert np.abs(kept - original).max() / original.max() < 0.01
    blobs, _ = two_blobs()
    spread = np.corrcoef(pdist(project(blobs, "mds").coords), pdist(blobs))[0, 1]
    assert spread > 0.95


@pytest.mark.parametrize("method", ("pca", "tsne", *NEW))
def test_same_input_and_parameters_give_the_same_output(method):
    # > 200 rows: the ARPACK / randomized eigen solvers are in play (t-SNE: fewer, to stay quick)
    x, _ = two_blobs(per_blob=30 if method == "tsne" else 120)
    first = project(x, method, **LOCAL.get(method, {}), cache=False).coords
    second = project(x, method, **LOCAL.get(method, {}), cache=False).coords
    if method == "isomap":  # scikit-learn's Isomap takes no seed: its ARPACK start vector is random
        np.testing.assert_allclose(first, second, rtol=0, atol=1e-9)
    else:
        np.testing.assert_array_equal(first, second)


def test_results_are_cached_per_parameters_the_method_reads():
    x, _ = two_blobs()
    first = project(x, "spectral", affinity="rbf", gamma=0.05)
    assert project(x, "Spectral Embedding", affinity="rbf", gamma="0.05") is first
    # n_neighbors is not read with the rbf affinity: a different value is the same entry
    assert cached_projection(x, "spectral", affinity="rbf", gamma=0.05, n_neighbors=4) is first
    assert cached_projection(x, "spectral", affinity="nearest_neighbors") is None
    isomap = project(x, "isomap", n_neighbors=6)
    assert cached_projection(x, "ISOMAP", n_neighbors=6.0) is isomap
    assert cached_projection(x, "isomap", n_neighbors=7) is None


def test_a_frozen_matrix_is_hashed_once_and_a_changed_one_is_not_served_from_the_cache(monkeypatch):
    """The cache key hashes the matrix's bytes; a frozen matrix (read-only, holding its data: the explorer's)
    is hashed once however often it is looked up. A writeable one is hashed on every lookup, so changing it in
    place gives a new entry, never the old projection."""
    import hashlib

    from nlu_lite.viz import reduce

    calls = []
    real = hashlib.blake2b
    monkeypatch.setattr(reduce.hashlib, "blake2b", lambda *a, **k: calls.append(1) or real(*a, **k))
    x, _ = two_blobs()
    writeable = x.astype(np.float32)
    first = project(writeable, "pca")
    assert project(writeable, "pca") is first and len(calls) == 2
    writeable[0] += 1.0
    assert cached_projection(writeable, "pca") is None and len(calls) == 3
    moved = project(writeable, "pca")
    assert moved is not first and not np.allclose(moved.coords, first.coords)

    calls.clear()
    still = reduce.frozen(x.astype(np.float32))
    with pytest.raises(ValueError, match="read-only"):
        still[0] += 1.0
    again = project(still, "pca")
    assert project(still, "pca") is again and cached_projection(still, "pca", 3) is None and len(calls) == 1
    view = reduce.frozen(x.astype(np.float32)[:, :5])  # a view: left writeable, hashed each time
    assert view.flags.writeable
    project(view, "pca"), project(view, "pca")
    assert len(calls) == 3


@pytest.mark.parametrize("kwargs, message", [
    ({"method": "kernel_pca", "kernel": "gaussian"}, r"kernel='gaussian' is not supported; choose one of \['linear'"),
    ({"method": "spectral", "affinity": "knn"}, r"affinity='knn' is not supported; choose one of \['nearest_neigh"),
    ({"method": "kernel_pca", "gamma": -1}, "gamma must be a positive number"),
    ({"method": "spectral", "affinity": "rbf", "gamma": "wide"}, "gamma must be a number, got 'wide'"),
    ({"method": "isomap", "n_neighbors": 1}, "n_neighbors must be at least 2, got 1"),
    ({"method": "lle", "n_neighbors": 7.5}, "n_neighbors must be a whole number, got 7.5"),
    ({"method": "mds", "random_state": "seed"}, "random_state must be a whole number"),
    ({"method": "svd", "random_state": None}, "random_state must be a whole number, got None"),
    ({"method": "pca", "kernel": "gaussian"}, "kernel='gaussian'"),  # checked even where unused: typos fail at once
])
def test_bad_parameters_raise_input_errors_naming_them(kwargs, message):
    x, _ = two_blobs()
    with pytest.raises(InputError, match=message):
        project(x, **kwargs)


def test_plot_embeddings_checks_parameters_too():
    with pytest.raises(InputError, match="affinity='graph'"):
        plot_embeddings(sentence_frame(clusters=2, per_cluster=5), "spectral", affinity="graph")


@pytest.mark.parametrize("method, dimensions, least", [
    ("isomap", 2, 4), ("mds", 2, 4), ("spectral", 2, 4), ("lle", 2, 4), ("spectral", 3, 5), ("lle", 3, 5),
    ("svd", 2, 2), ("kernel_pca", 2, 2),
])
def test_too_few_points_name_a_method_that_works(method, dimensions, least):
    x, _ = two_blobs()
    few = x[: least - 1]
    with pytest.raises(InputError, match=rf"needs at least {least} points in {dimensions}-D, got {least - 1}; "
                                         r"use method='pca'"):
        project(few, method, dimensions)
    assert project(few, "pca", dimensions).coords.shape == (least - 1, dimensions)
    assert project(x[:least], method, dimensions).coords.shape == (least, dimensions)


@pytest.mark.parametrize("method, limit", [
    ("mds", 1_000), ("isomap", 5_000), ("kernel_pca", 5_000), ("spectral", 5_000), ("lle", 5_000),
])
def test_costly_methods_refuse_big_inputs_before_fitting(monkeypatch, method, limit):
    import sklearn.decomposition
    import sklearn.manifold

    def never(*_args, **_kwargs):
        raise AssertionError("a fit started")

    for module in (sklearn.manifold, sklearn.decomposition):
        for name in ("MDS", "Isomap", "SpectralEmbedding", "LocallyLinearEmbedding", "KernelPCA"):
            if hasattr(module, name):
                monkeypatch.setattr(module, name, never)
    big = np.random.default_rng(0).normal(size=(limit + 1, 4)).astype(np.float32)
    with pytest.raises(InputError, match=rf"of {limit + 1:,} points is refused.*stops at {limit:,} points\. "
                                         rf"Use method='pca' or 'svd'.*max_points={limit}\)"):
        project(big, method)
    assert project(big, "svd").coords.shape == (limit + 1, 2)  # the fast method it names does work


@pytest.mark.parametrize("spelling, key", [
    ("TSNE", "tsne"), ("t-SNE", "tsne"), ("ISOMAP", "isomap"), ("LLE", "lle"), ("Spectral Embedding", "spectral"),
    ("SPECTRAL_EMBEDDING", "spectral"), ("MDS", "mds"), ("PCA", "pca"), ("SVD aka LSA", "svd"),
    ("TRUNCATED_SVD", "svd"), ("TruncatedSVD", "svd"), ("KernelPCA", "kernel_pca"), ("KERNEL_PCA", "kernel_pca"),
    ("kernel-pca", "kernel_pca"), ("LocallyLinearEmbedding", "lle"),
])
def test_nlu_spellings_resolve(spelling, key):
    assert normalize_method(spelling) == key
    x, _ = two_blobs()
    if key != "tsne":
        assert project(x, spelling) is project(x, key)  # one cache entry, whatever the spelling


def test_unknown_method_suggests_the_closest():
    with pytest.raises(InputError, match=r"unknown method 'isomapp' \(did you mean 'isomap'\?\); choose one of"):
        normalize_method("isomapp")


@pytest.mark.parametrize("method", NEW)
def test_plot_embeddings_draws_each_method(method):
    df = sentence_frame(clusters=2, per_cluster=12)
    fig = plot_embeddings(df, method, color="topic", n_neighbors=6)
    points = plotted(fig).sort_values("position")
    expected = project(to_matrix(df), method, n_neighbors=6).coords
    np.testing.assert_allclose(points[["x", "y"]].to_numpy(), expected, rtol=1e-6, atol=1e-9)
    title = fig.to_dict()["layout"]["title"]["text"]
    assert title.startswith(f"{METHODS[method]} of 24 sentence embeddings")
    assert nearest_in_own_group(points[["x", "y"]].to_numpy(), points.trace.to_numpy()) == 1.0


def test_plot_titles_name_the_parameters_used():
    df = sentence_frame(clusters=2, per_cluster=12)
    title = plot_embeddings(df, "isomap", n_neighbors=30).to_dict()["layout"]["title"]["text"]
    assert title.startswith("Isomap of 24 sentence embeddings (n_neighbors 23)")  # lowered to n - 1
    title = plot_embeddings(df, "kernel_pca", gamma=0.5).to_dict()["layout"]["title"]["text"]
    assert title.startswith("Kernel PCA of 24 sentence embeddings (rbf kernel, gamma 0.5)")
    title = plot_embeddings(df, "spectral", affinity="rbf").to_dict()["layout"]["title"]["text"]
    assert title.startswith("Spectral embedding of 24 sentence embeddings (rbf affinity, gamma auto)")


# ---- the explorer widget ----------------------------------------------------------------------

def _explorer(df, **kwargs):
    pytest.importorskip("ipywidgets")
    pytest.importorskip("anywidget")
    from nlu_lite.viz import explore

    return explore(df, **kwargs)


def _shown(ex) -> set[str]:
    controls = ex._parameter_controls()
    return {name for name, control in controls.items() if control.layout.display is None}


def test_the_explorer_offers_every_method():
    ex = _explorer(sentence_frame(clusters=2, per_cluster=10), background=False)
    offered = [key for _label, key in ex.method.options]
    assert offered == [key for key in METHODS if key != "umap" or umap_available()] + ["axes"]  # + Semantic axes
    assert set(NEW) | {"pca", "tsne"} <= set(offered)
    assert [label for label, _key in ex.method.options] == [METHODS[key] for key in offered[:-1]] + ["Semantic axes"]


@pytest.mark.parametrize("method, controls, shown", [
    ("svd", {}, {"random_state"}),
    ("kernel_pca", {"kernel": "linear"}, {"kernel", "random_state"}),
    ("kernel_pca", {"kernel": "rbf", "gamma": 0.2}, {"kernel", "gamma", "random_state"}),
    ("isomap", {"n_neighbors": 5}, {"n_neighbors"}),
    ("mds", {}, {"random_state"}),
    ("spectral", {"n_neighbors": 5}, {"affinity", "n_neighbors", "random_state"}),
    ("spectral", {"affinity": "rbf", "gamma": 0.05}, {"affinity", "gamma", "random_state"}),
    ("lle", {"n_neighbors": 5, "random_state": 2}, {"n_neighbors", "random_state"}),
])
def test_the_explorer_shows_each_methods_controls_and_plots_it(method, controls, shown):
    df = sentence_frame(clusters=2, per_cluster=10)
    ex = _explorer(df, color="topic", background=False)
    ex.set(method=method, **controls)
    assert _shown(ex) == shown
    assert ex._tsne_box.layout.display == "none"
    assert ex._kernel_box.layout.display == (None if shown & {"kernel", "affinity"} else "none")
    traces = [t for t in ex.plot.data if t.meta == "points"]
    got = np.concatenate([np.c_[t.x, t.y] for t in traces])
    order = np.concatenate([t.customdata for t in traces])
    expected = project(to_matrix(df), method, **controls).coords
    np.testing.assert_allclose(got, expected[order], rtol=1e-6, atol=1e-9)
    assert ex.plot.layout.title.text.startswith(f"{METHODS[method]} of 20 sentence embeddings")
    assert f"{METHODS[method]} of 20 points" in ex.status.value


def test_the_explorer_runs_svd_at_once_and_reports_bad_values_in_its_status():
    df = sentence_frame(clusters=2, per_cluster=10)
    ex = _explorer(df, method="SVD aka LSA")  # background=True: a fast method still draws at once
    assert ex.method.value == "svd" and ex.plot.layout.title.text.startswith("Truncated SVD")
    ex.set(method="kernel_pca", gamma="wide")
    assert "gamma must be a number, got &#x27;wide&#x27;" in ex.status.value
    assert ex.plot.layout.title.text.startswith("Truncated SVD")  # the old plot stays
    with pytest.raises(InputError, match=r"kernel='gauss' is not supported; choose one of \['linear'"):
        ex.set(kernel="gauss")
    ex.set(method="spectral", affinity="RBF", gamma=None).wait(20)  # spelled as project() accepts it; a thread
    assert ex.affinity.value == "rbf" and ex.gamma.value == "auto"
    assert ex.points.projection.params == {"affinity": "rbf", "gamma": None, "random_state": 0}


def test_the_explorer_refuses_more_points_than_a_method_takes_naming_max_points(monkeypatch):
    from nlu_lite.viz import reduce

    monkeypatch.setitem(reduce.REDUCERS, "mds", replace(reduce.REDUCERS["mds"], max_points=30))  # not 1,000: quick
    df = sentence_frame(clusters=2, per_cluster=20)
    ex = _explorer(df, background=False)
    with pytest.raises(InputError, match=r"MDS of 40 points is refused.*Use method='pca'.*max_points=30\)"):
        ex.set(method="mds")
    sampled = _explorer(df, max_points=30, background=False).set(method="MDS")
    assert sampled.points.projection.method == "mds" and len(sampled.points.positions) == 30


@pytest.mark.parametrize("method", ["pca", "svd", "kernel_pca", "isomap", "lle", "tsne", "mds", "spectral"])
def test_a_projection_places_new_rows_where_its_method_can(method):
    """PCA, SVD, Kernel PCA, Isomap, LLE (and UMAP) keep their fitted reducer: new rows (a typed query, rows
    outside a sample) get coordinates; t-SNE, MDS and spectral embedding fit their own points only."""
    from nlu_lite.viz.reduce import PLACEABLE, project

    x = np.random.default_rng(3).normal(size=(60, 6)).astype(np.float32)
    result = project(x, method, 2, cache=False, n_neighbors=8)
    placed = result.place(x[:5])
    if method not in PLACEABLE:
        assert placed is None
        return
    assert placed.shape == (5, 2)
    if method in ("pca", "svd", "kernel_pca"):  # linear in the fitted space: the fitted rows land where they were
        np.testing.assert_allclose(placed, result.coords[:5], atol=1e-4)


def test_tsne_of_wide_vectors_runs_on_their_first_50_principal_components():
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    from nlu_lite.viz.reduce import project

    x = np.random.default_rng(5).normal(size=(80, 64)).astype(np.float32)
    result = project(x, "tsne", 2, cache=False, perplexity=10, max_iter=300, random_state=2)
    assert result.params["pca_components"] == 50 and "on 50 principal components" in result.describe()
    inner = PCA(n_components=50, random_state=2).fit(x).transform(x).astype(np.float32)
    expected = TSNE(n_components=2, perplexity=10, max_iter=300, init="pca", random_state=2,
                    learning_rate="auto").fit_transform(inner)
    np.testing.assert_allclose(result.coords, expected, atol=1e-4)
    narrow = project(x[:, :20], "tsne", 2, cache=False, perplexity=10, max_iter=300)
    assert "pca_components" not in narrow.params  # 20 dimensions: used as they are
