"""onnxruntime in one place: the session options, and running a padded batch.

>>> encoder = OnnxEncoder.from_path(ensure_onnx(folder))  # doctest: +SKIP
>>> out = encoder.run(input_ids, attention_mask)  # doctest: +SKIP
>>> out["last_hidden_state"].shape  # doctest: +SKIP
(2, 7, 384)
"""
from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .errors import ArtifactNotFoundError, InferenceError, InputError, ModelFormatError

logger = logging.getLogger(__name__)

Optimization = Literal["disable", "basic", "extended", "all"]
OPTIMIZATIONS = ("disable", "basic", "extended", "all")
INPUT_NAMES = ("input_ids", "attention_mask")
_HIDDEN = re.compile(r"hidden_state_(\d+)$")


# onnxruntime 1.32's SkipLayerNormalization CPU kernel is slower than Add + LayerNormalization
# on small BERT shapes (measured: benchmarks/engine_graph.py, benchmarks/run.py), so its fusion is off
DISABLED_OPTIMIZERS: tuple[str, ...] = ("SkipLayerNormFusion",)


def session_options(*, threads: int | None = None, optimization: Optimization = "all", enable_arena: bool = True,
                    optimized_model_path: str | os.PathLike | None = None):
    """The ``SessionOptions`` every nlu_lite session uses.

    ``threads=None`` leaves intra-op threads at onnxruntime's default: one per physical
    core. ``optimized_model_path`` saves the graph after onnxruntime's fusions (to inspect them).
    """
    import onnxruntime as ort

    levels = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }
    if optimization not in levels:
        raise InputError(f"optimization={optimization!r} is not one of {list(OPTIMIZATIONS)}")
    if threads is not None and (not isinstance(threads, int) or isinstance(threads, bool) or threads < 1):
        raise InputError(f"threads={threads!r}: pass a positive integer, or None for one thread per physical core")
    options = ort.SessionOptions()
    options.graph_optimization_level = levels[optimization]
    options.intra_op_num_threads = threads or 0
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.enable_cpu_mem_arena = enable_arena
    # the memory pattern pre-plans one block per input shape; length-sorted batches come in
    # many shapes. Measured (small BERT, token level, 2,000 sentences): peak RSS 488 MB without
    # it, 505 MB with it, the same speed in an interleaved A/B run
    options.enable_mem_pattern = False
    options.log_severity_level = 3  # onnxruntime's own warnings are not the user's business
    if optimized_model_path is not None:
        options.optimized_model_filepath = str(optimized_model_path)
    return options


