"""OpenVINO as the engine that runs nlu_lite's ONNX graphs: ``load(..., engine='openvino')``.

The same converted graph onnxruntime runs (OpenVINO reads ONNX, com.microsoft's fused ops included),
compiled for the CPU with ``INFERENCE_PRECISION_HINT`` ``f32`` (``precision='fp32'``: set explicitly,
since OpenVINO picks bf16 by itself on CPUs with AMX) or ``bf16`` (``precision='bf16'``: on CPUs whose
OpenVINO reports ``BF16`` among its optimisation capabilities, AVX512_BF16 or AMX; elsewhere an error
naming what the CPU lacks). The package is imported only here, when the engine is asked for.

OpenVINO's results may depend on padding (measured: a sequence alone vs inside a padded batch, f32 4e-6
off, bf16 0.014), so :attr:`OpenVinoEncoder.exact_with_padding` is False and the pipeline batches only
sequences of one length with it: nothing is padded, and a text's vectors are the same bits whatever else
is in the call (``tests/test_engine_openvino.py``).
"""
from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from ._optional import require
from .errors import ArtifactNotFoundError, InferenceError, InputError
from .runtime import OnnxEncoder

logger = logging.getLogger(__name__)

HINTS = {"fp32": "f32", "bf16": "bf16"}


def bf16_supported() -> bool:
    """Whether OpenVINO runs bf16 on this CPU (it says ``BF16`` among its optimisation capabilities)."""
    ov = require("openvino", "openvino")
    return "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def _metadata(path: Path) -> dict[str, Any]:
    import onnx

    from .convert.graph import nlu_metadata

    return nlu_metadata(onnx.load(str(path), load_external_data=False))


class OpenVinoEncoder(OnnxEncoder):
    """An nlu_lite ONNX graph compiled by OpenVINO for the CPU; the interface of :class:`OnnxEncoder`."""

    exact_with_padding = False  # the pipeline batches sequences of one length only (see the module docstring)

    def __init__(self, compiled: Any, *, path: Path, precision: str, threads: int | None) -> None:
        self.compiled = compiled
        self.precision = precision
        self.threads = threads
        self._read_interface(path, tuple(i.get_any_name() for i in compiled.inputs),
                             tuple(o.get_any_name() for o in compiled.outputs), _metadata(path))
        self._outputs = {o.get_any_name(): o for o in compiled.outputs}
        self._local = threading.local()  # one infer request per thread: a request serves one call at a time

    @classmethod
    def from_path(cls, path: str | os.PathLike, *, threads: int | None = None, precision: str = "fp32",
                  **_: Any) -> OpenVinoEncoder:
        """Compile ``path`` (a graph written by nlu_lite.convert) for the CPU at ``precision``."""
        ov = require("openvino", "openvino")
        path = Path(path)
        if not path.is_file():
            raise ArtifactNotFoundError(f"no ONNX model at {path}; create it with nlu_lite.convert.ensure_onnx(folder)")
        if precision not in HINTS:
            raise InputError(f"engine='openvino' runs precision 'fp32' or 'bf16'; got {precision!r} (int8 graphs run "
                             "on onnxruntime: engine='onnxruntime')")
        core = ov.Core()
        if precision == "bf16" and "BF16" not in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
            raise InputError(
                "precision='bf16' needs a CPU with bf16 instructions (AVX512_BF16 or AMX); OpenVINO reports none on "
                f"this one ({', '.join(core.get_property('CPU', 'OPTIMIZATION_CAPABILITIES'))}). Use "
                "precision='fp32', or precision='int8' on onnxruntime (engine='onnxruntime')"
            )
        config = {"INFERENCE_PRECISION_HINT": HINTS[precision], "PERFORMANCE_HINT": "LATENCY"}
        if threads:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        try:
            compiled = core.compile_model(core.read_model(str(path)), "CPU", config)
        except Exception as exc:  # OpenVINO's own exception types
            raise InferenceError(f"OpenVINO could not compile {path} ({type(exc).__name__}: {str(exc)[:300]})") \
                from exc
        logger.debug("compiled %s with OpenVINO at %s", path, precision)
        return cls(compiled, path=path, precision=precision, threads=threads)

    @property
    def description(self) -> str:
        import openvino as ov

        return f"OpenVINO {ov.__version__.split('-')[0]} (CPU, {self.precision}, {self.threads or 'all'} threads)"

    def __repr__(self) -> str:
        return (f"OpenVinoEncoder(path={str(self.path)!r}, precision={self.precision!r}, "
                f"hidden_size={self.hidden_size}, num_layers={self.num_layers})")

    def _run(self, ids: np.ndarray, mask: np.ndarray, outputs: tuple[str, ...]) -> dict[str, np.ndarray]:
        request = getattr(self._local, "request", None)
        if request is None:  # the compiled model's own call shares one request: threads (Dask's) would collide
            request = self._local.request = self.compiled.create_infer_request()
        try:
            result = request.infer({"input_ids": ids, "attention_mask": mask})
            # copied: the request's output memory is written again by this thread's next call
            return {name: np.array(result[self._outputs[name]], dtype=np.float32, copy=True) for name in outputs}
        except Exception as exc:  # OpenVINO's own exception types
            raise InferenceError(f"OpenVINO failed running {self.path} on a batch of shape {tuple(ids.shape)}: "
                                 f"{type(exc).__name__}: {str(exc)[:300]}") from exc
