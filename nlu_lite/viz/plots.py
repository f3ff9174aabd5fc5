"""Plotly figures of a predict() frame: a 2D/3D projection, a similarity heatmap, neighbours.

Every function takes the DataFrame predict() returns (any level) and returns a
``plotly.graph_objects.Figure``; none calls ``show()``. Each plotted point carries its row
position in the frame as ``customdata``, so a selection maps back to ``df.iloc[...]``.
"""
from __future__ import annotations

import html
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .._optional import require
from ..errors import InputError
from ..frame import embedding_column, to_matrix
from .frames import (
    frame_level,
    hover_texts,
    label_columns,
    row_texts,
    sample_positions,
    select_rows,
    viz_frame,
)
from .neighbours import nearest_neighbours, pairwise, query_vector
from .reduce import Projection, project

if TYPE_CHECKING:
    import plotly.graph_objects as go

logger = logging.getLogger(__name__)

MAX_POINTS = 10_000
WEBGL_THRESHOLD = 2_000
MAX_CATEGORIES = 20
LABEL_POINTS = 60  # point_labels='auto' writes texts beside at most this many points
LABEL_HIGHLIGHTS = 30  # highlighted groups up to this size are labelled
OTHER = "(other)"
MISSING = "(missing)"
EMPTY = "(empty)"
OTHER_COLOUR = "#b0b0b0"
HIGHLIGHT_STYLES = (  # (colour, 2D symbol, 3D symbol) for successive highlight groups
    ("#111111", "circle-open", "circle-open"),
    ("#d62728", "diamond-open", "diamond-open"),
    ("#ff7f0e", "square-open", "square-open"),
)
SYMBOLS_2D = (
    "circle", "square", "diamond", "cross", "x", "triangle-up", "triangle-down", "star", "pentagon", "hexagon",
)
SYMBOLS_3D = ("circle", "square", "diamond", "cross", "x", "circle-open", "square-open", "diamond-open")
ROLE_POINTS, ROLE_HIGHLIGHT, ROLE_QUERY = "points", "highlight", "query"


def _go():
    return require("plotly.graph_objects", "viz", package="plotly")


def _palette(n: int) -> list[str]:
    colors = require("plotly.colors", "viz", package="plotly")
    return list(colors.qualitative.Plotly if n <= 10 else colors.qualitative.Dark24)


@dataclass(frozen=True)
class Points:
    """What a projection plot shows: which rows, where, with which hover text."""

    positions: np.ndarray
    projection: Projection
    hover: list[str]
    n_total: int
    level: str
    max_points: int | None
    sample_seed: int

    @property
    def sampled(self) -> bool:
        return len(self.positions) < self.n_total


def prepare_points(
    df: pd.DataFrame,
    method: str = "pca",
    dimensions: int = 2,
    *,
    max_points: int | None = MAX_POINTS,
    sample_seed: int = 0,
    keep: Any = None,
    **reducer: Any,
) -> Points:
    """Sample (past ``max_points``, always keeping the positions in ``keep``) and project the rows."""
    level = frame_level(df)
    positions = sample_positions(len(df), max_points, seed=sample_seed, keep=keep)
    if len(positions) < len(df):
        logger.warning(
            "plotting a random sample of %d of %d rows (max_points=%s, seed %d)", len(positions), len(df),
            max_points, sample_seed,
        )
    matrix = to_matrix(df.iloc[positions])
    finite = np.isfinite(matrix).all(axis=1)
    if not finite.all():  # rows without a vector (an empty text, a span over no token): nothing to place
        logger.warning("leaving out %d row(s) whose vector is NaN (no word piece to embed)", int((~finite).sum()))
        positions, matrix = positions[finite], matrix[finite]
    sub = df.iloc[positions]
    projection = project(matrix, method, dimensions, **reducer)
    return Points(positions, projection, hover_texts(sub), len(df), level, max_points, sample_seed)


