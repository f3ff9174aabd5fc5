"""Conversion, done once: checkpoint folder -> ``cache_root()/onnx/<key>/model.onnx`` + ``manifest.json``.

The key hashes what decides the file's bytes: the sha256 of config.json and of the
weights file, the converter version, the opset, the precision and the graph variant.
A changed source or converter therefore gets a new entry; an old entry is never reused.

Weights live beside the graph in ``model.onnx.data`` (ONNX external data), each tensor
at a 64 KiB-aligned offset, so onnxruntime maps the file instead of parsing a 100 MB
protobuf into the heap: a cached small BERT opens with a peak RSS of 198 MB instead of
307 MB, and faster. (The word-embedding table is mapped too, but the kernel maps its pages
in large chunks: after the first call most of it is resident anyway.)

Both files are written under temporary names and renamed into place, the data file
first; the manifest is written last. An entry counts only when its manifest matches what
we expect and both files have the size and sha256 it records: a truncated, damaged or
replaced file, or a missing/foreign/damaged manifest, makes ``ensure_onnx`` convert again
(logged as a warning), so a damaged cache repairs itself instead of failing every load.

What a cached load reads (``cache.file_digest``): the graph (``model.onnx``, 18 KB for MiniLM) and
``config.json`` in full; ``model.onnx.data`` and the weights (90-400 MB, 0.1-0.5 s to hash)
only when their identity (inode, size, mtime, ctime) changed since last read, so any write
through the file system, even one that restores mtime, is caught. Before converting, the
source files are read in full once more: bytes that changed under an unchanged identity are
an :class:`IntegrityError`, never a model built from them. ``verify_conversion`` reads
everything (``nlu-lite cache verify``).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from filelock import Timeout

from ..cache import (
    atomic_path,
    cache_root,
    file_digest,
    forget_digest,
    lock_for,
    read_json_object,
    sweep_scratch,
)
from ..choices import GRAPH_VARIANTS, PRECISIONS, GraphVariant, Precision
from ..errors import ConversionError, IntegrityError
from .families import build_model, read_config
from .graph import (
    CONVERTER_VERSION,
    DEFAULT_GRAPH,
    METADATA_KEY,
    OPSET,
    nlu_metadata,
    pending_array,
)
from .weights import load_weights, weights_file

logger = logging.getLogger(__name__)

MANIFEST_FORMAT = 2  # 2: weights in model.onnx.data, recorded in the manifest
EXTERNAL_ALIGNMENT = 1 << 16  # onnxruntime maps external data only at page-aligned offsets (64 KiB: Windows too)
EXTERNAL_MIN_BYTES = 1024  # smaller tensors (scalars, shapes) stay inside the graph


def data_path_for(model_path: str | os.PathLike) -> Path:
    """The external-data file that belongs to ``model_path``: ``<model file name>.data`` beside it."""
    model_path = Path(model_path)
    return model_path.with_name(model_path.name + ".data")


def save_model(model, out_path: str | os.PathLike) -> Path:
    """Write ``model`` as ``out_path`` + ``out_path.data`` (tensors at aligned offsets), atomically.

    The data file is renamed into place before the graph that points at it; on any error
    neither target is touched. ``model``'s large initializers are moved out of the proto
    (it is consumed). An ``OSError`` (a full disk) is a :class:`ConversionError` naming the folder.
    """
    out_path = Path(out_path)
    try:
        return _save_model(model, out_path)
    except OSError as exc:  # a full disk, a read-only folder: say where, and what it needed
        raise ConversionError(f"could not write the converted model to {out_path.parent} ({exc.strerror or exc}); "
                              "free space there or point NLU_LITE_CACHE at a folder with room (a base-size model "
                              "needs about twice its weights' size while it is written)") from exc


def _save_model(model, out_path: Path) -> Path:
    from onnx import TensorProto

    data_path = data_path_for(out_path)
    with atomic_path(out_path) as tmp_model, atomic_path(data_path) as tmp_data:  # data renamed first
        offset = 0
        with open(tmp_data, "wb") as fh:
            for tensor in model.graph.initializer:
                location = {e.key: e.value for e in tensor.external_data}.get("location", "")
                array = pending_array(location) if tensor.data_location == TensorProto.EXTERNAL else None
                if array is not None:  # a tensor too large for the proto: its bytes come from the array
                    raw = memoryview(array.reshape(-1).view(np.uint8))
                else:
                    raw = tensor.raw_data
                    if len(raw) < EXTERNAL_MIN_BYTES:
                        continue
                pad = -offset % EXTERNAL_ALIGNMENT
                fh.write(b"\0" * pad)
                offset += pad
                fh.writelines(raw[start:start + (1 << 28)] for start in range(0, len(raw), 1 << 28))  # 256 MB writes
                tensor.ClearField("raw_data")
                tensor.data_location = TensorProto.EXTERNAL
                del tensor.external_data[:]
                for key, value in (("location", data_path.name), ("offset", str(offset)), ("length", str(len(raw)))):
                    entry = tensor.external_data.add()
                    entry.key, entry.value = key, value
                offset += len(raw)
        tmp_model.write_bytes(model.SerializeToString())
    return out_path


def _check_options(precision: str, graph: str) -> None:
    if precision not in PRECISIONS:
        raise ConversionError(f"precision={precision!r} is not one of {list(PRECISIONS)}")
    if graph not in GRAPH_VARIANTS:
        raise ConversionError(f"graph={graph!r} is not one of {list(GRAPH_VARIANTS)}")


def quantize_int8(source: str | os.PathLike, out_path: str | os.PathLike, keep_kinds: tuple[str, ...] = (),
                  keep_weights: tuple[str, ...] = ()) -> Path:
    """Dynamic int8 of an fp32 nlu_lite ONNX model, written atomically (with its ``.data`` file).

    Per-channel int8 weights; activations quantised per token where that decides accuracy
    (see :mod:`nlu_lite.convert.int8`): all-MiniLM-L6-v2's per-token cosine to fp32 goes from
    0.991 mean / 0.952 min (one scale per MatMul call) to 0.9986 / 0.990 at the same speed
    (``benchmarks/int8.md``). The metadata records ``"precision": "int8"`` and ``"int8_method"``.
    Deterministic: the same source gives the same bytes. ``keep_kinds``: MatMul input kinds kept fp32, and
    ``keep_weights``: the weights (by name) whose MatMuls stay fp32, the self-check's escalation (recorded as
    ``"int8_fp32_kinds"`` and ``"int8_fp32_weights"``).
    """
    import glob

    import onnx

    from .int8 import INT8_METHOD, quantize_model

    model = onnx.load_model(str(source))  # with its external data
    props = {p.key: p.value for p in model.metadata_props}
    metadata = nlu_metadata(model)
    keep, per_token = family_int8_plan(metadata)
    quantize_model(model, metadata, keep + tuple(glob.escape(w) for w in keep_weights), per_token, keep_kinds)
    if METADATA_KEY in props:
        extra = {**({"int8_fp32": list(keep)} if keep else {}), **({"int8_per_token": list(per_token)} if per_token else {}),
                 **({"int8_fp32_kinds": list(keep_kinds)} if keep_kinds else {}),
                 **({"int8_fp32_weights": list(keep_weights)} if keep_weights else {})}
        props[METADATA_KEY] = json.dumps({**metadata, "precision": "int8", "int8_method": INT8_METHOD, **extra},
                                         sort_keys=True)
        onnx.helper.set_model_props(model, props)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    return save_model(model, out_path)


def family_int8_plan(metadata: dict) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The family's int8 plan: weight-name patterns whose MatMuls stay fp32, and those whose inputs are
    quantised per token though no LayerNormalization made them (none for the BERT-shaped families)."""
    from .families import find_family

    family = find_family(metadata.get("model_type"))
    return (family.int8_fp32, family.int8_per_token) if family else ((), ())


