"""Nearest neighbours and pairwise similarity in the original embedding space (numpy only)."""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError
from ..frame import embedding_column, to_matrix
from .frames import frame_level, match_texts, viz_frame

METRICS = ("cosine", "euclidean")


def _check_metric(metric: str) -> str:
    if metric not in METRICS:
        raise InputError(f"unknown metric {metric!r}; choose one of {list(METRICS)}")
    return metric


def unit_rows(matrix: np.ndarray) -> np.ndarray:
    """Each vector (the last axis) scaled to length 1; zero vectors stay zero."""
    norms = np.linalg.norm(matrix, axis=-1, keepdims=True)
    return matrix / np.maximum(norms, np.finfo(np.float64).tiny)


def pairwise(matrix: np.ndarray, metric: str = "cosine") -> np.ndarray:
    """The ``(n, n)`` cosine similarities or euclidean distances between rows, in float64."""
    x = np.asarray(matrix, dtype=np.float64)
    if _check_metric(metric) == "cosine":
        unit = unit_rows(x)
        return np.clip(unit @ unit.T, -1.0, 1.0)
    squared = (x * x).sum(axis=1)
    return np.sqrt(np.maximum(squared[:, None] + squared[None, :] - 2.0 * (x @ x.T), 0.0))


def scores_to(matrix: np.ndarray, vector: np.ndarray, metric: str = "cosine") -> np.ndarray:
    """Cosine similarity or euclidean distance of every row of ``matrix`` to ``vector``."""
    x = np.asarray(matrix, dtype=np.float64)
    q = np.asarray(vector, dtype=np.float64).ravel()
    if q.shape[0] != x.shape[1]:
        raise InputError(f"the query vector has {q.shape[0]} dimensions but the embeddings have {x.shape[1]}")
    if _check_metric(metric) == "cosine":
        return np.clip(unit_rows(x) @ unit_rows(q[None, :])[0], -1.0, 1.0)
    return np.linalg.norm(x - q, axis=1)


def query_vector(df: pd.DataFrame, query: Any, *, pipe: Any = None, matrix: np.ndarray | None = None):
    """Resolve ``query`` to ``(vector, positions_of_the_query_rows)``.

    ``query``: an int (the row at that position), a vector, or a text. A text is looked up
    among the frame's own texts (case-insensitive; several matches are averaged); when it is
    not there and ``pipe`` is given, it is embedded with ``pipe.predict(text)`` and averaged.
    """
    matrix = to_matrix(df) if matrix is None else matrix
    if isinstance(query, (int, np.integer)) and not isinstance(query, bool):
        n = len(matrix)
        if not -n <= query < n:
            raise InputError(f"row position {query} is outside 0..{n - 1}")
        return matrix[int(query)], np.array([int(query) % n])
    if isinstance(query, str):
        try:
            hits = match_texts(df, [query])
        except InputError:
            if pipe is None:
                raise InputError(
                    f"no {frame_level(df)} in the frame matches {query!r}; pass pipe= to embed it, "
                    "or a row position"
                ) from None
            embedded = to_matrix(pipe.predict(query))
            return embedded.mean(axis=0), np.arange(0)
        return matrix[hits].mean(axis=0), hits
    vector = np.asarray(query, dtype=np.float64)
    if vector.ndim != 1:
        raise InputError(f"query must be a row position, a text or one vector, got shape {vector.shape}")
    return vector, np.arange(0)


def nearest_neighbours(
    df: pd.DataFrame,
    query: Any,
    k: int = 10,
    *,
    column: str | None = None,
    labels: Any = None,
    metric: str = "cosine",
    pipe: Any = None,
    exclude_query: bool = True,
) -> pd.DataFrame:
    """The ``k`` rows closest to ``query`` in the original embedding space, closest first.

    ``query``: a row position, a text (matched among the frame's tokens / sentences /
    documents, else embedded with ``pipe``) or a vector. ``metric``: ``"cosine"`` (column
    ``similarity``, highest first) or ``"euclidean"`` (column ``distance``, lowest first).
    The rows the query came from are left out unless ``exclude_query=False``. Returns the
    frame's rows without the embedding column, plus ``rank`` and ``position`` (the ``iloc``).

    >>> import nlu_lite
    >>> df = nlu_lite.load('en.embed.minilm_l6').predict(['money in the bank', 'the river bank'])  # doctest: +SKIP
    >>> nearest_neighbours(df, 'money', k=3)  # doctest: +SKIP
    """
    df = viz_frame(df, column, labels)  # one model of several; or a matrix with its labels
    matrix = to_matrix(df)
    vector, own = query_vector(df, query, pipe=pipe, matrix=matrix)
    return neighbour_table(df, matrix, vector, own if exclude_query else np.arange(0), k, metric)


def neighbour_table(df: pd.DataFrame, matrix: np.ndarray, vector: np.ndarray, own: np.ndarray, k: int,
                    metric: str = "cosine") -> pd.DataFrame:
    """The ``k`` rows of ``df`` (vectors ``matrix``) closest to ``vector``, the positions ``own`` left out:
    what :func:`nearest_neighbours` returns, for a query already resolved by :func:`query_vector`."""
    if k < 1:
        raise InputError(f"k must be at least 1, got {k}")
    scores = scores_to(matrix, vector, metric)
    candidates = np.setdiff1d(np.arange(len(df)), own)
    order = np.argsort(-scores[candidates] if metric == "cosine" else scores[candidates], kind="stable")
    chosen = candidates[order[:k]]
    table = df.iloc[chosen].drop(columns=[embedding_column(df)])
    table.insert(0, "similarity" if metric == "cosine" else "distance", scores[chosen])
    table.insert(0, "position", chosen)
    table.insert(0, "rank", np.arange(1, len(chosen) + 1))
    return table


def similar(
    df: pd.DataFrame,
    query: Any,
    k: int = 10,
    *,
    pipe: Any = None,
    column: str | None = None,
    labels: Any = None,
    metric: str = "cosine",
) -> pd.DataFrame:
    """Semantic search over a frame: the ``k`` rows most like ``query``, best first.

    ``query``: a text (embedded with ``pipe`` when given, as a search engine would; without ``pipe`` it must be
    one of the frame's own texts), a row position or a vector. Unlike :func:`nearest_neighbours` the rows the
    query came from are kept (a search for a sentence of the frame finds that sentence first). Returns the rows
    without the vector column, with ``rank``, ``position`` (the ``iloc``) and ``similarity`` (or ``distance``).

    >>> import nlu_lite
    >>> pipe = nlu_lite.load('en.embed_sentence.minilm_l6')  # doctest: +SKIP
    >>> df = pipe.predict(nlu_lite.viz.load_corpus().text)  # doctest: +SKIP
    >>> nlu_lite.similar(df, 'where can I borrow money?', k=5, pipe=pipe)  # doctest: +SKIP
    """
    df = viz_frame(df, column, labels)
    if isinstance(query, str) and pipe is not None:
        if not query.strip():
            raise InputError("the query is empty: pass a text to search for")
        level = frame_level(df)  # embedded as the frame's rows were: a sentence for sentences, tokens for tokens
        query = to_matrix(pipe.predict(query, output_level=level if level != "chunk" else "document")).mean(axis=0)
    return nearest_neighbours(df, query, k, metric=metric, exclude_query=False)
