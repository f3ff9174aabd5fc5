"""ALBERT checkpoints: BERT's graph with factorised embeddings and layers shared across depth.

ALBERT embeds into ``embedding_size`` (128) and maps that to ``hidden_size`` with
``embedding_hidden_mapping_in`` before the first layer (transformers' ``hidden_states[0]`` is
the mapped output, and so is our ``hidden_state_0``). Its ``num_hidden_layers`` layers run
the weights of ``num_hidden_groups`` groups (one in every released model): layer n uses group
``int(n / (num_hidden_layers / num_hidden_groups))``, transformers' own formula. Each group's
weights are one set of initializers that every layer of the group reads, so the file holds
them once. A group of several different layers (``inner_group_num`` > 1, in no released
model) is refused. The layer itself is BERT's (``rename`` maps ``attention.dense`` ->
``attention.output.dense``, ``ffn`` / ``ffn_output`` -> ``intermediate.dense`` /
``output.dense``, ``full_layer_layer_norm`` -> ``output.LayerNorm``); the default activation
is ``gelu_new`` (the tanh form: com.microsoft ``FastGelu`` in the fused graph, exact for it).
The pooler (``pooler`` Linear + tanh of the first token) is read when present. Weights saved
by ``AlbertForMaskedLM`` / ``AlbertForPreTraining`` and the other heads carry an ``albert.``
prefix; ``predictions``, ``sop_classifier`` and ``classifier`` are dropped.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import ConversionError
from .encoder import (
    EncoderConfig,
    EncoderPlan,
    encoder_family,
    encoder_fields,
    encoder_sizes,
    tf_names,
)
from .fields import size_field
from .graph import shown

_ALBERT_BASE = {"vocab_size": 30000, "embedding_size": 128, "hidden_size": 768, "num_hidden_layers": 12,
                "num_hidden_groups": 1, "num_attention_heads": 12, "intermediate_size": 3072,
                "max_position_embeddings": 512, "type_vocab_size": 2}
# transformers' AlbertConfig defaults for fields a config.json may leave out
_DEFAULTS = {"max_position_embeddings": 512, "type_vocab_size": 2, "embedding_size": 128, "num_hidden_groups": 1}
_LAYER_NAMES = {
    "attention.query": "attention.self.query",
    "attention.key": "attention.self.key",
    "attention.value": "attention.self.value",
    "attention.dense": "attention.output.dense",
    "attention.LayerNorm": "attention.output.LayerNorm",
    "ffn": "intermediate.dense",
    "ffn_output": "output.dense",
    "full_layer_layer_norm": "output.LayerNorm",
}
_GROUP_LAYER = re.compile(r"encoder\.albert_layer_groups\.(\d{1,6})\.albert_layers\.0\.(.+)\.(weight|bias)")


@dataclass(frozen=True)
class AlbertConfig(EncoderConfig):
    """BERT's fields plus the embeddings' width and how many layer groups share the depth."""

    embedding_size: int = 128
    num_hidden_groups: int = 1

    def group_of(self, layer: int) -> int:
        """The group whose weights layer ``layer`` runs: AlbertTransformer's formula, float division included."""
        return int(layer / (self.num_layers / self.num_hidden_groups))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "config.json") -> AlbertConfig:
        """Validate a transformers ALBERT config; errors name the field and the fix."""
        fields = encoder_fields(data, where, model="ALBERT", base=_ALBERT_BASE, defaults=_DEFAULTS, activation="gelu_new")
        inner = data.get("inner_group_num", 1)
        if inner != 1 or type(inner) is not int:
            raise ConversionError(
                f"{where}: inner_group_num is {shown(inner)}; nlu_lite converts ALBERT with one layer per group "
                "(inner_group_num 1, as in every released ALBERT)"
            )
        extra = {name: size_field(data, name, where, kind=kind, model="ALBERT", base=_ALBERT_BASE, defaults=_DEFAULTS)
                 for name, kind in (("embedding_size", "hidden_size"), ("num_hidden_groups", "num_hidden_layers"))}
        return cls(**fields, **extra)


def _plan(config: AlbertConfig) -> EncoderPlan:
    prefixes = tuple(f"encoder.group.{config.group_of(n)}." for n in range(config.num_layers))
    return EncoderPlan(model_type="albert", token_types=True, projection=True, layer_prefixes=prefixes)


def _albert_sizes(config: AlbertConfig) -> dict[str, int]:
    return {**encoder_sizes(config), "embedding_size": config.embedding_size}


def rename(stored: str) -> str | None:
    """The builder's name for a stored ALBERT weight: group g's layer as ``encoder.group.g.``
    with BertLayer's names, ``embedding_hidden_mapping_in`` as ``embeddings.projection``,
    ``pooler`` as ``pooler.dense``; ``None`` for heads and buffers."""
    key = tf_names(stored.removeprefix("albert."))
    if key.startswith("embeddings.") and key.endswith((".weight", ".bias")):
        return key
    if key.startswith("encoder.embedding_hidden_mapping_in."):
        return "embeddings.projection." + key.removeprefix("encoder.embedding_hidden_mapping_in.")
    if key in ("pooler.weight", "pooler.bias"):
        return "pooler.dense." + key.removeprefix("pooler.")
    match = _GROUP_LAYER.fullmatch(key)
    if match is None or match[2] not in _LAYER_NAMES:
        return None
    return f"encoder.group.{int(match[1])}.{_LAYER_NAMES[match[2]]}.{match[3]}"


FAMILY = encoder_family(name="ALBERT", model_types=("albert",), config_class=AlbertConfig, rename=rename,
                        sizes=_albert_sizes, plan=_plan, sentencepiece=("albert",))
