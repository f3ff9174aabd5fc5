"""A checkpoint folder or Hub repo -> its :class:`~nlu_lite.registry.ModelSpec`, read from its own files.

``config.json`` says the family (``model_type``); the family (:mod:`nlu_lite.convert.families`)
says how many positions a sequence may use, which files stand in for ``tokenizer.json`` and the
default pooling; a sentence-transformers folder adds its pooling, normalisation, length and
prompts (:mod:`nlu_lite.artifacts.settings`). Nothing here knows a family by name.

>>> spec_from_folder('all-MiniLM-L6-v2/').max_length  # doctest: +SKIP
512
"""
from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import Any

from .choices import SENTENCE_POOLINGS, TASKS, check_choice
from .errors import ArtifactNotFoundError, ConversionError, InputError
from .registry import HubSource, LocalSource, ModelSpec, default_registry


def looks_like_folder(alias: str) -> bool:
    """Whether ``alias`` is a path to an existing folder (or vectors file) rather than a registry alias."""
    if not (os.sep in alias or alias.startswith((".", "~"))):
        return False
    path = Path(alias).expanduser()
    from .convert.static import table_format

    return path.is_dir() or (path.is_file() and table_format(path) is not None)


def _read_json_object(path: Path) -> dict:
    from .artifacts.settings import read_json

    return read_json(path)


def _case_sensitive(folder: Path) -> bool:
    """From tokenizer_config.json / tokenizer.json when they say; else from the vocabulary itself."""
    from .artifacts.settings import lowercases

    model_config = folder / "config.json"  # a static table's import records its rule (its tokenizer.json is huge)
    if model_config.is_file():
        settings = _read_json_object(model_config)
        if settings.get("model_type") == "static-vectors" and isinstance(settings.get("case_sensitive"), bool):
            return settings["case_sensitive"]
    config = folder / "tokenizer_config.json"
    if config.is_file():
        value = _read_json_object(config).get("do_lower_case")
        if isinstance(value, bool):
            return not value
    tok = folder / "tokenizer.json"
    if tok.is_file():
        data = _read_json_object(tok)
        if "normalizer" in data:  # what the tokenizer does to text: a BPE's null normalizer keeps case
            return not lowercases(data["normalizer"])
    vocab = folder / "vocab.txt"
    if vocab.is_file():
        try:
            words = [w for w in vocab.read_text(encoding="utf-8").splitlines() if w.isalpha()]
        except UnicodeDecodeError as exc:
            raise ConversionError(f"{vocab} is not UTF-8 text ({exc}); download the model again") from None
        upper = sum(1 for w in words if w[0].isupper())
        return upper > 0.05 * max(len(words), 1)  # a cased BERT vocab has many capitalised words
    return False


def usable_positions(config: Any) -> int:
    """The longest sequence a checkpoint takes, framing included, from its validated config: what
    its family says (``Family.max_length``; RoBERTa's 514-row table takes 512), as the converted
    graph's metadata does."""
    from .convert.families import family_of

    return family_of(config).max_length(config)


def _model_type(folder: Path) -> str:
    value = _read_json_object(folder / "config.json").get("model_type", "bert")
    return value if isinstance(value, str) else "bert"


def _spec_from_checkpoint(folder: Path, *, name: str, aliases: tuple[str, ...], task: str, pooling: str | None,
                          normalize: bool, sources: tuple, description: str) -> ModelSpec:
    """The entry of the checkpoint in ``folder`` (its config.json read and checked), before folder settings;
    ``pooling`` ``None``: the family's default."""
    from .convert import read_config
    from .convert.families import family_of

    config = read_config(folder)  # a ConversionError naming the field, or listing the supported model types
    family = family_of(config)
    return ModelSpec(
        name=name, aliases=aliases, task=task, dim=config.hidden_size,  # type: ignore[arg-type]
        layers=config.num_layers, heads=config.num_heads, max_length=family.max_length(config),
        architecture=_model_type(folder), case_sensitive=_case_sensitive(folder),
        pooling=pooling or family.default_pooling,  # type: ignore[arg-type]
        subtoken_pooling=family.default_subtoken_pooling,  # type: ignore[arg-type]
        normalize=normalize, sources=sources, description=description,
    )


