"""RoBERTa, XLM-RoBERTa and CamemBERT checkpoints: BERT's graph with offset positions.

transformers numbers a token's position from ``padding_idx + 1`` (``pad_token_id``, 1 in
every released checkpoint): ``create_position_ids_from_input_ids`` counts the non-pad
tokens, so for right-padded input whose text holds no pad id, token i reads row
``padding_idx + 1 + i``. The graph slices the table from that row, as BERT's slices it
from 0; a model with ``max_position_embeddings`` 514 therefore takes 512 tokens, framing
included (the metadata's ``max_position_embeddings``). Padded positions read other rows
than transformers' (which gives them row ``padding_idx``); their outputs are never used.

The rest is BERT: type-0 embedding folded into the positions (``type_vocab_size`` is 1 in
released checkpoints), post-LayerNorm layers, an optional pooler. Weights saved by
``RobertaModel`` carry no prefix; ``*ForMaskedLM`` and the other heads save ``roberta.``
(also for XLM-RoBERTa and CamemBERT: their ``base_model_prefix`` is ``roberta``); ``lm_head``
and ``classifier`` are dropped.
"""
from __future__ import annotations

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
    rename_weight,
)
from .graph import shown

MODEL_TYPES = ("roberta", "xlm-roberta", "camembert")
_ROBERTA_BASE = {"vocab_size": 50265, "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
                 "intermediate_size": 3072, "max_position_embeddings": 514, "type_vocab_size": 1}
_DEFAULTS = {"max_position_embeddings": 512, "type_vocab_size": 2}  # transformers' RobertaConfig defaults


@dataclass(frozen=True)
class RobertaConfig(EncoderConfig):
    """BERT's fields plus the padding index that offsets positions, and which of the three it is."""

    pad_token_id: int = 1
    model_type: str = "roberta"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "config.json") -> RobertaConfig:
        """Validate a RoBERTa / XLM-RoBERTa / CamemBERT config; errors name the field and the fix."""
        fields = encoder_fields(data, where, model="RoBERTa", base=_ROBERTA_BASE, defaults=_DEFAULTS)
        model_type = data.get("model_type", "roberta")
        if model_type not in MODEL_TYPES:
            raise ConversionError(f"{where}: model_type {shown(model_type)} is not one of {list(MODEL_TYPES)}")
        pad = data.get("pad_token_id", 1)
        rows = fields["max_position_embeddings"]
        if type(pad) is not int or not 0 <= pad < rows - 1:
            raise ConversionError(
                f"{where}: pad_token_id is {shown(pad)}, but positions start after it, so it must be a whole number "
                f"from 0 to max_position_embeddings - 2 = {rows - 2} (RoBERTa has 1 with 514 positions); "
                f"fix pad_token_id in {where} or download the checkpoint again"
            )
        return cls(**fields, pad_token_id=pad, model_type=model_type)


def _plan(config: RobertaConfig) -> EncoderPlan:
    return EncoderPlan(model_type=config.model_type, token_types=True, position_offset=config.pad_token_id + 1)


def rename(stored: str) -> str | None:
    """RobertaModel's name: ``roberta.`` stripped; ``lm_head.*``, ``classifier.*`` and buffers dropped."""
    return rename_weight(stored, "roberta.")


FAMILY = encoder_family(name="RoBERTa", model_types=MODEL_TYPES, config_class=RobertaConfig, rename=rename, sizes=encoder_sizes,
                        plan=_plan, sentencepiece=("xlm-roberta", "camembert"))
