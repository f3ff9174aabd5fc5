"""Read ``pytorch_model.bin`` into numpy without torch, and without running its pickle.

A checkpoint is untrusted input: a pickle may name any importable callable and call it.
This reader's unpickler resolves only the handful of names that torch's tensor format
uses (``torch._utils._rebuild_tensor_v2``, ``torch.FloatStorage`` and its siblings,
``collections.OrderedDict``) to small stand-ins of our own; any other name raises
:class:`~nlu_lite.errors.UnsafeCheckpointError` before anything is called.

Both formats torch writes are read: the zip archive (torch >= 1.6, the default) and the
legacy stream of consecutive pickles followed by raw storages.

Reading is two steps. :func:`open_torch_checkpoint` reads only the pickle (at most
``MAX_PICKLE_BYTES``) and each storage's record: its declared element count, checked against
the zip member's declared size or the bytes left in a legacy file. :meth:`TorchCheckpoint.read`
then reads the storages of the tensors asked for, refusing before any decompression when they
would hold more than ``max_elements`` numbers or inflate more than real weights do.
"""
from __future__ import annotations

import _compat_pickle
import collections
import io
import logging
import os
import pickle
import struct
import zipfile
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConversionError, UnsafeCheckpointError

logger = logging.getLogger(__name__)

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
MAX_PICKLE_BYTES = 16 << 20  # a BERT state dict's pickle is ~50 KB; 1,024 layers make ~3 MB
# torch stores storages uncompressed; a compressed one may shrink as real weights do (~1.1x),
# not as a block of zeros does (1000x): refuse to inflate one past this ratio (+ slack for small ones)
MAX_INFLATION = 32
_INFLATION_SLACK = 1 << 20
# what zipfile raises for a damaged archive (RuntimeError: an encrypted member)
_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError, RuntimeError)

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

    @property
    def dtype_name(self) -> str:
        dtype = _STORAGE_DTYPES[self.name]
        return "bfloat16" if dtype == "bfloat16" else np.dtype(dtype).name


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

    __slots__ = ("_fn", "_name")

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
    if not isinstance(storage_type, _StorageType) or type(numel) is not int or numel < 0 or not isinstance(key, str):
        raise ConversionError(f"{path}: malformed storage record {pid!r}")
    if len(pid) > 5 and pid[5] is not None:
        raise ConversionError(
            f"{path} uses storage views from a very old torch; re-save it with a recent torch "
            "or as model.safetensors"
        )
    return _StorageRef(key, storage_type, numel)


@dataclass(frozen=True)
class _Stored:
    """Where a storage's bytes are (a zip member, or an offset in a legacy file) and how many elements it declares."""

    type: _StorageType
    numel: int
    member: str = ""
    offset: int = 0

    @property
    def nbytes(self) -> int:
        return self.numel * self.type.itemsize


def _as_array(raw: bytes | bytearray | memoryview, storage_type: _StorageType, big_endian: bool) -> np.ndarray:
    dtype = _STORAGE_DTYPES[storage_type.name]
    if dtype == "bfloat16":
        half = np.frombuffer(raw, dtype=">u2" if big_endian else "<u2").astype(np.uint32)
        return (half << 16).view(np.float32)
    array = np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder(">" if big_endian else "<"))
    return array.astype(array.dtype.newbyteorder("="), copy=False)


def _reach(ref: _TensorRef, path: Path) -> int:
    """How many elements of its storage a tensor record reaches (0 for an empty tensor); checks the record."""
    if len(ref.size) != len(ref.stride) or any(s < 0 for s in ref.size) or any(s < 0 for s in ref.stride):
        raise ConversionError(f"{path}: malformed tensor shape {ref.size} / strides {ref.stride}")
    if ref.offset < 0:
        raise ConversionError(f"{path}: a tensor starts before its storage {ref.storage.key!r} (offset {ref.offset})")
    if 0 in ref.size:
        return 0
    return ref.offset + sum((n - 1) * s for n, s in zip(ref.size, ref.stride)) + 1


def _materialise(ref: _TensorRef, data: np.ndarray, path: Path) -> np.ndarray:
    reach = _reach(ref, path)
    if not reach:
        return np.zeros(ref.size, dtype=data.dtype)
    if reach > data.size:
        raise ConversionError(
            f"{path}: a tensor reaches past the end of its storage {ref.storage.key!r}; "
            "the checkpoint is truncated or corrupt"
        )
    item = data.itemsize
    view = np.lib.stride_tricks.as_strided(
        data[ref.offset:], shape=ref.size, strides=[s * item for s in ref.stride], writeable=False
    )
    return np.array(view, order="C")  # a copy: the storage buffer is freed, 0-d stays 0-d


def _collect(obj: Any, path: Path) -> dict[str, _TensorRef]:
    if isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping):
        raise ConversionError(
            f"{path} holds a {type(obj).__name__}, not a state_dict (a mapping of names to tensors); "
            "save model.state_dict() instead of the model object"
        )
    out: dict[str, _TensorRef] = {}
    for name, value in obj.items():
        if isinstance(value, _TensorRef) and isinstance(name, str):
            out[name] = value
        else:
            logger.debug("%s: skipping non-tensor entry %r", path, name)
    if not out:
        raise ConversionError(f"{path} holds no tensors")
    return out


