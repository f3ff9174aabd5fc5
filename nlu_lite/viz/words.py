"""One point per distinct word: a token-level frame folded to its vocabulary, for reading token plots.

A token frame of a real corpus has tens of thousands of rows, most of them "the", "," and "of": drawn as is,
it is one blob. :func:`distinct_words` keeps one row per distinct word (case-folded unless asked), its vector
the mean over its occurrences (each in its own context), with ``count`` and one sentence it occurs in; stop
words and punctuation can be left out. The result is a frame like any other: plot it, explore it, ask for
neighbours (then neighbours are distinct words).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .._optional import require
from ..errors import InputError
from ..frame import build_frame, embedding_column, to_matrix
from .frames import viz_frame


def _stop_words(stop_words: Any) -> frozenset[str]:
    if stop_words is None or stop_words is False:
        return frozenset()
    if stop_words == "english" or stop_words is True:
        return frozenset(require("sklearn.feature_extraction.text", "viz", package="scikit-learn").ENGLISH_STOP_WORDS)
    if isinstance(stop_words, str):
        raise InputError(f"stop_words={stop_words!r}: 'english', None, or your own list of words")
    return frozenset(str(w).lower() for w in stop_words)


def distinct_words(
    df: Any,
    *,
    column: str | None = None,
    stop_words: Any = None,
    punctuation: bool = False,
    case_sensitive: bool = False,
    min_count: int = 1,
) -> pd.DataFrame:
    """One row per distinct word of a token-level frame: ``token`` (as most often written), ``count``, the first
    occurrence's ``origin_index`` / ``sentence_index`` / ``sentence`` (hover and tables show the word in it), and
    the mean of its occurrences' vectors (rows without a vector left out of the mean; a word with none is
    dropped and counted in ``attrs["without_vector"]``).

    ``stop_words``: ``'english'`` (scikit-learn's list), your own words, or None (keep all). ``punctuation``:
    keep tokens with no letter or digit (default: leave them out). ``min_count``: drop rarer words. Rows come
    most frequent first.

    >>> import nlu_lite
    >>> tokens = nlu_lite.load('en.embed.minilm_l6').predict(nlu_lite.viz.load_corpus().text)  # doctest: +SKIP
    >>> words = distinct_words(tokens, stop_words='english', min_count=2)  # doctest: +SKIP
    >>> nlu_lite.explore(words, color='count')  # doctest: +SKIP
    """
    df = viz_frame(df, column)
    if "token" not in df.columns:
        raise InputError("distinct_words() folds a token-level frame: predict(..., output_level='token')")
    if isinstance(min_count, bool) or not isinstance(min_count, (int, np.integer)) or min_count < 1:
        raise InputError(f"min_count={min_count!r}: a whole number of at least 1")
    tokens = df["token"].astype(str)
    keys = tokens if case_sensitive else tokens.str.lower()
    keep = np.ones(len(df), dtype=bool)
    if not punctuation:
        keep &= tokens.str.contains(r"[^\W_]", regex=True).to_numpy()
    stops = _stop_words(stop_words)
    if stops:
        keep &= ~tokens.str.lower().isin(stops).to_numpy()
    matrix = to_matrix(df)
    finite = np.isfinite(matrix).all(axis=1)
    kept = np.flatnonzero(keep)
    groups = pd.Series(kept).groupby(keys.to_numpy()[kept], sort=False)
    rows, vectors, without = [], [], 0
    for key, members in groups:
        members = members.to_numpy()
        if len(members) < min_count:
            continue
        usable = members[finite[members]]
        if not len(usable):
            without += 1
            continue
        first = members[0]
        written = tokens.iloc[members].value_counts()
        rows.append({
            "token": written.index[0], "count": len(members),
            "origin_index": df["origin_index"].iloc[first] if "origin_index" in df else first,
            "sentence_index": df["sentence_index"].iloc[first] if "sentence_index" in df else 0,
            "sentence": df["sentence"].iloc[first] if "sentence" in df else tokens.iloc[first],
            "windowed": bool(df["windowed"].iloc[members].any()) if "windowed" in df else False,
        })
        vectors.append(matrix[usable].mean(axis=0))
    order = sorted(range(len(rows)), key=lambda i: (-rows[i]["count"], str(rows[i]["token"]).lower()))
    columns = {name: [rows[i][name] for i in order] for name in
               ("token", "count", "origin_index", "sentence_index", "sentence", "windowed")}
    width = matrix.shape[1]
    stacked = np.stack([vectors[i] for i in order]).astype(np.float32) if order else np.zeros((0, width), np.float32)
    out = build_frame(columns, stacked, embedding_column(df))
    out.attrs = {**df.attrs, "without_vector": without}
    return out
