"""Chunk level: vectors for the user's own character spans (entity mentions, keywords, annotations).

``predict(data, output_level='chunk', chunks=...)`` embeds the text at token level (each
sentence one sequence, as ever) and pools, per span, the vectors of the tokens it overlaps
(``chunk_pooling``: ``mean``, ``first`` or ``last``). So a span's vector is computed in its
sentence's context, and equals the mean of its tokens' rows of the token-level frame.

``chunks=`` takes, per input row, a list of ``(begin, end)`` or ``(begin, end, label)``
character spans (``None`` or ``[]``: none), or a DataFrame with ``origin_index`` (the
input's index label), ``begin``, ``end`` and optionally ``label``. Rows come out in the order
the spans were given. Defined results:

- a span that overlaps no token (empty, ``begin == end``, or only spaces) keeps its row,
  ``n_tokens`` 0 and a NaN vector;
- a span across a sentence boundary pools the tokens of every sentence it overlaps, each
  embedded in its own sentence; ``sentence_index`` is the first's and ``crosses_sentences`` says so;
- a token the model cannot see (NaN vector, e.g. a lone combining mark) is left out of the
  pooling; a span of such tokens only is NaN;
- ``windowed``: a token of the span comes from a sentence embedded in windows; with
  ``truncation=True``, ``truncated``: a token of the span lies past the cut, so its vector is left
  out (a span wholly past the cut is NaN, and ``truncated`` says why);
- a span outside its row's text (``begin < 0``, ``end > len(text)``, ``begin > end``), a span
  for a row without text, a label that is not an input row, or a malformed span is an
  :class:`~nlu_lite.errors.InputError` naming the row and the span, before anything is embedded.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ._arrays import run_starts
from .errors import InputError
from .frame import TEXT_DTYPE, build_frame
from .inputs import Rows
from .tokenize import link_pieces


@dataclass(frozen=True)
class Chunks:
    """Span k lies at ``begin[k]:end[k]`` of input row ``row[k]`` (its position, not its label)."""

    row: np.ndarray  # (n,) int64
    begin: np.ndarray  # (n,) int64
    end: np.ndarray  # (n,) int64
    label: list | None  # (n,) labels, or None when no span had one


def _span(item: Any, where: str) -> tuple[int, int, Any]:
    if isinstance(item, (str, bytes)) or not hasattr(item, "__len__") or len(item) not in (2, 3):
        raise InputError(f"{where}: a chunk is (begin, end) or (begin, end, label); got {item!r}")
    begin, end = item[0], item[1]
    for value in (begin, end):
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
            raise InputError(f"{where}: chunk offsets must be integers (character positions); got {item!r}")
    if not all(-(1 << 62) < int(v) < 1 << 62 for v in (begin, end)):  # past any text (and past int64)
        raise InputError(f"{where}: span {item!r} lies outside the text; offsets are character positions in it")
    return int(begin), int(end), item[2] if len(item) == 3 else None


def parse_chunks(chunks: Any, rows: Rows) -> Chunks:
    """``chunks=`` in either form, checked against the rows' texts."""
    if isinstance(chunks, pd.DataFrame):
        return _from_frame(chunks, rows)
    if isinstance(chunks, pd.Series):
        chunks = chunks.tolist()
    if isinstance(chunks, (str, bytes)) or not isinstance(chunks, (list, tuple, np.ndarray)):
        raise InputError("chunks= takes, per input row, a list of (begin, end[, label]) spans, or a DataFrame with "
                         f"columns origin_index, begin, end[, label]; got {type(chunks).__name__}")
    if len(chunks) != len(rows.texts):
        raise InputError(f"chunks= has {len(chunks)} entries but the input has {len(rows.texts)} rows; give one list "
                         "of spans per row ([] for none), or a DataFrame with origin_index, begin, end")
    row, begin, end, label = [], [], [], []
    for r, spans in enumerate(chunks):
        if spans is None:
            continue
        where = f"chunks for row {rows.index[r]!r}"
        if isinstance(spans, (str, bytes)) or not hasattr(spans, "__iter__"):
            raise InputError(f"{where}: expected a list of (begin, end[, label]) spans; got {spans!r}")
        for item in spans:
            b, e, lab = _span(item, where)
            row.append(r)
            begin.append(b)
            end.append(e)
            label.append(lab)
    labels = label if any(lab is not None for lab in label) else None
    return _checked(Chunks(np.array(row, np.int64), np.array(begin, np.int64), np.array(end, np.int64), labels), rows)


def label_positions(labels: pd.Series, index: pd.Index) -> np.ndarray:
    """The row positions of a chunks= frame's ``origin_index`` labels in the input's ``index``."""
    if not index.is_unique:
        raise InputError("chunks= as a DataFrame names rows by index label, but the input's index repeats labels; "
                         "give chunks= as one list of spans per row instead")
    position = index.get_indexer(pd.Index(labels))
    unknown = labels.to_numpy()[position < 0]
    if len(unknown):
        raise InputError(f"chunks= names origin_index {unknown[0]!r}, which is not a label of the input's rows")
    return position


def _from_frame(frame: pd.DataFrame, rows: Rows) -> Chunks:
    missing = [c for c in ("origin_index", "begin", "end") if c not in frame.columns]
    if missing:
        raise InputError(f"a chunks= DataFrame needs the columns origin_index (the input's index label), begin and "
                         f"end (and may have label); it lacks {missing}")
    position = label_positions(frame["origin_index"], rows.index)
    spans = [_span((b, e), f"chunks row {i}") for i, b, e in zip(frame.index, frame["begin"], frame["end"])]
    labels = frame["label"].tolist() if "label" in frame.columns else None
    return _checked(Chunks(position.astype(np.int64), np.array([s[0] for s in spans], np.int64),
                           np.array([s[1] for s in spans], np.int64), labels), rows)


