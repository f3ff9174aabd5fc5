"""DistilBERT checkpoints: BERT's graph without token types, under other names.

A DistilBERT ``TransformerBlock`` is a BERT layer (attention, Add + LayerNorm, GELU/ReLU
feed-forward, Add + LayerNorm), so ``rename`` maps its names onto BertModel's
(``transformer.layer.N.attention.q_lin`` -> ``encoder.layer.N.attention.self.query``,
``sa_layer_norm`` -> ``attention.output.LayerNorm``, ``ffn.lin1``/``lin2`` ->
``intermediate.dense``/``output.dense``, ``output_layer_norm`` -> ``output.LayerNorm``) and the
graph is BERT's with no token-type table. Every LayerNorm uses eps 1e-12 (hard-coded in
transformers). ``sinusoidal_pos_embds`` checkpoints store their (fixed) table like a learned
one and transformers loads it from the file, so the table is read either way. There is no
pooler. The config's names are ``dim``, ``n_layers``, ``n_heads``, ``hidden_dim`` and
``activation`` (``hidden_size``, ``num_hidden_layers``, ``num_attention_heads`` are accepted,
as transformers' ``attribute_map`` does); weights saved by ``*ForMaskedLM`` and the other
heads carry a ``distilbert.`` prefix.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import ConversionError
from .encoder import EncoderPlan, EncoderSizes, encoder_family
from .fields import activation_field, check_heads, size_field
from .graph import shown

_DISTILBERT_BASE = {"vocab_size": 30522, "dim": 768, "n_layers": 6, "n_heads": 12, "hidden_dim": 3072,
                    "max_position_embeddings": 512}
_DEFAULTS = {"max_position_embeddings": 512}
# config.json field -> (the CONFIG_LIMITS entry that bounds it, the name transformers' attribute_map also reads)
_SIZE_FIELDS = {
    "vocab_size": ("vocab_size", None),
    "dim": ("hidden_size", "hidden_size"),
    "n_layers": ("num_hidden_layers", "num_hidden_layers"),
    "n_heads": ("num_attention_heads", "num_attention_heads"),
    "hidden_dim": ("intermediate_size", None),
    "max_position_embeddings": ("max_position_embeddings", None),
}
_PLAN = EncoderPlan(model_type="distilbert", token_types=False,
                    size_names=(("hidden_size", "dim"), ("intermediate_size", "hidden_dim")))
_LAYER_NAMES = {
    "attention.q_lin": "attention.self.query",
    "attention.k_lin": "attention.self.key",
    "attention.v_lin": "attention.self.value",
    "attention.out_lin": "attention.output.dense",
    "sa_layer_norm": "attention.output.LayerNorm",
    "ffn.lin1": "intermediate.dense",
    "ffn.lin2": "output.dense",
    "output_layer_norm": "output.LayerNorm",
}
_LAYER = re.compile(r"transformer\.layer\.(\d{1,6})\.(.+)\.(weight|bias)")
_EMBEDDINGS = {"embeddings.word_embeddings.weight", "embeddings.position_embeddings.weight",
               "embeddings.LayerNorm.weight", "embeddings.LayerNorm.bias"}


@dataclass(frozen=True)
class DistilBertConfig(EncoderSizes):
    """The fields of a DistilBERT ``config.json`` the graph depends on, by BertConfig's names."""

    hidden_act: str = "gelu"
    layer_norm_eps: float = 1e-12
    max_position_embeddings: int = 512
    sinusoidal_pos_embds: bool = False

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "config.json") -> DistilBertConfig:
        """Validate a transformers DistilBERT config; errors name the field and the fix."""
        if not isinstance(data, Mapping):
            raise ConversionError(f"{where} holds a JSON {type(data).__name__}, not an object with DistilBERT's "
                                  "fields (dim, n_layers, ...); download the checkpoint again")
        sizes = {name: size_field(data, _present(data, name, alias), where, kind=kind, model="DistilBERT",
                                   base=_based_on(name, alias), defaults=_DEFAULTS)
                 for name, (kind, alias) in _SIZE_FIELDS.items()}
        check_heads(sizes["dim"], sizes["n_heads"], where, fields=("dim", "n_heads"), model="DistilBERT")
        sinusoidal = data.get("sinusoidal_pos_embds", False)
        if type(sinusoidal) is not bool:
            raise ConversionError(f"{where}: sinusoidal_pos_embds is {shown(sinusoidal)}; it must be true or false")
        return cls(vocab_size=sizes["vocab_size"], hidden_size=sizes["dim"], num_layers=sizes["n_layers"],
                   num_heads=sizes["n_heads"], intermediate_size=sizes["hidden_dim"],
                   hidden_act=activation_field(data, where, field="activation"),
                   max_position_embeddings=sizes["max_position_embeddings"], sinusoidal_pos_embds=sinusoidal)


def _present(data: Mapping[str, Any], name: str, alias: str | None) -> str:
    """``name``, or transformers' alias for it when only the alias is in config.json."""
    return alias if alias is not None and name not in data and alias in data else name


def _based_on(name: str, alias: str | None) -> dict[str, int]:
    """DistilBERT-base's sizes, under the alias too (the message quotes the field config.json has)."""
    return {**_DISTILBERT_BASE, **({alias: _DISTILBERT_BASE[name]} if alias else {})}


def _sizes(config: DistilBertConfig) -> dict[str, int]:
    """By config.json's names (see ``_PLAN.size_names``): a shape error names ``dim`` / ``hidden_dim``."""
    return {"vocab_size": config.vocab_size, "dim": config.hidden_size, "hidden_dim": config.intermediate_size,
            "max_position_embeddings": config.max_position_embeddings}


def rename(stored: str) -> str | None:
    """BertModel's name for a stored DistilBERT weight; ``None`` for heads (``vocab_*``,
    ``pre_classifier``, ``classifier``, ``qa_outputs``) and buffers."""
    key = stored.removeprefix("distilbert.")
    if key in _EMBEDDINGS:
        return key
    match = _LAYER.fullmatch(key)
    if match is None or match[2] not in _LAYER_NAMES:
        return None
    return f"encoder.layer.{int(match[1])}.{_LAYER_NAMES[match[2]]}.{match[3]}"


FAMILY = encoder_family(name="DistilBERT", model_types=("distilbert",), config_class=DistilBertConfig, rename=rename,
                        sizes=_sizes, plan=lambda config: _PLAN, layers_field="n_layers",
                        tokenizer_fallback=("vocab.txt",))
