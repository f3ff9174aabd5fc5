"""Checkpoint -> ONNX: BERT-family weights (safetensors or pytorch_model.bin) to a cached ONNX model.

Only numpy, onnx and small readers of our own: torch is never imported, and a pickle
checkpoint is read by an unpickler that can only rebuild tensors.

>>> from nlu_lite.convert import ensure_onnx  # doctest: +SKIP
>>> path = ensure_onnx("all-MiniLM-L6-v2/")  # converted once, then read from the cache
"""
from __future__ import annotations

from .bert import CONVERTER_VERSION, DEFAULT_GRAPH, GRAPH_VARIANTS, OPSET, BertConfig
from .families import build_model, read_config, supported_model_types
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
    "GRAPH_VARIANTS",
    "OPSET",
    "PRECISIONS",
    "BertConfig",
    "build_model",
    "convert_checkpoint",
    "data_path_for",
    "ensure_onnx",
    "load_torch_checkpoint",
    "load_weights",
    "onnx_cache_dir",
    "quantize_int8",
    "read_config",
    "supported_model_types",
    "weights_file",
]
