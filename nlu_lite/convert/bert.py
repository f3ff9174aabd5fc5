"""BERT checkpoints (``model_type`` 'bert'): the shared encoder as it is, with token types.

Weights saved by ``BertModel`` carry no prefix; ``BertFor*`` heads save ``bert.``; TF-era
checkpoints name LayerNorm parameters ``gamma``/``beta``. A repo without ``tokenizer.json``
gives its WordPiece ``vocab.txt``.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..choices import GraphVariant
from ..errors import ConversionError
from . import family as _family
from .encoder import (
    EncoderConfig,
    EncoderPlan,
    build_encoder,
    encoder_family,
    encoder_fields,
    encoder_sizes,
    rename_weight,
)
from .fields import CONFIG_LIMITS
from .graph import DEFAULT_GRAPH

__all__ = ["BERT_BASE", "CONFIG_LIMITS", "FAMILY", "PLAN", "BertConfig", "build_model", "expected_shapes",
           "parameter_count", "rename"]

BERT_BASE = {"vocab_size": 30522, "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
             "intermediate_size": 3072, "max_position_embeddings": 512, "type_vocab_size": 2}
_DEFAULTS = {"max_position_embeddings": 512, "type_vocab_size": 2}  # transformers' BertConfig defaults
PLAN = EncoderPlan(model_type="bert", token_types=True)


@dataclass(frozen=True)
class BertConfig(EncoderConfig):
    """The architecture fields of a BERT ``config.json`` that the graph depends on."""

    hidden_act: str = "gelu"
    layer_norm_eps: float = 1e-12
    max_position_embeddings: int = 512
    type_vocab_size: int = 2

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "config.json") -> BertConfig:
        """Validate a transformers BERT config; errors name the field, its allowed values and the fix."""
        config = cls(**encoder_fields(data, where, model="BERT", base=BERT_BASE, defaults=_DEFAULTS))
        count = parameter_count(config, with_pooler=True)
        if count > _family.MAX_PARAMETERS:
            raise ConversionError(
                f"{where}: vocab_size, hidden_size, num_hidden_layers and intermediate_size imply {count:,} "
                f"parameters, more than the {_family.MAX_PARAMETERS:,} nlu_lite converts (BERT-large has 335 M); "
                f"fix the sizes in {where} or download the checkpoint again"
            )
        return config


def rename(stored: str) -> str | None:
    """BertModel's name: ``bert.`` stripped, ``gamma``/``beta`` as ``weight``/``bias``; heads and buffers dropped."""
    return rename_weight(stored, "bert.")


FAMILY = encoder_family(name="BERT", model_types=("bert",), config_class=BertConfig, rename=rename,
                        sizes=encoder_sizes, plan=lambda config: PLAN, tokenizer_fallback=("vocab.txt",))


def build_model(config: BertConfig, weights: Mapping[str, Any], *, graph: GraphVariant = DEFAULT_GRAPH,
                metadata: Mapping[str, Any] | None = None):
    """The ONNX ``ModelProto`` for ``config`` and BertModel-named ``weights``."""
    return build_encoder(config, weights, PLAN, FAMILY, graph=graph, metadata=metadata)


def expected_shapes(config: BertConfig, *, with_pooler: bool) -> dict[str, tuple[int, ...]]:
    """BertModel's weight names and shapes for ``config`` (torch Linear layout: [out, in])."""
    return _family.expected_shapes(config, FAMILY, with_pooler=with_pooler)


def parameter_count(config: BertConfig, *, with_pooler: bool) -> int:
    """How many numbers the weights of ``config`` hold: the sum over :func:`expected_shapes`."""
    return _family.parameter_count(config, FAMILY, with_pooler=with_pooler)