class TorchCheckpoint:
    """A ``torch.save``-d state dict's tensor and storage records; tensor data is read only by :meth:`read`."""

    def __init__(self, path: Path, tensors: Mapping[str, _TensorRef], storages: Mapping[str, _Stored],
                 big_endian: bool) -> None:
        self.path = path
        self._tensors = dict(tensors)
        self._storages = dict(storages)
        self._big_endian = big_endian

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        return {name: ref.size for name, ref in self._tensors.items()}

    @property
    def dtypes(self) -> dict[str, str]:
        return {name: self._storages[ref.storage.key].type.dtype_name for name, ref in self._tensors.items()}

    def read(self, names: Iterable[str] | None = None, *, max_elements: int | None = None) -> dict[str, np.ndarray]:
        """The named tensors (all when ``names`` is None) as numpy arrays.

        Their storages are read whole; ``max_elements`` bounds the elements those storages
        declare, checked before any of them is read or decompressed.
        """
        chosen = {name: self._tensors[name] for name in (self._tensors if names is None else names)}
        reach: dict[str, int] = {}
        for ref in chosen.values():
            key = ref.storage.key
            reach[key] = max(reach.get(key, 0), _reach(ref, self.path))
            if reach[key] > self._storages[key].numel:
                raise ConversionError(
                    f"{self.path}: a tensor reaches past the end of its storage {key!r}; "
                    "the checkpoint is truncated or corrupt"
                )
        declared = sum(self._storages[key].numel for key in reach)
        if max_elements is not None and declared > max_elements:
            key = max(reach, key=lambda k: self._storages[k].numel)
            users = sorted(n for n, ref in chosen.items() if ref.storage.key == key)[:2]
            raise ConversionError(
                f"{self.path}: the storages behind the weights config.json implies declare {declared:,} elements, "
                f"but those weights hold {max_elements:,}: storage {key!r} (of {users}) alone declares "
                f"{self._storages[key].numel:,}. Refusing to read or decompress them; re-save the state_dict "
                "(torch.save(model.state_dict())) or save it as model.safetensors"
            )
        data = self._read_zip(reach) if any(self._storages[k].member for k in reach) else self._read_legacy(reach)
        return {name: _materialise(ref, data[ref.storage.key], self.path) for name, ref in chosen.items()}

    def _read_zip(self, keys: Iterable[str]) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        member = ""
        try:
            with zipfile.ZipFile(self.path) as zf:
                for key in keys:
                    stored = self._storages[key]
                    member = stored.member
                    info = zf.getinfo(member)
                    if info.compress_type != zipfile.ZIP_STORED and \
                            stored.nbytes > MAX_INFLATION * info.compress_size + _INFLATION_SLACK:
                        raise ConversionError(
                            f"{self.path}: storage {member} would inflate from {info.compress_size:,} to "
                            f"{stored.nbytes:,} bytes, which weights never do; refusing to decompress it. "
                            "Re-save the checkpoint with torch.save or as model.safetensors"
                        )
                    raw = bytearray(stored.nbytes)
                    with zf.open(info) as fh:
                        got = fh.readinto(raw)  # reads (and inflates) at most the declared size
                    if got != stored.nbytes:
                        raise ConversionError(f"{self.path}: storage {member} is shorter than its header says")
                    out[key] = _as_array(raw, stored.type, self._big_endian)
        except _ZIP_ERRORS as exc:
            raise ConversionError(f"{self.path}: storage {member or '?'} could not be read ({exc}); "
                                  "the file is corrupt, download or save it again") from None
        return out

    def _read_legacy(self, keys: Iterable[str]) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        with open(self.path, "rb") as fh:
            for key in keys:
                stored = self._storages[key]
                fh.seek(stored.offset)
                raw = bytearray(stored.nbytes)  # within the file: checked by _index_legacy
                if fh.readinto(raw) != stored.nbytes:
                    raise ConversionError(f"{self.path} is truncated: storage {key} is incomplete")
                out[key] = _as_array(raw, stored.type, self._big_endian)
        return out


def _byteorder(zf: zipfile.ZipFile, info: zipfile.ZipInfo | None, path: Path) -> bool:
    """Whether the archive's storages are big-endian (its ``byteorder`` member says 'little' or 'big')."""
    if info is None:
        return False
    if info.file_size > 16:
        raise ConversionError(f"{path}: member {info.filename} is {info.file_size:,} bytes; torch writes "
                              "'little' or 'big' there. The file is corrupt or not a torch checkpoint")
    with zf.open(info) as fh:
        value = fh.read(16).strip()
    if value not in (b"little", b"big"):
        raise ConversionError(f"{path}: member {info.filename} says {value!r}, not 'little' or 'big'; the file is corrupt")
    return value == b"big"


