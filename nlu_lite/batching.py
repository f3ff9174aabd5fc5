"""Sequences -> padded batches: length-sorted, capped in sequences and in padded positions.

Pure numpy, no I/O. Sequences are sorted by length (order is restored later by scattering
each result to its global position), then cut into batches of at most ``batch_size``
sequences and at most ``max_batch_tokens`` padded positions, so a batch of long windows
does not multiply onnxruntime's working memory. Each :class:`Batch` carries its padded
``input_ids``/``attention_mask`` and, computed once, where every piece sits and whether
its window owns it.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from .tokenize import Framing, Pieces
from .windows import Sequences


def split_batches(order: np.ndarray, widths: np.ndarray, batch_size: int, max_tokens: int) -> list[np.ndarray]:
    """Split ``order`` (sequence numbers sorted by ascending ``widths``) into consecutive batches of
    at most ``batch_size`` sequences and at most ``max_tokens`` padded positions (at least one each).

    >>> [b.tolist() for b in split_batches(np.arange(4), np.array([2, 2, 3, 5]), 3, 6)]
    [[0, 1], [2], [3]]
    """
    batches, start, n = [], 0, len(order)
    while start < n:
        candidates = widths[order[start:start + batch_size]]
        # ascending widths: the k-th candidate makes the batch (k + 1) x widths[k] positions, which only grows
        size = max(1, int(np.count_nonzero(np.arange(1, len(candidates) + 1) * candidates <= max_tokens)))
        batches.append(order[start:start + size])
        start += size
    return batches


@dataclass(frozen=True)
class Batch:
    """One onnxruntime call's inputs and the map back to pieces.

    Row b of the batch is sequence ``seq[b]``. Position ``(row[i], col[i])`` holds global
    piece ``src[i]``, and ``owned[i]`` says whether that sequence's window owns it. The
    framing (``[CLS]``, ``[SEP]``) sits at columns ``< n_prefix`` and ``n_prefix + lengths[b] ...``.
    """

    seq: np.ndarray  # (B,)
    input_ids: np.ndarray  # (B, S) int64
    attention_mask: np.ndarray  # (B, S) int64
    lengths: np.ndarray  # (B,) pieces per row, framing excluded
    n_prefix: int
    n_suffix: int
    row: np.ndarray  # (n,) int64
    col: np.ndarray  # (n,) int64
    src: np.ndarray  # (n,) int64
    owned: np.ndarray  # (n,) bool

    @property
    def shape(self) -> tuple[int, int]:
        return self.input_ids.shape  # type: ignore[return-value]

    def own_mask(self) -> np.ndarray:
        """``(B, S)`` bool: the positions this batch's windows own, framing included (what pooling averages)."""
        own = np.zeros(self.input_ids.shape, dtype=bool)
        own[self.row, self.col] = self.owned
        own[:, :self.n_prefix] = True
        suffix = self.n_prefix + self.lengths
        for k in range(self.n_suffix):
            own[np.arange(len(self.seq)), suffix + k] = True
        return own


def _layout(lengths: np.ndarray, piece_start: np.ndarray, offset: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(row, column, global piece)`` of every piece of a batch, without a loop per sequence."""
    total = int(lengths.sum())
    before = np.cumsum(lengths) - lengths  # pieces of earlier sequences in this batch
    row = np.repeat(np.arange(len(lengths)), lengths)
    within = np.arange(total) - np.repeat(before, lengths)
    return row, within + offset, np.repeat(piece_start, lengths) + within


def pad_batch(pieces: Pieces, seqs: Sequences, framing: Framing, seq: np.ndarray) -> Batch:
    """The padded batch of sequences ``seq``: ``prefix + pieces + suffix``, then padding."""
    lengths = seqs.lengths[seq]
    n_pre, n_suf = len(framing.prefix), len(framing.suffix)
    width = int(lengths.max()) + framing.overhead
    ids = np.full((len(seq), width), framing.pad_id, dtype=np.int64)
    mask = (np.arange(width) < (lengths + framing.overhead)[:, None]).astype(np.int64)
    row, col, src = _layout(lengths, seqs.piece_start[seq], n_pre)
    ids[row, col] = pieces.ids[src]
    if n_pre:
        ids[:, :n_pre] = framing.prefix
    rows = np.arange(len(seq))
    for k, token in enumerate(framing.suffix):
        ids[rows, n_pre + lengths + k] = token
    owned = seqs.owner[src] == seqs.window[seq][row]
    return Batch(seq, ids, mask, lengths, n_pre, n_suf, row, col, src, owned)


def iter_batches(pieces: Pieces, seqs: Sequences, framing: Framing, *, batch_size: int,
                 max_batch_tokens: int, equal_lengths: bool = False) -> Iterator[Batch]:
    """Every sequence once, in length-sorted batches (see :func:`split_batches`). ``equal_lengths``: a
    batch holds sequences of one length only, so nothing is padded (for an engine whose results depend on
    padding: OpenVINO's)."""
    order = np.argsort(seqs.lengths, kind="stable")
    if not equal_lengths:
        for seq in split_batches(order, seqs.lengths + framing.overhead, batch_size, max_batch_tokens):
            yield pad_batch(pieces, seqs, framing, seq)
        return
    lengths = seqs.lengths[order]
    cuts = np.flatnonzero(np.diff(lengths)) + 1
    for group in np.split(order, cuts):
        for seq in split_batches(group, seqs.lengths + framing.overhead, batch_size, max_batch_tokens):
            yield pad_batch(pieces, seqs, framing, seq)
