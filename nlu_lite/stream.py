"""predict() over corpora larger than memory: in chunks of rows, streamed to parquet.

Memory stays bounded by one chunk's frame (plus the model), whatever the corpus size:
rows are read from the input ``chunk_size`` at a time (a generator is never materialised),
each chunk is embedded with ``Pipeline.predict`` and written as one parquet row group, and
the output appears at ``path`` only when every row has been written (written beside it under
a temporary name, then renamed), so a failure midway leaves no half-written file.

``origin_index`` is global: a DataFrame's or Series' own index labels, else the row's
position in the whole input, exactly as a single ``predict()`` call would give.

>>> import nlu_lite
>>> from nlu_lite.stream import predict_to_parquet, read_parquet
>>> pipe = nlu_lite.load('en.embed.minilm_l6')  # doctest: +SKIP
>>> lines = open('corpus.txt', encoding='utf-8')  # doctest: +SKIP
>>> predict_to_parquet(pipe, lines, 'tokens.parquet', output_level='token')  # doctest: +SKIP
>>> read_parquet('tokens.parquet').nlu.matrix().shape  # doctest: +SKIP
"""
from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ._optional import require
from .cache import atomic_path
from ._env import progress_enabled
from .errors import InputError
from .frame import build_frame, embedding_column, to_matrix

if TYPE_CHECKING:
    from .pipeline import Pipeline

logger = logging.getLogger(__name__)

DEFAULT_CHUNK_SIZE = 1000


def _chunks(data: object, chunk_size: int) -> Iterator[object]:
    """Slices of ``data`` of ``chunk_size`` rows, each a valid predict() input with global labels."""
    if isinstance(data, (pd.DataFrame, pd.Series)):
        for start in range(0, len(data), chunk_size):
            yield data.iloc[start:start + chunk_size]
        return
    if isinstance(data, (str, bytes, bytearray, dict)) or not isinstance(data, Iterable):
        yield data  # a lone string is one chunk; predict() names what is wrong with the rest
        return
    if isinstance(data, np.ndarray) and data.ndim != 1:
        raise InputError(f"a numpy array of texts must be 1-D, got shape {data.shape}")
    rows = iter(data)
    start = 0
    while True:
        values = list(itertools.islice(rows, chunk_size))
        if not values:
            return
        yield pd.Series(values, index=pd.RangeIndex(start, start + len(values)), dtype=object)
        start += len(values)


def _progress_bar(option: bool | None, data: object, desc: str):
    total = len(data) if hasattr(data, "__len__") and not isinstance(data, str) else None
    if not progress_enabled(option, default=total is None or total >= 1000):
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="row")


def predict_iter(pipe: Pipeline, data: object, *, output_level: str | None = None,
                 chunk_size: int = DEFAULT_CHUNK_SIZE, **options: Any) -> Iterator[pd.DataFrame]:
    """Yield ``pipe.predict()``'s frame for each ``chunk_size`` input rows, in input order.

    ``data``: anything predict() takes, plus any iterable of strings (a generator, an open
    text file's lines), read lazily. Concatenating the frames gives predict(data)'s rows.
    ``progress``: a bar over input rows (default: on for long or unsized inputs, unless
    ``NLU_LITE_PROGRESS=0``); the other options are predict()'s.

    >>> for df in predict_iter(pipe, open('corpus.txt'), output_level='sentence'):  # doctest: +SKIP
    ...     handle(df)
    """
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
        raise InputError(f"chunk_size must be a positive integer (rows per chunk); got {chunk_size!r}")
    progress = options.pop("progress", None)
    pipe.resolve_options(output_level, progress=progress, **options)  # a wrong option fails before any chunk is read
    return _predict_chunks(pipe, data, output_level, int(chunk_size), progress, options)


def _predict_chunks(pipe: Pipeline, data: object, output_level: str | None, chunk_size: int,
                    progress: bool | None, options: dict[str, Any]) -> Iterator[pd.DataFrame]:
    bar = _progress_bar(progress, data, f"nlu_lite {pipe.spec.alias}")
    try:
        for chunk in _chunks(data, chunk_size):
            yield pipe.predict(chunk, output_level=output_level, progress=False, **options)
            if bar is not None:
                bar.update(len(chunk) if hasattr(chunk, "__len__") and not isinstance(chunk, str) else 1)
    finally:
        if bar is not None:
            bar.close()