def convert_checkpoint(folder: str | os.PathLike, out_path: str | os.PathLike, *, precision: Precision = "fp32",
                       graph: GraphVariant = DEFAULT_GRAPH) -> Path:
    """Convert a BERT-family checkpoint folder (config.json + weights) to ONNX.

    Writes ``out_path`` (the graph) and ``out_path.data`` (its weights, see :func:`save_model`),
    atomically: each is either complete or untouched. No torch.

    >>> convert_checkpoint("all-MiniLM-L6-v2/", "minilm.onnx")  # doctest: +SKIP
    PosixPath('minilm.onnx')
    """

    _check_options(precision, graph)
    folder, out_path = Path(folder), Path(out_path)
    started = time.perf_counter()
    config = read_config(folder)
    model = build_model(config, load_weights(folder), graph=graph, metadata={"precision": precision})
    if precision == "fp32":
        save_model(model, out_path)
    else:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".nlu_lite_fp32_", dir=out_path.parent) as tmp_dir:
            fp32 = save_model(model, Path(tmp_dir) / "model.onnx")
            quantize_int8(fp32, out_path)
    logger.info("converted %s to %s (%s, %s graph) in %.1f s", folder, out_path, precision, graph,
                time.perf_counter() - started)
    return out_path


# --- the cache --------------------------------------------------------------------------


