"""What predict() accepts, normalised to rows of text with their index labels.

Accepted: a string; a list, tuple or other iterable of strings; a 1-D numpy array; a pandas
Series (its index becomes ``origin_index``); a pandas DataFrame (the ``text`` column or the
one named by ``text_column``). The caller's objects are never modified.

Missing values (None, any float NaN, pd.NA, NaT) and empty or whitespace-only strings are
kept as rows with no text. Any other non-string value raises :class:`InputError` naming its
position and type, unless ``skip_invalid=True``, in which case it is treated like a missing
value (and counted in a warning).

A lone surrogate (``'\ud800'``, what decoding bytes with ``errors='surrogateescape'`` or
UTF-16 halves leave in a str) is not text any encoder can take: each is replaced by U+FFFD,
one character for one so every offset stays valid, and the rows are counted in a warning.
"""
from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .errors import InputError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Rows:
    """``texts[i]`` is row i's text ('' when missing or invalid); ``index[i]`` its label."""

    texts: list[str]
    index: pd.Index
    missing: np.ndarray  # (n,) bool: the value was missing, empty or skipped as invalid
    extra: pd.DataFrame | None  # other columns to carry alongside, positionally aligned


_SURROGATE = re.compile("[\ud800-\udfff]")


def _first_is_text(data: pd.DataFrame) -> bool:
    """Whether a frame's first column holds text (some string, nothing but strings and missing values)."""
    if not len(data.columns) or data.columns.duplicated()[0]:
        return False
    first = data.iloc[:, 0]
    values = [v for v in first.tolist() if not _is_missing(v)]
    return bool(values) and all(isinstance(v, str) for v in values)


def _is_missing(value: object) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    if isinstance(value, (float, np.floating)):
        return bool(np.isnan(value))
    return isinstance(value, (np.datetime64, np.timedelta64)) and bool(np.isnat(value))


def to_rows(
    data: object,
    *,
    text_column: str | None = None,
    keep_columns: bool | Sequence[str] = False,
    skip_invalid: bool = False,
) -> Rows:
    """Normalise ``data`` (see the module docstring) into :class:`Rows`."""
    if not isinstance(data, pd.DataFrame):  # checked before an iterable is read
        if keep_columns:
            raise InputError("keep_columns applies to DataFrame input only")
        if text_column is not None:
            raise InputError(f"text_column={text_column!r} applies to DataFrame input only; a string, list or "
                             "Series is the text itself: pass a DataFrame, or drop text_column")
    extra = None
    if isinstance(data, str):
        values: Sequence[object] = [data]
        index = pd.RangeIndex(1)
    elif isinstance(data, pd.DataFrame):
        column = text_column or "text"
        if text_column is None and column not in data.columns and _first_is_text(data):
            column = data.columns[0]  # NLU embeds a frame's first column when it has no 'text'
            logger.info("the DataFrame has no 'text' column: embedding its first column %r, as NLU does "
                        "(name another with text_column='...')", column)
        if column not in data.columns:
            raise InputError(
                f"the DataFrame has no {column!r} column (columns: {list(data.columns)}); "
                "name the text column with text_column='...'"
            )
        values = data[column].tolist()
        index = data.index
        if keep_columns:
            names = [c for c in data.columns if c != column] if keep_columns is True else list(keep_columns)
            unknown = [c for c in names if c not in data.columns]
            if unknown:
                raise InputError(f"keep_columns names unknown column(s) {unknown}; columns are {list(data.columns)}")
            extra = data[names].reset_index(drop=True).copy()
    elif isinstance(data, pd.Series):
        values = data.tolist()
        index = data.index
    elif isinstance(data, np.ndarray):
        if data.ndim != 1:
            raise InputError(f"a numpy array of texts must be 1-D, got shape {data.shape}")
        values = data.tolist()
        index = pd.RangeIndex(len(values))
    elif isinstance(data, (bytes, bytearray)):
        raise InputError("bytes are not text: decode them first, e.g. data.decode('utf-8')")
    elif type(data).__module__.split(".")[0] in ("dask", "dask_expr", "pyspark"):
        # iterating a Dask frame yields its column names and a Spark one its columns: never the texts
        runner = "nlu_lite.spark.predict(pipe, df)" if type(data).__module__.startswith("pyspark") else \
            "nlu_lite.dask.predict(pipe, ddf)"
        raise InputError(f"predict() embeds in-memory data; a {type(data).__module__}.{type(data).__name__} is a "
                         f"distributed collection: use {runner}, or .compute()/.toPandas() a small one first")
    elif isinstance(data, Iterable) and not isinstance(data, dict):
        values = list(data)
        index = pd.RangeIndex(len(values))
    else:
        raise InputError(
            f"predict() takes a string, a list/tuple/array of strings, a pandas Series or a DataFrame; "
            f"got {type(data).__name__}"
        )

    texts: list[str] = []
    missing = np.zeros(len(values), dtype=bool)
    skipped = replaced = 0
    for pos, value in enumerate(values):
        if isinstance(value, str):
            if _SURROGATE.search(value):
                value = _SURROGATE.sub("\ufffd", value)
                replaced += 1
            texts.append(value)
            missing[pos] = not value.strip()
        elif _is_missing(value):
            texts.append("")
            missing[pos] = True
        elif skip_invalid:
            texts.append("")
            missing[pos] = True
            skipped += 1
        else:
            raise InputError(
                f"row {pos} (index label {index[pos]!r}) is a {type(value).__name__}, not a string: {value!r:.60}. "
                "Convert it to text, or pass skip_invalid=True to keep such rows with no embedding"
            )
    if replaced:
        logger.warning("%d row(s) held lone surrogates (not valid Unicode text): each was replaced by U+FFFD", replaced)
    if skipped:
        logger.warning("skipped %d non-string value(s): their rows get no embedding (NaN / no tokens)", skipped)
    return Rows(texts, index, missing, extra)