def _values(df: pd.DataFrame, by: Any, what: str) -> tuple[pd.Series, str] | None:
    """The column (or array aligned with ``df``) a plot colours or shapes points by."""
    if by is None:
        return None
    if isinstance(by, str):
        if by not in df.columns:
            raise InputError(f"{what}={by!r} is not a column; choose one of {label_columns(df)}")
        if by == embedding_column(df):
            raise InputError(f"{what}= cannot be the embedding column")
        return df[by].reset_index(drop=True), by
    values = pd.Series(np.asarray(by, dtype=object) if not isinstance(by, pd.Series) else by.to_numpy())
    if len(values) != len(df):
        raise InputError(f"{what}= has {len(values)} values but the frame has {len(df)} rows")
    name = getattr(by, "name", None) or what
    return values, str(name)


def _is_continuous(values: pd.Series, max_categories: int) -> bool:
    return (
        pd.api.types.is_numeric_dtype(values)
        and not pd.api.types.is_bool_dtype(values)
        and values.nunique(dropna=True) > max_categories
    )


def _categories(values: pd.Series, max_categories: int) -> tuple[np.ndarray, list[str]]:
    """Each value's category label (str) and the ordered categories; rare ones fold into "(other)"."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        order = [v for v in values.cat.categories if (values == v).any()]
    else:
        present = values.dropna().unique().tolist()
        try:
            order = sorted(present)
        except TypeError:
            order = sorted(present, key=str)
    names = {v: str(v) if str(v) != "" else EMPTY for v in order}
    labels = np.array([MISSING if pd.isna(v) else names[v] for v in values], dtype=object)
    cats = [names[v] for v in order] + ([MISSING] if (labels == MISSING).any() else [])
    if len(cats) > max_categories:
        counts = pd.Series(labels).value_counts()
        keep = set(sorted(cats, key=lambda c: (-counts[c], cats.index(c)))[: max_categories - 1])
        labels = np.array([c if c in keep else OTHER for c in labels], dtype=object)
        cats = [c for c in cats if c in keep] + [OTHER]
    return labels, cats


def figure_from_points(
    df: pd.DataFrame,
    points: Points,
    *,
    color: Any = None,
    symbol: Any = None,
    highlight: Any = None,
    webgl: bool | str = "auto",
    webgl_threshold: int = WEBGL_THRESHOLD,
    max_categories: int = MAX_CATEGORIES,
    marker_size: float | None = None,
    title: str | None = None,
    queries: Mapping[str, np.ndarray] | None = None,
    opacity: float | str = "auto",
    point_labels: bool | str = "auto",
) -> go.Figure:
    """The scatter figure of already projected ``points`` (no refit): colour, symbols, highlights.

    Highlighted rows outside the plotted sample are placed by the fitted reducer where the method can (PCA,
    SVD, Kernel PCA, UMAP, Isomap, LLE); elsewhere the trace's name says how many of them are drawn.
    ``queries``: name → vector of texts that are no row (a typed query), drawn as a star where they can be placed.
    ``opacity``: the points' (``"auto"``: 1 up to 1,000 points, 0.7 up to 10,000, 0.45 beyond, so dense token
    plots show their density). ``point_labels``: write each point's text beside it (``"auto"``: up to 60
    points; highlighted groups of up to 30 are always labelled). The largest colour group is drawn first and
    grey ones ("(other)", "(empty)") under all, so small groups are never buried; the legend stays sorted.
    """
    go = _go()
    proj, pos = points.projection, points.positions
    n, three_d = len(pos), proj.dimensions == 3
    use_gl = (n > webgl_threshold) if webgl == "auto" else bool(webgl)
    trace_type = go.Scatter3d if three_d else (go.Scattergl if use_gl else go.Scatter)
    size = marker_size or (7 if n <= 1_000 else 5 if n <= 10_000 else 3)
    if three_d:
        size = max(2, size * 0.6)
    hover = np.array(points.hover, dtype=object)
    alpha = _opacity(opacity, n)
    show_labels = (n <= LABEL_POINTS) if point_labels == "auto" else bool(point_labels)
    short = _short_texts(df, pos) if show_labels else None
    colour_by = _values(df, color, "color")
    symbol_by = _values(df, symbol, "symbol")
    colour_values = colour_by[0].iloc[pos].reset_index(drop=True) if colour_by else None
    symbol_values = symbol_by[0].iloc[pos].reset_index(drop=True) if symbol_by else None
    continuous = colour_values is not None and _is_continuous(colour_values, max_categories)

    def coords(idx: np.ndarray) -> dict[str, Any]:  # float32: half the bytes to the page, 7 significant digits
        xyz = {"x": proj.coords[idx, 0].astype(np.float32), "y": proj.coords[idx, 1].astype(np.float32)}
        if three_d:
            xyz["z"] = proj.coords[idx, 2].astype(np.float32)
        return xyz

    if colour_values is not None and not continuous:
        colour_labels, colour_cats = _categories(colour_values, max_categories)
    else:
        colour_labels, colour_cats = np.full(n, "", dtype=object), [""]
    if symbol_values is not None:
        symbol_labels, symbol_cats = _categories(symbol_values, max_categories)
    else:
        symbol_labels, symbol_cats = np.full(n, "", dtype=object), [""]
    palette = _palette(len(colour_cats))
    symbols = SYMBOLS_3D if three_d else SYMBOLS_2D
    traces = []
    for ci, c in enumerate(colour_cats):
        for si, s in enumerate(symbol_cats):
            idx = np.flatnonzero((colour_labels == c) & (symbol_labels == s))
            if idx.size == 0:
                continue
            marker: dict[str, Any] = {"size": size, "symbol": symbols[si % len(symbols)], "opacity": alpha}
            if continuous:
                marker.update(color=colour_values.to_numpy(dtype=float)[idx], coloraxis="coloraxis")
            elif colour_by is not None:
                marker["color"] = OTHER_COLOUR if c in (OTHER, MISSING, EMPTY) else palette[ci % len(palette)]
            name = ", ".join(part for part in (c, s) if part) or "points"
            labelled = {"mode": "markers+text", "text": short[idx], "textposition": "top center",
                        "textfont": {"size": 10}} if show_labels else {"mode": "markers"}
            traces.append(trace_type(
                **coords(idx), name=name, legendgroup=name, marker=marker, legendrank=len(traces) + 1,
                hovertext=hover[idx], hovertemplate="%{hovertext}<extra>%{fullData.name}</extra>",
                customdata=pos[idx].astype(np.int32), meta=ROLE_POINTS, showlegend=bool(colour_by or symbol_by), **labelled,
            ))
    # draw order: grey groups under everything, then the largest first, so no group is painted over by a bigger
    # one; legendrank keeps the legend in category order
    traces.sort(key=lambda t: (t.name.split(", ")[0] not in (OTHER, MISSING, EMPTY), -len(t.customdata)))
    for hi, (name, chosen) in enumerate(_highlight_groups(df, highlight).items()):
        chosen = np.unique(np.asarray(chosen, dtype=np.int64))
        idx = np.flatnonzero(np.isin(pos, chosen))
        xyz = {axis: list(values) for axis, values in coords(idx).items()}
        texts, rows = hover[idx].tolist(), pos[idx].tolist()
        outside, placed = _place(df, proj, np.setdiff1d(chosen, pos))  # rows outside the plotted sample
        if len(outside):
            for axis, column in zip(("x", "y", "z"), placed.T):
                xyz.setdefault(axis, []).extend(column.tolist())
            texts += hover_texts(df.iloc[outside])
            rows += outside.tolist()
        drawn = len(rows)
        if drawn < len(chosen):  # say what is missing rather than drop it silently
            why = "rows without a vector" if proj.transform is not None else \
                f"{proj.label} places only the rows it fitted"
            name = f"{name}: {drawn} of {len(chosen)} drawn ({why})"
        colour, sym2d, sym3d = HIGHLIGHT_STYLES[hi % len(HIGHLIGHT_STYLES)]
        few = len(rows) <= LABEL_HIGHLIGHTS
        traces.append(trace_type(
            **xyz, mode="markers+text" if few else "markers", name=name, hovertext=texts,
            text=_short_texts(df, np.asarray(rows, dtype=np.int64)).tolist() if few else None,
            textposition="top center", textfont={"size": 10, "color": colour},
            hovertemplate="%{hovertext}<extra>%{fullData.name}</extra>", customdata=rows,
            meta=ROLE_HIGHLIGHT, showlegend=True,
            marker={"size": size * 2 + 4, "symbol": sym3d if three_d else sym2d, "color": colour,
                    "line": {"width": 2, "color": colour}},
        ))
    for name, vector in (queries or {}).items():  # a typed query: a vector of no row
        where = proj.place(np.asarray(vector, dtype=np.float32)[None, :])
        if where is None:
            traces.append(trace_type(**{a: [] for a in ("x", "y", "z")[:proj.dimensions]}, mode="markers",
                                     name=f"{name}: not drawn ({proj.label} cannot place a new text)",
                                     meta=ROLE_QUERY, showlegend=True))
            continue
        traces.append(trace_type(
            **dict(zip(("x", "y", "z"), ([v] for v in where[0]))), mode="markers+text", name=name,
            text=[name], textposition="top center", hovertext=[html.escape(name)],
            hovertemplate="%{hovertext}<extra>query</extra>", meta=ROLE_QUERY, showlegend=True,
            marker={"size": size * 2 + 8, "symbol": "diamond" if three_d else "star", "color": "#111111"},
        ))
    fig = go.Figure(traces)
    axes = proj.axis_titles()
    if three_d:
        fig.update_layout(scene={"xaxis_title": axes[0], "yaxis_title": axes[1], "zaxis_title": axes[2]})
    else:
        fig.update_layout(xaxis_title=axes[0], yaxis_title=axes[1])
    if continuous:
        fig.update_layout(coloraxis={"colorscale": "Viridis", "colorbar": {"title": {"text": colour_by[1]}}})
    legend = " / ".join(name for name in (colour_by and colour_by[1], symbol_by and symbol_by[1]) if name)
    fig.update_layout(
        title={"text": title or _title(points)}, legend={"title": {"text": legend}, "itemsizing": "constant"},
        template="plotly_white", hovermode="closest", margin={"l": 40, "r": 20, "t": 70, "b": 40},
    )
    return fig


def _opacity(opacity: float | str, n: int) -> float:
    if opacity == "auto":
        return 1.0 if n <= 1_000 else 0.7 if n <= 10_000 else 0.45
    if isinstance(opacity, bool) or not isinstance(opacity, (int, float)) or not 0 < opacity <= 1:
        raise InputError(f"opacity={opacity!r}: 'auto' or a number in (0, 1]")
    return float(opacity)


def _short_texts(df: pd.DataFrame, positions: np.ndarray, limit: int = 24) -> np.ndarray:
    """Each row's own text, cut to ``limit`` characters, for labels beside points."""
    texts = row_texts(df.iloc[positions]) if len(positions) else np.array([], dtype=object)
    return np.array([t if len(t) <= limit else t[: limit - 1] + "…" for t in texts], dtype=object)


