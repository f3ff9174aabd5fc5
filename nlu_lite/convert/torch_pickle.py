"""Read ``pytorch_model.bin`` into numpy without torch, and without running its pickle.

A checkpoint is untrusted input: a pickle may name any importable callable and call it.
This reader's unpickler resolves only the handful of names that torch's tensor format
uses (``torch._utils._rebuild_tensor_v2``, ``torch.FloatStorage`` and its siblings,
``collections.OrderedDict``) to small stand-ins of our own; any other name raises
:class:`~nlu_lite.errors.UnsafeCheckpointError` before anything is called.

Both formats torch writes are read: the zip archive (torch >= 1.6, the default) and the
legacy stream of consecutive pickles followed by raw storages.
"""
from __future__ import annotations

import _compat_pickle
import collections
import logging
import os
import pickle
import struct
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConversionError, UnsafeCheckpointError

logger = logging.getLogger(__name__)

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C

# torch storage class name -> numpy dtype ("bfloat16" has no numpy dtype: widened on read)
_STORAGE_DTYPES: dict[str, Any] = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "BFloat16Storage": "bfloat16",
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
    "UntypedStorage": np.uint8,
}


def _refuse_state(self: object, state: object) -> None:
    # pickle's BUILD opcode would otherwise set attributes on our stand-ins
    raise UnsafeCheckpointError(
        f"the checkpoint tries to set the state of {type(self).__name__}; "
        "a tensor checkpoint never does this. Refusing to read it."
    )


@dataclass(frozen=True)
class _StorageType:
    name: str

    __setstate__ = _refuse_state

    @property
    def itemsize(self) -> int:
        dtype = _STORAGE_DTYPES[self.name]
        return 2 if dtype == "bfloat16" else np.dtype(dtype).itemsize


@dataclass(frozen=True)
class _StorageRef:
    """A storage named by the pickle; its bytes are looked up after unpickling."""

    key: str
    type: _StorageType
    numel: int

    __setstate__ = _refuse_state


@dataclass(frozen=True)
class _TensorRef:
    storage: _StorageRef
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]

    __setstate__ = _refuse_state


class _Callable:
    """What ``find_class`` hands the unpickler: a call it may make, and nothing else."""

    __slots__ = ("_name", "_fn")

    def __init__(self, name: str, fn: Callable[..., Any]) -> None:
        self._name = name
        self._fn = fn

    def __call__(self, *args: Any) -> Any:
        return self._fn(*args)

    __setstate__ = _refuse_state


def _ints(value: Any, what: str) -> tuple[int, ...]:
    if not isinstance(value, tuple) or not all(type(v) is int for v in value):
        raise ConversionError(f"malformed tensor record in checkpoint: {what} is {value!r}")
    return value


def _rebuild_tensor(storage: Any, offset: Any, size: Any, stride: Any, *_rest: Any) -> _TensorRef:
    # _rest: requires_grad, backward_hooks, metadata (all irrelevant to inference)
    if not isinstance(storage, _StorageRef) or type(offset) is not int:
        raise ConversionError("malformed tensor record in checkpoint: expected (storage, offset, size, stride)")
    return _TensorRef(storage, offset, _ints(size, "size"), _ints(stride, "stride"))


def _rebuild_parameter(data: Any, *_rest: Any) -> Any:
    return data


def _ordered_dict(*args: Any) -> collections.OrderedDict:
    return collections.OrderedDict(*args)


def _size(*args: Any) -> tuple:
    return tuple(*args)


