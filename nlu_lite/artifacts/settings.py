"""A sentence-transformers folder's own settings: how it pools, normalises, cuts and prompts.

sentence-transformers saves, beside the transformers checkpoint:

- ``modules.json``: the module chain, for the models nlu_lite runs ``Transformer -> Pooling
  [-> Dense ...] [-> Normalize]``;
- ``sentence_bert_config.json``: the Transformer's ``max_seq_length`` and ``do_lower_case``;
- ``<Pooling path>/config.json`` (``1_Pooling/config.json``): ``pooling_mode_*`` flags (since
  sentence-transformers 5.x one ``pooling_mode``) and ``include_prompt``;
- ``config_sentence_transformers.json``: ``prompts`` and ``default_prompt_name``;
- ``<Dense path>/config.json`` and its weights (``2_Dense/model.safetensors`` or ``pytorch_model.bin``):
  a linear layer and activation applied to the pooled vector (sentence-t5, GTR, Instructor, LaBSE).

:func:`read_folder_settings` reads them into :class:`FolderSettings`; :func:`apply_folder_settings`
puts them into a :class:`~nlu_lite.registry.ModelSpec`, so a sentence model pools, normalises
and cuts its windows as sentence-transformers does, without a registry entry saying so.
Whatever nlu_lite cannot reproduce (a module of another kind, ``weightedmean`` pooling, two
poolings concatenated, a Dense layer with a residual or an activation other than Identity, Tanh,
ReLU or Sigmoid) is a :class:`ConversionError` naming it: a module is never skipped in silence.

``max_seq_length`` counts every token, ``[CLS]``/``<s>`` and ``[SEP]``/``</s>`` included:
sentence-transformers hands it to the tokenizer as ``model_max_length`` and calls it with
``truncation=True``, and transformers' truncation keeps room for the special tokens (a BERT
tokenizer with ``max_length=8`` returns 8 ids, ``[CLS]`` and ``[SEP]`` among them). nlu_lite's
``max_length`` counts the same positions, so the number carries over unchanged.

>>> apply_folder_settings(spec, "all-MiniLM-L6-v2/").max_length  # doctest: +SKIP
256
"""
from __future__ import annotations

import dataclasses
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConversionError
from ..registry import ModelSpec

logger = logging.getLogger(__name__)

MODULES = "modules.json"
MODEL_CONFIG = "config_sentence_transformers.json"
# the Transformer's config: sentence_bert_config.json, or one of the names older releases wrote
TRANSFORMER_CONFIGS = ("sentence_bert_config.json", "sentence_roberta_config.json", "sentence_distilbert_config.json",
                       "sentence_camembert_config.json", "sentence_albert_config.json",
                       "sentence_xlm-roberta_config.json")
TOKENIZER_CONFIG = "tokenizer_config.json"
# what a Hub fetch asks for when the repo has it: enough to read every setting of the usual layout
HUB_OPTIONAL = (MODULES, TRANSFORMER_CONFIGS[0], MODEL_CONFIG, "1_Pooling/config.json", "2_Normalize/config.json",
                TOKENIZER_CONFIG, "special_tokens_map.json")
# single pooling modes nlu_lite runs (nlu_lite.pooling), by sentence-transformers' names
_POOLINGS = {"mean": "mean", "cls": "cls", "max": "max", "lasttoken": "lasttoken"}
_LEGACY_MODES = {  # the flags of 1_Pooling/config.json before pooling_mode, in sentence-transformers' order
    "pooling_mode_cls_token": "cls", "pooling_mode_max_tokens": "max", "pooling_mode_mean_tokens": "mean",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens", "pooling_mode_weightedmean_tokens": "weightedmean",
    "pooling_mode_lasttoken": "lasttoken",
}
_KINDS = {"Transformer": "transformer", "Pooling": "pooling", "Dense": "dense", "Normalize": "normalize"}
# a Dense module's activation_function (torch's class path, as sentence-transformers saves it) -> nlu_lite's name
DENSE_ACTIVATIONS = {"Identity": "identity", "Tanh": "tanh", "ReLU": "relu", "Sigmoid": "sigmoid"}
DENSE_WEIGHTS = ("model.safetensors", "pytorch_model.bin")
_SAFE_PATH = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*(?:/[A-Za-z0-9_][A-Za-z0-9_.-]*)*")
_UNBOUNDED = 1_000_000  # transformers writes model_max_length 1e30 for "no limit"


