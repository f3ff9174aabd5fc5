"""Semantic axes: place every row between two poles ("finance ↔ nature", "river bank ↔ money bank").

The Embedding Projector's custom projection and whatlies' core idea. A pole is a text (matched among the
frame's own tokens / sentences / documents, else embedded with ``pipe``), a list of texts (their mean), or a
vector. A row's coordinate on the axis ``a ↔ b`` is its projection onto ``b - a``, scaled so that ``a`` sits at
-1 and ``b`` at +1 (0 is the midpoint); by default rows and poles are unit-normalised first, so the axis
compares directions (cosine geometry), not lengths. Pure numpy; plotting goes through :mod:`.plots`.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..errors import InputError
from ..frame import embedding_column, to_matrix
from .frames import frame_level, hover_texts, viz_frame
from .neighbours import query_vector, unit_rows

if TYPE_CHECKING:
    import plotly.graph_objects as go

ARROW = " ↔ "


def _pole_name(pole: Any) -> str:
    if isinstance(pole, str):
        return pole
    if isinstance(pole, (int, np.integer)) and not isinstance(pole, bool):
        return f"row {int(pole)}"
    if isinstance(pole, Sequence) and all(isinstance(p, str) for p in pole):
        return " + ".join(pole)
    return "vector"


def pole_vector(df: pd.DataFrame, pole: Any, *, pipe: Any = None, matrix: np.ndarray | None = None) -> np.ndarray:
    """One pole's vector: a text, several texts (their mean, each as :func:`.neighbours.query_vector` finds it)
    or a vector of the embeddings' dimension."""
    if isinstance(pole, str) or (isinstance(pole, (int, np.integer)) and not isinstance(pole, bool)):
        return np.asarray(query_vector(df, pole, pipe=pipe, matrix=matrix)[0], dtype=np.float64)
    if isinstance(pole, Sequence) and len(pole) and all(isinstance(p, str) for p in pole):
        return np.mean([pole_vector(df, p, pipe=pipe, matrix=matrix) for p in pole], axis=0)
    vector = np.asarray(pole, dtype=np.float64)
    if vector.ndim != 1 or (matrix is not None and vector.shape[0] != matrix.shape[1]):
        raise InputError(f"a pole is a text, a list of texts or one vector of the embeddings' dimension; got {pole!r:.80}")
    return vector


def _axis(pair: Any) -> tuple[Any, Any]:
    if isinstance(pair, str) and ARROW.strip() in pair:
        a, b = (part.strip() for part in pair.split(ARROW.strip(), 1))
        return a, b
    if isinstance(pair, (tuple, list)) and len(pair) == 2:
        return pair[0], pair[1]
    raise InputError(f"an axis is a pair of poles, e.g. ('finance', 'nature') or 'finance ↔ nature'; got {pair!r:.80}")


def axis_coordinates(matrix: np.ndarray, a: np.ndarray, b: np.ndarray, *, normalize: bool = True) -> np.ndarray:
    """Each row's place on ``a ↔ b``: ``2 (v - m)·d / |d|²`` with ``d = b - a`` and ``m`` their midpoint, so ``a``
    is -1 and ``b`` +1 (rows and poles unit-normalised first when ``normalize``)."""
    x = np.asarray(matrix, dtype=np.float64)
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if normalize:
        x, a, b = unit_rows(x), unit_rows(a), unit_rows(b)
    d = b - a
    length = float(d @ d)
    if not np.isfinite(length) or length < 1e-12:
        raise InputError("the two poles of an axis have the same vector: pick two texts that differ in meaning")
    return 2.0 * ((x - (a + b) / 2.0) @ d) / length


def semantic_axes(
    df: Any,
    x: Any,
    y: Any = None,
    *,
    column: str | None = None,
    labels: Any = None,
    pipe: Any = None,
    normalize: bool = True,
) -> pd.DataFrame:
    """The frame's rows placed on one or two semantic axes, each a pair of poles.

    Returns the rows without the vector column, plus one column per axis named ``"a ↔ b"`` (-1 at ``a``, +1 at
    ``b``); with one axis, a second column ``"first component of the rest"`` (the principal direction of what
    the axis leaves out), so the rows can be drawn in 2D. ``frame.attrs["axes"]`` names the two columns.

    >>> import nlu_lite
    >>> pipe = nlu_lite.load('en.embed_sentence.minilm_l6')  # doctest: +SKIP
    >>> df = pipe.predict(nlu_lite.viz.load_corpus().text)  # doctest: +SKIP
    >>> semantic_axes(df, ('money', 'river'), ('sport', 'cooking'), pipe=pipe)  # doctest: +SKIP
    """
    df = viz_frame(df, column, labels)
    matrix = to_matrix(df).astype(np.float64)
    if not np.isfinite(matrix).all():
        raise InputError("some rows have no vector (NaN: an empty text or a span over no token); drop them first")
    out = df.drop(columns=[embedding_column(df)]).copy()
    poles, names = [], []
    for pair in (x, y):
        if pair is None:
            continue
        a, b = _axis(pair)
        poles.append((pole_vector(df, a, pipe=pipe, matrix=matrix), pole_vector(df, b, pipe=pipe, matrix=matrix)))
        name = f"{_pole_name(a)}{ARROW}{_pole_name(b)}"
        while name in out.columns or name in names:  # two axes between vectors, or a column of that name
            name += "'"
        names.append(name)
    projection = axis_projection(matrix, poles, names, 2, normalize=normalize)
    for i, name in enumerate(projection.titles):
        out[name] = projection.coords[:, i]
    out.attrs = {**df.attrs, "axes": list(projection.titles)}
    return out


