"""Which converter reads a checkpoint: ``config.json``'s ``model_type`` -> a :class:`Family`.

A family is data: its config class (validated from ``config.json``), how names stored in
the weights file map to the names its graph builder reads, the weights it needs (names and
shapes, each dimension named by the config field that sets it) and the builder. Everything
generic lives here: reading ``config.json`` safely, checking a weights file's index against
the config before any tensor is read, and the parameter budget.

Every family's graph has the same interface (docs/DESIGN.md): inputs ``input_ids`` /
``attention_mask`` int64 [batch, sequence]; outputs ``last_hidden_state``,
``hidden_state_0..L`` (transformers' ``hidden_states``) and ``pooler_output`` when the
checkpoint has a pooler; metadata under ``nlu_lite`` with at least ``vocab_size``,
``hidden_size``, ``num_layers``, ``model_type`` and ``max_position_embeddings`` (the longest
sequence the model takes, framing included).

>>> read_config("all-MiniLM-L6-v2/").hidden_size  # doctest: +SKIP
384
"""
from __future__ import annotations

import importlib
import json
import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ArtifactNotFoundError, ConversionError

MAX_PARAMETERS = 1 << 32  # 4.3 billion: 13x BERT-large
MAX_CONFIG_BYTES = 16 << 20  # a config.json is a few KB; a label map may make it a few hundred

# model_type -> the module (in nlu_lite.convert) whose FAMILY converts it
FAMILY_MODULES: dict[str, str] = {
    "bert": "bert",
    "roberta": "roberta", "xlm-roberta": "roberta", "camembert": "roberta",
    "distilbert": "distilbert",
    "electra": "electra",
    "albert": "albert",
    "mpnet": "mpnet",
    "deberta-v2": "deberta",
}


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


def supported_model_types() -> list[str]:
    """The ``model_type`` values nlu_lite converts (those whose converter is installed)."""
    return [t for t in FAMILY_MODULES if _module_family(FAMILY_MODULES[t]) is not None]


def _module_family(module: str) -> Family | None:
    try:
        return importlib.import_module(f"{__package__}.{module}").FAMILY
    except (ImportError, AttributeError):
        return None


def family_for(model_type: object, where: str = "config.json") -> Family:
    """The :class:`Family` that converts ``model_type``; an error listing the supported ones otherwise."""
    module = FAMILY_MODULES.get(model_type) if isinstance(model_type, str) else None
    family = _module_family(module) if module else None
    if family is None or model_type not in family.model_types:
        shown = repr(model_type) if len(repr(model_type)) <= 60 else repr(model_type)[:57] + "..."
        raise ConversionError(
            f"{where}: model_type {shown} is not supported; nlu_lite converts "
            f"{', '.join(repr(t) for t in supported_model_types())}"
        )
    return family


def family_of(config: Any) -> Family:
    """The family whose config class ``config`` is."""
    for module in dict.fromkeys(FAMILY_MODULES.values()):
        family = _module_family(module)
        if family is not None and type(config) is family.config_class:
            return family
    raise ConversionError(f"{type(config).__name__} is not the config of a family nlu_lite converts")


def config_from_dict(data: Any, where: str = "config.json") -> Any:
    """The validated config of ``data`` (a parsed config.json), by its ``model_type`` (default ``bert``)."""
    if not isinstance(data, Mapping):
        raise ConversionError(
            f"{where} holds a JSON {type(data).__name__}, not an object with a model's fields (model_type, "
            "hidden_size, ...); download the checkpoint again"
        )
    family = family_for(data.get("model_type", "bert"), where)
    config = family.config_class.from_dict(data, where)
    count = parameter_count(config, with_pooler=True, family=family)
    if count > MAX_PARAMETERS:
        raise ConversionError(
            f"{where}: the sizes in it imply {count:,} parameters, more than the {MAX_PARAMETERS:,} nlu_lite "
            "converts (BERT-large has 335 M); fix the sizes or download the checkpoint again"
        )
    return config


def read_config(folder: str | os.PathLike) -> Any:
    """The validated config of a checkpoint folder's ``config.json`` (its family's config class).

    Every size is checked before anything is built from it; errors name the file, the
    field and the fix. A ``model_type`` nlu_lite does not convert is an error listing those it does.

    >>> read_config("all-MiniLM-L6-v2/").hidden_size  # doctest: +SKIP
    384
    """
    path = Path(folder) / "config.json"
    if not path.is_file():
        raise ArtifactNotFoundError(f"no config.json in {folder}: point nlu_lite at a transformers checkpoint folder")
    size = path.stat().st_size
    if size > MAX_CONFIG_BYTES:
        raise ConversionError(f"{path} is {size:,} bytes, not a model config (a few KB); download the checkpoint again")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # JSONDecodeError is a ValueError
        raise ConversionError(f"{path} is not valid JSON ({exc}); download the checkpoint again") from None
    return config_from_dict(data, str(path))


def expected_shapes(config: Any, *, with_pooler: bool, family: Family | None = None) -> dict[str, tuple[int, ...]]:
    """The weights ``config``'s graph reads, name -> shape (torch Linear layout: [out, in])."""
    family = family or family_of(config)
    sizes = family.sizes(config)
    return {name: tuple(sizes[f] for f in dims) for name, dims in family.layout(config, with_pooler).items()}


def parameter_count(config: Any, *, with_pooler: bool, family: Family | None = None) -> int:
    """How many numbers the weights of ``config`` hold: the sum over :func:`expected_shapes`."""
    return sum(math.prod(shape) for shape in expected_shapes(config, with_pooler=with_pooler, family=family).values())


def _layers_present(names: Iterable[str]) -> set[int]:
    found = set()
    for name in names:
        parts = name.split(".", 3)
        if len(parts) == 4 and parts[:2] == ["encoder", "layer"] and parts[2].isdecimal() and len(parts[2]) < 7:
            found.add(int(parts[2]))
    return found


def _check_layer_count(config: Any, names: Iterable[str], config_name: str, weights_name: str,
                       field: str = "num_hidden_layers") -> None:
    present = _layers_present(names)
    if not present or max(present) + 1 == config.num_layers:
        return  # no per-layer names (none at all, or shared layers): the missing-weights check says what is wrong
    n, want = max(present) + 1, config.num_layers
    if n < want:
        problem = f"{weights_name} lacks encoder.layer.{n} to encoder.layer.{want - 1}: it holds {n} layer(s)"
    else:
        problem = f"{weights_name} holds {n} layers (up to encoder.layer.{n - 1})"
    raise ConversionError(
        f"{config_name}: {field} is {want} but {problem}. Set {field} to {n} in "
        f"{config_name} if these weights are right; otherwise the config and the weights belong to different models"
    )


def check_shapes(config: Any, shapes: Mapping[str, Sequence[int]], *, config_name: str = "config.json",
                 weights_name: str = "the weights", family: Family | None = None) -> bool:
    """Raise :class:`ConversionError` unless the weights' ``shapes`` (by the builder's names) are
    the ones ``config`` implies. Needs only names and shapes, so it runs before any tensor data
    is read; the error names the config field that disagrees. Returns whether a pooler is present."""
    family = family or family_of(config)
    _check_layer_count(config, shapes, config_name, weights_name, family.layers_field)
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


def build_model(config: Any, weights: Mapping[str, Any], *, graph: str = "fused",
                metadata: Mapping[str, Any] | None = None):
    """The ONNX ``ModelProto`` of ``config``'s family for ``weights`` (by the builder's names)."""
    return family_of(config).build_model(config, weights, graph=graph, metadata=metadata)
