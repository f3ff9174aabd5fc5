"""Issue 23's questions, on frames built here: semantic axes, semantic search (similar), word senses and
two models side by side (compare). Every result is checked against an independent computation (numpy by
hand, scikit-learn's NearestNeighbors / PCA, scipy's spearmanr); the real-model checks are in
test_viz_questions_real.py."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("sklearn")
pytest.importorskip("plotly")

from _viz_support import EMBEDDING, plotted, sentence_frame, token_frame
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import nlu_lite
from nlu_lite.errors import InputError
from nlu_lite.frame import build_frame, to_matrix
from nlu_lite.viz.axes import axis_coordinates

finite = st.floats(-10, 10, allow_nan=False, allow_infinity=False, width=32)


# --- semantic axes -----------------------------------------------------------------------------------------

@settings(max_examples=60, deadline=None)
@given(arrays(np.float64, (2, 6), elements=finite), st.lists(st.floats(-2, 3), min_size=1, max_size=8))
def test_an_axis_puts_its_poles_at_minus_one_and_one_and_is_linear_between(poles, ts):
    a, b = poles
    if np.linalg.norm(b - a) < 1e-3:
        with pytest.raises(InputError, match="same vector"):
            axis_coordinates(np.stack([a]), a, a, normalize=False)
        return
    points = np.stack([(1 - t) * a + t * b for t in ts])
    got = axis_coordinates(points, a, b, normalize=False)
    np.testing.assert_allclose(got, 2 * np.asarray(ts) - 1, atol=1e-6)
    # moving a point off the axis, at right angles, leaves its place on the axis alone
    d = b - a
    off = np.linalg.svd(d[None, :])[2][1:]  # directions orthogonal to d
    np.testing.assert_allclose(axis_coordinates(points + 3 * off[0], a, b, normalize=False), got, atol=1e-6)


def test_semantic_axes_place_token_rows_between_poles_found_in_the_frame():
    texts = ["the river bank was muddy", "money in the bank", "a river of money"]
    df = token_frame(texts, dim=8)
    out = nlu_lite.semantic_axes(df, ("river", "money"))
    assert out.attrs["axes"] == ["river ↔ money", "first component of the rest"]
    assert EMBEDDING not in out.columns and len(out) == len(df)
    m = to_matrix(df).astype(np.float64)
    unit = m / np.linalg.norm(m, axis=1, keepdims=True)
    river = m[df.token.eq("river").to_numpy()].mean(axis=0)  # a token found twice: the mean of the two
    money = m[df.token.eq("money").to_numpy()].mean(axis=0)
    river, money = river / np.linalg.norm(river), money / np.linalg.norm(money)
    d = money - river
    np.testing.assert_allclose(out["river ↔ money"], 2 * (unit - (river + money) / 2) @ d / (d @ d), atol=1e-9)
    # the second column: the top principal direction of what the axis leaves out (sign is free)
    from sklearn.decomposition import PCA

    du = d / np.linalg.norm(d)
    rest = unit - np.outer(unit @ du, du)
    expected = PCA(n_components=1).fit_transform(rest)[:, 0]
    got = out["first component of the rest"].to_numpy()
    assert min(np.abs(got - expected).max(), np.abs(got + expected).max()) < 1e-6


def test_two_axes_and_list_poles_and_the_plot():
    df = sentence_frame(clusters=3, per_cluster=10)
    first = df.sentence.iloc[0]
    out = nlu_lite.semantic_axes(df, (0, 10), ([first, df.sentence.iloc[1]], 25))
    assert out.attrs["axes"] == ["row 0 ↔ row 10", f"{first} + {df.sentence.iloc[1]} ↔ row 25"]
    twice = nlu_lite.semantic_axes(df, (np.ones(16), np.zeros(16) - 1), (to_matrix(df)[3], to_matrix(df)[4]))
    assert twice.attrs["axes"] == ["vector ↔ vector", "vector ↔ vector'"]
    assert out.iloc[0, out.columns.get_loc(out.attrs["axes"][0])] == pytest.approx(-1)
    assert out.iloc[10, out.columns.get_loc(out.attrs["axes"][0])] == pytest.approx(1)
    fig = nlu_lite.plot_axes(df, (0, 10), (2, 25), color="topic")
    points = plotted(fig)
    placed = nlu_lite.semantic_axes(df, (0, 10), (2, 25))
    names = placed.attrs["axes"]
    np.testing.assert_allclose(points.sort_values("position")[["x", "y"]].to_numpy(),
                               placed[names].to_numpy(), atol=1e-6)
    assert fig.layout.xaxis.title.text == names[0] and fig.layout.yaxis.title.text == names[1]


def test_axis_errors_name_the_fix():
    df = sentence_frame(clusters=2, per_cluster=5)
    with pytest.raises(InputError, match="pass pipe="):
        nlu_lite.semantic_axes(df, ("money", "river"))  # not sentences of the frame, no pipe to embed them
    with pytest.raises(InputError, match="pair of poles"):
        nlu_lite.semantic_axes(df, ("money",))
    with pytest.raises(InputError, match="same vector"):
        nlu_lite.semantic_axes(df, (3, 3))


# --- semantic search ----------------------------------------------------------------------------------------

class _FakePipe:
    """Embeds a text as a fixed vector (what a pipeline's predict() would give), at the level asked."""

    def __init__(self, vector):
        self.vector = np.asarray(vector, dtype=np.float32)
        self.levels = []

    def predict(self, text, output_level=None):
        self.levels.append(output_level)
        return build_frame({"origin_index": [0], "sentence_index": [0], "sentence": [text], "begin": [0],
                            "end": [len(text)], "windowed": [False]}, self.vector[None, :], EMBEDDING)


def test_similar_ranks_every_row_by_cosine_and_keeps_the_query_rows():
    df = sentence_frame(clusters=3, per_cluster=10)
    m = to_matrix(df).astype(np.float64)
    q = m[4] + 0.1
    pipe = _FakePipe(q)
    hits = nlu_lite.similar(df, "a question not in the frame", k=7, pipe=pipe)
    assert pipe.levels == ["sentence"]  # embedded as the frame's rows were
    cos = m @ q / np.linalg.norm(m, axis=1) / np.linalg.norm(q)
    assert hits.position.tolist() == np.argsort(-cos, kind="stable")[:7].tolist()
    np.testing.assert_allclose(hits.similarity, np.sort(cos)[::-1][:7], atol=1e-6)
    own = nlu_lite.similar(df, df.sentence.iloc[3], k=1)  # a text of the frame, no pipe: found first
    assert own.position.tolist() == [3]
    with pytest.raises(InputError, match="empty"):
        nlu_lite.similar(df, "  ", pipe=pipe)


# --- word senses ------------------------------------------------------------------------------------------

RIVER = ["the muddy bank of the river", "fish swim near the river bank", "grass grew on the steep bank by water"]
MONEY = ["the bank approved my loan", "cash from the bank account", "the bank charged a fee on my loan"]


def _bank_frame(dim=16, seed=0):
    df = token_frame(RIVER + MONEY, dim=dim, seed=seed)
    m = to_matrix(df).copy()
    rng = np.random.default_rng(seed)
    river_centre, money_centre = rng.normal(size=dim) * 5, rng.normal(size=dim) * 5
    bank = df.token.eq("bank").to_numpy()
    in_river = df.origin_index.lt(len(RIVER)).to_numpy()
    m[bank & in_river] = river_centre + rng.normal(size=(int((bank & in_river).sum()), dim)) * 0.3
    m[bank & ~in_river] = money_centre + rng.normal(size=(int((bank & ~in_river).sum()), dim)) * 0.3
    return build_frame(df.drop(columns=[EMBEDDING]).to_dict("list"), m.astype(np.float32), EMBEDDING)


def test_senses_split_the_two_banks_and_name_them_by_their_contexts():
    df = _bank_frame()
    found = nlu_lite.senses(df, "Bank")
    assert found.k == 2 and found.silhouette > 0.5
    occ = found.occurrences
    truth = (occ.origin_index < len(RIVER)).to_numpy()
    assert len(occ) == 6 and set(occ.groupby("sense").apply(lambda g: tuple(truth[occ.index.get_indexer(g.index)]))
                                 .map(set).map(len)) == {1}  # each sense holds one kind of bank only
    names = dict(zip(found.summary.sense, found.summary.keywords))
    river_sense = int(occ.sense[truth].iloc[0])
    assert "river" in names[river_sense] and "loan" in names[1 - river_sense]
    assert not {"the", "of", "on", "my"} & {w for words in names.values() for w in words}  # no stop words
    kwic = found.kwic(river_sense)
    assert (kwic.token.str.lower() == "bank").all()
    for left, token, right, sentence in zip(kwic.left, kwic.token, kwic.right, occ.sentence[truth]):
        assert left + token + right == sentence  # short sentences: the whole context on each side
    assert found.summary["count"].sum() == 6 and found.summary.cohesion.between(0.9, 1.0).all()
    assert "2 senses" in found._repr_html_() and "'Bank'" in repr(found)
    fig = found.figure()
    assert sorted(plotted(fig).position) == list(range(6))


def test_senses_of_a_word_with_one_use_is_one_sense_and_k_can_be_forced():
    df = token_frame(RIVER + MONEY, dim=16)  # random vectors: no split is better than another
    found = nlu_lite.senses(df, "bank")
    assert found.k == 1 or found.silhouette >= 0.1
    forced = nlu_lite.senses(_bank_frame(), "bank", k=3)
    assert forced.k == 3 and forced.summary["count"].sum() == 6


def test_senses_errors_name_the_fix():
    with pytest.raises(InputError, match="output_level='token'"):
        nlu_lite.senses(sentence_frame(2, 3), "bank")
    with pytest.raises(InputError, match="occurs 0 time"):
        nlu_lite.senses(_bank_frame(), "teller")
    with pytest.raises(InputError, match="k=9"):
        nlu_lite.senses(_bank_frame(), "bank", k=9)


# --- two models side by side ------------------------------------------------------------------------------

def _frame_of(matrix, texts):
    return build_frame({"origin_index": np.arange(len(texts)), "sentence_index": 0, "sentence": texts,
                        "begin": 0, "end": [len(t) for t in texts], "windowed": False},
                       np.asarray(matrix, dtype=np.float32), EMBEDDING)


@settings(max_examples=25, deadline=None)
@given(st.integers(5, 40), st.integers(1, 6), st.integers(0, 10_000), st.booleans())
def test_compare_equals_a_brute_force_reference(n, k, seed, ties):
    from scipy.stats import spearmanr
    from sklearn.neighbors import NearestNeighbors

    k = min(k, n - 1)
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(n, 6))
    b = a + rng.normal(size=(n, 6)) * 0.7
    if ties:  # repeated rows: equal similarities, which ranks must share
        a[1] = a[0]
        b[2] = b[0]
    texts = [f"text {i}" for i in range(n)]
    result = nlu_lite.compare(_frame_of(a, texts), _frame_of(b, texts), k=k)
    fa, fb = to_matrix(_frame_of(a, texts)).astype(np.float64), to_matrix(_frame_of(b, texts)).astype(np.float64)
    for matrix, near in ((fa, result.neighbours_a), (fb, result.neighbours_b)):
        index = NearestNeighbors(n_neighbors=k + 1, metric="cosine").fit(matrix)
        distances, found = index.kneighbors(matrix)
        for i in range(n):
            reference = [j for j in found[i] if j != i][:k]
            if ties or np.isclose(distances[i][k - 1 + (i in found[i][:k])], distances[i][-1]):
                # a tie at the k-th place: either member may be chosen, the k-th similarity is what must agree
                unit = matrix / np.linalg.norm(matrix, axis=1, keepdims=True)
                sims = unit @ unit[i]
                sims[i] = -np.inf
                assert np.isclose(np.sort(sims)[::-1][k - 1], sims[near[i]].min(), atol=1e-9)
            else:
                assert set(near[i]) == set(reference), (i, near[i], reference)
    unit_a = fa / np.linalg.norm(fa, axis=1, keepdims=True)
    unit_b = fb / np.linalg.norm(fb, axis=1, keepdims=True)
    for i in range(n):
        others = np.arange(n) != i
        expected = spearmanr(unit_a[i] @ unit_a[others].T, unit_b[i] @ unit_b[others].T).statistic
        assert result.rows.rank_correlation.iloc[i] == pytest.approx(expected, abs=1e-9)
        assert result.rows.overlap.iloc[i] == len(set(result.neighbours_a[i]) & set(result.neighbours_b[i])) / k


