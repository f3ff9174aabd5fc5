"""Checkpoint -> ONNX: a family's weights (safetensors or pytorch_model.bin) to a cached ONNX model.

Only numpy, onnx and small readers of our own: torch is never imported, and a pickle
checkpoint is read by an unpickler that can only rebuild tensors.

>>> from nlu_lite.convert import ensure_onnx  # doctest: +SKIP
>>> path = ensure_onnx("all-MiniLM-L6-v2/")  # converted once, then read from the cache
"""
from __future__ import annotations

from ..choices import GRAPH_VARIANTS
from .bert import BertConfig
from .families import (
    FAMILIES,
    build_model,
    read_config,
    register_family,
    supported_model_types,
)
from .family import Family
from .graph import CONVERTER_VERSION, DEFAULT_GRAPH, OPSET
from .store import (
    PRECISIONS,
    convert_checkpoint,
    data_path_for,
    ensure_onnx,
    onnx_cache_dir,
    quantize_int8,
)
from .torch_pickle import load_torch_checkpoint
from .weights import load_weights, weights_file

__all__ = [
    "CONVERTER_VERSION",
    "DEFAULT_GRAPH",
    "FAMILIES",
    "GRAPH_VARIANTS",
    "OPSET",
    "PRECISIONS",
    "BertConfig",
    "Family",
    "build_model",
    "convert_checkpoint",
    "data_path_for",
    "ensure_onnx",
    "load_torch_checkpoint",
    "load_weights",
    "onnx_cache_dir",
    "quantize_int8",
    "read_config",
    "register_family",
    "supported_model_types",
    "weights_file",
]
