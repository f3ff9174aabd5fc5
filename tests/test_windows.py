"""Sequences and batches on hand-built pieces: every piece once, in its owning window; cost linear."""
from __future__ import annotations

import time

import numpy as np
import pytest

from nlu_lite.batching import iter_batches
from nlu_lite.tokenize import Framing, Pieces
from nlu_lite.windows import plan_sequences

FRAMING = Framing((101,), (102,), 0)


def _pieces(counts) -> Pieces:
    counts = np.asarray(counts, dtype=np.int64)
    start = np.r_[0, np.cumsum(counts)]
    total = int(start[-1])
    ids = 1000 + np.arange(total, dtype=np.int64)  # each piece's id says where it came from
    word = np.arange(total, dtype=np.int64)  # one piece per word
    return Pieces(ids, start, np.zeros(total, np.int64), np.ones(total, np.int64), start.copy(), word, word.copy(),
                  start.copy())


@pytest.mark.parametrize("counts, capacity, overlap", [([3, 0, 5, 1], 8, 2), ([40, 7, 0, 25], 10, 4), ([1] * 50, 4, 1)])
def test_every_piece_is_in_exactly_one_owned_position(counts, capacity, overlap):
    pieces = _pieces(counts)
    seqs = plan_sequences(pieces, capacity, overlap)
    seen = np.zeros(len(pieces.ids), int)
    for batch in iter_batches(pieces, seqs, FRAMING, batch_size=3, max_batch_tokens=30):
        ids = batch.input_ids
        assert (ids[:, 0] == 101).all()
        assert (ids[np.arange(len(batch.seq)), batch.lengths + 1] == 102).all()
        assert (ids[batch.row, batch.col] == pieces.ids[batch.src]).all()
        assert (batch.attention_mask.sum(axis=1) == batch.lengths + 2).all()
        assert batch.shape[0] == 1 or batch.shape[0] * batch.shape[1] <= 30
        np.add.at(seen, batch.src[batch.owned], 1)
        own = batch.own_mask()
        assert own.sum() == batch.owned.sum() + 2 * len(batch.seq)
    assert (seen == 1).all()
    assert seqs.windowed_unit.tolist() == [c > capacity for c in counts]


def _plan_and_batch_seconds(n_units: int) -> float:
    rng = np.random.default_rng(0)
    pieces = _pieces(rng.integers(1, 60, size=n_units))
    best = np.inf
    for _ in range(3):
        started = time.perf_counter()
        seqs = plan_sequences(pieces, 510, 128)
        for _ in iter_batches(pieces, seqs, FRAMING, batch_size=32, max_batch_tokens=1024):
            pass
        best = min(best, time.perf_counter() - started)
    return best


def test_planning_and_batching_cost_grows_linearly():
    small, large = _plan_and_batch_seconds(40_000), _plan_and_batch_seconds(80_000)
    assert large < 3.0 * small, (small, large)  # twice the input, about twice the time (quadratic: 4x)
