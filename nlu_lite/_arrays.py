"""Small numpy helpers shared by the steps (no I/O, no imports of nlu_lite)."""
from __future__ import annotations

import numpy as np


def run_starts(values: np.ndarray) -> np.ndarray:
    """Bool mask: True where a run of equal consecutive ``values`` begins (word pieces -> words, units -> rows).

    >>> run_starts(np.array([0, 0, 1, 2, 2])).tolist()
    [True, False, True, True, False]
    """
    if not len(values):
        return np.empty(0, dtype=bool)
    return np.r_[True, values[1:] != values[:-1]]
