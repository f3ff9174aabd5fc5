"""predict()'s DataFrame: its columns per output level, built from one contiguous float32 matrix.

Each embedding cell is a read-only float32 view of one row of a single ``(n, dim)`` matrix:
no per-row allocation, no lists of floats. :func:`to_matrix` gives the ``(n, dim)`` matrix of
any frame (filtered, reordered, concatenated) with one ``np.stack``, which copies in C; an
empty frame gives ``(0, dim)``, so chunks stack whatever they hold.

The columns and their dtypes are fixed per level (:func:`output_columns`) and an empty
result has them all, so a schema is known before any text is embedded.
"""
from __future__ import annotations

import operator
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from .errors import InputError
from .inputs import Rows
from .tokenize import Pieces
from .units import Units

EMBEDDING_SUFFIX = "_embeddings"
NLU5_PREFIXES = ("word_embedding_", "sentence_embedding_")  # load(column_names='nlu5'): NLU 5's own names


def is_embedding_name(name: object) -> bool:
    """Whether a column name is an embedding column's: ``<reference>_embeddings``, or NLU 5's
    ``word_embedding_<name>`` / ``sentence_embedding_<name>``."""
    return isinstance(name, str) and (name.endswith(EMBEDDING_SUFFIX) or name.startswith(NLU5_PREFIXES))
ATTRS_KEY = "nlu_lite"  # df.attrs[ATTRS_KEY] = {"embedding_column": name, "dim": width}

# text columns take the installed pandas' default string dtype ('str' from pandas 3, object before)
TEXT_DTYPE = pd.Series(["text"]).dtype
# every column but origin_index (the input's index dtype) and the embedding column (object: float32 vectors)
_DTYPES = {"sentence_index": np.dtype("int64"), "token": TEXT_DTYPE, "begin": np.dtype("int64"),
           "end": np.dtype("int64"), "sentence": TEXT_DTYPE, "document": TEXT_DTYPE, "windowed": np.dtype("bool"),
           "truncated": np.dtype("bool"), "chunk_index": np.dtype("int64"), "chunk": TEXT_DTYPE,
           "label": np.dtype(object), "n_tokens": np.dtype("int64"), "crosses_sentences": np.dtype("bool")}
LEVEL_COLUMNS = {
    "token": ("origin_index", "sentence_index", "token", "begin", "end", "sentence", "windowed"),
    "sentence": ("origin_index", "sentence_index", "sentence", "begin", "end", "windowed"),
    "document": ("origin_index", "document", "windowed"),
    "chunk": ("origin_index", "chunk_index", "chunk", "begin", "end", "label", "sentence_index", "n_tokens",
              "crosses_sentences", "windowed"),
}


def output_columns(level: str, embedding_name: str, *, index_dtype: Any = "int64",
                   truncation: bool = False) -> dict[str, Any]:
    """The columns and dtypes of a predict() frame at ``level``, in order (without NLU's column
    options and kept columns). ``index_dtype``: the input's index dtype (``int64`` for lists);
    ``truncation``: predict(truncation=True) adds ``truncated`` after ``windowed``.
    """
    names = LEVEL_COLUMNS[level] + (("truncated",) if truncation else ())
    columns: dict[str, Any] = {"origin_index": pd.Series([], dtype=index_dtype).dtype}
    columns.update({name: _DTYPES[name] for name in names[1:]})
    columns[embedding_name] = np.dtype(object)
    return columns


def check_kept_columns(names: list, level: str) -> None:
    """Kept input columns must not repeat predict()'s own: nothing is overwritten or doubled silently."""
    clash = [n for n in names if n in LEVEL_COLUMNS[level] or is_embedding_name(n)]
    if clash:
        raise InputError(
            f"keep_columns would repeat predict()'s own column(s) {clash} at output_level={level!r} (and a "
            f"frame has exactly one column ending in {EMBEDDING_SUFFIX!r}); rename them first "
            "(df.rename(columns={...})) or list the ones to keep: keep_columns=[...]"
        )


