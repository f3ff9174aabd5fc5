"""A checkpoint folder's weights as ``{name: float32 array}``, names in BertModel's spelling.

A weights file is read in two steps: its index first (the safetensors header, or the
pickle's tensor and storage records: names, shapes, dtypes, byte sizes), checked against
what config.json implies; then only the tensors BertModel uses, and no more bytes than the
config implies. A small file that describes huge tensors is refused before anything is
allocated or decompressed.
"""
from __future__ import annotations

import json
import logging
import math
import os
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from ..errors import ArtifactNotFoundError, ConversionError
from .families import (
    Family,
    check_shapes,
    expected_shapes,
    family_of,
    parameter_count,
    read_config,
)
from .torch_pickle import TorchCheckpoint, open_torch_checkpoint

logger = logging.getLogger(__name__)

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
FLOAT_DTYPES = ("float16", "bfloat16", "float32", "float64")
MAX_HEADER_BYTES = 16 << 20  # a BERT header is ~40 KB; 1,024 layers make ~2 MB
# safetensors dtype -> (numpy-style name, bytes per element); names without a numpy dtype are widened or refused
_SAFETENSORS_DTYPES = {
    "F64": ("float64", 8), "F32": ("float32", 4), "F16": ("float16", 2), "BF16": ("bfloat16", 2),
    "I64": ("int64", 8), "I32": ("int32", 4), "I16": ("int16", 2), "I8": ("int8", 1),
    "U64": ("uint64", 8), "U32": ("uint32", 4), "U16": ("uint16", 2), "U8": ("uint8", 1), "BOOL": ("bool", 1),
    "F8_E4M3": ("float8_e4m3", 1), "F8_E5M2": ("float8_e5m2", 1),
}

T = TypeVar("T")


def weights_file(folder: str | os.PathLike) -> Path:
    """The weights file ``load_weights`` reads: model.safetensors, else pytorch_model.bin."""
    folder = Path(folder)
    for name in WEIGHT_FILES:
        if (folder / name).is_file():
            return folder / name
    if any((folder / f"{name}.index.json").is_file() for name in WEIGHT_FILES):
        raise ConversionError(
            f"{folder} holds a sharded checkpoint; nlu_lite reads one weights file. "
            "Merge the shards into model.safetensors first."
        )
    raise ArtifactNotFoundError(
        f"no weights in {folder}: expected one of {', '.join(WEIGHT_FILES)}. "
        "Point nlu_lite at the folder that holds config.json and the weights."
    )


@dataclass(frozen=True)
class _Entry:
    dtype: str  # safetensors' code, e.g. "F32"
    shape: tuple[int, ...]
    begin: int  # byte offsets into the data section
    end: int


class SafetensorsCheckpoint:
    """A model.safetensors file's header, validated; tensor bytes are read only by :meth:`read`."""

    def __init__(self, path: Path, entries: Mapping[str, _Entry], data_start: int) -> None:
        self.path = path
        self._entries = dict(entries)
        self._data_start = data_start

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        return {name: e.shape for name, e in self._entries.items()}

    @property
    def dtypes(self) -> dict[str, str]:
        return {name: _SAFETENSORS_DTYPES.get(e.dtype, (e.dtype, 0))[0] for name, e in self._entries.items()}

    def read(self, names: Iterable[str] | None = None, *, max_elements: int | None = None) -> dict[str, np.ndarray]:
        """The named tensors (all when ``names`` is None); at most ``max_elements`` numbers in all."""
        chosen = list(self._entries) if names is None else list(names)
        total = sum(math.prod(self._entries[n].shape) for n in chosen)
        if max_elements is not None and total > max_elements:
            raise ConversionError(f"{self.path}: the tensors to read hold {total:,} numbers, more than the "
                                  f"{max_elements:,} that config.json implies")
        out: dict[str, np.ndarray] = {}
        with open(self.path, "rb") as fh:
            for name in chosen:
                entry = self._entries[name]
                if entry.dtype not in _SAFETENSORS_DTYPES or entry.dtype.startswith("F8"):
                    raise ConversionError(f"{self.path}: tensor {name!r} has dtype {entry.dtype}, which nlu_lite "
                                          "cannot read; re-save the checkpoint with float32 or float16 weights")
                fh.seek(self._data_start + entry.begin)
                raw = bytearray(entry.end - entry.begin)  # writable arrays, like safetensors' own reader gives
                if fh.readinto(raw) != len(raw):
                    raise ConversionError(f"{self.path} is truncated: tensor {name!r} is incomplete; download it again")
                out[name] = _from_bytes(raw, _SAFETENSORS_DTYPES[entry.dtype][0]).reshape(entry.shape)
        return out