class OnnxEncoder:
    """A BERT-family ONNX model (nlu_lite's interface, see docs/DESIGN.md) on onnxruntime.

    Build it with :meth:`from_path`. ``run`` takes a padded batch of ``input_ids`` and
    ``attention_mask`` and returns the requested outputs by name.
    """

    exact_with_padding = True  # a sequence's states are the same bits alone or padded in a batch (tested)

    def __init__(self, session: Any, *, path: Path | None = None) -> None:
        self.session = session
        meta = session.get_modelmeta().custom_metadata_map.get("nlu_lite")
        width = next((o.shape[-1] for o in session.get_outputs() if o.name == "last_hidden_state"), None)
        self._read_interface(path, tuple(i.name for i in session.get_inputs()),
                             tuple(o.name for o in session.get_outputs()), json.loads(meta) if meta else {},
                             width if isinstance(width, int) else None)

    def _read_interface(self, path: Path | None, inputs: tuple[str, ...], outputs: tuple[str, ...],
                        metadata: dict[str, Any], hidden_size: int | None = None) -> None:
        """Check the graph has nlu_lite's interface and read what the pipeline needs of it (every engine's)."""
        self.path = path
        self.output_names: tuple[str, ...] = outputs
        if set(inputs) != set(INPUT_NAMES) or "last_hidden_state" not in outputs:
            raise ModelFormatError(
                f"{path or 'the model'} does not have nlu_lite's interface (inputs {list(INPUT_NAMES)}, "
                f"output 'last_hidden_state'); it has inputs {list(inputs)}. Convert the checkpoint with "
                "nlu_lite.convert.convert_checkpoint."
            )
        self.metadata: dict[str, Any] = metadata
        layers = sorted(int(m.group(1)) for n in outputs if (m := _HIDDEN.match(n)))
        self.num_layers: int = layers[-1] if layers else int(metadata.get("num_layers", 0))
        self.hidden_size: int = hidden_size if hidden_size is not None else int(metadata["hidden_size"])
        self.has_pooler: bool = "pooler_output" in outputs
        self.max_positions: int | None = metadata.get("max_position_embeddings")
        self.vocab_size: int | None = metadata.get("vocab_size")

    @classmethod
    def from_path(cls, path: str | os.PathLike, *, threads: int | None = None, providers: Sequence[Any] | None = None,
                  optimization: Optimization = "all", enable_arena: bool = True) -> OnnxEncoder:
        """Open ``path`` (an ONNX file written by nlu_lite.convert) in an InferenceSession.

        ``threads``: intra-op threads (None: one per physical core). ``providers``:
        onnxruntime execution providers, names or ``(name, options)`` pairs (None: CPU); one
        that this onnxruntime build lacks is an error, never a silent fall-back to the CPU.
        ``optimization``: graph optimization level. ``enable_arena``: onnxruntime's CPU
        memory arena (faster; holds on to memory).

        >>> encoder = OnnxEncoder.from_path("model.onnx", threads=2)  # doctest: +SKIP
        """
        import onnxruntime as ort

        path = Path(path)
        if not path.is_file():
            raise ArtifactNotFoundError(f"no ONNX model at {path}; create it with nlu_lite.convert.ensure_onnx(folder)")
        options = session_options(threads=threads, optimization=optimization, enable_arena=enable_arena)
        chosen = check_providers(providers)
        try:
            ort_providers = [(p[0], dict(p[1])) if isinstance(p, tuple) else p for p in chosen]
            session = ort.InferenceSession(str(path), sess_options=options, providers=ort_providers,
                                           disabled_optimizers=list(DISABLED_OPTIMIZERS))
        except Exception as exc:  # onnxruntime raises its own, unrelated exception types
            from .convert import data_path_for  # only on this error path: no import cost at start-up

            data = data_path_for(path)
            if not data.exists() and "external" in str(exc).lower():
                raise ArtifactNotFoundError(
                    f"{path} keeps its weights in {data.name}, which is missing: copy or move the two files "
                    "together (nlu_lite.convert.ensure_onnx re-creates a cached model)"
                ) from exc
            raise InferenceError(
                f"onnxruntime could not open {path} ({type(exc).__name__}: {exc}). If the file is damaged, "
                f"delete its folder {path.parent} and load again: a cached model is converted anew"
            ) from exc
        logger.debug("opened %s with providers %s", path, session.get_providers())
        return cls(session, path=path)

    @property
    def description(self) -> str:
        import onnxruntime as ort

        threads = self.session.get_session_options().intra_op_num_threads
        providers = ", ".join(p.replace("ExecutionProvider", "") for p in self.session.get_providers())
        return f"onnxruntime {ort.__version__} ({providers}, {threads or 'all'} threads)"

    def __repr__(self) -> str:
        return (f"OnnxEncoder(path={str(self.path)!r}, hidden_size={self.hidden_size}, "
                f"num_layers={self.num_layers}, has_pooler={self.has_pooler})")

    def layer_output_names(self, layers: Sequence[int] = (-1,)) -> tuple[str, ...]:
        """Output names for transformers-style layer indices (-1 = last layer, 0 = embeddings)."""
        names = []
        for layer in layers:
            if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)) or not -self.num_layers - 1 <= layer <= self.num_layers:
                raise InputError(
                    f"layer {layer!r} does not exist: this model has hidden states 0..{self.num_layers} "
                    f"(or -{self.num_layers + 1}..-1 counting from the last)"
                )
            names.append(f"hidden_state_{int(layer) % (self.num_layers + 1)}")
        return tuple(names)

    def _check_batch(self, input_ids: Any, attention_mask: Any) -> tuple[np.ndarray, np.ndarray]:
        arrays = []
        for name, value in (("input_ids", input_ids), ("attention_mask", attention_mask)):
            array = np.asarray(value)
            if array.ndim != 2 or 0 in array.shape:
                raise InputError(f"{name} must be a non-empty 2-D array [batch, sequence]; got shape {array.shape}")
            if not (np.issubdtype(array.dtype, np.integer) or array.dtype == np.bool_):
                raise InputError(f"{name} must hold integers; got dtype {array.dtype}")
            arrays.append(np.ascontiguousarray(array, dtype=np.int64))
        ids, mask = arrays
        if ids.shape != mask.shape:
            raise InputError(f"input_ids {ids.shape} and attention_mask {mask.shape} must have the same shape")
        if self.max_positions and ids.shape[1] > self.max_positions:
            raise InputError(
                f"sequence length {ids.shape[1]} exceeds the model's {self.max_positions} positions; "
                "truncate or window the input"
            )
        if self.vocab_size and (ids.min() < 0 or ids.max() >= self.vocab_size):
            raise InputError(f"input_ids must lie in [0, {self.vocab_size}); got values from {ids.min()} to {ids.max()}")
        if not np.isin(mask, (0, 1)).all():
            raise InputError("attention_mask must hold only 0 (padding) and 1 (real token)")
        return ids, mask

    def run(self, input_ids: Any, attention_mask: Any, outputs: Sequence[str] = ("last_hidden_state",)) -> dict[str, np.ndarray]:
        """Run a padded batch; return ``{output name: array}`` for the requested ``outputs``.

        A failure inside onnxruntime (out of memory, a damaged file) is an
        :class:`InferenceError` naming the model file and the batch shape.

        >>> encoder.run(ids, mask, outputs=("last_hidden_state", "pooler_output"))  # doctest: +SKIP
        """
        if isinstance(outputs, str):
            outputs = (outputs,)
        unknown = [o for o in outputs if o not in self.output_names]
        if unknown or not outputs:
            raise InputError(f"unknown output(s) {unknown or list(outputs)}; this model has {list(self.output_names)}")
        ids, mask = self._check_batch(input_ids, attention_mask)
        return self._run(ids, mask, tuple(outputs))

    def _run(self, ids: np.ndarray, mask: np.ndarray, outputs: tuple[str, ...]) -> dict[str, np.ndarray]:
        """The engine's own call on a checked batch (:meth:`run` checks the outputs and the batch)."""
        try:
            values = self.session.run(list(outputs), {"input_ids": ids, "attention_mask": mask})
        except Exception as exc:  # onnxruntime's own exception types
            raise InferenceError(
                f"onnxruntime failed running {self.path or 'the model'} on a batch of shape {tuple(ids.shape)} "
                f"(sequences x positions): {type(exc).__name__}: {exc}. If it ran out of memory, pass a smaller "
                "batch_size= or max_batch_tokens= to predict()"
            ) from exc
        return dict(zip(outputs, values))

    def hidden_states(self, input_ids: Any, attention_mask: Any, layers: Sequence[int] = (-1,), *,
                      layer_mean: bool = True, pooler: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
        """``(states, pooler_output or None)`` of one run: the hidden states of ``layers`` (flair's
        ``layers`` / ``layer_mean``), averaged or concatenated, and BERT's pooled output if asked.

        ``states`` is ``[batch, sequence, hidden]`` with ``layer_mean`` (or a single layer), else
        ``[batch, sequence, hidden * len(layers)]`` in the order of ``layers``.
        """
        names = self.layer_output_names(layers)
        if not names:
            raise InputError("layers is empty; pass e.g. layers=(-1,) or (-4, -3, -2, -1)")
        if pooler and not self.has_pooler:
            raise InputError(f"{self.path or 'this model'} has no pooler output; use another pooling")
        wanted = tuple(dict.fromkeys(names + (("pooler_output",) if pooler else ())))
        result = self.run(input_ids, attention_mask, outputs=wanted)
        layer_states = [result[n] for n in names]
        if len(layer_states) == 1:
            states = layer_states[0]
        elif layer_mean:
            states = np.mean(layer_states, axis=0, dtype=np.float32)
        else:
            states = np.concatenate(layer_states, axis=-1)
        return states, result.get("pooler_output")

    def run_layers(self, input_ids: Any, attention_mask: Any, layers: Sequence[int] = (-1,), *,
                   layer_mean: bool = True) -> np.ndarray:
        """The hidden states of ``layers``, averaged (``layer_mean``) or concatenated: see :meth:`hidden_states`."""
        return self.hidden_states(input_ids, attention_mask, layers, layer_mean=layer_mean)[0]


def check_providers(providers: Sequence[Any] | None) -> tuple[Any, ...]:
    """onnxruntime execution providers, checked against this build: names or ``(name, options)`` pairs.

    Returns a hashable tuple (options as sorted ``(key, value)`` pairs). ``None`` is the CPU. A provider this onnxruntime lacks is an :class:`InputError` listing
    the available ones (onnxruntime itself would warn and quietly fall back to the CPU).
    """
    import onnxruntime as ort

    if providers is None:
        return ("CPUExecutionProvider",)
    if isinstance(providers, str):
        providers = (providers,)
    available = ort.get_available_providers()
    chosen = []
    for entry in providers:
        name = entry[0] if isinstance(entry, (tuple, list)) and len(entry) == 2 else entry
        if not isinstance(name, str):
            raise InputError(f"providers: {entry!r} is neither a provider name nor a (name, options) pair")
        if name not in available:
            hint = " (pip install onnxruntime-gpu for CUDA)" if name.startswith(("CUDA", "Tensorrt")) else ""
            raise InputError(f"execution provider {name!r} is not available in this onnxruntime{hint}; "
                             f"available: {available}")
        # options as sorted pairs: the result is hashable (a pipeline's recipe is a dict key)
        chosen.append((name, tuple(sorted(dict(entry[1]).items()))) if isinstance(entry, (tuple, list)) else name)
    if not chosen:
        raise InputError(f"providers is empty; pass None for the CPU or some of {available}")
    return tuple(chosen)


def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags as Linux lists them (``/proc/cpuinfo``); empty elsewhere."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def openvino_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("openvino") is not None


def auto_engine(precision: str | None, providers: Any = None) -> str:
    """``engine='auto'``: the engine this machine runs the precision faster on, decided from what is installed
    and the CPU's flags, the same answer every time on one machine (``benchmarks/cpu_engines.md``):

    - ``bf16``: OpenVINO (the only engine that runs it); ``int8``, or ``providers=``/``gpu=``: onnxruntime;
    - ``fp32``: OpenVINO where it is installed and the CPU has AVX-512 (its f32 measured 1.02-1.09x onnxruntime
      on an AMD EPYC with AVX-512, 1.18-1.22x on a Zen 5 in issue 25's figures; equal on an AVX2-only EPYC),
      else onnxruntime. The two engines' fp32 vectors agree within 1e-4, not to the bit: pass an engine by name
      where bits must match across machines.
    """
    if precision == "bf16":
        return "openvino"
    if precision == "int8" or providers is not None:
        return "onnxruntime"
    return "openvino" if openvino_installed() and "avx512f" in cpu_flags() else "onnxruntime"


@dataclass(frozen=True)
class LoadOptions:
    """:func:`nlu_lite.load`'s settings, checked once, then handed down unchanged.

    ``precision``/``graph`` ``None``: fp32 / fused for a checkpoint, the bundle's own for a bundle.
    ``threads``: onnxruntime intra-op threads (``None``: one per physical core). ``providers``: the
    checked, hashable tuple of :func:`check_providers` (``None``: the CPU). ``offline``/``progress``:
    for fetching files. Build one with :meth:`resolve`, which raises the :class:`InputError` of the
    first bad value; every later step (registry, artifacts, convert, runtime, bundle, pipeline, group)
    reads these fields and checks nothing again.
    """

    precision: str | None = None
    graph: str | None = None
    threads: int | None = None
    providers: tuple[Any, ...] | None = None
    offline: bool | None = None
    progress: bool | None = None
    engine: str = "onnxruntime"

    @classmethod
    def resolve(cls, *, precision: str | None = None, graph: str | None = None, threads: Any = None,
                providers: Any = None, gpu: bool = False, offline: bool | None = None,
                progress: bool | None = None, engine: str | None = None) -> LoadOptions:
        """Check every setting (``gpu=True`` is NLU's spelling of the CUDA provider, then the CPU).
        ``engine``: ``'onnxruntime'`` (default), ``'openvino'`` or ``'auto'`` (:func:`auto_engine`: this
        machine's faster one for the precision); ``precision='bf16'`` is OpenVINO's (it picks the engine when
        none is named), ``'int8'`` onnxruntime's."""
        from .choices import ENGINE_CHOICES, GRAPH_VARIANTS, LOAD_PRECISIONS, check_choice

        if gpu:
            if providers is not None:
                raise InputError("pass gpu=True or providers=[...], not both")
            providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
        if precision is not None:
            check_choice(precision, LOAD_PRECISIONS, "precision", InputError)
        if engine is not None:
            check_choice(engine, ENGINE_CHOICES, "engine", InputError)
        if engine == "auto":
            engine = auto_engine(precision, providers)
        engine = engine or ("openvino" if precision == "bf16" else "onnxruntime")
        if engine == "openvino" and precision == "int8":
            raise InputError("precision='int8' runs on onnxruntime (its int8 graph uses onnxruntime's integer ops); "
                             "with engine='openvino' use precision='fp32' or 'bf16'")
        if engine == "onnxruntime" and precision == "bf16":
            raise InputError("precision='bf16' runs on OpenVINO: pass engine='openvino' (pip install openvino), or "
                             "use precision='fp32' or 'int8' on onnxruntime")
        if engine == "openvino" and (providers is not None):
            raise InputError("providers= and gpu= are onnxruntime's; engine='openvino' runs on the CPU")
        if graph is not None:
            check_choice(graph, GRAPH_VARIANTS, "graph", InputError)
        if threads is not None:
            if isinstance(threads, (bool, np.bool_)) or not isinstance(threads, (int, np.integer)) or threads < 1:
                raise InputError(f"threads must be a positive integer, or None for one per physical core; got {threads!r}")
            threads = int(threads)
        chosen = None if providers is None else check_providers(providers)
        return cls(precision, graph, threads, chosen, offline, progress, engine)