def spec_from_folder(path: str | os.PathLike, *, alias: str | None = None, task: str | None = None,
                     pooling: str | None = None, normalize: bool | None = None,
                     case_sensitive: bool | None = None) -> ModelSpec:
    """A :class:`ModelSpec` for a local checkpoint folder, read from its ``config.json``; or for a table of
    static word vectors (a GloVe / word2vec / fastText file, or a folder holding one: imported once, see
    :mod:`nlu_lite.convert.static`; ``case_sensitive`` picks its lookup rule, case-insensitive by default).

    A sentence-transformers folder (``modules.json``) is a sentence model with its own pooling,
    normalisation, ``max_seq_length`` and prompts (:func:`nlu_lite.artifacts.settings.apply_folder_settings`),
    unless ``task='token'``; ``pooling``/``normalize`` that contradict its files are an error (they
    would be overridden at every load; ``predict(pooling=...)`` changes one call). Other folders:
    ``task='token'``, the family's pooling (``'mean'``; ``Family.default_pooling``), ``normalize=False`` by default.
    """
    from .artifacts import settings
    from .convert import static

    folder = Path(path).expanduser()
    if static.is_model2vec(folder):  # MinishLab's static sentence models: mean of their pieces' rows
        found = static.model2vec_settings(folder)
        checkpoint = static.ensure_checkpoint(folder)
        spec = _spec_from_checkpoint(
            checkpoint, name=alias or folder.resolve().name, aliases=(alias,) if alias else (),
            task=task or "sentence", pooling=pooling,
            normalize=found["normalize"] if normalize is None else bool(normalize),
            sources=(LocalSource(path=str(checkpoint)),), description=f"model2vec static model {folder}")
        if found["max_length"]:  # model2vec keeps this many pieces: truncation=True cuts there, as it does
            spec = dataclasses.replace(spec, max_length=found["max_length"])
        check_choice(spec.task, TASKS, "task", InputError)
        return spec
    table = static.find_table(folder)
    if table is not None:
        if case_sensitive is not None and not isinstance(case_sensitive, bool):
            raise InputError(f"case_sensitive must be True or False; got {case_sensitive!r}")
        checkpoint = static.ensure_checkpoint(table, case_sensitive=bool(case_sensitive))
        spec = _spec_from_checkpoint(
            checkpoint, name=alias or table.stem, aliases=(alias,) if alias else (), task=task or "token",
            pooling=pooling, normalize=bool(normalize), sources=(LocalSource(path=str(checkpoint)),),
            description=f"static word vectors {table}")
        check_choice(spec.task, TASKS, "task", InputError)
        return spec
    if not (folder / "config.json").is_file():
        raise ArtifactNotFoundError(
            f"{folder} has no config.json: pass the folder of a Hugging Face checkpoint "
            "(config.json, model.safetensors or pytorch_model.bin, tokenizer.json or vocab.txt)"
        )
    sentence_folder = settings.is_sentence_transformers_folder(folder)
    task = task if task is not None else ("sentence" if sentence_folder else "token")
    check_choice(task, TASKS, "task", InputError)
    if pooling is not None:
        check_choice(pooling, SENTENCE_POOLINGS, "pooling", InputError)
    if normalize is not None and not isinstance(normalize, bool):
        raise InputError(f"normalize must be True or False; got {normalize!r}")
    spec = _spec_from_checkpoint(
        folder, name=alias or folder.resolve().name, aliases=(alias,) if alias else (), task=task,
        pooling=pooling, normalize=bool(normalize), sources=(LocalSource(path=str(folder.resolve())),),
        description=f"local checkpoint {folder}",
    )
    settled = settings.apply_folder_settings(spec, folder)
    if sentence_folder and task == "sentence":
        for key, asked in (("pooling", pooling), ("normalize", normalize)):
            if asked is not None and getattr(settled, key) != asked:
                raise InputError(
                    f"{key}={asked!r} contradicts {folder}'s sentence-transformers settings ({key}="
                    f"{getattr(settled, key)!r}), which every load applies; drop {key}=, or pass it to predict() "
                    "for a call"
                )
    return settled


HUB_PREFIX = "hf:"
_REPO_ID = re.compile(r"(?:[A-Za-z0-9][A-Za-z0-9._-]*/)?[A-Za-z0-9][A-Za-z0-9._-]*")
HUB_WEIGHTS = ("model.safetensors", "pytorch_model.bin")


def hub_repo(alias: str) -> str | None:
    """The Hub repo ``alias`` names: ``hf:owner/name`` always; ``owner/name`` when no registry alias is
    spelled so (load() tries a folder of that name first); ``None`` for a registry alias."""
    if alias.startswith(HUB_PREFIX):
        repo = alias[len(HUB_PREFIX):]
        if not _is_repo_id(repo):
            raise InputError(f"{alias!r} is not a Hugging Face Hub repo id; write hf:owner/name, "
                             "e.g. hf:BAAI/bge-small-en-v1.5")
        return repo
    if "/" in alias and _is_repo_id(alias) and alias not in default_registry():
        return alias
    return None


def _is_repo_id(repo: str) -> bool:
    """huggingface_hub's rule: letters, digits, ``-_.``, an optional owner, no ``--`` or ``..``, 96 at most."""
    return bool(_REPO_ID.fullmatch(repo)) and "--" not in repo and ".." not in repo and len(repo) <= 96