_ALLOWED: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): _Callable("OrderedDict", _ordered_dict),
    ("torch._utils", "_rebuild_tensor_v2"): _Callable("_rebuild_tensor_v2", _rebuild_tensor),
    ("torch._utils", "_rebuild_tensor"): _Callable("_rebuild_tensor", _rebuild_tensor),
    ("torch._utils", "_rebuild_parameter"): _Callable("_rebuild_parameter", _rebuild_parameter),
    ("torch", "Size"): _Callable("Size", _size),
    **{("torch", name): _StorageType(name) for name in _STORAGE_DTYPES},
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only the names in ``_ALLOWED``; storages through ``storage_lookup``."""

    def __init__(self, file: Any, path: Path, storage_lookup: Callable[[tuple], _StorageRef] | None) -> None:
        super().__init__(file)
        self._path = path
        self._storage_lookup = storage_lookup

    def find_class(self, module: str, name: str) -> Any:
        # Python 2 spellings (protocols 0-2 write "__builtin__"), mapped as pickle itself does
        module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise UnsafeCheckpointError(
                f"{self._path} asks to load '{module}.{name}', which is not part of a tensor "
                "checkpoint; nlu_lite refused to read it and ran nothing from it. If you trust "
                "this file, re-save its state_dict as model.safetensors "
                "(safetensors.torch.save_file) and point nlu_lite at that."
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        if self._storage_lookup is None:
            raise UnsafeCheckpointError(f"{self._path}: unexpected persistent reference {pid!r}")
        if not isinstance(pid, tuple) or len(pid) < 5 or pid[0] != "storage":
            raise ConversionError(f"{self._path}: unknown persistent reference {pid!r} in checkpoint")
        return self._storage_lookup(pid)


def _storage_ref(pid: tuple, path: Path) -> _StorageRef:
    _, storage_type, key, _location, numel = pid[:5]
    if not isinstance(storage_type, _StorageType) or type(numel) is not int or not isinstance(key, str):
        raise ConversionError(f"{path}: malformed storage record {pid!r}")
    if len(pid) > 5 and pid[5] is not None:
        raise ConversionError(
            f"{path} uses storage views from a very old torch; re-save it with a recent torch "
            "or as model.safetensors"
        )
    return _StorageRef(key, storage_type, numel)


def _as_array(raw: bytes | memoryview, storage_type: _StorageType, big_endian: bool) -> np.ndarray:
    dtype = _STORAGE_DTYPES[storage_type.name]
    if dtype == "bfloat16":
        half = np.frombuffer(raw, dtype=">u2" if big_endian else "<u2").astype(np.uint32)
        return (half << 16).view(np.float32)
    array = np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder(">" if big_endian else "<"))
    return array.astype(array.dtype.newbyteorder("="), copy=False)


def _materialise(ref: _TensorRef, storages: Mapping[str, np.ndarray], path: Path) -> np.ndarray:
    data = storages.get(ref.storage.key)
    if data is None:
        raise ConversionError(f"{path}: tensor data {ref.storage.key!r} is missing from the checkpoint")
    if len(ref.size) != len(ref.stride) or any(s < 0 for s in ref.size) or any(s < 0 for s in ref.stride):
        raise ConversionError(f"{path}: malformed tensor shape {ref.size} / strides {ref.stride}")
    count = int(np.prod(ref.size, dtype=np.int64)) if ref.size else 1
    if count:
        last = ref.offset + sum((n - 1) * s for n, s in zip(ref.size, ref.stride))
        if ref.offset < 0 or last >= data.size:
            raise ConversionError(
                f"{path}: a tensor reaches past the end of its storage {ref.storage.key!r}; "
                "the checkpoint is truncated or corrupt"
            )
    else:
        return np.zeros(ref.size, dtype=data.dtype)
    item = data.itemsize
    view = np.lib.stride_tricks.as_strided(
        data[ref.offset:], shape=ref.size, strides=[s * item for s in ref.stride], writeable=False
    )
    return np.array(view, order="C")  # a copy: the storage buffer is freed, 0-d stays 0-d


def _collect(obj: Any, path: Path, storages: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    if isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping):
        raise ConversionError(
            f"{path} holds a {type(obj).__name__}, not a state_dict (a mapping of names to tensors); "
            "save model.state_dict() instead of the model object"
        )
    out: dict[str, np.ndarray] = {}
    for name, value in obj.items():
        if isinstance(value, _TensorRef) and isinstance(name, str):
            out[name] = _materialise(value, storages, path)
        else:
            logger.debug("%s: skipping non-tensor entry %r", path, name)
    if not out:
        raise ConversionError(f"{path} holds no tensors")
    return out


def _load_zip(path: Path) -> dict[str, np.ndarray]:
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        pickles = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
        if len(pickles) != 1:
            raise ConversionError(f"{path} is a zip file but not a torch checkpoint (no single data.pkl)")
        prefix = pickles[0][: -len("data.pkl")]
        big_endian = False
        if prefix + "byteorder" in names:
            big_endian = zf.read(prefix + "byteorder").strip() == b"big"
        refs: dict[str, _StorageRef] = {}

        def lookup(pid: tuple) -> _StorageRef:
            ref = _storage_ref(pid, path)
            refs.setdefault(ref.key, ref)
            return ref

        with zf.open(pickles[0]) as fh:
            obj = _load_pickle(fh, path, lookup)
        storages = {}
        for key, ref in refs.items():
            member = f"{prefix}data/{key}"
            try:
                raw = zf.read(member)
            except KeyError:
                raise ConversionError(f"{path}: storage {member} is missing; the file is truncated or corrupt") from None
            if len(raw) < ref.numel * ref.type.itemsize:
                raise ConversionError(f"{path}: storage {member} is shorter than its header says")
            storages[key] = _as_array(raw, ref.type, big_endian)
    return _collect(obj, path, storages)


def _load_legacy(path: Path) -> dict[str, np.ndarray]:
    with open(path, "rb") as fh:
        magic = _load_pickle(fh, path, None)
        if magic != _LEGACY_MAGIC:
            raise ConversionError(
                f"{path} is neither a zip nor a legacy torch checkpoint; expected a file written by torch.save"
            )
        _load_pickle(fh, path, None)  # protocol version
        sys_info = _load_pickle(fh, path, None)
        big_endian = isinstance(sys_info, dict) and sys_info.get("little_endian") is False
        refs: dict[str, _StorageRef] = {}

        def lookup(pid: tuple) -> _StorageRef:
            ref = _storage_ref(pid, path)
            refs.setdefault(ref.key, ref)
            return ref

        obj = _load_pickle(fh, path, lookup)
        keys = _load_pickle(fh, path, None)
        if not isinstance(keys, list) or set(keys) != set(refs):
            raise ConversionError(f"{path}: the storage list does not match the tensors; the file is corrupt")
        storages = {}
        for key in keys:
            ref = refs[key]
            header = fh.read(8)
            if len(header) != 8:
                raise ConversionError(f"{path} is truncated")
            (numel,) = struct.unpack(">q" if big_endian else "<q", header)
            nbytes = numel * ref.type.itemsize
            raw = fh.read(nbytes)
            if numel < ref.numel or len(raw) != nbytes:
                raise ConversionError(f"{path} is truncated: storage {key} is incomplete")
            storages[key] = _as_array(raw, ref.type, big_endian)
    return _collect(obj, path, storages)


def _load_pickle(fh: Any, path: Path, lookup: Callable[[tuple], _StorageRef] | None) -> Any:
    try:
        return _RestrictedUnpickler(fh, path, lookup).load()
    except (UnsafeCheckpointError, ConversionError):
        raise
    except Exception as exc:  # a malformed pickle raises many kinds of errors
        raise ConversionError(f"{path} could not be read as a torch checkpoint: {exc}") from exc


def load_torch_checkpoint(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The tensors of a ``torch.save``-d state dict as numpy arrays; torch is never imported.

    Raises :class:`UnsafeCheckpointError` when the pickle names anything but tensor
    rebuilding, :class:`ConversionError` when the file is not a readable checkpoint.

    >>> weights = load_torch_checkpoint("bert/pytorch_model.bin")  # doctest: +SKIP
    >>> weights["embeddings.word_embeddings.weight"].shape  # doctest: +SKIP
    (30522, 768)
    """
    path = Path(path)
    if path.stat().st_size == 0:
        raise ConversionError(f"{path} is empty; download or save the checkpoint again")
    if zipfile.is_zipfile(path):
        return _load_zip(path)
    with open(path, "rb") as fh:
        if fh.read(4) == b"PK\x03\x04":
            raise ConversionError(f"{path} is a truncated or corrupt zip checkpoint; download or save it again")
    return _load_legacy(path)


__all__ = ["load_torch_checkpoint"]
