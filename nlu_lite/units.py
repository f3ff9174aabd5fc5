"""Rows -> units: the texts that become model sequences, sentences or whole documents.

Token and sentence level embed each sentence on its own (as Spark NLP's BertEmbeddings
does); document level embeds each row's whole text. A unit keeps its row, its number
within the row and its character span in the row's text, so every later step can map
back to the original text.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._arrays import run_starts
from .inputs import Rows
from .sentences import split_sentences


@dataclass(frozen=True)
class Units:
    """``text[u]`` is ``rows.texts[row[u]][begin[u]:end[u]]``, sentence ``sentence_index[u]`` of its row."""

    row: np.ndarray  # (n_units,) int64 row position
    sentence_index: np.ndarray  # (n_units,) int64
    begin: np.ndarray  # (n_units,) int64 char offset of the unit in its row's text
    end: np.ndarray  # (n_units,) int64
    text: list[str]

    def __len__(self) -> int:
        return len(self.text)


def sentence_units(rows: Rows, *, placeholder: bool) -> Units:
    """One unit per sentence; with ``placeholder`` a row without sentences gets one empty unit
    (so sentence level keeps a row, with a NaN vector, for every input row)."""
    row, sent, begin, end, text = [], [], [], [], []
    for r, doc in enumerate(rows.texts):
        spans = split_sentences(doc) if doc else []
        if not spans and placeholder:
            spans = [(0, 0)]
        for i, (b, e) in enumerate(spans):
            row.append(r)
            sent.append(i)
            begin.append(b)
            end.append(e)
            text.append(doc[b:e])
    return Units(np.array(row, np.int64), np.array(sent, np.int64), np.array(begin, np.int64),
                 np.array(end, np.int64), text)


def document_units(rows: Rows) -> Units:
    """One unit per row: its whole text (an empty text is an empty unit)."""
    n = len(rows.texts)
    lengths = np.fromiter(map(len, rows.texts), dtype=np.int64, count=n)
    return Units(np.arange(n, dtype=np.int64), np.zeros(n, np.int64), np.zeros(n, np.int64), lengths,
                 list(rows.texts))


def make_units(rows: Rows, level: str) -> Units:
    """The units of ``level``: sentences (token level: rows without text get none), or documents."""
    if level == "document":
        return document_units(rows)
    return sentence_units(rows, placeholder=level == "sentence")


def drop_empty_sentences(units: Units, piece_counts: np.ndarray) -> Units | None:
    """Sentence level's one rule for text the model cannot see: a sentence with no word pieces
    (only control or zero-width characters, say) is not a row, unless its row has no sentence
    with pieces at all; then the row keeps its first unit, whose vector is NaN. Sentence numbers
    stay consecutive. ``None`` when nothing is dropped (the common case)."""
    has = piece_counts > 0
    if has.all():
        return None
    rows_with_text = np.unique(units.row[has])
    first_of_row = run_starts(units.row)
    keep = has | (first_of_row & ~np.isin(units.row, rows_with_text))
    if keep.all():
        return None
    row = units.row[keep]
    starts = run_starts(row)
    group_start = np.maximum.accumulate(np.where(starts, np.arange(len(row)), 0)) if len(row) else row
    return Units(row, np.arange(len(row), dtype=np.int64) - group_start, units.begin[keep], units.end[keep],
                 [t for t, k in zip(units.text, keep) if k])
