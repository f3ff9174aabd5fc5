"""Encoder states -> vectors: word pieces to words (token level), positions to sentences/documents.

Pure numpy, no I/O. Both poolers take batches in any order and keep only the positions a
batch's windows own (see :mod:`nlu_lite.windows`), so a long text embedded in overlapping
windows gives each piece once, from the window where it is most central.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

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


_ACTIVATIONS = {
    "identity": lambda x: x,
    "tanh": np.tanh,
    "relu": lambda x: np.maximum(x, np.float32(0)),
    "sigmoid": lambda x: (1 / (1 + np.exp(-x.astype(np.float64)))).astype(np.float32),
}


def project(vectors: np.ndarray, layers: Sequence[Any]) -> np.ndarray:
    """Pooled vectors through a sentence-transformers model's Dense layers, in order:
    ``activation(weight @ v + bias)`` (each layer has ``weight`` (out, in), ``bias`` or ``None``, ``activation``).

    Row by row, each through the same matrix-vector product on a copy in one reused buffer, so a
    vector's bits never depend on how many others share its call (a matrix product over the batch
    may pick other kernels for other row counts). NaN rows (texts without pieces) stay NaN.
    """
    for layer in layers:
        out = np.empty((len(vectors), layer.weight.shape[0]), dtype=np.float32)
        row = np.empty(layer.weight.shape[1], dtype=np.float32)
        activation = _ACTIVATIONS[layer.activation]
        for i in range(len(vectors)):  # the bias and activation too: one row's elements in the same call each time
            row[:] = vectors[i]
            value = layer.weight @ row
            out[i] = activation(value if layer.bias is None else value + layer.bias)
        vectors = out
    return vectors


def normalize_rows(matrix: np.ndarray) -> np.ndarray:
    """L2-normalise rows (a zero row stays zero, NaN rows stay NaN)."""
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return (matrix / np.where(norms == 0, 1, norms)).astype(np.float32)


class SequencePooler:
    """Accumulates, batch by batch, one pooled vector per unit (sentence or document).

    ``mean`` averages every position a unit's windows own: each window's [CLS] and [SEP] and
    the pieces it owns, so a text that fits one window gets exactly the masked mean that
    sentence-transformers computes. ``max`` takes the maximum over the same positions.
    ``cls`` averages the [CLS] vectors of the unit's windows (with ``class_token_last``, XLNet's ``<cls>``
    that ends each sequence: its last position); ``pooler`` averages the model's
    pooled outputs (one window: exactly BERT's pooled output). ``lasttoken`` (decoder embedders:
    the one position that has seen the whole text) is the last real position of the unit's last
    window (one window: sentence-transformers' last-token pooling), whatever order batches come in.
    ``skip``: ``mean`` and ``max`` leave out the first ``skip`` positions of each unit's first window, as
    sentence-transformers' ``include_prompt=False`` masks the prompt (see :meth:`Pipeline._prompt_positions`);
    ``without``: they leave out positions holding that id (model2vec averages its known pieces only).
    """

    def __init__(self, n_units: int, width: int, mode: str, *, class_token_last: bool = False,
                 skip: int = 0, without: int | None = None) -> None:
        check_choice(mode, SENTENCE_POOLINGS, "pooling", InputError)
        self.mode = mode
        self.class_token_last = class_token_last  # cls: the last real position (XLNet's <cls>), else the first
        self.skip = skip  # mean/max: leading positions of a unit's first window left out (include_prompt=False)
        self.without = without  # mean/max: positions holding this id left out (model2vec's unknown piece)
        self.seen = np.zeros(n_units, dtype=bool)  # units with a sequence: all-unknown ones get zeros, not NaN
        fill = -np.inf if mode == "max" else 0.0
        self.acc = np.full((n_units, width), fill, dtype=np.float64)
        self.count = np.zeros(n_units, dtype=np.int64)
        self.window = np.full(n_units, -1, dtype=np.int64)  # lasttoken: the window whose vector is kept

    def add_batch(self, unit: np.ndarray, batch: Batch, states: np.ndarray, pooled: np.ndarray | None,
                  window: np.ndarray | None = None) -> None:
        """Pool one encoded batch: ``unit`` (B,) is the unit of each of its sequences, ``window`` (B,)
        their window numbers within the unit (``lasttoken`` keeps the last window's)."""
        last = batch.n_prefix + batch.lengths + batch.n_suffix - 1  # each row's last real column
        if self.mode == "lasttoken":
            self.add_last(unit, states[np.arange(len(unit)), last], np.zeros(len(unit), np.int64) if window is None
                          else window)
            return
        own = None
        if self.mode in ("mean", "max"):
            own = batch.own_mask()
            if self.skip:  # the prompt's positions at the start of each unit's first window: not pooled
                own[slice(None) if window is None else window == 0, :self.skip] = False
            if self.without is not None:
                own &= batch.input_ids != self.without
                self.seen[unit] = True
        self.add(unit, states, own, pooled, last if self.class_token_last else None)

    def add_last(self, unit: np.ndarray, vectors: np.ndarray, window: np.ndarray) -> None:
        """``lasttoken``: keep, per unit, the vector of its highest-numbered window seen so far."""
        for u, v, w in zip(unit.tolist(), vectors, window.tolist()):
            if w > self.window[u]:
                self.window[u], self.acc[u], self.count[u] = w, v, 1

    def add(self, unit: np.ndarray, states: np.ndarray, own: np.ndarray | None, pooled: np.ndarray | None = None,
            cls_at: np.ndarray | None = None) -> None:
        """``unit`` (B,) unit of each sequence; ``states`` (B,S,H); ``own`` (B,S) bool positions to pool;
        ``cls_at`` (B,) the class token's column (``None``: column 0)."""
        if self.mode == "mean":
            sums = np.einsum("bs,bsh->bh", own.astype(states.dtype), states, dtype=np.float64)
            np.add.at(self.acc, unit, sums)
            np.add.at(self.count, unit, own.sum(axis=1))
        elif self.mode == "max":
            masked = np.where(own[:, :, None], states, -np.inf).max(axis=1)
            np.maximum.at(self.acc, unit, masked)
            np.add.at(self.count, unit, own.sum(axis=1))
        elif self.mode == "cls":
            np.add.at(self.acc, unit, states[np.arange(len(unit)), 0 if cls_at is None else cls_at])
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
        out[empty & self.seen] = 0.0  # only unknown pieces (model2vec): zeros, as model2vec gives them
        return out.astype(np.float32)


class TokenPooler:
    """Accumulates, batch by batch, one vector per word from the pieces that cover it, each piece
    taken from the window that owns it.

    ``link_piece[i]`` covers word ``link_word[i]`` (sorted by word, then piece; see
    :class:`nlu_lite.tokenize.Pieces`). ``first``/``last`` keep only the one piece per word they
    need; ``mean``/``first_last`` keep every linked piece and pool in :meth:`result` (see
    :func:`word_pool`). A piece may cover several words (a SentencePiece ``▁Hello,``) and counts
    for each; a word no piece covers gets a NaN vector.
    """

    def __init__(self, link_piece: np.ndarray, link_word: np.ndarray, n_words: int, n_pieces: int, width: int,
                 mode: str) -> None:
        check_choice(mode, SUBTOKEN_POOLINGS, "subtoken_pooling", InputError)
        self.mode, self.n_words, self.width = mode, n_words, width
        self.link_piece, self.link_word = link_piece, link_word
        starts = run_starts(link_word)
        pick = {"first": starts, "last": np.r_[starts[1:], True] if len(starts) else starts}.get(mode)
        self.pick = pick
        needed = link_piece if pick is None else link_piece[pick]
        self.slot = np.full(n_pieces, -1, dtype=np.int64)  # piece -> row of self.states, -1: not needed
        unique = np.unique(needed)
        self.slot[unique] = np.arange(len(unique))
        self.states = np.empty((len(unique), width), dtype=np.float32)

    def add_batch(self, batch: Batch, states: np.ndarray) -> None:
        slot = self.slot[batch.src]
        keep = batch.owned & (slot >= 0)
        self.states[slot[keep]] = states[batch.row[keep], batch.col[keep]]

    def result(self) -> np.ndarray:
        """(n_words, width), or (n_words, 2 * width) for ``first_last``; NaN rows for uncovered words.

        With ``first`` or ``last`` and every word its own piece (the common case) this is the kept
        states themselves, not a copy.
        """
        width = self.width * (2 if self.mode == "first_last" else 1)
        covered = self.link_word[run_starts(self.link_word)]
        if self.pick is not None:
            rows = self.slot[self.link_piece[self.pick]]
            if len(rows) == self.n_words == len(self.states) and np.array_equal(rows, np.arange(len(rows))):
                return self.states  # each word's own piece, in word order
            pooled = self.states[rows]
        else:
            pooled = word_pool(self.states[self.slot[self.link_piece]], self.link_word, self.mode)
        if len(covered) == self.n_words:  # the common case: every word has a piece
            return pooled
        out = np.full((self.n_words, width), np.nan, dtype=np.float32)
        out[covered] = pooled
        return out
