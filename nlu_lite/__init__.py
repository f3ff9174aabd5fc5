"""nlu_lite: John Snow Labs NLU's one-liner for BERT-family embeddings, on onnxruntime.

>>> import nlu_lite
>>> df = nlu_lite.load('en.embed.minilm_l6').predict('I love NLP', output_level='token')  # doctest: +SKIP

Importing the package is light: onnxruntime, tokenizers, plotting and widgets are imported
where they are used.
"""
from __future__ import annotations

from typing import Any

from .errors import (
    ArtifactNotFoundError,
    ConversionError,
    DownloadError,
    InferenceError,
    InputError,
    IntegrityError,
    MissingDependencyError,
    ModelFormatError,
    NluLiteError,
    OfflineError,
    RegistryError,
    UnavailableModelError,
    UnknownModelError,
    UnsafeArchiveError,
    UnsafeCheckpointError,
)

__version__ = "0.1.0"

_LAZY = {
    "load": ("api", "load"),
    "list_models": ("api", "list_models"),
    "print_components": ("api", "print_components"),
    "print_all_model_kinds_for_action": ("api", "print_all_model_kinds_for_action"),
    "print_all_model_kinds_for_action_and_lang": ("api", "print_all_model_kinds_for_action_and_lang"),
    "register_model": ("api", "register_model"),
    "Pipeline": ("pipeline", "Pipeline"),
    "to_matrix": ("frame", "to_matrix"),
    "split_sentences": ("sentences", "split_sentences"),
    "predict_iter": ("stream", "predict_iter"),
    "predict_to_parquet": ("stream", "predict_to_parquet"),
    "read_parquet": ("stream", "read_parquet"),
    "explore": ("viz", "explore"),
    "similar": ("viz", "similar"),
    "senses": ("viz", "senses"),
    "compare": ("viz", "compare"),
    "semantic_axes": ("viz", "semantic_axes"),
    "plot_axes": ("viz", "plot_axes"),
}

__all__ = [
    "ArtifactNotFoundError",
    "ConversionError",
    "DownloadError",
    "InferenceError",
    "InputError",
    "IntegrityError",
    "MissingDependencyError",
    "ModelFormatError",
    "NluLiteError",
    "OfflineError",
    "Pipeline",
    "RegistryError",
    "UnavailableModelError",
    "UnknownModelError",
    "UnsafeArchiveError",
    "UnsafeCheckpointError",
    "__version__",
    "compare",
    "explore",
    "list_models",
    "load",
    "plot_axes",
    "predict_iter",
    "predict_to_parquet",
    "print_all_model_kinds_for_action",
    "print_all_model_kinds_for_action_and_lang",
    "print_components",
    "read_parquet",
    "register_model",
    "semantic_axes",
    "senses",
    "similar",
    "split_sentences",
    "to_matrix",
]


_SUBMODULES = ("spark", "dask", "viz", "stream", "convert", "artifacts")  # imported on first attribute access


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        import importlib

        return importlib.import_module(f".{name}", __name__)
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(f".{module}", __name__), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'nlu_lite' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY) | set(_SUBMODULES))
