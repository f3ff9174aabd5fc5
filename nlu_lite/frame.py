"""predict()'s DataFrame: built from one contiguous float32 matrix, read back in one call.

Each embedding cell is a read-only float32 view of one row of a single ``(n, dim)`` matrix:
no per-row allocation, no lists of floats. :func:`to_matrix` gives the ``(n, dim)`` matrix of
any frame (filtered, reordered, concatenated) with one ``np.stack``, which copies in C.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from .errors import InputError

EMBEDDING_SUFFIX = "_embeddings"


def embedding_cells(matrix: np.ndarray) -> np.ndarray:
    """An object array of read-only float32 row views of ``matrix``.

    A float32 C-contiguous matrix is used as it is (no copy) and made read-only; the caller
    hands it over. Anything else is converted once.
    """
    shared = np.ascontiguousarray(matrix, dtype=np.float32)
    shared.setflags(write=False)
    cells = np.empty(len(shared), dtype=object)
    cells[:] = list(shared)  # row views, created in C
    return cells


def embedding_column(df: pd.DataFrame) -> str:
    """The one column whose name ends in ``_embeddings``."""
    cols = [c for c in df.columns if isinstance(c, str) and c.endswith(EMBEDDING_SUFFIX)]
    if len(cols) != 1:
        raise InputError(
            f"expected exactly one column ending in {EMBEDDING_SUFFIX!r}, found {cols}; "
            "pass column= to name it"
        )
    return cols[0]


def to_matrix(df: pd.DataFrame | pd.Series, column: str | None = None) -> np.ndarray:
    """The embeddings of a predict() frame (or its embedding column) as one ``(n, dim)`` float32 matrix.

    >>> import nlu_lite
    >>> df = nlu_lite.load('en.embed.minilm_l6').predict('I love NLP')  # doctest: +SKIP
    >>> nlu_lite.to_matrix(df).shape  # doctest: +SKIP
    (3, 384)
    """
    series = df if isinstance(df, pd.Series) else df[column or embedding_column(df)]
    cells = series.to_numpy(dtype=object)
    if len(cells) == 0:
        return np.empty((0, 0), dtype=np.float32)
    try:
        return np.stack(cells).astype(np.float32, copy=False)
    except (ValueError, TypeError) as exc:
        raise InputError(f"column {series.name!r} does not hold vectors of one length: {exc}") from exc


@pd.api.extensions.register_dataframe_accessor("nlu")
class NluAccessor:
    """``df.nlu.matrix()``: the embedding matrix of a predict() frame."""

    def __init__(self, df: pd.DataFrame) -> None:
        self._df = df

    def matrix(self, column: str | None = None) -> np.ndarray:
        """Same as :func:`nlu_lite.to_matrix`."""
        return to_matrix(self._df, column)


def build_frame(columns: Mapping[str, Any], matrix: np.ndarray, embedding_name: str) -> pd.DataFrame:
    """A DataFrame of ``columns`` plus the embedding column made of row views of ``matrix``."""
    df = pd.DataFrame(dict(columns))
    if len(df) != len(matrix):
        raise AssertionError(f"{len(df)} rows but {len(matrix)} vectors")
    df[embedding_name] = embedding_cells(matrix)
    return df
