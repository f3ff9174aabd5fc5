"""Every list of allowed values, in one place.

The registry, ``load()``, ``predict()``, the converter and the ``nlu-lite`` command all
validate against these tuples and name them in their error messages, so a choice added
here is accepted everywhere at once.
"""
from __future__ import annotations

from typing import Literal

OutputLevel = Literal["token", "sentence", "document"]
Task = Literal["token", "sentence"]
Precision = Literal["fp32", "int8"]
SubtokenPooling = Literal["first", "last", "mean", "first_last"]
SentencePooling = Literal["mean", "cls", "max", "pooler", "lasttoken"]
GraphVariant = Literal["fused", "standard"]

OUTPUT_LEVELS: tuple[str, ...] = ("token", "sentence", "document")
# predict() also takes 'chunk': the user's own spans (chunks=), pooled from tokens (nlu_lite.chunks)
PREDICT_LEVELS: tuple[str, ...] = OUTPUT_LEVELS + ("chunk",)
CHUNK_POOLINGS: tuple[str, ...] = ("mean", "first", "last")
TASKS: tuple[str, ...] = ("token", "sentence")
PRECISIONS: tuple[str, ...] = ("fp32", "int8")  # what the converter writes
# what load() takes: bf16 is an inference setting of the OpenVINO engine on an fp32 graph
LOAD_PRECISIONS: tuple[str, ...] = PRECISIONS + ("bf16",)
ENGINES: tuple[str, ...] = ("onnxruntime", "openvino")
ENGINE_CHOICES: tuple[str, ...] = ENGINES + ("auto",)  # what load() takes: 'auto' resolves to one of ENGINES
# a word's vector from its word pieces; 'first_last' concatenates the two (2 x dim, as flair)
SUBTOKEN_POOLINGS: tuple[str, ...] = ("first", "last", "mean", "first_last")
# a sentence's or document's vector from its positions; 'pooler' is BERT's pooled [CLS] output;
# 'lasttoken' the last position (decoder embedders, as sentence-transformers' pooling_mode_lasttoken)
SENTENCE_POOLINGS: tuple[str, ...] = ("mean", "cls", "max", "pooler", "lasttoken")
GRAPH_VARIANTS: tuple[str, ...] = ("fused", "standard")


def check_choice(value: object, choices: tuple[str, ...], name: str, error: type[Exception]) -> str:
    """``value`` if it is one of ``choices``, else ``error`` naming ``name``, the value and the choices."""
    if not isinstance(value, str) or value not in choices:
        raise error(f"{name} must be one of {list(choices)}; got {value!r}")
    return value
