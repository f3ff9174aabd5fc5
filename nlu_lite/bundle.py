"""A self-contained, read-only model bundle: what a Spark executor or Dask worker loads.

``write_bundle`` puts in one folder everything a pipeline needs: the ONNX graph and its
weights, the tokenizer (as one ``tokenizer.json``), a sentence-transformers model's Dense
layers (``sentence_head.npz``), the resolved registry entry, and a
manifest with each file's size and sha256 (and a sha256 of the model description itself).
``read_bundle`` loads it with no network, no
conversion and no write at all, so the folder may be read-only (a Docker layer, an NFS
share, ``SparkFiles``); it checks every file's size and, unless ``verify=False``, its sha256,
so a damaged copy is an error, never wrong vectors.

>>> pipe.save('minilm_bundle/')  # doctest: +SKIP
>>> nlu_lite.load(path='minilm_bundle/')  # doctest: +SKIP
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .artifacts.settings import DenseConfig, DenseLayer
from .cache import sha256_file
from .errors import ArtifactNotFoundError, ConversionError, InputError
from .registry import ModelSpec, parse_model, spec_to_dict

MANIFEST = "nlu_lite_bundle.json"
BUNDLE_FORMAT = 1
MODEL_FILES = ("model.onnx", "model.onnx.data", "tokenizer.json")
HEAD_FILE = "sentence_head.npz"  # only in a bundle of a model with Dense layers


@dataclass(frozen=True)
class Bundle:
    """What a bundle folder holds, read from its manifest."""

    folder: Path
    spec: ModelSpec
    precision: str
    graph: str
    head: tuple[DenseLayer, ...] = ()

    @property
    def model_path(self) -> Path:
        return self.folder / "model.onnx"


def _digest(data: dict) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode("utf-8")).hexdigest()


def is_bundle(folder: str | os.PathLike) -> bool:
    return (Path(folder) / MANIFEST).is_file()


def write_bundle(folder: str | os.PathLike, *, spec: ModelSpec, model_path: str | os.PathLike, tokenizer: Any,
                 precision: str, graph: str, head: tuple[DenseLayer, ...] = ()) -> Path:
    """Write the bundle into ``folder`` (created; it must not exist or be empty), atomically.

    ``tokenizer`` is a ``tokenizers.Tokenizer``. The folder appears complete or not at all:
    files are written to a scratch folder beside it, which is then renamed.
    """
    folder = Path(folder)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise InputError(f"{folder} exists and is not an empty folder; save the bundle to a new path")
    model_path = Path(model_path)
    folder.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".tmp", dir=folder.parent))
    try:
        shutil.copyfile(model_path, scratch / "model.onnx")
        shutil.copyfile(model_path.with_name(model_path.name + ".data"), scratch / "model.onnx.data")
        tokenizer.save(str(scratch / "tokenizer.json"))
        names = MODEL_FILES
        if head:
            arrays = {f"weight_{i}": layer.weight for i, layer in enumerate(head)}
            arrays.update({f"bias_{i}": layer.bias for i, layer in enumerate(head) if layer.bias is not None})
            with open(scratch / HEAD_FILE, "wb") as fh:
                np.savez(fh, **arrays)
            names = (*MODEL_FILES, HEAD_FILE)
        files = {name: {"size": (scratch / name).stat().st_size, "sha256": sha256_file(scratch / name)}
                 for name in names}
        described = {"spec": spec_to_dict(spec), "precision": precision, "graph": graph,
                     **({"head": [dataclasses.asdict(layer.config) for layer in head]} if head else {})}
        manifest = {"format": BUNDLE_FORMAT, **described, "described_sha256": _digest(described), "files": files,
                    "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        (scratch / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        umask = os.umask(0)
        os.umask(umask)
        scratch.chmod(0o777 & ~umask)  # mkdtemp made it 0700; the files already follow the umask
        if folder.exists():
            folder.rmdir()  # empty, checked above
        os.replace(scratch, folder)
    finally:
        if scratch.exists():
            shutil.rmtree(scratch, ignore_errors=True)
    return folder


def read_bundle(folder: str | os.PathLike, *, verify: bool = True) -> Bundle:
    """The bundle in ``folder``: every file present with its recorded size, and its sha256 when
    ``verify`` (about 0.3 s per 100 MB). Nothing is written."""
    folder = Path(folder)
    manifest_path = folder / MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ArtifactNotFoundError(f"{folder} is not an nlu_lite bundle (no {MANIFEST}); make one with "
                                    "pipe.save(folder)") from None
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # RecursionError: JSON nested absurdly deep
        raise ConversionError(f"{manifest_path} is damaged ({type(exc).__name__}: {str(exc)[:80]}); save the bundle "
                              "again") from None
    if not isinstance(manifest, dict) or manifest.get("format") != BUNDLE_FORMAT:
        raise ConversionError(f"{manifest_path} is not a bundle manifest this nlu_lite reads (format "
                              f"{BUNDLE_FORMAT}); save the bundle again with this version")
    described = {k: manifest.get(k) for k in ("spec", "precision", "graph")}
    if "head" in manifest:
        described["head"] = manifest["head"]
    files = manifest.get("files")
    if manifest.get("described_sha256") != _digest(described) or not isinstance(files, dict):
        raise ConversionError(f"{manifest_path} is damaged (its model description does not match its checksum); "
                              "copy the bundle again, or save it again from the pipeline")
    for name in (*MODEL_FILES, HEAD_FILE) if "head" in described else MODEL_FILES:
        path, record = folder / name, files.get(name)
        if path.is_symlink():  # a huggingface_hub snapshot or DVC layout: onnxruntime refuses links out of the folder
            raise ConversionError(f"bundle file {path} is a symbolic link (to {os.readlink(path)}); a bundle's files "
                                  "must be in its folder. Copy the bundle with its links resolved (cp -rL, "
                                  "shutil.copytree(..., symlinks=False)) and load the copy")
        record = record if isinstance(record, dict) else {}
        if not path.is_file():
            raise ArtifactNotFoundError(f"bundle {folder} lacks {name}; copy the whole folder, or save it again")
        if path.stat().st_size != record.get("size") or (verify and sha256_file(path) != record.get("sha256")):
            raise ConversionError(f"bundle file {path} differs from its manifest (damaged or replaced); "
                                  "copy the bundle again, or save it again from the pipeline")
    head = _read_head(folder, described["head"]) if "head" in described else ()
    return Bundle(folder, parse_model(manifest["spec"], str(manifest_path)), manifest["precision"], manifest["graph"],
                  head)


def _read_head(folder: Path, configs: Any) -> tuple[DenseLayer, ...]:
    """The Dense layers ``sentence_head.npz`` holds, as the manifest describes them (shapes checked)."""
    path = folder / HEAD_FILE
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
        layers = []
        for i, raw in enumerate(configs):
            config = DenseConfig(**raw)
            weight = np.ascontiguousarray(arrays[f"weight_{i}"], dtype=np.float32)
            bias = arrays.get(f"bias_{i}")
            if weight.shape != (config.out_features, config.in_features) or (bias is None) == config.bias or (
                    bias is not None and bias.shape != (config.out_features,)):
                raise ValueError(f"layer {i} does not have the shapes the manifest records")
            layers.append(DenseLayer(config, weight, None if bias is None else np.ascontiguousarray(bias, np.float32)))
    except (ValueError, KeyError, TypeError, OSError) as exc:
        raise ConversionError(f"bundle file {path} is damaged ({exc}); copy the bundle again, or save it again "
                              "from the pipeline") from None
    return tuple(layers)