def _write_json(path: Path, data: dict) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def source_sha256(path: str | os.PathLike, memo: Path | None = None, *, reread: bool = False) -> str:
    """sha256 of a source file, remembered by its identity (see :func:`nlu_lite.cache.file_digest`).

    It names the conversion (its key); the bytes themselves are checked where they are used: by
    ``fetch`` for a downloaded model, and in full before any conversion (``_check_sources``).
    """
    return file_digest(path, memo=memo, reread=reread, lookup=not reread)


def _expected(folder: Path, precision: str, graph: str, memo: Path | None) -> dict:
    sources = {}
    for path in (folder / "config.json", weights_file(folder)):
        if not path.is_file():
            raise ConversionError(f"no {path.name} in {folder}")
        sources[path.name] = source_sha256(path, memo)
    expected = {
        "format": MANIFEST_FORMAT,
        "converter_version": CONVERTER_VERSION,
        "opset": OPSET,
        "precision": precision,
        "graph": graph,
        "sources": sources,
    }
    if precision == "int8":  # a new quantisation method is a new entry: an older int8 graph is never served for it
        from .int8 import INT8_METHOD

        expected["int8_method"] = INT8_METHOD
    plugin = _plugin_family(folder)
    return {**expected, "family": plugin} if plugin else expected


def _plugin_family(folder: Path) -> str | None:
    """The name (and module) of the family converting ``folder`` when it was added by register_family: it is
    part of the cache key, so a plug-in's graph and a built-in one for the same files never stand in for each
    other (the built-in families' keys stay as they were)."""
    from .families import family_of, plugins

    added = plugins()
    if not added:  # the usual case: no config.json to read again on every cached load
        return None
    family = family_of(read_config(folder))
    return f"{family.name} ({family.build_model.__module__})" if any(family is f for f in added) else None


def _entry_key(expected: dict) -> str:
    return hashlib.sha256(json.dumps(expected, sort_keys=True).encode("utf-8")).hexdigest()[:24]


def _file_record(path: Path, memo: Path | None) -> dict:
    stat = path.stat()
    return {"file": path.name, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
            "sha256": file_digest(path, memo=memo, reread=True)}  # remembered: the next load need not read it


def _mismatch(path: Path, record: object, memo: Path | None, full: bool) -> str | None:
    """Why ``path`` is not the file ``record`` describes; ``None`` when it is."""
    if not isinstance(record, dict) or record.get("file") != path.name:
        return f"the manifest has no record of {path.name}"
    try:
        size = path.stat().st_size
        if size != record.get("size"):
            return f"{path.name} has {size} bytes, the manifest says {record.get('size')}"
        digest = file_digest(path, memo=memo, reread=full)
    except OSError as exc:
        return f"{path.name} cannot be read ({exc.strerror or exc})"
    if digest != record.get("sha256"):
        return f"{path.name} has sha256 {digest}, the manifest says {record.get('sha256')}"
    return None


def _entry_problem(entry: Path, expected: dict | None, memo: Path | None, full: bool = False) -> str | None:
    """Why the entry cannot be used (``None``: it can). ``expected=None``: check it against its own key."""
    manifest = read_json_object(entry / "manifest.json")
    if manifest is None:
        return "manifest.json is missing or unreadable"
    if expected is None:
        own = {k: manifest.get(k) for k in ("format", "converter_version", "opset", "precision", "graph", "sources")}
        if _entry_key(own) != entry.name:
            return "manifest.json does not describe this entry (its fields were changed)"
    elif {k: manifest.get(k) for k in expected} != expected:
        return "manifest.json describes another conversion"
    model = entry / "model.onnx"
    return _mismatch(model, manifest.get("model"), memo, full) or \
        _mismatch(data_path_for(model), manifest.get("data"), memo, full)


def _check_sources(folder: Path, expected: dict, memo: Path | None) -> None:
    """Read the source files in full before converting: bytes that changed under an unchanged
    identity (a disk error, or a tool that restores timestamps) must not become a model."""
    for name, remembered in expected["sources"].items():
        path = folder / name
        actual = source_sha256(path, memo, reread=True)
        if actual != remembered:
            forget_digest(path, memo=memo)
            raise IntegrityError(
                f"{path} changed without its size or times changing (sha256 {remembered} when last read, now "
                f"{actual}): it is damaged (disk or copy error) or was rewritten by a tool that restores timestamps. "
                "Nothing was converted. For a downloaded model run `nlu-lite download ALIAS --force` (or "
                "`nlu-lite cache verify`); for your own folder, load again to use the new bytes."
            )


def _sweep_entry(entry: Path) -> None:
    """Scratch a killed conversion left in ``entry`` (we hold its lock: no live writer)."""
    if entry.is_dir():
        sweep_scratch(entry.iterdir(), entry / "model.onnx", held=True)


def onnx_cache_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """Where converted models live: ``cache_dir`` or ``cache_root()/onnx``."""
    return Path(cache_dir) if cache_dir is not None else cache_root() / "onnx"


