"""Slow projections in a child process: watched (progress), stoppable (the process ends, the CPU goes idle).

scikit-learn's t-SNE, UMAP and the O(n²) methods cannot be interrupted inside one Python process: a thread
running them keeps the CPU busy after the user has moved on. :func:`fit_in_process` runs the same fit
(:mod:`.reduce`'s, same parameters, same result, cached the same way) in ``python -m nlu_lite.viz._fit_worker``,
reads t-SNE's iteration lines as progress, and :meth:`FitJob.stop` kills the process.
"""
from __future__ import annotations

import logging
import os
import pickle
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from ..errors import InputError
from .reduce import METHODS, Projection, cached, finish, prepare, with_defaults

logger = logging.getLogger(__name__)

_ITERATION = re.compile(rb"Iteration (\d+)")  # scikit-learn's t-SNE, verbose=2
_EPOCH = re.compile(rb"completed\s+(\d+)\s+/\s+(\d+)\s+epochs")  # umap-learn's layout, verbose=True


class FitStopped(InputError):
    """The projection was stopped before it finished."""


class FitJob:
    """A projection running in a child process. ``progress`` is ``(iteration, max_iter)`` for t-SNE, ``(epoch,
    epochs)`` for UMAP's layout (after its neighbour graph), else None;
    :meth:`result` waits for it; :meth:`stop` ends it at once."""

    def __init__(self, method: str, dimensions: int, params: dict[str, Any], key: tuple | None,
                 matrix: np.ndarray, on_progress: Callable[[int, int], None] | None = None) -> None:
        self.method, self.dimensions, self.params, self.key = method, dimensions, params, key
        self.progress: tuple[int, int] | None = None
        self.started = time.perf_counter()
        self._on_progress = on_progress
        self._result: Projection | None = None
        self._error: BaseException | None = None
        self._stopped = False
        self._done = threading.Event()
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self._process = subprocess.Popen(
            [sys.executable, "-m", "nlu_lite.viz._fit_worker"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, env=env)
        payload = pickle.dumps((np.ascontiguousarray(matrix, dtype=np.float32), method, dimensions,
                                {**params, "verbose": 2} if method in ("tsne", "umap") else params),
                               protocol=pickle.HIGHEST_PROTOCOL)
        self._shape = matrix.shape
        threading.Thread(target=self._run, args=(payload,), name=f"nlu-lite-{method}-job", daemon=True).start()

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def running(self) -> bool:
        return not self._done.is_set()

    def _read_progress(self, lines: list[bytes]) -> None:
        for line in iter(self._process.stderr.readline, b""):
            lines.append(line)
            if self.method == "tsne" and (match := _ITERATION.search(line)):
                self.progress = (int(match.group(1)), int(self.params["max_iter"]))
            elif self.method == "umap" and (match := _EPOCH.search(line)):
                self.progress = (int(match.group(1)), int(match.group(2)))
            else:
                continue
            if self._on_progress is not None:
                self._on_progress(*self.progress)

    def _run(self, payload: bytes) -> None:
        errors: list[bytes] = []
        reader = threading.Thread(target=self._read_progress, args=(errors,), daemon=True)
        reader.start()
        try:
            out, _ = self._process.communicate(payload)
            reader.join(timeout=5)
            if self._stopped:
                raise FitStopped(f"{METHODS.get(self.method, self.method)} was stopped after "
                                 f"{time.perf_counter() - self.started:.1f} s")
            if self._process.returncode != 0:
                tail = b"".join(errors[-20:]).decode("utf-8", "replace").strip()
                raise InputError(f"the {self.method} fit failed in its process (exit {self._process.returncode}): "
                                 f"{tail.splitlines()[-1] if tail else 'no message'}")
            fit = pickle.loads(out)
            self._result = finish(self.method, self.dimensions, fit, time.perf_counter() - self.started, self.key,
                                  self._shape)
        except Exception as exc:  # noqa: BLE001 - handed to result()'s caller, which raises it
            self._error = exc
        finally:
            self._done.set()

    def stop(self) -> None:
        """End the fit now (the child process is killed); :meth:`result` then raises :class:`FitStopped`."""
        if self._done.is_set():
            return
        self._stopped = True
        self._process.kill()

    def result(self, timeout: float | None = None) -> Projection:
        """The projection, once the fit ends (raises :class:`FitStopped` if stopped, TimeoutError if not done)."""
        if not self._done.wait(timeout):
            raise TimeoutError(f"{self.method} still running after {timeout} s")
        if self._error is not None:
            raise self._error
        assert self._result is not None
        return self._result


class _Done(FitJob):
    """A cached projection: nothing to run."""

    def __init__(self, projection: Projection) -> None:
        self._result, self._error, self.progress = projection, None, None
        self._done = threading.Event()
        self._done.set()
        self.started = time.perf_counter()

    @property
    def pid(self) -> int:
        return -1

    def stop(self) -> None:
        return None


def fit_in_process(matrix: np.ndarray, method: str, dimensions: int = 2, *,
                   on_progress: Callable[[int, int], None] | None = None, **params: Any) -> FitJob:
    """Start :func:`.reduce.project` of ``matrix`` in a child process (returns at once; a cached result
    is a finished job). Parameters as :func:`.reduce.project`."""
    method, matrix, checked, key = prepare(matrix, method, dimensions, True, **with_defaults(params))
    hit = cached(key)
    if hit is not None:
        return _Done(hit)
    return FitJob(method, dimensions, checked, key, matrix, on_progress)
