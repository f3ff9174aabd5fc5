"""A checkpoint folder's weights as ``{name: float32 array}``, names in BertModel's spelling."""
from __future__ import annotations

import json
import logging
import os
import struct
from pathlib import Path

import numpy as np

from ..errors import ArtifactNotFoundError, ConversionError
from .torch_pickle import load_torch_checkpoint

logger = logging.getLogger(__name__)

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
_KEEP_PREFIXES = ("embeddings.", "encoder.", "pooler.")
_DROP = {"embeddings.position_ids"}  # a buffer, not a weight


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


def _read_safetensors(path: Path) -> dict[str, np.ndarray]:
    from safetensors import safe_open

    out: dict[str, np.ndarray] = {}
    try:
        with open(path, "rb") as fh:
            (header_len,) = struct.unpack("<Q", fh.read(8))
            header = json.loads(fh.read(header_len))
        with safe_open(str(path), framework="numpy") as st:
            for name in st.keys():
                if header[name]["dtype"] == "BF16":
                    out[name] = _read_bf16(path, 8 + header_len, header[name])
                else:
                    out[name] = st.get_tensor(name)
    except Exception as exc:  # safetensors, json and struct each raise their own kinds
        raise ConversionError(f"{path} could not be read as safetensors ({exc}); the file may be truncated") from exc
    return out


def _read_bf16(path: Path, data_start: int, info: dict) -> np.ndarray:
    # numpy has no bfloat16: widen to float32 (bf16 is float32's upper half)
    begin, end = info["data_offsets"]
    with open(path, "rb") as fh:
        fh.seek(data_start + begin)
        raw = fh.read(end - begin)
    return (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32).reshape(info["shape"])


def normalise_names(raw: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """BertModel names: ``bert.`` stripped, TF-era ``gamma``/``beta`` renamed, heads dropped."""
    out: dict[str, np.ndarray] = {}
    for name, array in raw.items():
        key = name[len("bert."):] if name.startswith("bert.") else name
        if key.endswith(".gamma"):
            key = key[: -len("gamma")] + "weight"
        elif key.endswith(".beta"):
            key = key[: -len("beta")] + "bias"
        if key in _DROP or not key.startswith(_KEEP_PREFIXES):
            continue  # MLM / NSP heads (cls.*), buffers, anything not part of BertModel
        if key in out:
            raise ConversionError(f"the checkpoint has both {name!r} and another tensor that maps to {key!r}")
        out[key] = array
    return out


def load_weights(folder: str | os.PathLike) -> dict[str, np.ndarray]:
    """The BertModel weights of a checkpoint folder, as float32 numpy arrays.

    model.safetensors is preferred; pytorch_model.bin is read through a restricted
    unpickler (no torch, no code from the file runs). A ``bert.`` prefix is stripped and
    pre-training heads (``cls.*``) are dropped.

    >>> weights = load_weights("path/to/bert")  # doctest: +SKIP
    >>> weights["encoder.layer.0.attention.self.query.weight"].shape  # doctest: +SKIP
    (768, 768)
    """
    path = weights_file(folder)
    raw = _read_safetensors(path) if path.suffix == ".safetensors" else load_torch_checkpoint(path)
    weights = normalise_names(raw)
    for name, array in weights.items():
        if np.issubdtype(array.dtype, np.floating) and array.dtype != np.float32:
            weights[name] = array.astype(np.float32)
    logger.debug("read %d tensors from %s", len(weights), path)
    return weights