def _from_bytes(raw: bytes | bytearray, dtype: str) -> np.ndarray:
    if dtype == "bfloat16":  # numpy has no bfloat16: widen to float32 (bf16 is float32's upper half)
        return (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
    return np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<")).astype(dtype, copy=False)


def _header_entry(path: Path, name: str, info: object, data_len: int) -> _Entry:
    def bad(what: str) -> ConversionError:
        return ConversionError(f"{path}: the safetensors header entry {name!r} {what}; the file is corrupt, "
                               "download it again")

    if not isinstance(info, dict):
        raise bad("is not an object")
    dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
    if not isinstance(dtype, str):
        raise bad(f"has dtype {dtype!r}")
    if not isinstance(shape, list) or not all(type(n) is int and n >= 0 for n in shape):
        raise bad(f"has shape {shape!r}")
    if (not isinstance(offsets, list) or len(offsets) != 2 or not all(type(n) is int for n in offsets)
            or not 0 <= offsets[0] <= offsets[1] <= data_len):
        raise bad(f"has data_offsets {offsets!r}, outside the {data_len:,} bytes of tensor data (truncated?)")
    itemsize = _SAFETENSORS_DTYPES.get(dtype, (dtype, 0))[1]
    if itemsize and offsets[1] - offsets[0] != math.prod(shape) * itemsize:
        raise bad(f"declares shape {shape} of {dtype} but {offsets[1] - offsets[0]:,} bytes")
    return _Entry(dtype, tuple(shape), offsets[0], offsets[1])


def open_safetensors(path: str | os.PathLike) -> SafetensorsCheckpoint:
    """The validated header of a safetensors file: every tensor's bytes lie inside the file and match its shape."""
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(8)
        if len(head) != 8:
            raise ConversionError(f"{path} is too short to be safetensors ({size} bytes); download it again")
        (header_len,) = struct.unpack("<Q", head)
        if header_len > min(size - 8, MAX_HEADER_BYTES):
            raise ConversionError(f"{path}: the safetensors header claims {header_len:,} bytes but the file has "
                                  f"{size:,} (limit {MAX_HEADER_BYTES:,}); the file is truncated or not safetensors")
        raw = fh.read(header_len)
    try:
        header = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ConversionError(f"{path} could not be read as safetensors: its header is not JSON ({exc})") from None
    if not isinstance(header, dict):
        raise ConversionError(f"{path} could not be read as safetensors: its header is a JSON {type(header).__name__}")
    data_len = size - 8 - header_len
    entries = {name: _header_entry(path, name, info, data_len) for name, info in header.items() if name != "__metadata__"}
    return SafetensorsCheckpoint(path, entries, 8 + header_len)


def open_checkpoint(path: str | os.PathLike) -> SafetensorsCheckpoint | TorchCheckpoint:
    """A weights file's index (names, shapes, dtypes), read without its tensor data."""
    path = Path(path)
    return open_safetensors(path) if path.suffix == ".safetensors" else open_torch_checkpoint(path)


def normalise_names(raw: Mapping[str, T], where: str | os.PathLike = "the checkpoint",
                    family: Family | None = None) -> dict[str, T]:
    """The builder's names (``family``'s rename; BERT's by default): model prefix stripped,
    TF-era ``gamma``/``beta`` renamed, heads and buffers dropped."""
    if family is None:
        from .bert import (
            FAMILY as family,  # a bare BertModel state_dict: the default family
        )
    out: dict[str, T] = {}
    for name, value in raw.items():
        key = family.rename(name)
        if key is None:
            continue  # pre-training heads, buffers, anything the encoder does not use
        if key in out:
            raise ConversionError(f"{where} has both {name!r} and another tensor that maps to {key!r}; "
                                  "keep one of them (re-save the state_dict)")
        out[key] = value
    return out


def _check_dtypes(dtypes: Mapping[str, str], names: Mapping[str, str], path: Path) -> None:
    for stored in names.values():
        if dtypes[stored] not in FLOAT_DTYPES:
            raise ConversionError(
                f"{path}: weight {stored!r} is stored as {dtypes[stored]}; nlu_lite converts {', '.join(FLOAT_DTYPES)} "
                "weights. Re-save the checkpoint with float weights (quantised checkpoints are not supported)"
            )


def load_weights(folder: str | os.PathLike, config: Any = None) -> dict[str, np.ndarray]:
    """The BertModel weights of a checkpoint folder, as float32 numpy arrays.

    model.safetensors is preferred; pytorch_model.bin is read through a restricted
    unpickler (no torch, no code from the file runs). A ``bert.`` prefix is stripped and
    pre-training heads (``cls.*``) are dropped without being read.

    ``config`` (default: the folder's config.json, when it has one) is checked against the
    file's index before any tensor data is read: names, shapes and dtypes must be the ones it
    implies, and no more numbers than it implies are read or decompressed. Only the tensors
    BertModel uses are returned. Without a config every BertModel-named tensor is read.

    >>> weights = load_weights("path/to/bert")  # doctest: +SKIP
    >>> weights["encoder.layer.0.attention.self.query.weight"].shape  # doctest: +SKIP
    (768, 768)
    """
    folder = Path(folder)
    path = weights_file(folder)
    if config is None and (folder / "config.json").is_file():
        config = read_config(folder)
    checkpoint = open_checkpoint(path)
    stored_shapes = checkpoint.shapes
    family = family_of(config) if config is not None else None
    names = normalise_names({name: name for name in stored_shapes}, path, family)  # builder's name -> name in the file
    budget = None
    if config is not None:
        shapes = {key: stored_shapes[stored] for key, stored in names.items()}
        with_pooler = check_shapes(config, shapes, config_name=str(folder / "config.json"), weights_name=str(path),
                                   family=family)
        names = {key: names[key] for key in expected_shapes(config, with_pooler=with_pooler, family=family)}
        _check_dtypes(checkpoint.dtypes, names, path)
        budget = parameter_count(config, with_pooler=with_pooler, family=family)
    raw = checkpoint.read(names.values(), max_elements=budget)
    weights = {key: raw[stored] for key, stored in names.items()}
    for name, array in weights.items():
        if np.issubdtype(array.dtype, np.floating) and array.dtype != np.float32:
            weights[name] = array.astype(np.float32)
        if np.issubdtype(weights[name].dtype, np.floating) and not np.isfinite(weights[name]).all():
            bad = int((~np.isfinite(weights[name])).sum())
            raise ConversionError(f"{path}: weight {names[name]!r} holds {bad:,} NaN or infinite value(s); every "
                                  "vector it touches would be NaN. The file is damaged or the training diverged: "
                                  "download the model again, or re-save a healthy checkpoint")
    logger.debug("read %d of the %d tensors in %s", len(weights), len(stored_shapes), path)
    return weights