def _checked(chunks: Chunks, rows: Rows) -> Chunks:
    lengths = np.array([len(rows.texts[r]) for r in chunks.row], np.int64)
    bad = np.flatnonzero((chunks.begin < 0) | (chunks.end < chunks.begin) | (chunks.end > lengths))
    if len(bad):
        k = bad[0]
        r = chunks.row[k]
        problem = "has no text" if rows.missing[r] else f"has {lengths[k]} characters"
        raise InputError(f"chunk ({chunks.begin[k]}, {chunks.end[k]}) of row {rows.index[r]!r} lies outside its text, "
                         f"which {problem}; spans are 0 <= begin <= end <= len(text) ({len(bad)} such span(s))")
    return chunks


def chunk_frame(rows: Rows, chunks: Chunks, tokens: pd.DataFrame, token_row: np.ndarray, vectors: np.ndarray,
                mode: str, embedding_name: str) -> pd.DataFrame:
    """One row per span: its text, offsets, label, tokens and pooled vector (see the module docstring).

    ``tokens``: the token-level frame of the same rows (row order, offsets in row coordinates);
    ``token_row[t]``: token t's input row position; ``vectors``: its ``(n_tokens, dim)`` matrix.
    """
    n = len(chunks.row)
    order = np.argsort(chunks.row, kind="stable")  # spans grouped by row, as link_pieces needs
    n_rows = len(rows.texts)
    token_start = np.r_[0, np.cumsum(np.bincount(token_row, minlength=n_rows))].astype(np.int64)
    chunk_start = np.r_[0, np.cumsum(np.bincount(chunks.row, minlength=n_rows))].astype(np.int64)
    seen = ~np.isnan(vectors[:, 0]) if vectors.shape[1] else np.ones(len(vectors), bool)
    t_begin, t_end = tokens["begin"].to_numpy(np.int64), tokens["end"].to_numpy(np.int64)
    sorted_begin, sorted_end = chunks.begin[order], chunks.end[order]
    link_token, link_chunk, _ = link_pieces(t_begin, t_end, token_start, sorted_begin, sorted_end, chunk_start)
    keep = (sorted_end[link_chunk] > sorted_begin[link_chunk])  # an empty span overlaps nothing
    link_token, link_chunk = link_token[keep], link_chunk[keep]
    sentence = tokens["sentence_index"].to_numpy(np.int64)
    n_tokens = np.bincount(link_chunk, minlength=n)
    first_sentence = np.full(n, -1, np.int64)
    crosses = np.zeros(n, bool)
    if len(link_chunk):
        starts = np.flatnonzero(run_starts(link_chunk))
        ends = np.r_[starts[1:], len(link_chunk)]
        owners = link_chunk[starts]
        first_sentence[owners] = sentence[link_token[starts]]
        crosses[owners] = sentence[link_token[ends - 1]] != sentence[link_token[starts]]
    windowed = np.zeros(n, bool)  # a token of the span came from a text embedded in windows
    np.logical_or.at(windowed, link_chunk, tokens["windowed"].to_numpy(bool)[link_token])
    truncated = None
    if "truncated" in tokens.columns:  # truncation=True: a token of the span was cut away (its vector is missing)
        truncated = np.zeros(n, bool)
        np.logical_or.at(truncated, link_chunk, (tokens["truncated"].to_numpy(bool) & ~seen)[link_token])
    usable = seen[link_token]
    link_token, link_chunk = link_token[usable], link_chunk[usable]
    pooled = np.full((n, vectors.shape[1]), np.nan, np.float32)
    if len(link_chunk):
        starts = np.flatnonzero(run_starts(link_chunk))
        ends = np.r_[starts[1:], len(link_chunk)]
        owners = link_chunk[starts]
        if mode == "first":
            pooled[owners] = vectors[link_token[starts]]
        elif mode == "last":
            pooled[owners] = vectors[link_token[ends - 1]]
        else:
            sums = np.add.reduceat(vectors[link_token], starts, axis=0, dtype=np.float64)
            pooled[owners] = (sums / (ends - starts)[:, None]).astype(np.float32)
    inverse = np.empty(n, np.int64)  # given span k sits at sorted position inverse[k]
    inverse[order] = np.arange(n)
    texts = [rows.texts[r][b:e] for r, b, e in zip(chunks.row.tolist(), chunks.begin.tolist(), chunks.end.tolist())]
    by_row = chunks.row[order]
    chunk_index = (np.arange(n) - np.searchsorted(by_row, by_row, side="left"))[inverse]  # k-th span of its row
    columns: dict[str, Any] = {
        "origin_index": rows.index.take(chunks.row),
        "chunk_index": chunk_index,
        "chunk": pd.array(texts, dtype=TEXT_DTYPE) if n else pd.array([], dtype=TEXT_DTYPE),
        "begin": chunks.begin,
        "end": chunks.end,
    }
    labels = np.empty(n, dtype=object)  # None where no label was given
    if chunks.label is not None:
        labels[:] = chunks.label
    columns["label"] = pd.Series(labels, dtype=object)  # the user's labels as given: str, int, None
    columns.update({"sentence_index": first_sentence[inverse], "n_tokens": n_tokens[inverse].astype(np.int64),
                    "crosses_sentences": crosses[inverse], "windowed": windowed[inverse]})
    if truncated is not None:
        columns["truncated"] = truncated[inverse]
    return build_frame(columns, pooled[inverse], embedding_name, extra=rows.extra, extra_rows=chunks.row)