def ensure_onnx(folder: str | os.PathLike, *, precision: Precision = "fp32", cache_dir: str | os.PathLike | None = None,
                graph: GraphVariant = DEFAULT_GRAPH, int8_check: Any = None) -> Path:
    """The cached ONNX model for a checkpoint folder, converting it the first time.

    Returns ``<cache>/onnx/<key>/model.onnx`` (weights in ``model.onnx.data`` beside it); the entry's ``manifest.json`` records the
    source files' sha256, converter version, opset, precision, graph variant and source
    folder. Two processes asking at once convert once (a file lock per entry).

    ``int8_check`` (int8 only): a callable ``check(fp32_path, int8_path, requantize) -> report`` with a ``key``
    (a dict, part of the entry's key) that measures the int8 graph against fp32 and may quantise again with
    more kept fp32 (``requantize(kinds, weights)``: input kinds, weight names); its report is stored in the manifest (``"int8_report"``) and read
    back with :func:`int8_report` (:mod:`nlu_lite.int8_check` builds it: the tokenizer lives right of here).

    >>> path = ensure_onnx("all-MiniLM-L6-v2/")  # doctest: +SKIP
    >>> OnnxEncoder.from_path(path)  # doctest: +SKIP
    """
    _check_options(precision, graph)
    folder = Path(folder).resolve()
    base = onnx_cache_dir(cache_dir)
    memo = None if cache_dir is None else base / "hashes"
    read_config(folder)  # a clear error for a folder that is not a checkpoint, before hashing
    expected = _expected(folder, precision, graph, memo)
    if precision == "int8" and int8_check is not None:
        expected["int8_check"] = dict(int8_check.key)
    entry = base / _entry_key(expected)
    model = entry / "model.onnx"
    problem = _entry_problem(entry, expected, memo)
    if problem is None:
        return model
    if entry.exists():
        logger.warning("cached ONNX model %s cannot be used (%s); converting again", entry, problem)
    try:
        lock = lock_for(model)
        lock.acquire()
    except OSError as exc:  # a read-only cache with no usable entry
        raise ConversionError(
            f"the ONNX model for {folder} is not in the conversion cache {base} ({problem}), and that folder "
            f"is not writable ({exc.strerror or exc}). Set NLU_LITE_CACHE to a writable folder, or load the model "
            "once where the cache is writable and copy the cache here."
        ) from exc
    try:
        if _entry_problem(entry, expected, memo) is None:  # another process finished it while we waited
            return model
        _sweep_entry(entry)
        _check_sources(folder, expected, memo)
        (entry / "manifest.json").unlink(missing_ok=True)  # the entry is invalid until rewritten
        report = None
        if precision == "int8":
            fp32 = ensure_onnx(folder, precision="fp32", cache_dir=cache_dir, graph=graph)
            quantize_int8(fp32, model)
            if int8_check is not None:
                report = int8_check(fp32, model, lambda kinds, weights=(): quantize_int8(
                    fp32, model, keep_kinds=tuple(kinds), keep_weights=tuple(weights)))
        else:
            convert_checkpoint(folder, model, precision="fp32", graph=graph)
        manifest = {**expected, **({"int8_report": report} if report is not None else {}),
                    "source_folder": str(folder), "model": _file_record(model, memo),
                    "data": _file_record(data_path_for(model), memo),
                    "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        _write_json(entry / "manifest.json", manifest)
    finally:
        lock.release()
    logger.info("cached ONNX model for %s at %s", folder, model)
    return model


def int8_report(model_path: str | os.PathLike) -> dict | None:
    """The int8 self-check's report stored with a cached int8 graph (None: no check ran for it)."""
    manifest = Path(model_path).parent / "manifest.json"
    try:
        return json.loads(manifest.read_text(encoding="utf-8")).get("int8_report")
    except (OSError, ValueError):
        return None


def verify_conversion(entry: str | os.PathLike, *, remove: bool = True) -> list[str]:
    """Read a conversion cache entry in full; what is wrong with it (empty: nothing).

    Its manifest must describe the entry (its key) and both files must have the recorded size
    and sha256. A damaged entry is removed (``remove``), unless a process is converting it now;
    the next load converts it again. What ``nlu-lite cache verify`` runs.
    """
    entry = Path(entry)
    problem = _entry_problem(entry, None, None, full=True)
    if problem is None:
        return []
    if remove:
        lock = lock_for(entry / "model.onnx")
        try:
            lock.acquire(timeout=0)
        except (Timeout, OSError) as exc:  # being converted now, or a read-only folder: report, do not remove
            logger.debug("not removing %s: %r", entry, exc)
            return [problem]
        try:
            shutil.rmtree(entry)
        finally:
            lock.release()
    return [problem]