def _index_zip(path: Path) -> TorchCheckpoint:
    try:
        with zipfile.ZipFile(path) as zf:
            infos = {info.filename: info for info in zf.infolist()}
            pickles = [n for n in infos if n.endswith("/data.pkl") or n == "data.pkl"]
            if len(pickles) != 1:
                raise ConversionError(f"{path} is a zip file but not a torch checkpoint (no single data.pkl)")
            prefix = pickles[0][: -len("data.pkl")]
            big_endian = _byteorder(zf, infos.get(prefix + "byteorder"), path)
            pkl = infos[pickles[0]]
            if pkl.file_size > MAX_PICKLE_BYTES:
                raise ConversionError(
                    f"{path}: its pickle {pkl.filename} declares {pkl.file_size:,} bytes, more than a state dict's "
                    f"records take (limit {MAX_PICKLE_BYTES:,}); refusing to read it. Re-save it as model.safetensors"
                )
            with zf.open(pkl) as fh:
                pickled = fh.read(MAX_PICKLE_BYTES + 1)
    except _ZIP_ERRORS as exc:
        raise ConversionError(f"{path} is a corrupt zip checkpoint ({exc}); download or save it again") from None
    refs: dict[str, _StorageRef] = {}

    def lookup(pid: tuple) -> _StorageRef:
        ref = _storage_ref(pid, path)
        refs.setdefault(ref.key, ref)
        return ref

    tensors = _collect(_load_pickle(io.BytesIO(pickled), path, lookup), path)
    storages = {}
    for key, ref in refs.items():
        member = f"{prefix}data/{key}"
        info = infos.get(member)
        if info is None:
            raise ConversionError(f"{path}: storage {member} is missing; the file is truncated or corrupt")
        want = ref.numel * ref.type.itemsize
        if info.file_size != want:
            relation = "shorter" if info.file_size < want else "longer"
            raise ConversionError(f"{path}: storage {member} is {relation} than its header says ({info.file_size:,} "
                                  f"bytes, not {want:,}); the file is corrupt, download or save it again")
        storages[key] = _Stored(ref.type, ref.numel, member=member)
    return TorchCheckpoint(path, tensors, storages, big_endian)


def _index_legacy(path: Path) -> TorchCheckpoint:
    size = path.stat().st_size
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

        tensors = _collect(_load_pickle(fh, path, lookup), path)
        keys = _load_pickle(fh, path, None)
        if (not isinstance(keys, list) or not all(isinstance(k, str) for k in keys) or len(set(keys)) != len(keys)
                or set(keys) != set(refs)):
            raise ConversionError(f"{path}: the storage list does not match the tensors; the file is corrupt")
        storages = {}
        for key in keys:  # walk the storage records, reading no data
            ref = refs[key]
            header = fh.read(8)
            if len(header) != 8:
                raise ConversionError(f"{path} is truncated")
            (numel,) = struct.unpack(">q" if big_endian else "<q", header)
            start = fh.tell()
            if numel < ref.numel or start + numel * ref.type.itemsize > size:
                raise ConversionError(f"{path} is truncated: storage {key} declares {numel:,} elements, "
                                      f"more than the {size - start:,} bytes left in the file hold")
            storages[key] = _Stored(ref.type, numel, offset=start)
            fh.seek(start + numel * ref.type.itemsize)
    return TorchCheckpoint(path, tensors, storages, big_endian)


def _load_pickle(fh: Any, path: Path, lookup: Callable[[tuple], _StorageRef] | None) -> Any:
    try:
        return _RestrictedUnpickler(fh, path, lookup).load()
    except (UnsafeCheckpointError, ConversionError):
        raise
    except Exception as exc:  # a malformed pickle raises many kinds of errors
        raise ConversionError(f"{path} could not be read as a torch checkpoint: {exc}") from exc


def open_torch_checkpoint(path: str | os.PathLike) -> TorchCheckpoint:
    """The tensor records of a ``torch.save``-d state dict, read without their data.

    Raises :class:`UnsafeCheckpointError` when the pickle names anything but tensor
    rebuilding, :class:`ConversionError` when the file is not a readable checkpoint.
    """
    path = Path(path)
    if path.stat().st_size == 0:
        raise ConversionError(f"{path} is empty; download or save the checkpoint again")
    if zipfile.is_zipfile(path):
        return _index_zip(path)
    with open(path, "rb") as fh:
        if fh.read(4) == b"PK\x03\x04":
            raise ConversionError(f"{path} is a truncated or corrupt zip checkpoint; download or save it again")
    return _index_legacy(path)


def load_torch_checkpoint(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The tensors of a ``torch.save``-d state dict as numpy arrays; torch is never imported.

    Raises :class:`UnsafeCheckpointError` when the pickle names anything but tensor
    rebuilding, :class:`ConversionError` when the file is not a readable checkpoint.

    >>> weights = load_torch_checkpoint("bert/pytorch_model.bin")  # doctest: +SKIP
    >>> weights["embeddings.word_embeddings.weight"].shape  # doctest: +SKIP
    (30522, 768)
    """
    return open_torch_checkpoint(path).read()


__all__ = ["TorchCheckpoint", "load_torch_checkpoint", "open_torch_checkpoint"]
