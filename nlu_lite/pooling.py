"""Pure numpy: windows over long texts, subword -> word pooling, sequence pooling. No I/O.

Windows: a text of ``n`` word pieces that does not fit the model (``n > capacity``, where
capacity is ``max_length - 2`` for [CLS]/[SEP]) is cut into windows of ``capacity`` pieces
that overlap by ``overlap`` pieces. Every piece is *owned* by exactly one window, the one in
which it sits farthest from an edge, so it is embedded with the most context on both sides.
"""
from __future__ import annotations

import numpy as np

from .errors import InputError


def plan_windows(n_pieces: int, capacity: int, overlap: int) -> np.ndarray:
    """``(n_windows, 2)`` piece ranges ``[start, end)`` covering ``0..n_pieces``; one window if it fits.

    >>> plan_windows(10, 4, 2).tolist()
    [[0, 4], [2, 6], [4, 8], [6, 10]]
    """
    if capacity < 1:
        raise InputError(f"max_length leaves no room for word pieces (capacity {capacity})")
    if not 0 <= overlap < capacity:
        raise InputError(f"window_overlap must be between 0 and {capacity - 1}, got {overlap}")
    if n_pieces <= capacity:
        return np.array([[0, n_pieces]], dtype=np.int64)
    step = capacity - overlap
    n_windows = -(-(n_pieces - capacity) // step) + 1
    starts = np.minimum(np.arange(n_windows, dtype=np.int64) * step, n_pieces - capacity)
    return np.stack([starts, starts + capacity], axis=1)


def owner_window(n_pieces: int, windows: np.ndarray) -> np.ndarray:
    """For each piece, the window (row of ``windows``) that owns it: the one where it is most central.

    All windows of a plan have the same size, so the most central is the one with the nearest
    centre (ties go to the earlier window); O(n log w) time and O(n) memory.
    """
    pos = np.arange(n_pieces, dtype=np.float64)
    centres = (windows[:, 0] + windows[:, 1] - 1) / 2.0
    right = np.clip(np.searchsorted(centres, pos), 0, len(centres) - 1)
    left = np.clip(right - 1, 0, len(centres) - 1)
    take_left = np.abs(pos - centres[left]) <= np.abs(pos - centres[right])
    return np.where(take_left, left, right)


def word_pool(states: np.ndarray, word: np.ndarray, mode: str) -> np.ndarray:
    """Pool piece vectors ``states`` (n_pieces, H) into word vectors by ``word`` (sorted word numbers).

    ``first``: the first piece (Spark NLP's and BERT's convention); ``last``; ``mean``;
    ``first_last``: first and last concatenated (2H, as flair does).
    """
    if len(states) == 0:
        width = states.shape[1] * (2 if mode == "first_last" else 1)
        return np.empty((0, width), dtype=np.float32)
    starts = np.flatnonzero(np.r_[True, word[1:] != word[:-1]])
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
    raise InputError(f"subtoken_pooling must be one of 'first', 'last', 'mean', 'first_last'; got {mode!r}")


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
        if mode not in ("mean", "max", "cls", "pooler"):
            raise InputError(f"pooling must be one of 'mean', 'cls', 'max', 'pooler'; got {mode!r}")
        self.mode = mode
        fill = -np.inf if mode == "max" else 0.0
        self.acc = np.full((n_units, width), fill, dtype=np.float64)
        self.count = np.zeros(n_units, dtype=np.int64)

    def add(self, unit: np.ndarray, states: np.ndarray, own: np.ndarray, pooled: np.ndarray | None = None) -> None:
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