def _arrow_table(df: pd.DataFrame, width: int):
    """The frame as an arrow table; the embedding column as fixed_size_list<float32>[width]."""
    pa = require("pyarrow", "parquet")
    column = embedding_column(df)
    matrix = to_matrix(df[column]) if len(df) else np.empty((0, width), np.float32)
    if matrix.shape[1] != width:
        raise AssertionError(f"vectors of width {matrix.shape[1]}, expected {width}")
    values = pa.array(np.ascontiguousarray(matrix, dtype=np.float32).reshape(-1), type=pa.float32())
    vectors = pa.FixedSizeListArray.from_arrays(values, width)
    table = pa.Table.from_pandas(df.drop(columns=column), preserve_index=False)
    return table.append_column(pa.field(column, vectors.type, nullable=False), vectors).replace_schema_metadata(None)


def predict_to_parquet(pipe: Pipeline, data: object, path: str | os.PathLike, *, output_level: str | None = None,
                       chunk_size: int = DEFAULT_CHUNK_SIZE, compression: str = "zstd", **options: Any) -> Path:
    """Embed ``data`` chunk by chunk into the parquet file ``path``; return its path.

    One row group per chunk; the columns are predict()'s, the embedding column a
    ``fixed_size_list<float32>`` (read it back with :func:`read_parquet`). Peak memory is
    that of one chunk, not of the corpus. The file appears only once complete: on any error
    nothing is left at ``path`` (an existing file there is kept unchanged).

    >>> predict_to_parquet(pipe, df, 'out.parquet', output_level='token', chunk_size=2000)  # doctest: +SKIP
    PosixPath('out.parquet')
    """
    pq = require("pyarrow.parquet", "parquet", package="pyarrow")
    target = Path(path)
    width = pipe.resolve_options(output_level, **options).vector_width
    _check_storable_index(data)
    writer = None
    rows = 0
    with atomic_path(target) as tmp:
        try:
            for df in predict_iter(pipe, data, output_level=output_level, chunk_size=chunk_size, **options):
                table = _arrow_table(df, width)
                if writer is None:
                    writer = pq.ParquetWriter(str(tmp), table.schema, compression=compression)
                elif not table.schema.equals(writer.schema):
                    table = _conform(table, writer.schema)
                if table.num_rows:
                    writer.write_table(table)
                rows += table.num_rows
            if writer is None:  # an empty input: an empty file with predict()'s columns
                empty = pipe.predict([], output_level=output_level, progress=False, **options)
                writer = pq.ParquetWriter(str(tmp), _arrow_table(empty, width).schema, compression=compression)
        finally:
            if writer is not None:
                writer.close()
    logger.info("wrote %d rows to %s", rows, target)
    return target


def _check_storable_index(data: object) -> None:
    """A parquet column holds one type: refuse, before any work, index labels that cannot become
    ``origin_index`` there (predict() itself keeps any labels in an object column)."""
    index = data.index if isinstance(data, (pd.DataFrame, pd.Series)) else None
    if index is None:
        return
    if isinstance(index, pd.MultiIndex):
        raise InputError("predict_to_parquet stores origin_index in one column, and this input has a MultiIndex; "
                         "pass data.reset_index() (and keep_columns=[...] for the levels you need)")
    if index.dtype == object:
        kinds = sorted({type(v).__name__ for v in index})
        if len(kinds) > 1:
            raise InputError(f"predict_to_parquet stores origin_index in one column, and this input's index mixes "
                             f"{kinds} labels; make them one type first, e.g. data.index = data.index.astype(str)")


def _conform(table, schema):
    """Cast a chunk's table to the file's schema (e.g. a column that was all-null in chunk 1)."""
    pa = require("pyarrow", "parquet")
    if table.schema.names != schema.names:
        raise InputError(f"chunk columns {table.schema.names} differ from the file's {schema.names}")
    try:
        return table.cast(schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise InputError(
            f"a chunk's column types {table.schema} cannot be written under the file's {schema}: {exc}. "
            "Make the kept columns' types uniform (e.g. df.astype(...)) or use a larger chunk_size"
        ) from exc


def read_parquet(path: str | os.PathLike, columns: list[str] | None = None) -> pd.DataFrame:
    """A file written by :func:`predict_to_parquet` as a predict() frame (vectors as row views).

    The embedding column is read into one ``(n, dim)`` float32 matrix without a per-row copy.
    """
    pq = require("pyarrow.parquet", "parquet", package="pyarrow")
    table = pq.read_table(str(path), columns=columns)
    names = [n for n in table.schema.names if n.endswith("_embeddings")]
    if len(names) != 1:
        raise InputError(f"{path} has no single *_embeddings column (columns: {table.schema.names})")
    name = names[0]
    vectors = table.column(name).combine_chunks()
    width = vectors.type.list_size
    matrix = vectors.flatten().to_numpy(zero_copy_only=False).reshape(-1, width)
    rest = table.drop_columns([name]).to_pandas()
    frame = build_frame({c: rest[c] for c in rest.columns}, matrix, name)
    return frame[table.schema.names]