REST = ("first component of the rest", "second component of the rest")


def axis_projection(matrix: np.ndarray, poles: Sequence[tuple[np.ndarray, np.ndarray]], names: Sequence[str],
                    dimensions: int = 2, *, normalize: bool = True):
    """A :class:`.reduce.Projection` of ``matrix`` onto one or two axes (``poles``: ``(a, b)`` vectors), filled up
    to ``dimensions`` with the principal directions of what the axes leave out (``"first component of the
    rest"``, ...). Its ``transform`` places new vectors the same way (a typed query, rows outside a sample)."""
    from .reduce import Projection

    if not 1 <= len(poles) <= dimensions:
        raise InputError(f"{len(poles)} axes cannot make {dimensions} dimensions: give one or two axes")
    x = np.asarray(matrix, dtype=np.float64)
    units = unit_rows(x) if normalize else x
    directions = np.stack([(unit_rows(b) - unit_rows(a)) if normalize else (b - a) for a, b in poles], axis=1)
    basis = np.linalg.qr(directions)[0]  # orthonormal span of the axes
    extra = dimensions - len(poles)
    residual = units - (units @ basis) @ basis.T
    centre = residual.mean(axis=0)
    components = np.zeros((extra, x.shape[1]))
    if extra and len(residual) > 1 and np.abs(residual - centre).max() > 0:
        found = np.linalg.svd(residual - centre, full_matrices=False)[2][:extra]
        components[:len(found)] = found

    def transform(vectors: np.ndarray) -> np.ndarray:
        v = np.asarray(vectors, dtype=np.float64).reshape(-1, x.shape[1])
        cols = [axis_coordinates(v, a, b, normalize=normalize) for a, b in poles]
        if extra:
            u = unit_rows(v) if normalize else v
            rest = u - (u @ basis) @ basis.T - centre
            cols += [rest @ c for c in components]
        return np.column_stack(cols)

    return Projection(transform(x), "axes", dimensions, titles=(*names, *REST[:extra]), transform=transform)


def plot_axes(
    df: Any,
    x: Any,
    y: Any = None,
    *,
    column: str | None = None,
    labels: Any = None,
    pipe: Any = None,
    normalize: bool = True,
    color: Any = None,
    symbol: Any = None,
    highlight: Any = None,
    title: str | None = None,
) -> go.Figure:
    """:func:`semantic_axes` drawn: each row a point at its place on the axes, coloured like
    :func:`.plots.plot_embeddings` (``color``, ``symbol``, ``highlight``); the poles found in the frame are
    circled. Returns a plotly figure.

    >>> fig = plot_axes(df, ('money', 'river'), pipe=pipe, color='topic')  # doctest: +SKIP
    """
    from .plots import Points, figure_from_points
    from .reduce import Projection

    frame = viz_frame(df, column, labels)
    placed = semantic_axes(frame, x, y, pipe=pipe, normalize=normalize)
    names = placed.attrs["axes"]
    coords = placed[names].to_numpy(dtype=np.float64)
    projection = Projection(coords, "semantic axes", 2, titles=tuple(names))
    points = Points(np.arange(len(frame)), projection, hover_texts(frame), len(frame), frame_level(frame), None, 0)
    fig = figure_from_points(frame, points, color=color, symbol=symbol, highlight=highlight,
                             title=title or f"{len(frame):,} {frame_level(frame)} embeddings on "
                                            f"{' and '.join(repr(n) for n in names)}")
    fig.add_vline(x=0, line={"width": 1, "dash": "dot", "color": "#999"})
    if not names[1].startswith("first component"):
        fig.add_hline(y=0, line={"width": 1, "dash": "dot", "color": "#999"})
    return fig
