"""Two models (or two layers, or fp32 and int8) side by side on the same rows.

Token rows are the same for every model (the shared word splitter), sentence and document rows too, so two
frames of the same texts line up row by row. :func:`compare` measures, for every row, how much its
neighbourhood changed: ``overlap`` = the share of its ``k`` nearest neighbours under model A that are also among
its ``k`` nearest under model B (1.0: the same neighbours), and ``rank_correlation`` = Spearman's correlation
of its similarities to every other row under A and under B. Cosine similarity, exact (no index), computed in
blocks of rows so memory grows with ``n × block`` rather than ``n²``; time grows with ``n²``.
"""
from __future__ import annotations

import html
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .._optional import require
from ..errors import InputError
from ..frame import embedding_column, is_embedding_name, to_matrix
from .frames import LEVEL_COLUMNS, frame_level, one_column, row_texts
from .neighbours import unit_rows

if TYPE_CHECKING:
    import plotly.graph_objects as go

BLOCK = 512


def _spearman(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spearman's correlation of each row of ``a`` with the same row of ``b`` (ties share their mean rank)."""
    rankdata = require("scipy.stats", "viz", package="scipy").rankdata
    ra, rb = rankdata(a, axis=1), rankdata(b, axis=1)
    ra -= ra.mean(axis=1, keepdims=True)
    rb -= rb.mean(axis=1, keepdims=True)
    denominator = np.sqrt((ra * ra).sum(axis=1) * (rb * rb).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, (ra * rb).sum(axis=1) / denominator, np.nan)


def _top_k(similarities: np.ndarray, k: int) -> np.ndarray:
    """Column positions of each row's ``k`` highest values, best first (ties: the lower position first)."""
    order = np.argsort(-similarities, axis=1, kind="stable")
    return order[:, :k]


def neighbour_sets(a: np.ndarray, b: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For every row: its ``k`` nearest under ``a`` and under ``b`` (cosine, itself left out) and the Spearman
    correlation of its similarities to all other rows under the two."""
    ua, ub = unit_rows(np.asarray(a, dtype=np.float64)), unit_rows(np.asarray(b, dtype=np.float64))
    n = len(ua)
    near_a, near_b = np.empty((n, k), dtype=np.int64), np.empty((n, k), dtype=np.int64)
    rho = np.empty(n)
    for start in range(0, n, BLOCK):
        stop = min(start + BLOCK, n)
        sa, sb = ua[start:stop] @ ua.T, ub[start:stop] @ ub.T
        own = np.arange(start, stop)
        sa[own - start, own] = -np.inf  # a row is not its own neighbour
        sb[own - start, own] = -np.inf
        near_a[start:stop], near_b[start:stop] = _top_k(sa, k), _top_k(sb, k)
        keep = np.ones((stop - start, n), dtype=bool)
        keep[own - start, own] = False
        rho[start:stop] = _spearman(sa[keep].reshape(stop - start, n - 1), sb[keep].reshape(stop - start, n - 1))
    return near_a, near_b, rho


def _two_frames(a: Any, b: Any, column_a: str | None, column_b: str | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    if b is None:  # one frame of two models (load('a b')), or two columns named
        columns = [c for c in a.columns if is_embedding_name(c)]
        names = [column_a, column_b] if column_a and column_b else columns
        if len(names) != 2:
            raise InputError(f"compare(df) needs a frame with two embedding columns (load('a b').predict(...)) or "
                             f"column_a= and column_b=; this frame has {columns}")
        return one_column(a, names[0]), one_column(a, names[1])
    fa, fb = one_column(a, column_a), one_column(b, column_b)
    if len(fa) != len(fb):
        raise InputError(f"the two frames have {len(fa)} and {len(fb)} rows: compare frames of the same texts at "
                         "the same output_level")
    if frame_level(fa) != frame_level(fb):
        raise InputError(f"one frame is {frame_level(fa)}-level, the other {frame_level(fb)}-level: predict both "
                         "at the same output_level")
    same = row_texts(fa) == row_texts(fb)
    if "origin_index" in fa.columns and "origin_index" in fb.columns:
        same &= fa["origin_index"].to_numpy() == fb["origin_index"].to_numpy()
    if not same.all():
        first = int(np.flatnonzero(~same)[0])
        raise InputError(f"row {first} differs between the frames ({row_texts(fa)[first]!r} vs "
                         f"{row_texts(fb)[first]!r}): compare frames of the same texts, in the same order")
    return fa, fb


@dataclass
class Comparison:
    """What :func:`compare` found: ``rows`` (the frame's rows with ``overlap`` and ``rank_correlation``),
    ``neighbours_a`` / ``neighbours_b`` (each row's ``k`` nearest positions under each model), the two frames."""

    rows: pd.DataFrame
    neighbours_a: np.ndarray
    neighbours_b: np.ndarray
    a: pd.DataFrame
    b: pd.DataFrame
    k: int
    names: tuple[str, str]

    @property
    def overlap(self) -> float:
        """Mean neighbour overlap@k over the rows (1.0: every row keeps its neighbours)."""
        return float(self.rows["overlap"].mean())

    @property
    def rank_correlation(self) -> float:
        """Mean Spearman correlation of each row's similarities under the two models."""
        return float(self.rows["rank_correlation"].mean())

    def moved_most(self, n: int = 10) -> pd.DataFrame:
        """The ``n`` rows whose neighbourhood changed most (lowest overlap, then lowest rank correlation), with
        their nearest texts under each model."""
        order = np.lexsort((self.rows["rank_correlation"].fillna(-2).to_numpy(), self.rows["overlap"].to_numpy()))
        chosen = order[:n]
        texts = row_texts(self.a)
        table = self.rows.iloc[chosen].copy()
        a_name, b_name = self.names
        table[f"nearest ({a_name})"] = [[texts[j] for j in self.neighbours_a[i][:5]] for i in chosen]
        table[f"nearest ({b_name})"] = [[texts[j] for j in self.neighbours_b[i][:5]] for i in chosen]
        return table

    def figure(self, method: str = "pca", color: Any = "overlap", **reducer: Any) -> go.Figure:
        """The two models' projections side by side, each row the same colour in both (``color``: a column or
        ``"overlap"``); selecting points in one panel of a FigureWidget selects the same rows in the other."""
        from plotly.subplots import make_subplots

        from .plots import plot_embeddings

        a_name, b_name = self.names
        extra = {"overlap": self.rows["overlap"].to_numpy()} if isinstance(color, str) and color == "overlap" \
            else {}
        colour = extra.get("overlap", color)
        left = plot_embeddings(self.a, method, color=colour, **reducer)
        right = plot_embeddings(self.b, method, color=colour, **reducer)
        fig = make_subplots(rows=1, cols=2, subplot_titles=(a_name, b_name), horizontal_spacing=0.06)
        for col, panel in ((1, left), (2, right)):
            for trace in panel.data:
                trace.showlegend = trace.showlegend and col == 1
                fig.add_trace(trace, row=1, col=col)
        if left.layout.coloraxis and left.layout.coloraxis.colorscale:
            fig.update_layout(coloraxis=left.layout.coloraxis)
        for col, panel in ((1, left), (2, right)):
            fig.update_xaxes(title_text=panel.layout.xaxis.title.text, row=1, col=col)
            fig.update_yaxes(title_text=panel.layout.yaxis.title.text, row=1, col=col)
        legend = f"overlap@{self.k}" if "overlap" in extra else (color if isinstance(color, str) else "")
        fig.update_layout(legend={"title": {"text": legend}, "itemsizing": "constant"})
        fig.update_layout(template="plotly_white", hovermode="closest", dragmode="lasso", title={"text": (
            f"{len(self.rows):,} rows under two models: neighbour overlap@{self.k} {self.overlap:.3f}, "
            f"rank correlation {self.rank_correlation:.3f}")})
        return fig

    def explore(self, color: Any = "overlap", height: int = 450, **kwargs: Any) -> LinkedExplorers:
        """The two models as two explorers side by side, their selections linked: rows lassoed in one are
        selected in the other, so a cluster of model A can be found in model B. ``color`` defaults to each
        row's neighbour overlap; other keywords go to both :func:`.widget.explore` calls."""
        from .widget import Explorer

        frames = []
        for frame in (self.a, self.b):
            frame = frame.copy()
            frame["overlap"] = self.rows["overlap"].to_numpy()
            frame["rank_correlation"] = self.rows["rank_correlation"].to_numpy()
            frames.append(frame)
        left, right = (Explorer(f, color=color, height=height, **kwargs) for f in frames)
        return LinkedExplorers(left, right, self.names)

    def _repr_html_(self) -> str:
        a_name, b_name = self.names
        moved = self.moved_most(5)
        keep = [c for c in moved.columns if c in LEVEL_COLUMNS or c in ("overlap", "rank_correlation")
                or c.startswith("nearest (")]
        return (f"<b>{html.escape(a_name)}</b> vs <b>{html.escape(b_name)}</b> on {len(self.rows):,} rows: "
                f"neighbour overlap@{self.k} <b>{self.overlap:.3f}</b>, rank correlation "
                f"<b>{self.rank_correlation:.3f}</b><br><i>moved most</i>"
                + moved[keep].to_html(index=False, escape=True, border=0, float_format=lambda v: f"{v:.3f}"))

    def __repr__(self) -> str:
        a_name, b_name = self.names
        return (f"Comparison({a_name} vs {b_name}: {len(self.rows)} rows, overlap@{self.k} {self.overlap:.3f}, "
                f"rank correlation {self.rank_correlation:.3f})")


def compare(
    a: pd.DataFrame,
    b: pd.DataFrame | None = None,
    *,
    k: int = 10,
    column_a: str | None = None,
    column_b: str | None = None,
    names: tuple[str, str] | None = None,
) -> Comparison:
    """Compare two models' vectors of the same rows: per-row neighbour overlap@``k`` and rank correlation.

    ``a`` and ``b``: two predict() frames of the same texts at the same level (two models, two layers, fp32
    and int8), or ``a`` alone holding two embedding columns (``load('a b').predict(...)``; ``column_a`` /
    ``column_b`` pick two of more). Rows whose vector is NaN in either frame are left out (counted in
    ``rows.attrs["left_out"]``). ``names``: what to call the two in tables and plots (default their vector
    columns' names, with " (a)" / " (b)" added when the two are named alike, as fp32 and int8 of one model are).

    >>> import nlu_lite
    >>> texts = nlu_lite.viz.load_corpus().text  # doctest: +SKIP
    >>> fp32 = nlu_lite.load('en.embed_sentence.minilm_l6').predict(texts)  # doctest: +SKIP
    >>> int8 = nlu_lite.load('en.embed_sentence.minilm_l6', precision='int8').predict(texts)  # doctest: +SKIP
    >>> nlu_lite.compare(fp32, int8).overlap  # doctest: +SKIP
    """
    fa, fb = _two_frames(a, b, column_a, column_b)
    ma, mb = to_matrix(fa).astype(np.float64), to_matrix(fb).astype(np.float64)
    finite = np.isfinite(ma).all(axis=1) & np.isfinite(mb).all(axis=1)
    if not finite.all():
        fa, fb, ma, mb = fa[finite], fb[finite], ma[finite], mb[finite]
    n = len(fa)
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or not 1 <= k < n:
        raise InputError(f"k={k!r}: a whole number from 1 to {n - 1} (the other rows a row can have as neighbours)")
    near_a, near_b, rho = neighbour_sets(ma, mb, int(k))
    overlap = np.array([len(np.intersect1d(x, y, assume_unique=True)) for x, y in zip(near_a, near_b)]) / k
    rows = fa.drop(columns=[embedding_column(fa)]).copy()
    rows["overlap"] = overlap
    rows["rank_correlation"] = rho
    rows.attrs = {"left_out": int((~finite).sum())}
    if names is None:
        names = (embedding_column(fa), embedding_column(fb))
        if names[0] == names[1]:
            names = (f"{names[0]} (a)", f"{names[1]} (b)")
    elif len(names) != 2 or names[0] == names[1]:
        raise InputError(f"names= is two different labels, one per model; got {names!r}")
    return Comparison(rows, near_a, near_b, fa.reset_index(drop=True), fb.reset_index(drop=True), int(k),
                      (str(names[0]), str(names[1])))


class LinkedExplorers:
    """Two :class:`~nlu_lite.viz.widget.Explorer` views of the same rows side by side (``left``, ``right``), a
    selection in either mirrored in the other. Display it as a cell's value."""

    def __init__(self, left: Any, right: Any, names: tuple[str, str]) -> None:
        from .._optional import require

        w = require("ipywidgets", "viz")
        self.left, self.right = left, right
        self._mirroring = False
        left.on_selection_change(lambda positions: self._mirror(right, positions))
        right.on_selection_change(lambda positions: self._mirror(left, positions))
        self.widget = w.HBox([w.VBox([w.HTML(f"<b>{html.escape(names[0])}</b>"), left.widget]),
                              w.VBox([w.HTML(f"<b>{html.escape(names[1])}</b>"), right.widget])])
        self.widget.add_class("nlu-lite-linked")

    def _mirror(self, other: Any, positions: np.ndarray) -> None:
        if self._mirroring:  # the other explorer's own change notice: already in step
            return
        self._mirroring = True
        try:
            if not np.array_equal(other._selected_positions(), positions):
                other.select(positions)
        finally:
            self._mirroring = False

    @property
    def selected(self) -> pd.DataFrame:
        """The selected rows (the same in both views), from the left frame."""
        return self.left.selected

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)

    def __repr__(self) -> str:
        return f"LinkedExplorers({self.left!r}, {self.right!r})"
