"""What a model family is: one frozen dataclass, plus the checks every family shares.

A family module (``bert.py``, ``mpnet.py``, ...) declares one :data:`Family` named ``FAMILY``:
its config class (validated from ``config.json``), how names stored in the weights file map to
the names its graph builder reads, the weights it needs (names and shapes, each dimension named
by the config field that sets it), the builder, and what the rest of nlu_lite must know about it
(how many positions a sequence may use, which tokenizer files stand in for ``tokenizer.json``).
``families.py`` lists the families in one table; nothing outside a family module knows its quirks.

The checks here need only names and shapes, so they run before any tensor data is read.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import ConversionError

MAX_PARAMETERS = 1 << 32  # 4.3 billion: 13x BERT-large
# the SentencePiece model files transformers' tokenizers read: DeBERTa-v2/3, ALBERT, XLM-R/CamemBERT
SENTENCEPIECE_FILES = ("spm.model", "spiece.model", "sentencepiece.bpe.model")


def table_positions(config: Any) -> int:
    """The longest sequence, framing included: the position table's rows (``max_position_embeddings``)."""
    return config.max_position_embeddings


@dataclass(frozen=True)
class Family:
    """How one architecture's checkpoints become ONNX.

    ``config_class.from_dict(data, where)`` validates ``config.json`` (a
    :class:`ConversionError` naming the field and the fix); the config has ``hidden_size``,
    ``num_layers``, ``num_heads``, ``vocab_size`` and ``max_position_embeddings``.
    ``rename(stored)`` is the name the builder reads for a stored weight name (prefix such as
    ``roberta.`` stripped), or ``None`` for what the model does not use (heads, buffers).
    ``layout(config, with_pooler)`` is every weight the builder reads, each dimension named by
    a key of ``sizes(config)``. ``build_model(config, weights, *, graph, metadata)`` returns
    the ONNX ``ModelProto``.

    What the rest of nlu_lite reads: ``max_length(config)``, the longest sequence the graph takes,
    framing included (RoBERTa's 514-row table takes 512); ``tokenizer_fallback``, the files a Hub
    repo without ``tokenizer.json`` may give instead (``vocab.txt`` for a BERT WordPiece vocabulary);
    ``sentencepiece``, its model types whose tokenizer :mod:`nlu_lite.spm` builds from a SentencePiece
    model (one of :data:`SENTENCEPIECE_FILES`) when there is no ``tokenizer.json``;
    ``default_pooling``, a sentence vector's pooling when nothing else says (``mean``);
    ``default_subtoken_pooling``, which piece gives a word's vector (``first``, as Spark NLP; a causal
    model's ``last``: only the last piece has seen the whole word); ``bare_framing``, whether a tokenizer
    that adds no special tokens is the model's own framing (a decoder: nothing around the text) rather
    than a file missing its post-processor; ``class_token_last``, whether ``pooling='cls'`` reads a sequence's
    last position (XLNet's ``<cls>`` ends it) instead of its first; ``int8_fp32``, its int8 plan: glob
    patterns of graph weight names whose MatMuls stay fp32 under ``precision='int8'`` (T5's ``wo``), and
    ``int8_per_token``, those whose input is quantised per token as a LayerNorm output is (an RMS norm's
    output, a gated product: the graph's ops do not say so).
    """

    name: str
    model_types: tuple[str, ...]
    config_class: type
    rename: Callable[[str], str | None]
    layout: Callable[[Any, bool], dict[str, tuple[str, ...]]]
    sizes: Callable[[Any], dict[str, int]]
    build_model: Callable[..., Any]
    pooler_weight: str = "pooler.dense.weight"
    layers_field: str = "num_hidden_layers"  # config.json's name for the layer count (DistilBERT: n_layers)
    layers_prefix: str = "encoder.layer."  # the builder's name of layer N's weights, before N (the count check)
    max_length: Callable[[Any], int] = table_positions
    tokenizer_fallback: tuple[str, ...] = ()
    sentencepiece: tuple[str, ...] = ()
    default_pooling: str = "mean"
    default_subtoken_pooling: str = "first"
    bare_framing: bool = False
    class_token_last: bool = False
    int8_fp32: tuple[str, ...] = ()
    int8_per_token: tuple[str, ...] = ()


def expected_shapes(config: Any, family: Family, *, with_pooler: bool) -> dict[str, tuple[int, ...]]:
    """The weights ``config``'s graph reads, name -> shape (torch Linear layout: [out, in])."""
    sizes = family.sizes(config)
    return {name: tuple(sizes[f] for f in dims) for name, dims in family.layout(config, with_pooler).items()}