def _place(df: pd.DataFrame, projection: Projection, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rows among ``positions`` the projection can place (it did not fit them), and their coordinates."""
    if not len(positions) or projection.transform is None:
        return np.arange(0), np.zeros((0, projection.dimensions))
    vectors = to_matrix(df.iloc[positions])
    finite = np.isfinite(vectors).all(axis=1)
    positions, vectors = positions[finite], vectors[finite]
    if not len(positions):
        return positions, np.zeros((0, projection.dimensions))
    return positions, projection.place(vectors)


def _title(points: Points) -> str:
    proj = points.projection
    shown = len(points.positions)
    text = f"{proj.label} of {shown:,} {points.level} embeddings"
    if proj.describe():
        text += f" ({proj.describe()})"
    if points.sampled:
        text += (f"<br><sup>random sample of {shown:,} of {points.n_total:,} rows "
                 f"(max_points={points.max_points:,}, seed {points.sample_seed})</sup>")
    return text


def _highlight_groups(df: pd.DataFrame, highlight: Any) -> dict[str, np.ndarray]:
    if highlight is None:
        return {}
    if isinstance(highlight, Mapping):
        return {str(name): select_rows(df, rows) for name, rows in highlight.items()}
    return {"highlighted": select_rows(df, highlight)}


def _all_highlighted(df: pd.DataFrame, highlight: Any) -> np.ndarray:
    groups = _highlight_groups(df, highlight)
    return np.unique(np.concatenate(list(groups.values()))) if groups else np.arange(0)


def plot_embeddings(
    df: pd.DataFrame,
    method: str = "pca",
    dimensions: int = 2,
    *,
    column: str | None = None,
    labels: Any = None,
    color: Any = None,
    symbol: Any = None,
    highlight: Any = None,
    max_points: int | None = MAX_POINTS,
    sample_seed: int = 0,
    webgl: bool | str = "auto",
    max_categories: int = MAX_CATEGORIES,
    perplexity: float = 30.0,
    learning_rate: float | str = "auto",
    max_iter: int = 1000,
    random_state: int = 0,
    n_neighbors: int = 15,
    min_dist: float = 0.1,
    kernel: str = "rbf",
    gamma: float | str | None = None,
    affinity: str = "nearest_neighbors",
    marker_size: float | None = None,
    title: str | None = None,
    opacity: float | str = "auto",
    point_labels: bool | str = "auto",
) -> go.Figure:
    """A 2D or 3D scatter of a predict() frame's embeddings, projected by one of nine methods.

    ``color`` / ``symbol``: a column name (a label you joined, ``"token"``, ``"origin_index"``,
    ...) or values aligned with ``df``. Numeric columns with more than ``max_categories``
    values get a colour scale; other columns one trace per value, the rarest folded into
    "(other)". ``highlight``: rows to circle (texts, positions, a mask, or a dict of name →
    rows). ``opacity`` and ``point_labels``: see :func:`figure_from_points` (dense plots fade, small ones
    are labelled). Hover shows the token in its sentence (or the sentence / document). Past
    ``max_points`` rows a seeded random sample is plotted (the title says so; highlighted rows
    are always kept); past 2,000 points 2D plots use WebGL (``webgl=True/False`` forces it).

    ``method``: ``"pca"``, ``"svd"`` (truncated SVD), ``"kernel_pca"`` (``kernel``, ``gamma``),
    ``"tsne"`` (``perplexity``, ``learning_rate``, ``max_iter``), ``"umap"`` (``n_neighbors``,
    ``min_dist``), ``"isomap"`` (``n_neighbors``), ``"mds"``, ``"spectral"`` (``affinity``,
    ``n_neighbors`` or ``gamma``) or ``"lle"`` (``n_neighbors``), NLU's spellings too
    (``"TSNE"``, ``"ISOMAP"``, ``"KernelPCA"``, ...); ``random_state`` seeds those that take one.
    What each keeps, and the point limits of the O(n²) ones (MDS 1,000; Isomap, Kernel PCA,
    spectral, LLE 5,000: lower ``max_points`` to sample), are in :mod:`nlu_lite.viz.reduce`.
    Projections are cached per parameter set: recolouring never refits.

    >>> import nlu_lite
    >>> df = nlu_lite.load('en.embed_sentence.minilm_l6').predict(['I like cats', 'Stocks fell'])  # doctest: +SKIP
    >>> fig = plot_embeddings(df, 'pca', color='origin_index')  # doctest: +SKIP
    >>> fig = plot_embeddings(df, 'isomap', n_neighbors=10)  # doctest: +SKIP
    """
    df = viz_frame(df, column, labels)  # one model of several; or a matrix with its labels
    points = prepare_points(
        df, method, dimensions, max_points=max_points, sample_seed=sample_seed, keep=_all_highlighted(df, highlight),
        perplexity=perplexity, learning_rate=learning_rate, max_iter=max_iter, random_state=random_state,
        n_neighbors=n_neighbors, min_dist=min_dist, kernel=kernel, gamma=gamma, affinity=affinity,
    )
    return figure_from_points(
        df, points, color=color, symbol=symbol, highlight=highlight, webgl=webgl, max_categories=max_categories,
        marker_size=marker_size, title=title, opacity=opacity, point_labels=point_labels,
    )


def plot_neighbours(
    df: pd.DataFrame,
    query: Any,
    k: int = 10,
    *,
    column: str | None = None,
    labels: Any = None,
    metric: str = "cosine",
    pipe: Any = None,
    **plot_kwargs: Any,
) -> go.Figure:
    """:func:`plot_embeddings` with the query's rows and its ``k`` nearest neighbours circled.

    Neighbours are found in the original embedding space (see
    :func:`~nlu_lite.viz.nearest_neighbours`), not in the 2D/3D projection.
    """
    df = viz_frame(df, column, labels)  # one model of several; or a matrix with its labels
    table = nearest_neighbours(df, query, k, metric=metric, pipe=pipe)
    _, own = query_vector(df, query, pipe=pipe)
    highlight = {f"{len(table)} nearest ({metric})": table["position"].to_numpy()}
    if len(own):
        highlight = {"query": own, **highlight}
    plot_kwargs.setdefault("title", None)
    fig = plot_embeddings(df, highlight=highlight, **plot_kwargs)
    if plot_kwargs["title"] is None:
        if isinstance(query, str):
            label = query
        else:
            label = f"row {query}" if isinstance(query, (int, np.integer)) else "a vector"
        subtitle = f"<br><sup>neighbours of {html.escape(str(label))}</sup>"
        fig.update_layout(title={"text": f"{fig.layout.title.text}{subtitle}"})
    return fig


def plot_similarity(
    df: pd.DataFrame,
    rows: Any = None,
    *,
    column: str | None = None,
    metric: str = "cosine",
    labels: str | None = None,
    max_rows: int = 100,
    title: str | None = None,
) -> go.Figure:
    """A heatmap of cosine similarities (or euclidean distances) between chosen rows.

    ``rows``: texts (every row whose token / sentence / document matches, in that order),
    int positions or a boolean mask; None takes all rows (at most ``max_rows``). Tick labels
    come from ``labels`` (a column) or the row texts; repeated labels get their row position.

    >>> fig = plot_similarity(df, ['bank', 'river', 'money'])  # doctest: +SKIP
    """
    df = viz_frame(df, column)  # one model of several; or a matrix (points named by row number)
    go = _go()
    positions = select_rows(df, rows, max_rows=max_rows)
    if len(positions) == 0:
        raise InputError("no rows chosen for the heatmap")
    sub = df.iloc[positions]
    z = pairwise(to_matrix(sub), metric)
    names = sub[labels].astype(str).to_numpy(dtype=object) if labels else row_texts(sub)
    names = np.array([t if len(t) <= 40 else t[:39] + "…" for t in names], dtype=object)
    counts = pd.Series(names).value_counts()
    ticks = [f"{t} [{p}]" if counts[t] > 1 else t for t, p in zip(names, positions)]
    hover = hover_texts(sub)
    value = "cosine" if metric == "cosine" else "distance"
    text = [[f"{hover[i]}<br>―<br>{hover[j]}<br><b>{value} {z[i, j]:.3f}</b>" for j in range(len(z))]
            for i in range(len(z))]
    axis = list(range(len(z)))  # integer axes: repeated labels must not merge into one category
    scale = {"colorscale": "RdBu", "zmin": -1.0, "zmax": 1.0, "reversescale": True} if metric == "cosine" else \
        {"colorscale": "Viridis", "reversescale": True}
    fig = go.Figure(go.Heatmap(
        z=z, x=axis, y=axis, hovertext=text, hovertemplate="%{hovertext}<extra></extra>",
        colorbar={"title": {"text": value}}, customdata=np.broadcast_to(positions, z.shape).tolist(), **scale,
    ))
    tick = {"tickmode": "array", "tickvals": axis, "ticktext": ticks}
    fig.update_layout(
        title={"text": title or f"{value.capitalize()} between {len(z)} {frame_level(df)} embeddings"},
        xaxis={**tick, "tickangle": -45}, yaxis={**tick, "autorange": "reversed"},
        template="plotly_white", width=max(450, 28 * len(z) + 250), height=max(400, 28 * len(z) + 200),
    )
    return fig
