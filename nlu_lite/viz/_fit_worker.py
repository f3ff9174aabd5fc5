"""``python -m nlu_lite.viz._fit_worker``: one projection fit for :mod:`.jobs` (pickle in on stdin, out on
stdout; everything the fit prints goes to stderr, where the parent reads t-SNE's progress)."""
from __future__ import annotations

import os
import pickle
import sys


def main() -> int:
    payload = sys.stdin.buffer.read()
    result_out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # the fit's own prints (t-SNE's verbose lines, C-level too) go to stderr
    sys.stdout = sys.stderr
    matrix, method, dimensions, params = pickle.loads(payload)
    from nlu_lite.viz.reduce import _FITS, PLACEABLE

    coords, used, ratio, fitted = _FITS[method](matrix, dimensions, dict(params))
    if method not in PLACEABLE:
        fitted = None
    try:
        blob = pickle.dumps((coords, used, ratio, fitted), protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:  # noqa: BLE001 - a reducer that cannot be pickled: its coordinates still come back
        blob = pickle.dumps((coords, used, ratio, None), protocol=pickle.HIGHEST_PROTOCOL)
    result_out.write(blob)
    result_out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
