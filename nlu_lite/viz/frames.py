"""Reading a predict() frame for plotting: its level, its texts, hover texts, row choice.

Pure pandas/numpy: no plotly here, so the widget and the plots share one reading of a frame.
"""
from __future__ import annotations

import difflib
import html
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError
from ..frame import is_embedding_name

# checked in this order: token frames also hold "sentence"; chunk frames hold "chunk" only
LEVEL_COLUMNS = ("token", "chunk", "sentence", "document")


MATRIX_COLUMN = "matrix_embeddings"


def frame_from_matrix(matrix: Any, labels: Any = None) -> pd.DataFrame:
    """A document-level frame of an ``(n, dim)`` matrix (``pipe.embed(...)``'s, or any), so every plot and the
    explorer take it: ``labels`` is a DataFrame of ``n`` rows (its ``text`` column, else its first text column,
    names the points; its other columns colour them), a list or Series of ``n`` texts, or None (row numbers)."""
    from ..frame import build_frame

    matrix = np.asarray(matrix)
    if matrix.ndim != 2 or not np.issubdtype(matrix.dtype, np.number) or np.issubdtype(matrix.dtype, np.bool_):
        raise InputError(f"a matrix to plot is 2-D and numeric (n points x dim); got {matrix.dtype} {matrix.shape}")
    n = len(matrix)
    frame = labels if isinstance(labels, pd.DataFrame) else None
    if labels is not None and len(labels) != n:
        raise InputError(f"labels has {len(labels)} rows but the matrix {n}: one label row per matrix row")
    if frame is not None:
        texts_column = "text" if "text" in frame.columns else next(
            (c for c in frame.columns if frame[c].map(lambda v: isinstance(v, str)).all()), None)
        texts = frame[texts_column].astype(str).tolist() if texts_column is not None else [str(i) for i in range(n)]
    elif labels is not None:
        texts = [str(t) for t in labels]
    else:
        texts = [str(i) for i in range(n)]
    df = build_frame({"origin_index": np.arange(n), "document": texts, "windowed": False},
                     np.ascontiguousarray(matrix, dtype=np.float32), MATRIX_COLUMN)
    if frame is not None:
        for column in frame.columns:
            if column not in df.columns and column != "text":
                df[column] = frame[column].to_numpy()
    return df


def viz_frame(data: Any, column: str | None = None, labels: Any = None) -> pd.DataFrame:
    """What every plot and the explorer read: a predict() frame (with ``column``, one model of several), or
    an ``(n, dim)`` matrix with its ``labels`` (:func:`frame_from_matrix`)."""
    if not isinstance(data, pd.DataFrame):
        if column is not None:
            raise InputError("column= names an embedding column of a frame; a matrix has one (drop column=)")
        return frame_from_matrix(data, labels)
    if labels is not None:
        raise InputError("labels= goes with a matrix; a predict() frame carries its own texts and columns "
                         "(predict(..., keep_columns=True) keeps yours)")
    return one_column(data, column)


def one_column(df: pd.DataFrame, column: str | None) -> pd.DataFrame:
    """``df`` with ``column`` its one embedding column (a frame of several models, ``load('a b')``, holds one
    per model: the others are dropped); ``column=None`` leaves the frame as it is."""
    if column is None:
        return df
    columns = [c for c in df.columns if is_embedding_name(c)]
    if column not in columns:
        raise InputError(f"column={column!r} is not an embedding column of this frame; it has {columns}")
    kept = df.drop(columns=[c for c in columns if c != column])
    kept.attrs = dict(df.attrs)
    return kept


def frame_level(df: pd.DataFrame) -> str:
    """``"token"``, ``"chunk"``, ``"sentence"`` or ``"document"``: the finest text column the frame holds."""
    for level in LEVEL_COLUMNS:
        if level in df.columns:
            return level
    raise InputError(
        f"expected a predict() frame with a 'token', 'chunk', 'sentence' or 'document' column, got {list(df.columns)}; "
        "pass a frame returned by nlu_lite.load(...).predict(...)"
    )


def row_texts(df: pd.DataFrame) -> np.ndarray:
    """Each row's own text (the token, the sentence or the document) as an object array of str."""
    return df[frame_level(df)].astype(str).to_numpy(dtype=object)