@dataclass(frozen=True)
class Module:
    """One entry of ``modules.json``: its kind (``transformer``/``pooling``/``dense``/``normalize``, ``None`` for
    any other), its folder relative to the model folder (``""``: the folder itself) and its class."""

    kind: str | None
    path: str
    type: str
    name: str


@dataclass(frozen=True)
class DenseConfig:
    """A Dense module's ``config.json``: ``out = activation(weight @ pooled + bias)`` (``path``: its folder)."""

    path: str
    in_features: int
    out_features: int
    bias: bool
    activation: str  # a value of DENSE_ACTIVATIONS


@dataclass(frozen=True, eq=False)
class DenseLayer:
    """A Dense module with its weights: ``weight`` (out_features, in_features) float32, ``bias`` (out_features,)
    or ``None``. Applied by :func:`nlu_lite.pooling.project`."""

    config: DenseConfig
    weight: np.ndarray
    bias: np.ndarray | None

    @property
    def activation(self) -> str:
        return self.config.activation


@dataclass(frozen=True)
class FolderSettings:
    """What a sentence-transformers folder says about its sentence vectors.

    ``max_length``: ``max_seq_length`` (framing included), ``None`` when the folder sets none.
    ``dimension``: the width the Pooling module expects, when its config says.
    """

    pooling: str
    normalize: bool
    max_length: int | None
    prompts: tuple[tuple[str, str], ...] = ()
    default_prompt_name: str | None = None
    include_prompt: bool = True
    do_lower_case: bool = False
    dimension: int | None = None
    dense: tuple[DenseConfig, ...] = ()


def is_sentence_transformers_folder(folder: str | Path) -> bool:
    """Whether ``folder`` holds a ``modules.json``: a model saved by sentence-transformers."""
    return (Path(folder) / MODULES).is_file()