def parameter_count(config: Any, family: Family, *, with_pooler: bool) -> int:
    """How many numbers the weights of ``config`` hold: the sum over :func:`expected_shapes`."""
    return sum(math.prod(shape) for shape in expected_shapes(config, family, with_pooler=with_pooler).values())


def _layers_present(names: Iterable[str], prefix: str = "encoder.layer.") -> set[int]:
    found = set()
    for name in names:
        number, dot, _ = name.removeprefix(prefix).partition(".")
        if name.startswith(prefix) and dot and number.isdecimal() and len(number) < 7:
            found.add(int(number))
    return found


def _check_layer_count(config: Any, names: Iterable[str], config_name: str, weights_name: str,
                       field: str = "num_hidden_layers", prefix: str = "encoder.layer.") -> None:
    present = _layers_present(names, prefix)
    if not present or max(present) + 1 == config.num_layers:
        return  # no per-layer names (none at all, or shared layers): the missing-weights check says what is wrong
    n, want = max(present) + 1, config.num_layers
    if n < want:
        problem = f"{weights_name} lacks {prefix}{n} to {prefix}{want - 1}: it holds {n} layer(s)"
    else:
        problem = f"{weights_name} holds {n} layers (up to {prefix}{n - 1})"
    raise ConversionError(
        f"{config_name}: {field} is {want} but {problem}. Set {field} to {n} in "
        f"{config_name} if these weights are right; otherwise the config and the weights belong to different models"
    )


def check_shapes(config: Any, family: Family, shapes: Mapping[str, Sequence[int]], *,
                 config_name: str = "config.json", weights_name: str = "the weights") -> bool:
    """Raise :class:`ConversionError` unless the weights' ``shapes`` (by the builder's names) are
    the ones ``config`` implies. Needs only names and shapes, so it runs before any tensor data
    is read; the error names the config field that disagrees. Returns whether a pooler is present."""
    _check_layer_count(config, shapes, config_name, weights_name, family.layers_field, family.layers_prefix)
    with_pooler = family.pooler_weight in shapes
    layout = family.layout(config, with_pooler)
    missing = [k for k in layout if k not in shapes]
    if missing:
        found = ", ".join(sorted(shapes)[:4]) or "nothing"
        raise ConversionError(
            f"{weights_name} lacks {len(missing)} {family.name} weight(s) that {config_name} implies, e.g. "
            f"{missing[:3]}; found {found}... Is this a {family.name} checkpoint, and does {config_name} belong to it?"
        )
    sizes = family.sizes(config)
    wrong = [(k, tuple(shapes[k]), dims) for k, dims in layout.items() if tuple(shapes[k]) != tuple(sizes[f] for f in dims)]
    if not wrong:
        return with_pooler
    name, got, dims = wrong[0]
    want = tuple(sizes[f] for f in dims)
    if len(got) != len(want):
        raise ConversionError(
            f"{weights_name}: weight {name} has shape {got} but {config_name} implies {want} "
            f"({len(wrong)} mismatched); the config and the weights belong to different models"
        )
    field, value = next((f, g) for f, w, g in zip(dims, want, got) if w != g)
    raise ConversionError(
        f"{weights_name}: weight {name} has shape {got} but {config_name} implies {want} from {field}={sizes[field]} "
        f"({len(wrong)} mismatched). Set {field} to {value} in {config_name} if these weights are right; "
        "otherwise the config and the weights belong to different models"
    )




def start_graph(family: Family, config: Any, weights: Mapping[str, Any], graph: str) -> tuple[Any, dict, bool]:
    """Every ``build_model``'s first step: the graph variant checked, the weights checked against the
    config's layout (names and shapes, before any arithmetic), a fresh builder and the weights as
    float32. Returns ``(builder, weights, with_pooler)``."""
    import numpy as np

    from ..choices import GRAPH_VARIANTS
    from .graph import GraphBuilder

    if graph not in GRAPH_VARIANTS:
        raise ConversionError(f"unknown graph variant {graph!r}; use one of {list(GRAPH_VARIANTS)}")
    with_pooler = check_shapes(config, family, {name: np.shape(array) for name, array in weights.items()})
    return GraphBuilder(), {k: np.asarray(v, dtype=np.float32) for k, v in weights.items()}, with_pooler