def label_columns(df: pd.DataFrame) -> list[str]:
    """Columns one can colour or group by: all but the embedding column."""
    return [c for c in df.columns if not is_embedding_name(c)]


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _wrap(text: str, width: int) -> str:
    """Escape for plotly's hover HTML and break long text into lines of about ``width`` characters."""
    if len(text) <= width:  # one line (most sentences): 6x faster than the loop, 100,000 hover texts in 0.1 s
        return html.escape(" ".join(text.split()))
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    lines.append(line)
    return "<br>".join(html.escape(part) for part in lines)


def _token_starts(tokens: np.ndarray, sentences: np.ndarray, groups: list[tuple[Any, Any]]) -> np.ndarray:
    """Where each token starts in its sentence's text, or -1 where it cannot be found.

    begin/end are offsets into the row text, not the sentence, so tokens are found by walking
    each sentence left to right: consecutive rows of one sentence appear in order.
    """
    starts = np.full(len(tokens), -1, dtype=np.int64)
    cursor, previous = 0, None
    for i, (token, sentence, group) in enumerate(zip(tokens, sentences, groups)):
        if group != previous:
            cursor, previous = 0, group
        at = sentence.find(token, cursor)
        if at < 0:
            at = sentence.find(token)
        if at >= 0:
            starts[i] = at
            cursor = at + len(token)
    return starts


def hover_texts(df: pd.DataFrame, *, context: int = 60, width: int = 80, max_chars: int = 400) -> list[str]:
    """Hover text per row: the token in bold inside its sentence, or the sentence / document text.

    Token level: ``"…left <b>token</b> right…<br>row 3"`` with at most ``context`` characters each
    side. Sentence and document level: the text, escaped, wrapped at ``width`` and cut at
    ``max_chars``, then ``row <origin_index>``.
    """
    level = frame_level(df)
    origins = df["origin_index"].to_numpy(dtype=object) if "origin_index" in df.columns else np.arange(len(df))
    footers = [f"<br>row {html.escape(str(o))}" for o in origins]
    if level != "token" or "sentence" not in df.columns:
        texts = df[level].astype(str).to_numpy(dtype=object)
        return [_wrap(_shorten(t, max_chars), width) + f for t, f in zip(texts, footers)]
    tokens = df["token"].astype(str).to_numpy(dtype=object)
    sentences = df["sentence"].astype(str).to_numpy(dtype=object)
    sentence_ids = df["sentence_index"].to_numpy(dtype=object) if "sentence_index" in df.columns else np.zeros(len(df))
    starts = _token_starts(tokens, sentences, list(zip(origins, sentence_ids)))
    out = []
    for token, sentence, start, footer in zip(tokens, sentences, starts, footers):
        bold = f"<b>{html.escape(token)}</b>"
        if start < 0:
            out.append(f"{bold}<br>{html.escape(_shorten(sentence, 2 * context))}{footer}")
            continue
        left, right = sentence[:start], sentence[start + len(token):]
        if len(left) > context:
            left = "…" + left[-context:].lstrip()
        if len(right) > context:
            right = right[:context].rstrip() + "…"
        out.append(f"{html.escape(left)}{bold}{html.escape(right)}{footer}")
    return out


def select_rows(df: pd.DataFrame, rows: Any = None, *, max_rows: int | None = None) -> np.ndarray:
    """Positions (``iloc``) chosen by ``rows``, in the order given.

    ``rows``: None (all rows), a str or list of str (rows whose text matches, case-insensitive,
    in the order of the strings), a list / array of int positions, or a boolean mask.
    """
    n = len(df)
    if rows is None:
        positions = np.arange(n)
    elif isinstance(rows, str) or (
        isinstance(rows, Sequence) and len(rows) > 0 and all(isinstance(r, str) for r in rows)
    ):
        positions = match_texts(df, [rows] if isinstance(rows, str) else list(rows))
    else:
        arr = np.asarray(rows)
        if arr.dtype == bool:
            if arr.shape != (n,):
                raise InputError(f"a boolean mask needs {n} values, got {arr.shape}")
            positions = np.flatnonzero(arr)
        elif arr.size == 0:
            positions = np.arange(0)
        elif np.issubdtype(arr.dtype, np.integer):
            positions = arr.astype(np.int64).ravel()
            bad = positions[(positions < -n) | (positions >= n)]
            if bad.size:
                raise InputError(f"row positions {bad[:5].tolist()} are outside 0..{n - 1}")
            positions = positions % n
        else:
            raise InputError(f"rows= takes texts, int positions or a boolean mask, got {arr.dtype}")
    if max_rows is not None and len(positions) > max_rows:
        raise InputError(
            f"{len(positions)} rows chosen but at most {max_rows} can be shown; pass rows= "
            "(texts, positions or a mask) or raise max_rows"
        )
    return positions


