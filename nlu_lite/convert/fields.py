"""Reading a ``config.json`` field safely: every family's config class validates with these.

Each check names the file, the field, what is allowed, the value the family's base model has
and the fix. Nothing here knows a family: the caller passes its ``model`` name, its ``base``
sizes (quoted in messages) and the ``defaults`` transformers fills in for a missing field.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import ConversionError
from .graph import ACTIVATIONS, shown

# Limits on config.json's sizes: far above any released model (BERT-large: 30,522 x 1,024,
# 24 layers; Qwen3-8B: 151,669 x 4,096, 36 layers), low enough that a hostile config cannot make
# us build huge tables or lists before the weights are looked at. Values outside are refused by name.
CONFIG_LIMITS = {
    "vocab_size": 1 << 24,
    "hidden_size": 1 << 16,
    "num_hidden_layers": 1 << 10,
    "num_attention_heads": 1 << 10,
    "intermediate_size": 1 << 18,
    "max_position_embeddings": 1 << 20,
    "type_vocab_size": 1 << 10,
}


def expect_mapping(data: Any, where: str, model: str) -> None:
    """Refuse a config.json that is not a JSON object."""
    if not isinstance(data, Mapping):
        raise ConversionError(
            f"{where} holds a JSON {type(data).__name__}, not an object with {model}'s fields (hidden_size, "
            "num_hidden_layers, ...); download the checkpoint again"
        )


def size_field(data: Mapping[str, Any], field: str, where: str, *, model: str, base: Mapping[str, int],
               defaults: Mapping[str, int], kind: str | None = None, limit: int | None = None) -> int:
    """A positive whole number up to ``limit`` (default ``CONFIG_LIMITS[kind or field]``): no float,
    bool, string, NaN or infinity. A missing field takes ``defaults[field]``, else is an error
    quoting ``base[field]`` (the value in the family's base model)."""
    if field not in data:
        if field in defaults:
            return defaults[field]
        raise ConversionError(
            f"{where} lacks the field {field!r} that a {model} config has; add it ({model}-base has "
            f"{field}={base[field]}) or download the checkpoint again"
        )
    value, limit = data[field], limit or CONFIG_LIMITS[kind or field]
    if type(value) is not int or not 1 <= value <= limit:
        raise ConversionError(
            f"{where}: {field} is {shown(value)}, but it must be a whole number from 1 to {limit:,} "
            f"({model}-base has {base[field]}); fix {field} in {where} or download the checkpoint again"
        )
    return value


def eps_field(data: Mapping[str, Any], where: str, *, field: str = "layer_norm_eps", default: float = 1e-12,
              model: str = "BERT") -> float:
    """A norm's epsilon: a number strictly between 0 and 1."""
    value = data.get(field, default)
    if type(value) not in (int, float) or not 0 < value < 1:  # NaN fails both comparisons
        raise ConversionError(
            f"{where}: {field} is {shown(value)}, but it must be a number between 0 and 1 "
            f"({model} uses {default:g}); fix {field} in {where} or download the checkpoint again"
        )
    return float(value)


def activation_field(data: Mapping[str, Any], where: str, field: str = "hidden_act", default: str = "gelu",
                     choices: tuple[str, ...] = ACTIVATIONS) -> str:
    """An activation name the graph computes exactly (one of ``choices``)."""
    act = data.get(field, default)
    if not isinstance(act, str) or act not in choices:
        raise ConversionError(f"{where}: {field} {shown(act)} is not supported; use one of {list(choices)}")
    return act


def flag_field(data: Mapping[str, Any], field: str, where: str, *, default: bool) -> bool:
    """A true/false field."""
    value = data.get(field, default)
    if not isinstance(value, bool):
        raise ConversionError(f"{where}: {field} is {shown(value)}, but it must be true or false; fix it in {where}")
    return value


def check_heads(hidden: int, heads: int, where: str, *, model: str,
                fields: tuple[str, str] = ("hidden_size", "num_attention_heads"), base: str = "768 / 12") -> None:
    """The hidden width splits evenly into heads."""
    if hidden % heads:
        raise ConversionError(
            f"{where}: {fields[0]} {hidden} is not divisible by {fields[1]} {heads}; "
            f"fix {fields[1]} in {where} ({model}-base has {base}) or download the checkpoint again"
        )


def refuse_decoder(data: Mapping[str, Any], where: str) -> None:
    """An encoder family's graph attends both ways: a causal ``is_decoder`` checkpoint computes something else."""
    if data.get("is_decoder", False) is not False:
        raise ConversionError(
            f"{where}: is_decoder is {shown(data['is_decoder'])}; nlu_lite converts encoders (is_decoder false), "
            "whose tokens see the whole sequence. Use the encoder checkpoint of this model"
        )