def embedding_cells(matrix: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
    """An object array of read-only float32 row views of ``matrix``; with ``rows``, views of those
    rows in that order: a repeated row gets its own view object of the same memory (no copy; a
    pickled frame still restores every cell as its own array).

    A float32 C-contiguous matrix is used as it is (no copy) and made read-only; the caller
    hands it over. Anything else is converted once.
    """
    shared = np.ascontiguousarray(matrix, dtype=np.float32)
    shared.setflags(write=False)
    n = len(shared) if rows is None else len(rows)
    cells = np.empty(n, dtype=object)
    cells[:] = list(shared) if rows is None else list(map(shared.__getitem__, rows.tolist()))  # row views
    return cells


def embedding_column(df: pd.DataFrame) -> str:
    """The one column whose name ends in ``_embeddings``."""
    cols = [c for c in df.columns if is_embedding_name(c)]
    if len(cols) != 1:
        raise InputError(
            f"expected exactly one column ending in {EMBEDDING_SUFFIX!r}, found {cols}; "
            "pass column= to name it"
        )
    return cols[0]


def to_matrix(df: pd.DataFrame | pd.Series, column: str | None = None) -> np.ndarray:
    """The embeddings of a predict() frame (or its embedding column) as one ``(n, dim)`` float32 matrix.

    An empty frame gives ``(0, dim)`` (the width is recorded in ``df.attrs``), so the
    matrices of ``predict_iter`` chunks stack even when a chunk has no rows.

    >>> import nlu_lite
    >>> df = nlu_lite.load('en.embed.minilm_l6').predict('I love NLP')  # doctest: +SKIP
    >>> nlu_lite.to_matrix(df).shape  # doctest: +SKIP
    (3, 384)
    """
    series = df if isinstance(df, pd.Series) else df[column or embedding_column(df)]
    if isinstance(series.dtype, pd.ArrowDtype) and hasattr(series.dtype.pyarrow_dtype, "list_size"):
        return arrow_matrix(series)
    cells = series.to_numpy(dtype=object)
    if len(cells) == 0:
        meta = df.attrs.get(ATTRS_KEY) or {}
        return np.empty((0, int(meta.get("dim", 0))), dtype=np.float32)
    try:
        return np.stack(cells).astype(np.float32, copy=False)
    except (ValueError, TypeError) as exc:
        raise InputError(f"column {series.name!r} does not hold vectors of one length: {exc}") from exc


def arrow_vectors(matrix: np.ndarray) -> pd.Series:
    """The rows of ``matrix`` as a pandas column of Arrow ``fixed_size_list<float32>[dim]``.

    For engines that treat object columns as text (Dask converts them to strings); predict()
    itself returns numpy views. :func:`to_matrix` reads either.
    """
    import pyarrow as pa

    matrix = np.ascontiguousarray(matrix, dtype=np.float32)
    values = pa.FixedSizeListArray.from_arrays(pa.array(matrix.reshape(-1), type=pa.float32()), matrix.shape[1])
    return pd.Series(pd.arrays.ArrowExtensionArray(values))


def arrow_matrix(series: pd.Series) -> np.ndarray:
    """The ``(n, dim)`` float32 matrix of an Arrow ``fixed_size_list<float32>`` column, without a per-row copy."""
    chunked = series.array._pa_array  # a ChunkedArray
    width = series.dtype.pyarrow_dtype.list_size
    if chunked.null_count:
        raise InputError(f"column {series.name!r} has missing vectors; drop those rows first")
    flat = [chunk.flatten().to_numpy(zero_copy_only=False) for chunk in chunked.chunks]
    values = np.concatenate(flat) if flat else np.empty(0, np.float32)
    return values.astype(np.float32, copy=False).reshape(-1, width)


@pd.api.extensions.register_dataframe_accessor("nlu")
class NluAccessor:
    """``df.nlu.matrix()``: the embedding matrix of a predict() frame."""

    def __init__(self, df: pd.DataFrame) -> None:
        self._df = df

    def matrix(self, column: str | None = None) -> np.ndarray:
        """Same as :func:`nlu_lite.to_matrix`."""
        return to_matrix(self._df, column)


def build_frame(columns: Mapping[str, Any], matrix: np.ndarray, embedding_name: str, *,
                extra: pd.DataFrame | None = None, extra_rows: np.ndarray | None = None,
                matrix_rows: np.ndarray | None = None) -> pd.DataFrame:
    """A DataFrame of ``columns`` plus the embedding column made of row views of ``matrix``
    (of its rows ``matrix_rows``, in that order, when given).

    ``extra``: the caller's kept columns, taken at ``extra_rows`` and placed after the first column.
    """
    df = pd.DataFrame(dict(columns))
    n_vectors = len(matrix) if matrix_rows is None else len(matrix_rows)
    if len(df) != n_vectors:
        raise AssertionError(f"{len(df)} rows but {n_vectors} vectors")
    for name, dtype in _DTYPES.items():
        if name in df.columns and df[name].dtype != dtype:
            df[name] = df[name].astype(dtype)
    df[embedding_name] = embedding_cells(matrix, matrix_rows)
    if extra is not None:
        kept = extra.take(extra_rows).reset_index(drop=True)
        df = pd.concat([df.iloc[:, :1], kept, df.iloc[:, 1:]], axis=1)
    df.attrs[ATTRS_KEY] = {"embedding_column": embedding_name, "dim": int(matrix.shape[1])}
    return df


def token_frame(rows: Rows, units: Units, pieces: Pieces, vectors: np.ndarray, windowed_unit: np.ndarray,
                embedding_name: str, truncated_unit: np.ndarray | None = None,
                vector_rows: np.ndarray | None = None) -> pd.DataFrame:
    """One row per word: its text as written, its offsets in the row's text, its sentence; its
    vector is ``vectors``' row ``vector_rows[word]`` (by default the word's own number)."""
    word_unit = np.repeat(np.arange(len(units)), np.diff(pieces.text_word_start))
    word_row = units.row[word_unit]
    begin = units.begin[word_unit] + pieces.word_begin
    end = units.begin[word_unit] + pieces.word_end
    texts = np.array(rows.texts, dtype=object)[word_row] if len(word_row) else np.empty(0, object)
    tokens = list(map(operator.getitem, texts, map(slice, begin.tolist(), end.tolist())))
    sentence_text = np.array(units.text, dtype=object)[word_unit] if len(word_unit) else np.empty(0, object)
    columns = {
        "origin_index": rows.index.take(word_row),
        "sentence_index": units.sentence_index[word_unit],
        "token": tokens,
        "begin": begin,
        "end": end,
        "sentence": sentence_text,
        "windowed": windowed_unit[word_unit],
    }
    if truncated_unit is not None:
        columns["truncated"] = truncated_unit[word_unit]
    return build_frame(columns, vectors, embedding_name, extra=rows.extra, extra_rows=word_row, matrix_rows=vector_rows)


def pooled_frame(rows: Rows, units: Units, vectors: np.ndarray, windowed_unit: np.ndarray, level: str,
                 embedding_name: str, truncated_unit: np.ndarray | None = None,
                 vector_rows: np.ndarray | None = None) -> pd.DataFrame:
    """One row per sentence (with its span) or per document; its vector is ``vectors``' row
    ``vector_rows[unit]`` (by default the unit's own number)."""
    columns: dict[str, Any] = {"origin_index": rows.index.take(units.row)}
    if level == "sentence":
        columns.update(sentence_index=units.sentence_index, sentence=units.text, begin=units.begin, end=units.end)
    else:
        columns["document"] = units.text
    columns["windowed"] = windowed_unit
    if truncated_unit is not None:
        columns["truncated"] = truncated_unit
    return build_frame(columns, vectors, embedding_name, extra=rows.extra, extra_rows=units.row, matrix_rows=vector_rows)


def token_metadata(pieces: Pieces, vocabulary: Sequence[str], unk_id: int | None) -> dict[str, Any]:
    """NLU's ``metadata=True`` for tokens: each word's covering pieces, their ids, how many, and whether
    one is the unknown piece (or none covers it: the model cannot see the word)."""
    n = pieces.n_words
    counts = np.bincount(pieces.link_word, minlength=n).astype(np.int64)
    ids = pieces.ids[pieces.link_piece]
    groups = np.split(ids, np.cumsum(counts)[:-1]) if n else []
    unknown = np.bincount(pieces.link_word, weights=ids == unk_id, minlength=n) if unk_id is not None else np.zeros(n)
    return {
        "token_pieces": [[vocabulary[i] for i in g.tolist()] for g in groups],
        "token_piece_ids": [g.tolist() for g in groups],
        "token_n_pieces": counts,
        "token_is_oov": (unknown > 0) | (counts == 0),
    }


def unit_metadata(pieces: Pieces, unk_id: int | None, level: str) -> dict[str, Any]:
    """NLU's ``metadata=True`` for sentences or documents: how many pieces, how many of them [UNK]."""
    counts = np.diff(pieces.text_piece_start)
    unit_of_piece = np.repeat(np.arange(len(counts)), counts)
    unknown = np.bincount(unit_of_piece, weights=pieces.ids == (-1 if unk_id is None else unk_id),
                          minlength=len(counts)).astype(np.int64)
    return {f"{level}_n_pieces": counts.astype(np.int64), f"{level}_n_oov": unknown}


def apply_nlu_columns(df: pd.DataFrame, level: str, *, positions: bool | None, drop_irrelevant: bool,
                      get_embeddings: bool, metadata: Mapping[str, Any] | None) -> pd.DataFrame:
    """NLU's predict() parameters on a finished frame (see :class:`nlu_lite.options.PredictOptions`)."""
    attrs = dict(df.attrs)
    name = attrs.get(ATTRS_KEY, {}).get("embedding_column") or embedding_column(df)
    if metadata:
        at = df.columns.get_loc(name)
        for offset, (column, values) in enumerate(metadata.items()):
            df.insert(at + offset, column, values if len(df) else pd.Series([], dtype=_metadata_dtype(values)))
    if positions is False:
        df = df.drop(columns=[c for c in ("begin", "end") if c in df.columns])
    elif positions is True:  # NLU's names, and its (Spark NLP's) inclusive end: text[begin:end + 1]
        df = df.rename(columns={c: f"{level}_{c}" for c in ("begin", "end") if c in df.columns})
        if f"{level}_end" in df.columns:
            df[f"{level}_end"] = df[f"{level}_end"] - 1
    if drop_irrelevant and level == "token":
        df = df.drop(columns=["sentence"])
    if not get_embeddings:
        df = df.drop(columns=[name])
    df.attrs.update(attrs)
    return df


def _metadata_dtype(values: Any) -> Any:
    return values.dtype if isinstance(values, np.ndarray) else object
