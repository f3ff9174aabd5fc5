"""Units' word pieces -> sequences: one window per unit, or overlapping windows for a long one.

Pure numpy, no I/O. A unit of ``n`` pieces that does not fit the model (``n > capacity``,
capacity being ``max_length`` less the framing's ``[CLS]``/``[SEP]``) is cut into windows of
``capacity`` pieces that overlap by ``overlap`` pieces. Every piece is *owned* by exactly one
window, the one in which it sits farthest from an edge, so it is embedded with the most
context on both sides; later steps keep only owned positions.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .errors import InputError
from .tokenize import Pieces


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


@dataclass(frozen=True)
class Sequences:
    """Model inputs: sequence k covers pieces ``[start[k], end[k])`` of unit ``unit[k]``, its window ``window[k]``.

    ``owner[p]`` is the window (within its unit) that owns global piece p; ``piece_start[k]``
    is sequence k's first global piece; ``windowed_unit[u]`` says unit u needed several windows.
    Units without pieces have no sequence.
    """

    unit: np.ndarray  # (n_sequences,) int64
    window: np.ndarray  # (n_sequences,) int64
    start: np.ndarray  # (n_sequences,) int64, piece offset within the unit
    end: np.ndarray  # (n_sequences,) int64
    piece_start: np.ndarray  # (n_sequences,) int64, global number of the first piece
    owner: np.ndarray  # (n_pieces,) int64
    windowed_unit: np.ndarray  # (n_units,) bool
    truncated_unit: np.ndarray | None = None  # (n_units,) bool: cut after ``capacity`` pieces (truncation)
    lengths: np.ndarray = field(init=False)  # (n_sequences,) word pieces, framing excluded

    def __post_init__(self) -> None:
        object.__setattr__(self, "lengths", self.end - self.start)  # once: every batch reads it

    def __len__(self) -> int:
        return len(self.unit)


def plan_sequences(pieces: Pieces, capacity: int, overlap: int, *, truncate: bool = False) -> Sequences:
    """The sequences that cover every piece of every unit, ``capacity`` pieces at most each.

    ``truncate``: one sequence per unit, its first ``capacity`` pieces; the rest are in no
    sequence (``truncated_unit`` says which units lost pieces).
    """
    counts = np.diff(pieces.text_piece_start)
    n_units = len(counts)
    owner = np.zeros(int(pieces.text_piece_start[-1]), dtype=np.int64)
    long_units = np.flatnonzero(counts > capacity)
    plan_windows(0, capacity, overlap)  # validates capacity and overlap even when nothing is long
    if truncate:
        has = np.flatnonzero(counts > 0)
        zeros = np.zeros(len(has), np.int64)
        return Sequences(has, zeros, zeros, np.minimum(counts[has], capacity), pieces.text_piece_start[has], owner,
                         np.zeros(n_units, bool), counts > capacity)
    if len(long_units) == 0:  # the common case: one window per unit with pieces
        has = np.flatnonzero(counts > 0)
        zeros = np.zeros(len(has), np.int64)
        return Sequences(has, zeros, zeros, counts[has], pieces.text_piece_start[has], owner, np.zeros(n_units, bool))
    unit, window, start, end = [], [], [], []
    for u in np.flatnonzero(counts > 0):
        n = int(counts[u])
        plan = plan_windows(n, capacity, overlap)
        if len(plan) > 1:
            lo = pieces.text_piece_start[u]
            owner[lo:lo + n] = owner_window(n, plan)
        unit.extend([u] * len(plan))
        window.extend(range(len(plan)))
        start.extend(plan[:, 0])
        end.extend(plan[:, 1])
    windowed = np.zeros(n_units, bool)
    windowed[long_units] = True
    unit_a, start_a = np.array(unit, np.int64), np.array(start, np.int64)
    return Sequences(unit_a, np.array(window, np.int64), start_a, np.array(end, np.int64),
                     pieces.text_piece_start[unit_a] + start_a, owner, windowed)


def embedded_pieces(seqs: Sequences, n_pieces: int) -> np.ndarray:
    """``(n_pieces,)`` bool: the pieces some sequence holds (all of them, unless truncated)."""
    seen = np.zeros(n_pieces, dtype=bool)
    if seqs.truncated_unit is None or not seqs.truncated_unit.any():
        seen[:] = True
        return seen
    total = int(seqs.lengths.sum())
    within = np.arange(total) - np.repeat(np.cumsum(seqs.lengths) - seqs.lengths, seqs.lengths)
    seen[np.repeat(seqs.piece_start, seqs.lengths) + within] = True
    return seen
