"""Encoder states -> vectors: word pieces to words (token level), positions to sentences/documents.

Pure numpy, no I/O. Both poolers take batches in any order and keep only the positions a
batch's windows own (see :mod:`nlu_lite.windows`), so a long text embedded in overlapping
windows gives each piece once, from the window where it is most central.
"""
from __future__ import annotations

import numpy as np

from ._arrays import run_starts
from .batching import Batch
from .choices import SENTENCE_POOLINGS, SUBTOKEN_POOLINGS, check_choice
from .errors import InputError


def word_pool(states: np.ndarray, word: np.ndarray, mode: str) -> np.ndarray:
    """Pool piece vectors ``states`` (n_pieces, H) into word vectors by ``word`` (sorted word numbers).

    ``first``: the first piece (Spark NLP's and BERT's convention); ``last``; ``mean``;
    ``first_last``: first and last concatenated (2H, as flair does).
    """
    if len(states) == 0:
        width = states.shape[1] * (2 if mode == "first_last" else 1)
        return np.empty((0, width), dtype=np.float32)
    starts = np.flatnonzero(run_starts(word))
    ends = np.r_[starts[1:], len(word)]
    if mode == "first":
        return states[starts]
    if mode == "last":
        return states[ends - 1]
    if mode == "mean":
        sums = np.add.reduceat(states, starts, axis=0, dtype=np.float64)
        return (sums / (ends - starts)[:, None]).astype(np.float32)
    if mode == "first_last":
        return np.concatenate([states[starts], states[ends - 1]], axis=1)
    check_choice(mode, SUBTOKEN_POOLINGS, "subtoken_pooling", InputError)
    raise AssertionError(mode)


def normalize_rows(matrix: np.ndarray) -> np.ndarray:
    """L2-normalise rows (a zero row stays zero, NaN rows stay NaN)."""
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return (matrix / np.where(norms == 0, 1, norms)).astype(np.float32)


class SequencePooler:
    """Accumulates, batch by batch, one pooled vector per unit (sentence or document).

    ``mean`` averages every position a unit's windows own: each window's [CLS] and [SEP] and
    the pieces it owns, so a text that fits one window gets exactly the masked mean that
    sentence-transformers computes. ``max`` takes the maximum over the same positions.
    ``cls`` averages the [CLS] vectors of the unit's windows; ``pooler`` averages the model's
    pooled outputs (one window: exactly BERT's pooled output).
    """

    def __init__(self, n_units: int, width: int, mode: str) -> None:
        check_choice(mode, SENTENCE_POOLINGS, "pooling", InputError)
        self.mode = mode
        fill = -np.inf if mode == "max" else 0.0
        self.acc = np.full((n_units, width), fill, dtype=np.float64)
        self.count = np.zeros(n_units, dtype=np.int64)

    def add_batch(self, unit: np.ndarray, batch: Batch, states: np.ndarray, pooled: np.ndarray | None) -> None:
        """Pool one encoded batch: ``unit`` (B,) is the unit of each of its sequences."""
        self.add(unit, states, batch.own_mask() if self.mode in ("mean", "max") else None, pooled)

    def add(self, unit: np.ndarray, states: np.ndarray, own: np.ndarray | None, pooled: np.ndarray | None = None) -> None:
        """``unit`` (B,) unit of each sequence; ``states`` (B,S,H); ``own`` (B,S) bool positions to pool."""
        if self.mode == "mean":
            sums = np.einsum("bs,bsh->bh", own.astype(states.dtype), states, dtype=np.float64)
            np.add.at(self.acc, unit, sums)
            np.add.at(self.count, unit, own.sum(axis=1))
        elif self.mode == "max":
            masked = np.where(own[:, :, None], states, -np.inf).max(axis=1)
            np.maximum.at(self.acc, unit, masked)
            np.add.at(self.count, unit, own.sum(axis=1))
        elif self.mode == "cls":
            np.add.at(self.acc, unit, states[:, 0, :])
            np.add.at(self.count, unit, 1)
        else:
            if pooled is None:
                raise InputError("pooling='pooler' needs a model with a pooler (this checkpoint has none)")
            np.add.at(self.acc, unit, pooled)
            np.add.at(self.count, unit, 1)

    def result(self) -> np.ndarray:
        """(n_units, H) float32; units that received nothing are NaN."""
        out = self.acc.copy()
        empty = self.count == 0
        if self.mode in ("mean", "cls", "pooler"):
            out /= np.where(empty, 1, self.count)[:, None]
        out[empty] = np.nan
        return out.astype(np.float32)


class TokenPooler:
    """Accumulates, batch by batch, one vector per word from the word pieces their windows own.

    ``word[p]`` is piece p's word number (sorted). ``first``/``last`` scatter the one piece they
    need straight into the ``(n_words, width)`` matrix; ``mean``/``first_last`` keep every
    piece's vector and pool them in :meth:`result` (see :func:`word_pool`).
    """

    def __init__(self, word: np.ndarray, n_words: int, width: int, mode: str) -> None:
        check_choice(mode, SUBTOKEN_POOLINGS, "subtoken_pooling", InputError)
        self.mode, self.word = mode, word
        starts = run_starts(word)
        self.pick = {"first": starts, "last": np.r_[starts[1:], True] if len(starts) else starts}.get(mode)
        self.states = np.empty((n_words if self.pick is not None else len(word), width), dtype=np.float32)

    def add_batch(self, batch: Batch, states: np.ndarray) -> None:
        keep = batch.owned if self.pick is None else batch.owned & self.pick[batch.src]
        src = batch.src[keep]
        target = self.word[src] if self.pick is not None else src
        self.states[target] = states[batch.row[keep], batch.col[keep]]

    def result(self) -> np.ndarray:
        """(n_words, width), or (n_words, 2 * width) for ``first_last``."""
        return self.states if self.pick is not None else word_pool(self.states, self.word, self.mode)
