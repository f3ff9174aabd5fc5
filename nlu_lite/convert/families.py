"""Which family converts a checkpoint: the one table of families, and lookups over it.

:data:`FAMILIES` lists every family nlu_lite converts, each declared by one module (a
:class:`~nlu_lite.convert.family.Family` named ``FAMILY``); ``config.json``'s ``model_type``
picks one. The supported ``model_type`` list, the "not supported" error and the registry's
``architecture`` check are all read from this table. Adding a family is one module and one line
here (docs/DESIGN.md); :func:`register_family` adds one at run time (a plug-in, or a test).

Everything generic about reading a checkpoint's config lives here too: reading ``config.json``
safely, checking a weights file's index against the config before any tensor is read, and the
parameter budget.

>>> read_config("all-MiniLM-L6-v2/").hidden_size  # doctest: +SKIP
384
"""
from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import ArtifactNotFoundError, ConversionError
from . import (
    albert,
    bert,
    deberta,
    distilbert,
    electra,
    longformer,
    modernbert,
    mpnet,
    qwen3,
    roberta,
    static,
    t5,
    xlnet,
)
from . import family as _family
from .family import MAX_PARAMETERS, Family

MAX_CONFIG_BYTES = 16 << 20  # a config.json is a few KB; a label map may make it a few hundred

FAMILIES: tuple[Family, ...] = (
    bert.FAMILY,
    roberta.FAMILY,
    distilbert.FAMILY,
    electra.FAMILY,
    albert.FAMILY,
    mpnet.FAMILY,
    deberta.FAMILY,
    t5.FAMILY,
    longformer.FAMILY,
    xlnet.FAMILY,
    qwen3.FAMILY,
    modernbert.FAMILY,
    static.FAMILY,
)

_BY_TYPE: dict[str, Family] = {}


def _index(family: Family, *, replace: bool = False) -> None:
    taken = [t for t in family.model_types if t in _BY_TYPE and _BY_TYPE[t] is not family]
    if taken and not replace:
        raise ValueError(f"model_type(s) {taken} already belong to {_BY_TYPE[taken[0]].name}; pass replace=True")
    after = {**_BY_TYPE, **dict.fromkeys(family.model_types, family)}
    # a config is matched to its family by class (family_of): two families sharing one class would be one family
    shared = [f.name for f in dict.fromkeys(after.values()) if f is not family and f.config_class is family.config_class]
    if shared:
        raise ValueError(f"{family.name}'s config class {family.config_class.__name__} is {shared[0]}'s too; give the "
                         "family a config class of its own (a subclass is enough), or replace all of "
                         f"{shared[0]}'s model types")
    _BY_TYPE.update(dict.fromkeys(family.model_types, family))


for _f in FAMILIES:
    _index(_f)


def register_family(family: Family, *, replace: bool = False) -> None:
    """Add ``family`` for this process: its ``model_types`` convert with it from now on.

    A model type another family already has is an error unless ``replace=True``.
    """
    if not isinstance(family, Family):
        raise TypeError(f"register_family() takes a Family; got {type(family).__name__}")
    _index(family, replace=replace)


def unregister_family(family: Family) -> None:
    """Remove a family added by :func:`register_family` (the built-in ones stay)."""
    for model_type in family.model_types:
        if _BY_TYPE.get(model_type) is family:
            builtin = next((f for f in FAMILIES if model_type in f.model_types), None)
            if builtin is None:
                del _BY_TYPE[model_type]
            else:
                _BY_TYPE[model_type] = builtin


def find_family(model_type: object) -> Family | None:
    """The :class:`Family` that converts ``model_type``, or ``None`` when none does (no error)."""
    return _BY_TYPE.get(model_type) if isinstance(model_type, str) else None


def plugins() -> tuple[Family, ...]:
    """The families added by :func:`register_family` and still registered (usually none)."""
    return tuple(f for f in dict.fromkeys(_BY_TYPE.values()) if not any(f is g for g in FAMILIES))


def supported_model_types() -> list[str]:
    """The ``model_type`` values nlu_lite converts, in the table's order."""
    return list(_BY_TYPE)


def family_for(model_type: object, where: str = "config.json") -> Family:
    """The :class:`Family` that converts ``model_type``; an error listing the supported ones otherwise."""
    family = find_family(model_type)
    if family is None:
        shown = repr(model_type) if len(repr(model_type)) <= 60 else repr(model_type)[:57] + "..."
        raise ConversionError(
            f"{where}: model_type {shown} is not supported; nlu_lite converts "
            f"{', '.join(repr(t) for t in supported_model_types())}"
        )
    return family


def family_of(config: Any) -> Family:
    """The family whose config class ``config`` is."""
    for family in dict.fromkeys(_BY_TYPE.values()):
        if type(config) is family.config_class:
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
    return _family.expected_shapes(config, family or family_of(config), with_pooler=with_pooler)


def parameter_count(config: Any, *, with_pooler: bool, family: Family | None = None) -> int:
    """How many numbers the weights of ``config`` hold: the sum over :func:`expected_shapes`."""
    return _family.parameter_count(config, family or family_of(config), with_pooler=with_pooler)


def check_shapes(config: Any, shapes: Mapping[str, Sequence[int]], *, config_name: str = "config.json",
                 weights_name: str = "the weights", family: Family | None = None) -> bool:
    """:func:`nlu_lite.convert.family.check_shapes` with the family looked up from ``config``."""
    return _family.check_shapes(config, family or family_of(config), shapes, config_name=config_name,
                                weights_name=weights_name)


def build_model(config: Any, weights: Mapping[str, Any], *, graph: str = "fused",
                metadata: Mapping[str, Any] | None = None):
    """The ONNX ``ModelProto`` of ``config``'s family for ``weights`` (by the builder's names)."""
    return family_of(config).build_model(config, weights, graph=graph, metadata=metadata)
