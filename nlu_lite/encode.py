"""Batches -> encoder states: one onnxruntime call per batch, with a progress bar over sequences.

The only step that runs the model. Each :class:`Encoded` pairs a batch (which carries the
map from its positions back to word pieces and their owning windows) with its hidden
states, averaged over the requested layers, and BERT's pooled output when asked for.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._env import progress_enabled
from .batching import Batch

PROGRESS_MIN_SEQUENCES = 256  # below this a progress bar is noise


@dataclass(frozen=True)
class Encoded:
    batch: Batch
    states: np.ndarray  # (B, S, H) float32
    pooled: np.ndarray | None  # (B, H) float32, with pooler=True


def encode_batches(encoder: Any, batches: Iterable[Batch], *, n_sequences: int, layers: Sequence[int] = (-1,),
                   pooler: bool = False, progress: bool | None = None, desc: str = "nlu_lite") -> Iterator[Encoded]:
    """Run ``encoder`` (an :class:`~nlu_lite.runtime.OnnxEncoder`) on each batch.

    ``progress``: a tqdm bar over ``n_sequences`` (default: on from 256 sequences, unless
    ``NLU_LITE_PROGRESS=0``).
    """
    bar = None
    if progress_enabled(progress, default=n_sequences >= PROGRESS_MIN_SEQUENCES):
        from tqdm.auto import tqdm

        bar = tqdm(total=n_sequences, desc=desc, unit="seq")
    try:
        for batch in batches:
            states, pooled = encoder.hidden_states(batch.input_ids, batch.attention_mask, layers, pooler=pooler)
            yield Encoded(batch, states, pooled)
            if bar is not None:
                bar.update(len(batch.seq))
    finally:
        if bar is not None:
            bar.close()