def read_json(path: Path) -> dict:
    """The JSON object in ``path``; a :class:`ConversionError` naming the file when it is not one."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # JSONDecodeError is a ValueError
        raise ConversionError(f"{path} is not valid JSON ({exc}); download the model again") from None
    if not isinstance(data, dict):
        raise ConversionError(f"{path} holds a JSON {type(data).__name__}, not an object; download the model again")
    return data


def _optional_json(path: Path) -> dict | None:
    return read_json(path) if path.is_file() else None


def read_modules(folder: str | Path) -> tuple[Module, ...]:
    """The entries of ``folder``'s ``modules.json``, in order; a :class:`ConversionError` naming the
    file when it is not a list of modules with a ``type`` and a safe relative ``path``."""
    path = Path(folder) / MODULES
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise ConversionError(f"{path} is not valid JSON ({exc}); download the model again") from None
    if not isinstance(data, list) or not data:
        raise ConversionError(f"{path} should list the model's modules (a JSON list of objects with 'type' and "
                              f"'path'); it holds {type(data).__name__} {_shown(data)}. Download the model again")
    modules = []
    for i, entry in enumerate(data):
        if not isinstance(entry, dict) or not isinstance(entry.get("type"), str) or not isinstance(entry.get("path", ""), str):
            raise ConversionError(f"{path}: entry {i} should be an object with a string 'type' and 'path'; got "
                                  f"{_shown(entry)}. Download the model again")
        where = entry.get("path", "").strip("/")
        if where and (not _SAFE_PATH.fullmatch(where) or ".." in where.split("/")):
            raise ConversionError(f"{path}: entry {i} has path {where!r}, which is not a folder inside the model "
                                  "folder; download the model again")
        modules.append(Module(_kind(entry["type"]), where, entry["type"], str(entry.get("name", i))))
    return tuple(modules)


def _kind(type_name: str) -> str | None:
    """``sentence_transformers.models.Pooling`` (and 5.x's ``...modules.pooling.Pooling``) -> ``pooling``."""
    if not type_name.startswith("sentence_transformers."):
        return None
    return _KINDS.get(type_name.rsplit(".", 1)[-1])


def module_files(folder: str | Path) -> tuple[str, ...]:
    """The files of the modules after the Transformer, relative to ``folder``: each one's
    ``config.json`` (``1_Pooling/config.json``) and a Dense module's weights (either name; the repo
    has one): what a Hub fetch must ask for once ``modules.json`` is known."""
    if not is_sentence_transformers_folder(folder):
        return ()
    names: list[str] = []
    for m in read_modules(folder):
        if m.kind != "transformer" and m.path:
            names.append(f"{m.path}/config.json")
            if m.kind == "dense":
                names.extend(f"{m.path}/{name}" for name in DENSE_WEIGHTS)
    return tuple(names)


def _chain(folder: Path, modules: tuple[Module, ...]) -> tuple[Module, Module, tuple[Module, ...], Module | None]:
    """The Transformer, Pooling, Dense (any number, in order) and Normalize modules, or a
    :class:`ConversionError` naming the module or the order that nlu_lite cannot reproduce."""
    path = folder / MODULES
    for m in modules:
        if m.kind is None:
            raise ConversionError(
                f"{path}: module {m.name!r} is a {m.type}, which nlu_lite does not apply, so its sentence vectors "
                "would not be this model's. nlu_lite runs Transformer -> Pooling [-> Dense ...] [-> Normalize] "
                "folders; for the "
                "transformer's own states load it as a token model (register_model(..., task='token')), or use "
                "sentence-transformers for this one"
            )
    kinds = [m.kind for m in modules]
    normalize = kinds[-1] == "normalize" and len(kinds) > 2
    middle = kinds[2:len(kinds) - normalize]
    if kinds[:2] != ["transformer", "pooling"] or any(k != "dense" for k in middle):
        raise ConversionError(
            f"{path}: its modules run {' -> '.join(m.type.rsplit('.', 1)[-1] for m in modules)}; nlu_lite runs "
            "Transformer -> Pooling, then optionally Dense layers and a Normalize, and no other order"
        )
    return modules[0], modules[1], modules[2:len(modules) - normalize], modules[-1] if normalize else None


def _transformer(folder: Path, modules: tuple[Module, ...]) -> Module:
    first = modules[0]
    if first.kind != "transformer":
        raise ConversionError(f"{folder / MODULES}: the first module is a {first.type}, not a Transformer; nlu_lite "
                              "runs models whose first module is the transformers checkpoint")
    if first.path:
        raise ConversionError(
            f"{folder / MODULES}: the Transformer lives in the subfolder {first.path!r}, not beside modules.json; "
            f"load that subfolder as a plain checkpoint (nlu_lite.load(path='{folder / first.path}')), without "
            "sentence-transformers' settings"
        )
    return first


def transformer_settings(folder: str | Path) -> tuple[int | None, bool]:
    """``(max_length, do_lower_case)`` of the Transformer module: ``max_seq_length`` from
    ``sentence_bert_config.json``, else the tokenizer's ``model_max_length`` (where
    sentence-transformers 5.x keeps it); ``None`` when neither sets one."""
    folder = Path(folder)
    _transformer(folder, read_modules(folder))
    config, where = next(((read_json(folder / n), folder / n) for n in TRANSFORMER_CONFIGS if (folder / n).is_file()),
                         ({}, folder / TRANSFORMER_CONFIGS[0]))
    task = config.get("transformer_task", "feature-extraction")
    if task != "feature-extraction":
        raise ConversionError(f"{where}: transformer_task is {_shown(task)}; nlu_lite runs 'feature-extraction' "
                              "models (an encoder's hidden states), not this one")
    lower = config.get("do_lower_case", False)
    if not isinstance(lower, bool):
        raise ConversionError(f"{where}: do_lower_case should be true or false, got {_shown(lower)}; "
                              "download the model again")
    length, where = _max_length(folder, config, where)
    if length is not None and (isinstance(length, bool) or not isinstance(length, int) or length < 1):
        raise ConversionError(f"{where}: the maximum sequence length should be a positive whole number, got "
                              f"{_shown(length)}; download the model again")
    return length, lower


def _max_length(folder: Path, config: Mapping[str, Any], where: Path) -> tuple[Any, Path]:
    """The Transformer's length limit and the file that sets it: ``max_seq_length``, the
    ``model_max_length`` it passes its tokenizer, else the tokenizer's own (5.x saves it there)."""
    if config.get("max_seq_length") is not None:
        return config["max_seq_length"], where
    kwargs = config.get("processor_kwargs") or config.get("tokenizer_args") or {}
    if isinstance(kwargs, Mapping) and kwargs.get("model_max_length") is not None:
        return kwargs["model_max_length"], where
    length = (_optional_json(folder / TOKENIZER_CONFIG) or {}).get("model_max_length")
    if isinstance(length, (int, float)) and not isinstance(length, bool) and length >= _UNBOUNDED:
        length = None  # transformers' "no limit": the model's positions decide
    return length, folder / TOKENIZER_CONFIG


def _module_config(folder: Path, module: Module, kind: str, says: str) -> tuple[Path, dict]:
    """The path and contents of a module's own ``config.json`` (the Pooling or a Dense module), which
    ``says`` what nlu_lite needs of it; a module without a folder or its config is an error naming it."""
    if not module.path:  # the folder's own config.json is the transformer's, never the module's
        raise ConversionError(f"{folder / MODULES}: the {kind} module has no folder of its own (path ''); "
                              "download the model again")
    path = folder / module.path / "config.json"
    if not path.is_file():
        raise ConversionError(f"{path} is missing: {folder / MODULES} names a {kind} module there, and its config "
                              f"{says}; download the model again")
    return path, read_json(path)


def _pooling(folder: Path, module: Module) -> tuple[str, bool, int | None]:
    """``(pooling, include_prompt, dimension)`` from the Pooling module's config."""
    path, config = _module_config(folder, module, "Pooling", "says how to pool")
    if "pooling_mode" in config:
        mode = config["pooling_mode"]
        modes = [mode] if isinstance(mode, str) else mode
        if not isinstance(modes, list) or not modes or not all(isinstance(m, str) for m in modes):
            raise ConversionError(f"{path}: pooling_mode should be a mode name or a list of them, got {_shown(mode)}")
    else:
        modes = [m for key, m in _LEGACY_MODES.items() if config.get(key) is True] or ["mean"]
    if len(modes) > 1:
        raise ConversionError(f"{path}: the model concatenates {' + '.join(modes)} pooling ({len(modes)} vectors "
                              "side by side); nlu_lite pools one way, so it cannot give this model's vectors")
    if modes[0] not in _POOLINGS:
        raise ConversionError(f"{path}: pooling mode {modes[0]!r} is not one nlu_lite runs "
                              f"({', '.join(_POOLINGS)}); use sentence-transformers for this model")
    include = config.get("include_prompt", True)
    if not isinstance(include, bool):
        raise ConversionError(f"{path}: include_prompt should be true or false, got {_shown(include)}")
    width = config.get("embedding_dimension", config.get("word_embedding_dimension"))
    width = width if isinstance(width, int) and not isinstance(width, bool) else None
    return _POOLINGS[modes[0]], include, width


def _normalize(folder: Path, module: Module | None) -> bool:
    """Whether a Normalize module L2-normalises the sentence vector (5.x may point it at token vectors)."""
    if module is None:
        return False
    config = _optional_json(folder / module.path / "config.json") if module.path else None
    target = (config or {}).get("module_input_name", "sentence_embedding")
    if target != "sentence_embedding":
        raise ConversionError(f"{folder / module.path / 'config.json'}: the Normalize module normalises "
                              f"{_shown(target)}, not the sentence vector; nlu_lite does not apply that")
    return True


def _dense(folder: Path, module: Module) -> DenseConfig:
    """A Dense module's config, checked: what sentence-transformers' ``Dense`` reads, and nothing it
    would apply that nlu_lite does not."""
    path, config = _module_config(folder, module, "Dense", "gives the layer's shape and activation")
    sizes = {}
    for key in ("in_features", "out_features"):
        value = config.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 1 << 20:
            raise ConversionError(f"{path}: {key} should be a positive whole number, got {_shown(value)}; "
                                  "download the model again")
        sizes[key] = value
    bias = config.get("bias", True)
    if not isinstance(bias, bool):
        raise ConversionError(f"{path}: bias should be true or false, got {_shown(bias)}")
    if config.get("use_residual", False) is not False:
        raise ConversionError(f"{path}: use_residual={_shown(config['use_residual'])} adds the input back after the "
                              "layer, which nlu_lite does not apply; use sentence-transformers for this model")
    for key in ("module_input_name", "module_output_name"):
        if config.get(key) not in (None, "sentence_embedding"):
            raise ConversionError(f"{path}: {key} is {_shown(config[key])}; nlu_lite applies a Dense layer to the "
                                  "sentence vector only")
    # sentence-transformers' default when the key is absent is Tanh (Dense's own default), not Identity
    name = config.get("activation_function", "torch.nn.modules.activation.Tanh")
    short = name.rsplit(".", 1)[-1] if isinstance(name, str) and name.startswith("torch.") else None
    if short not in DENSE_ACTIVATIONS:
        raise ConversionError(f"{path}: activation_function {_shown(name)} is not one nlu_lite applies "
                              f"({', '.join('torch.nn.' + k for k in DENSE_ACTIVATIONS)}); use sentence-transformers "
                              "for this model")
    return DenseConfig(module.path, sizes["in_features"], sizes["out_features"], bias, DENSE_ACTIVATIONS[short])


def read_dense_layers(folder: str | Path) -> tuple[DenseLayer, ...]:
    """The Dense modules of the sentence-transformers folder ``folder`` with their weights, in order
    (none for a folder without them). Each layer's ``linear.weight`` (out, in) and ``linear.bias`` must
    have the config's shapes and finite values; anything else is a :class:`ConversionError` naming the file."""
    from ..convert.weights import FLOAT_DTYPES, open_checkpoint

    folder = Path(folder)
    if not is_sentence_transformers_folder(folder):
        return ()
    layers = []
    for config in read_folder_settings(folder).dense:
        where = folder / config.path
        path = next((where / name for name in DENSE_WEIGHTS if (where / name).is_file()), None)
        if path is None:
            raise ConversionError(f"{where} holds no weights ({' or '.join(DENSE_WEIGHTS)}) for its Dense module; "
                                  "download the model again")
        checkpoint = open_checkpoint(path)
        want = {"linear.weight": (config.out_features, config.in_features)}
        if config.bias:
            want["linear.bias"] = (config.out_features,)
        for name, shape in want.items():
            if name not in checkpoint.shapes:
                raise ConversionError(f"{path} has no {name!r} (it holds {_shown(sorted(checkpoint.shapes))}); "
                                      "download the model again")
            if tuple(checkpoint.shapes[name]) != shape:
                raise ConversionError(f"{path}: {name} is {tuple(checkpoint.shapes[name])} but its config.json says "
                                      f"{shape}; the weights and the config come from different models")
            if checkpoint.dtypes[name] not in FLOAT_DTYPES:
                raise ConversionError(f"{path}: {name} is stored as {checkpoint.dtypes[name]}; nlu_lite reads float "
                                      "weights")
        raw = checkpoint.read(want, max_elements=sum(int(np.prod(s)) for s in want.values()))
        arrays = {name: np.ascontiguousarray(raw[name], dtype=np.float32) for name in want}
        for name, array in arrays.items():
            if not np.isfinite(array).all():
                raise ConversionError(f"{path}: {name} holds {int((~np.isfinite(array)).sum())} NaN or infinite "
                                      "value(s); every vector would be NaN. Download the model again")
        layers.append(DenseLayer(config, arrays["linear.weight"], arrays.get("linear.bias")))
    return tuple(layers)


def _prompts(folder: Path) -> tuple[tuple[tuple[str, str], ...], str | None]:
    """``prompts`` and ``default_prompt_name`` of ``config_sentence_transformers.json`` (none when absent)."""
    path = folder / MODEL_CONFIG
    config = _optional_json(path) or {}
    kind = config.get("model_type", "SentenceTransformer")
    if kind != "SentenceTransformer":
        raise ConversionError(f"{path}: model_type is {_shown(kind)}; nlu_lite embeds with SentenceTransformer "
                              "models, not this kind")
    prompts = config.get("prompts") or {}
    if not isinstance(prompts, Mapping) or not all(
            isinstance(k, str) and k and (v is None or isinstance(v, str)) for k, v in prompts.items()):
        raise ConversionError(f"{path}: prompts should map prompt names to texts, got {_shown(prompts)}")
    pairs = tuple((name, text or "") for name, text in prompts.items())  # None: "", as sentence-transformers reads it
    default = config.get("default_prompt_name")
    if default is not None and default not in prompts:
        raise ConversionError(f"{path}: default_prompt_name {_shown(default)} is not one of its prompts "
                              f"{sorted(prompts)}; download the model again")
    return pairs, default


def read_folder_settings(folder: str | Path) -> FolderSettings:
    """The settings of the sentence-transformers folder ``folder`` (it must hold ``modules.json``).

    A module, pooling mode or order nlu_lite cannot reproduce, and any malformed file, is a
    :class:`ConversionError` naming the file and the setting.
    """
    folder = Path(folder)
    modules = read_modules(folder)
    _, pool, dense, norm = _chain(folder, modules)
    pooling, include_prompt, width = _pooling(folder, pool)
    layers = tuple(_dense(folder, m) for m in dense)
    for before, layer in zip(((width,) if width else (None,)) + tuple(d.out_features for d in layers), layers):
        if before is not None and layer.in_features != before:
            raise ConversionError(f"{folder / layer.path / 'config.json'}: the Dense layer takes {layer.in_features}-dim "
                                  f"vectors but the module before it gives {before}; download the model again")
    length, lower = transformer_settings(folder)
    prompts, default = _prompts(folder)
    return FolderSettings(pooling=pooling, normalize=_normalize(folder, norm), max_length=length, prompts=prompts,
                          default_prompt_name=default, include_prompt=include_prompt, do_lower_case=lower,
                          dimension=width, dense=layers)


def apply_folder_settings(spec: ModelSpec, folder: str | Path) -> ModelSpec:
    """``spec`` with the settings of ``folder`` when it is a sentence-transformers folder, else ``spec``.

    A sentence model takes the folder's pooling, normalisation, ``include_prompt`` and prompts
    (prompts ``spec`` already names keep its text, as a caller's do in sentence-transformers);
    every model takes ``max_length = min(spec.max_length, max_seq_length)``. The folder's
    settings win over the spec's: they are how the model was trained and how sentence-transformers
    runs it. Applying twice gives the same spec.
    """
    folder = Path(folder)
    if not is_sentence_transformers_folder(folder):
        return spec
    if spec.task != "sentence":
        length, lower = transformer_settings(folder)
        return _changed(spec, folder, max_length=_shorter(spec.max_length, length), **_lowercase(spec, folder, lower))
    found = read_folder_settings(folder)
    if found.dimension is not None and found.dimension != spec.dim:
        raise ConversionError(f"{folder / MODULES}: its Pooling module expects {found.dimension}-dim token vectors "
                              f"but the model's entry says dim={spec.dim}; the folder and the entry disagree")
    prompts = {**dict(found.prompts), **dict(spec.prompts)}
    return _changed(
        spec, folder, pooling=found.pooling, normalize=found.normalize, include_prompt=found.include_prompt,
        max_length=_shorter(spec.max_length, found.max_length), prompts=tuple(prompts.items()),
        default_prompt_name=spec.default_prompt_name or found.default_prompt_name,
        **_lowercase(spec, folder, found.do_lower_case),
    )


def _shorter(limit: int, length: int | None) -> int:
    return limit if length is None else min(limit, length)


def _lowercase(spec: ModelSpec, folder: Path, lower: bool) -> dict[str, Any]:
    """``do_lower_case``: sentence-transformers lowercases every text before its tokenizer sees it.
    nlu_lite runs ``tokenizer.json`` as written, so that is only the same model when the file
    lowercases already; a folder with only ``vocab.txt`` is read uncased (``case_sensitive=False``)."""
    if not lower:
        return {}
    tokenizer = folder / "tokenizer.json"
    if not tokenizer.is_file():
        return {"case_sensitive": False}
    if not lowercases(read_json(tokenizer).get("normalizer")):
        raise ConversionError(
            f"{folder / TRANSFORMER_CONFIGS[0]} sets do_lower_case: sentence-transformers lowercases every text "
            f"before tokenizing, but {tokenizer} does not lowercase and nlu_lite runs it as written, so the vectors "
            "would differ for any text with capitals. Lowercase the texts yourself and load the folder without "
            "modules.json, or add a Lowercase normalizer to tokenizer.json"
        )
    return {}


def lowercases(normalizer: Any) -> bool:
    """Whether a ``tokenizer.json`` normalizer lowercases (``Lowercase``, ``BertNormalizer(lowercase)``,
    or a ``Sequence`` holding one), as sentence-transformers checks before adding its own."""
    if not isinstance(normalizer, Mapping):
        return False
    kind = normalizer.get("type")
    if kind == "Lowercase":
        return True
    if kind == "BertNormalizer":
        return normalizer.get("lowercase") is True
    if kind == "Sequence":
        return any(lowercases(n) for n in normalizer.get("normalizers") or ())
    return False


def _changed(spec: ModelSpec, folder: Path, **values: Any) -> ModelSpec:
    """``spec`` with ``values`` (the same object when nothing changes); each change logged."""
    changes = {k: v for k, v in values.items() if getattr(spec, k) != v}
    for key, value in changes.items():
        logger.info("%s: %s=%r from %s (the entry said %r)", spec.alias, key, value, folder, getattr(spec, key))
    return dataclasses.replace(spec, **changes) if changes else spec


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