def test_a_model_compared_with_itself_keeps_every_neighbour():
    df = sentence_frame(clusters=3, per_cluster=10)
    same = nlu_lite.compare(df, df.copy())
    assert same.overlap == 1.0 and same.rank_correlation == pytest.approx(1.0)
    assert same.names == (f"{EMBEDDING} (a)", f"{EMBEDDING} (b)")
    shuffled = df.copy()
    shuffled[EMBEDDING] = list(np.random.default_rng(1).permutation(to_matrix(df)))
    moved = nlu_lite.compare(df, shuffled, names=("original", "shuffled"))
    assert moved.overlap < 0.5 and list(moved.moved_most(3).columns[-2:]) == ["nearest (original)",
                                                                                "nearest (shuffled)"]
    assert moved.moved_most(3).overlap.is_monotonic_increasing
    fig = moved.figure()
    assert len({t.xaxis for t in fig.data}) == 2 and "overlap@10" in fig.layout.title.text
    assert "moved most" in moved._repr_html_()


def test_a_frame_of_two_models_is_compared_by_its_columns():
    df = sentence_frame(clusters=2, per_cluster=6)
    both = df.assign(other_model_embeddings=df[EMBEDDING].map(lambda v: -v))
    result = nlu_lite.compare(both, k=3)  # a negated model has the same neighbours
    assert result.overlap == 1.0 and result.names == (EMBEDDING, "other_model_embeddings")
    with pytest.raises(InputError, match="two embedding columns"):
        nlu_lite.compare(df)