def spec_from_hub(repo: str, *, task: str | None = None, offline: bool | None = None,
                  progress: bool | None = None) -> ModelSpec:
    """A :class:`ModelSpec` for any Hub repo of a supported architecture, from its own files.

    ``config.json`` and the small files beside it (tokenizer configs, a sentence-transformers repo's
    settings) come first, through the same cache, revision memo, locks and offline mode as every
    Hub file; the architecture comes from ``config.json``'s ``model_type`` (an error listing the
    supported ones otherwise). The spec names the tokenizer (``tokenizer.json``; ``vocab.txt`` for a
    BERT-vocabulary repo without one) and the weights, pinned to the commit those files came from;
    :meth:`Pipeline.from_spec` fetches them. A repo with ``modules.json`` is a sentence model
    (unless ``task='token'``) with its pooling, normalisation, length and prompts.

    >>> spec_from_hub('sentence-transformers/all-mpnet-base-v2').pooling  # doctest: +SKIP
    'mean'
    """
    from . import artifacts
    from .artifacts import settings

    probe = HubSource(repo=repo, files=("config.json",), optional=(*settings.HUB_OPTIONAL, "tokenizer.json"),
                      weights=())
    folder = artifacts.fetch(_probe_spec(probe), offline=offline, progress=progress)
    extra = tuple(name for name in settings.module_files(folder) if name not in probe.optional)
    if extra:  # modules.json names them: a Pooling config elsewhere than 1_Pooling/, a Dense layer's config and weights
        probe = dataclasses.replace(probe, revision=folder.name, optional=probe.optional + extra)
        folder = artifacts.fetch(_probe_spec(probe), offline=offline, progress=progress)
    model_type = _model_type(folder)
    tokenizer, tokenizer_optional = _hub_tokenizer(repo, folder, model_type)
    source = HubSource(repo=repo, revision=folder.name, files=("config.json", *tokenizer), weights=HUB_WEIGHTS,
                       optional=tuple(name for name in (*probe.optional, *tokenizer_optional) if name not in tokenizer))
    sentence = settings.is_sentence_transformers_folder(folder)
    task = task if task is not None else ("sentence" if sentence else "token")
    check_choice(task, TASKS, "task", InputError)
    spec = _spec_from_checkpoint(folder, name=repo, aliases=(), task=task, pooling=None, normalize=False,
                                 sources=(source,), description=f"Hugging Face Hub repo {repo}")
    return settings.apply_folder_settings(spec, folder)


def _probe_spec(source: HubSource) -> ModelSpec:
    """A stand-in entry to fetch a repo's small files through artifacts.fetch (its messages name the repo)."""
    return ModelSpec(name=f"{HUB_PREFIX}{source.repo}", task="token", dim=1, layers=1, heads=1, sources=(source,))


def _hub_tokenizer(repo: str, folder: Path, model_type: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The tokenizer files to fetch, required and optional: ``tokenizer.json``; else what the family
    says stands in for it: a SentencePiece model (fetched if present, with its special-token files) for
    the model types :mod:`nlu_lite.spm` builds, or files such as a BERT vocabulary's ``vocab.txt``."""
    from .convert.families import family_for
    from .convert.family import SENTENCEPIECE_FILES

    family = family_for(model_type, f"Hub repo {repo}'s config.json")  # unsupported: that error first, listing the rest
    if (folder / "tokenizer.json").is_file():
        return ("tokenizer.json",), ()
    if model_type in family.sentencepiece:  # a repo with none fails to load naming the files
        return (), (*SENTENCEPIECE_FILES, "special_tokens_map.json", "added_tokens.json")
    if family.tokenizer_fallback:
        return family.tokenizer_fallback, ()
    raise ArtifactNotFoundError(
        f"Hub repo {repo} has no tokenizer.json, and nlu_lite reads a {model_type!r} model's tokenizer only from "
        f"tokenizer.json{_fallbacks()}. Save one with transformers "
        "(AutoTokenizer.from_pretrained(repo).save_pretrained(folder)) and load the folder: nlu_lite.load(path=folder)"
    )


def _fallbacks() -> str:
    """What stands in for tokenizer.json, per family, from the families table (for the error above)."""
    from .convert.families import FAMILIES

    vocab = [f.name for f in FAMILIES if "vocab.txt" in f.tokenizer_fallback]
    spm = [f.name for f in FAMILIES if f.sentencepiece]
    parts = ([f"vocab.txt for {', '.join(vocab)}"] if vocab else []) + (
        [f"a SentencePiece model for {', '.join(spm)}"] if spm else [])
    return f" ({'; '.join(parts)})" if parts else ""