def match_texts(df: pd.DataFrame, queries: Sequence[str], *, substring: bool = False) -> np.ndarray:
    """Positions of rows whose text equals one of ``queries`` (case-insensitive), query by query.

    ``substring=True`` matches rows containing the query instead. Raises :class:`InputError`
    with the closest texts when a query matches nothing.
    """
    texts = pd.Series(row_texts(df)).str.strip().str.lower()
    found = []
    for query in queries:
        q = query.strip().lower()
        hits = np.flatnonzero(texts.str.contains(q, regex=False).to_numpy() if substring else (texts == q).to_numpy())
        if hits.size == 0:
            close = difflib.get_close_matches(q, texts.unique().tolist(), n=5, cutoff=0.6)
            hint = f"; close texts: {close}" if close else ""
            raise InputError(f"no {frame_level(df)} matches {query!r}{hint}")
        found.append(hits)
    return np.concatenate(found) if found else np.arange(0)


def search_rows(df: pd.DataFrame, query: str, *, substring: bool = False) -> np.ndarray:
    """Positions of the rows a search box query names: ``/pattern/`` a regular expression on the row's text
    (case-insensitive), ``column:value`` the rows whose ``column`` equals ``value`` (as text, case-insensitive),
    else :func:`match_texts` (the text itself; ``substring``: rows containing it). Raises :class:`InputError`
    naming the problem (a bad pattern, an unknown column, no match)."""
    import re

    query = query.strip()
    if len(query) > 1 and query.startswith("/") and query.endswith("/"):
        try:
            pattern = re.compile(query[1:-1], re.IGNORECASE)
        except re.error as exc:
            raise InputError(f"{query!r} is not a regular expression ({exc})") from None
        hits = np.flatnonzero([bool(pattern.search(t)) for t in row_texts(df)])
        if not len(hits):
            raise InputError(f"no {frame_level(df)} matches the pattern {query}")
        return hits
    column, sep, value = query.partition(":")
    if sep and column.strip() and not column.strip().startswith(("http", "/")) and " " not in column.strip():
        column = column.strip()
        if column not in df.columns or is_embedding_name(column):
            if column in label_columns(df) or any(c.lower() == column.lower() for c in label_columns(df)):
                column = next(c for c in label_columns(df) if str(c).lower() == column.lower())
            else:
                return match_texts(df, [query], substring=substring)  # a ':' inside the text itself
        cells = df[column].astype(str).str.strip().str.lower().to_numpy()
        hits = np.flatnonzero(cells == value.strip().lower())
        if not len(hits):
            values = sorted(set(df[column].astype(str)))[:10]
            raise InputError(f"no row has {column} = {value.strip()!r}; some values: {values}")
        return hits
    return match_texts(df, [query], substring=substring)


def sample_positions(n: int, max_points: int | None, *, seed: int = 0, keep: Any = None) -> np.ndarray:
    """All positions when ``n <= max_points``; else a seeded random sample, sorted, that holds ``keep``."""
    if max_points is None or n <= max_points:
        return np.arange(n)
    if max_points < 1:
        raise InputError(f"max_points must be at least 1, got {max_points}")
    rng = np.random.default_rng(seed)
    kept = np.unique(np.asarray([] if keep is None else keep, dtype=np.int64))[:max_points]
    rest = np.setdiff1d(np.arange(n), kept, assume_unique=True)
    drawn = rng.choice(rest, size=max_points - len(kept), replace=False)
    return np.sort(np.concatenate([kept, drawn]))
