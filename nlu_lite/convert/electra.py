"""ELECTRA checkpoints (the discriminator's or the generator's encoder, ElectraModel): BERT's graph
with a projection after the embeddings.

When ``embedding_size`` differs from ``hidden_size`` (ELECTRA-small: 128 -> 256), ElectraModel
maps the embedding LayerNorm's output through ``embeddings_project`` (a Linear) before the
first layer; transformers' ``hidden_states[0]`` is that projection's output, and so is our
``hidden_state_0``. With equal sizes (ELECTRA-base, -large) there is no projection and the
graph is BERT's. ElectraModel has no pooler. Weights saved by ``ElectraForPreTraining`` /
``ElectraForMaskedLM`` and the other heads carry an ``electra.`` prefix; their
``discriminator_predictions``, ``generator_predictions`` / ``generator_lm_head`` and
``classifier`` are dropped.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .encoder import (
    EncoderConfig,
    EncoderPlan,
    encoder_family,
    encoder_fields,
    encoder_sizes,
    rename_weight,
)
from .fields import size_field

_ELECTRA_BASE = {"vocab_size": 30522, "embedding_size": 768, "hidden_size": 768, "num_hidden_layers": 12,
                 "num_attention_heads": 12, "intermediate_size": 3072, "max_position_embeddings": 512,
                 "type_vocab_size": 2}
_DEFAULTS = {"max_position_embeddings": 512, "type_vocab_size": 2, "embedding_size": 128}  # transformers' ElectraConfig


@dataclass(frozen=True)
class ElectraConfig(EncoderConfig):
    """BERT's fields plus the embeddings' width."""

    embedding_size: int = 128

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "config.json") -> ElectraConfig:
        """Validate a transformers ELECTRA config; errors name the field and the fix."""
        fields = encoder_fields(data, where, model="ELECTRA", base=_ELECTRA_BASE, defaults=_DEFAULTS)
        embedding = size_field(data, "embedding_size", where, kind="hidden_size", model="ELECTRA",
                                base=_ELECTRA_BASE, defaults=_DEFAULTS)
        return cls(**fields, embedding_size=embedding)


def _plan(config: ElectraConfig) -> EncoderPlan:
    return EncoderPlan(model_type="electra", token_types=True, projection=config.embedding_size != config.hidden_size)


def _electra_sizes(config: ElectraConfig) -> dict[str, int]:
    return {**encoder_sizes(config), "embedding_size": config.embedding_size}


def rename(stored: str) -> str | None:
    """ElectraModel's name, ``embeddings_project`` as the builder's ``embeddings.projection``;
    ``None`` for heads and buffers."""
    key = stored.removeprefix("electra.")
    if key.startswith("embeddings_project."):
        key = "embeddings.projection." + key.removeprefix("embeddings_project.")
    return rename_weight(key, "", keep=("embeddings.", "encoder."))


FAMILY = encoder_family(name="ELECTRA", model_types=("electra",), config_class=ElectraConfig, rename=rename,
                        sizes=_electra_sizes, plan=_plan, tokenizer_fallback=("vocab.txt",))