def test_compare_refuses_frames_that_do_not_line_up():
    df = sentence_frame(clusters=2, per_cluster=6)
    with pytest.raises(InputError, match="12 and 11 rows"):
        nlu_lite.compare(df, df.iloc[:11])
    other = df.copy()
    other.loc[3, "sentence"] = "something else"
    with pytest.raises(InputError, match="row 3 differs"):
        nlu_lite.compare(df, other)
    with pytest.raises(InputError, match="k=12"):
        nlu_lite.compare(df, df, k=12)


def test_rows_without_a_vector_are_left_out_and_counted():
    df = sentence_frame(clusters=2, per_cluster=6)
    holed = df.copy()
    holed[EMBEDDING] = [np.full(16, np.nan, dtype=np.float32) if i == 5 else v for i, v in enumerate(df[EMBEDDING])]
    result = nlu_lite.compare(df, holed, k=3)
    assert len(result.rows) == 11 and result.rows.attrs["left_out"] == 1 and 5 not in result.rows.origin_index.values
    assert isinstance(result.rows, pd.DataFrame)


# --- token mode that reads ----------------------------------------------------------------------------------

def test_distinct_words_fold_a_token_frame_to_its_vocabulary():
    from nlu_lite.viz import distinct_words

    texts = ["The bank , the River .", "the bank of the river", "A loan ; a bank !"]  # whitespace tokens
    df = token_frame(texts, dim=8)
    m = to_matrix(df).astype(np.float64)
    words = distinct_words(df)
    lowered = df.token.str.lower()
    expected_counts = lowered[lowered.str.contains(r"[^\W_]")].value_counts()
    assert dict(zip(words.token.str.lower(), words["count"])) == expected_counts.to_dict()
    assert words["count"].is_monotonic_decreasing  # most frequent first
    for word, vector in zip(words.token, to_matrix(words)):
        np.testing.assert_allclose(vector, m[(lowered == word.lower()).to_numpy()].mean(axis=0), atol=1e-6)
    bank = words[words.token.str.lower() == "bank"].iloc[0]
    assert bank.sentence == "The bank , the River ." and bank.origin_index == 0  # the first occurrence's context
    no_stops = distinct_words(df, stop_words="english", min_count=2)
    assert set(no_stops.token.str.lower()) == {"bank", "river"}
    kept = distinct_words(df, punctuation=True, case_sensitive=True)
    assert {"The", "the", ";"} <= set(kept.token)
    with pytest.raises(InputError, match="output_level='token'"):
        distinct_words(sentence_frame(2, 3))


def test_dense_plots_fade_small_groups_are_drawn_on_top_and_small_plots_are_labelled():
    from nlu_lite.viz import plot_embeddings

    df = sentence_frame(clusters=3, per_cluster=30)
    df["group"] = np.where(np.arange(len(df)) < 80, "zeta", np.where(np.arange(len(df)) < 88, "alpha", ""))
    fig = plot_embeddings(df, color="group")
    points = [t for t in fig.data if t.meta == "points"]
    assert [t.name for t in points] == ["(empty)", "zeta", "alpha"]  # grey first, then the largest first
    assert [t.name for t in sorted(points, key=lambda t: t.legendrank)] == ["(empty)", "alpha", "zeta"]  # legend
    assert {t.marker.opacity for t in points} == {1.0}  # 90 points: opaque
    assert all(t.mode == "markers" for t in points)  # more than 60 points: no labels by default
    few = plot_embeddings(df.iloc[:20], point_labels="auto")
    (trace,) = [t for t in few.data if t.meta == "points"]
    assert trace.mode == "markers+text" and list(trace.text) == df.sentence.iloc[:20].map(
        lambda t: t if len(t) <= 24 else t[:23] + "…").tolist()
    faded = plot_embeddings(df, opacity=0.3)
    assert {t.marker.opacity for t in faded.data if t.meta == "points"} == {0.3}
    with pytest.raises(InputError, match="opacity="):
        plot_embeddings(df, opacity=2)
    many = sentence_frame(clusters=2, per_cluster=700)
    assert {t.marker.opacity for t in plot_embeddings(many).data if t.meta == "points"} == {0.7}
