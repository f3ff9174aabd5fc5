"""The one-liner's entry points: load(), list_models(), register_model(), print_components()."""
from __future__ import annotations

import dataclasses
import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .bundle import is_bundle
from .choices import GRAPH_VARIANTS, PRECISIONS, SENTENCE_POOLINGS, TASKS, check_choice
from .errors import ArtifactNotFoundError, ConversionError, InputError
from .registry import HubSource, LocalSource, ModelSpec, default_registry

if TYPE_CHECKING:
    import pandas as pd

    from .group import PipelineGroup
    from .pipeline import Pipeline

logger = logging.getLogger(__name__)


def load(
    alias: str | None = None,
    *,
    path: str | os.PathLike | None = None,
    offline: bool | None = None,
    precision: str | None = None,
    threads: int | None = None,
    providers: Sequence[Any] | None = None,
    graph: str | None = None,
    progress: bool | None = None,
    gpu: bool = False,
    verbose: bool = False,
) -> Pipeline | PipelineGroup:
    """Load a model by NLU alias (or a local checkpoint folder) and return its :class:`Pipeline`.

    ``alias``: e.g. ``'en.embed.bert.small_L4_512'``, ``'bert'``, ``'en.embed_sentence.minilm_l6'``
    (the ``en.`` prefix is optional); a path to a folder works too; so does any Hugging Face Hub
    repo of a supported architecture, ``'owner/name'`` or ``'hf:owner/name'`` (its ``config.json``
    says which; a sentence-transformers repo loads as a sentence model with its own pooling,
    normalisation, length and prompts). Several references separated by spaces give one
    :class:`~nlu_lite.group.PipelineGroup` whose predict() has one embedding column per model, as
    NLU's several-component requests. ``path``: a local folder with ``config.json``, weights and
    ``tokenizer.json``/``vocab.txt`` (a sentence-transformers folder is a sentence model with its
    settings), or a bundle written by ``pipe.save(folder)`` (loaded with no network, conversion or
    write). ``offline``: never touch the network (also ``NLU_LITE_OFFLINE=1`` or ``HF_HUB_OFFLINE=1``).
    ``precision``: ``'fp32'`` (default) or ``'int8'`` (dynamic quantisation, done once and cached; a
    bundle has its own). ``threads``: onnxruntime intra-op threads (default: all physical cores). ``providers``: onnxruntime execution providers, e.g.
    ``['CUDAExecutionProvider', 'CPUExecutionProvider']`` (default: the CPU); one this
    onnxruntime lacks is an error. ``graph``: the converter's graph variant, ``'fused'``
    (onnxruntime's fused kernels, the default) or ``'standard'`` (plain ONNX ops; a bundle has its own).

    NLU's ``gpu=True`` means onnxruntime's CUDA provider (then the CPU for what CUDA lacks); an
    onnxruntime without it is an error naming ``onnxruntime-gpu``. NLU's ``verbose=True`` logs
    nlu_lite's steps (INFO) to stderr.

    The pipeline pickles: unpickled in another process it loads again from the cache with
    the same settings.

    >>> import nlu_lite
    >>> nlu_lite.load('en.embed.minilm_l6').predict('I love NLP')  # doctest: +SKIP
    >>> nlu_lite.load('BAAI/bge-small-en-v1.5').predict('I love NLP')  # doctest: +SKIP
    """
    from .pipeline import Pipeline

    if verbose:
        _log_to_stderr()
    if gpu:
        if providers is not None:
            raise InputError("pass gpu=True or providers=[...], not both")
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    if precision is not None:
        check_choice(precision, PRECISIONS, "precision", InputError)
    if graph is not None:
        check_choice(graph, GRAPH_VARIANTS, "graph", InputError)
    if threads is not None:
        if isinstance(threads, (bool, np.bool_)) or not isinstance(threads, (int, np.integer)) or threads < 1:
            raise InputError(f"threads must be a positive integer, or None for one per physical core; got {threads!r}")
        threads = int(threads)
    if path is None and isinstance(alias, str) and len(alias.split()) > 1:  # NLU: several references in one request
        from .group import PipelineGroup

        return PipelineGroup([load(part, offline=offline, precision=precision, threads=threads, providers=providers,
                                   graph=graph, progress=progress, gpu=gpu) for part in alias.split()])
    if path is None and alias is not None and looks_like_folder(alias):
        path = alias
    if path is not None and is_bundle(path):
        pipe = Pipeline.from_bundle(path, threads=threads, providers=providers)
        for name, asked, has in (("precision", precision, pipe.precision), ("graph", graph, pipe.recipe.graph)):
            if asked is not None and asked != has:
                raise InputError(f"the bundle {path} holds a {has!r} model; drop {name}={asked!r}, or save a "
                                 f"bundle from load(..., {name}={asked!r})")
        return pipe
    if path is not None:
        spec = spec_from_folder(path)
    elif alias is not None:
        if not isinstance(alias, str):
            raise InputError(f"load() takes an alias string or path=; got {type(alias).__name__}")
        repo = hub_repo(alias)
        spec = default_registry().resolve(alias) if repo is None else spec_from_hub(repo, offline=offline,
                                                                                    progress=progress)
        if repo is None and alias != spec.alias and default_registry().is_reference(alias):
            # an NLU reference of its own ('bert', 'embed_sentence.bert'): NLU names the column after it
            spec = dataclasses.replace(spec, aliases=(alias, *(a for a in spec.aliases if a != alias)))
    else:
        raise InputError("load() needs an alias, e.g. load('en.embed.minilm_l6'), or path='...'")
    return Pipeline.from_spec(spec, precision=precision or "fp32", threads=threads, providers=providers,
                              graph=graph or "fused", offline=offline, progress=progress)


def _log_to_stderr() -> None:
    """NLU's verbose=True: nlu_lite's INFO records on stderr, through one handler added once."""
    package = logging.getLogger("nlu_lite")
    package.setLevel(logging.INFO)
    if not any(getattr(h, "_nlu_lite_verbose", False) for h in package.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        handler._nlu_lite_verbose = True  # type: ignore[attr-defined]
        package.addHandler(handler)


def looks_like_folder(alias: str) -> bool:
    """Whether ``alias`` is a path to an existing folder rather than a registry alias."""
    return (os.sep in alias or alias.startswith((".", "~"))) and Path(alias).expanduser().is_dir()


def _read_json_object(path: Path) -> dict:
    from .artifacts.settings import read_json

    return read_json(path)


def _case_sensitive(folder: Path) -> bool:
    """From tokenizer_config.json / tokenizer.json when they say; else from the vocabulary itself."""
    from .artifacts.settings import lowercases

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


# RoBERTa-style position tables: a sequence's first token reads row padding_idx + 1 (transformers'
# create_position_ids_from_input_ids), so the rows below it are no token's
_OFFSET_POSITIONS = ("roberta", "xlm-roberta", "camembert")


def usable_positions(config: Any) -> int:
    """The longest sequence a checkpoint takes, framing included, from its validated config (as the
    converters' metadata says it): ``max_position_embeddings``, less ``padding_idx + 1`` rows for
    RoBERTa-style tables (514 -> 512); MPNet's config says it itself (``positions``)."""
    positions = getattr(config, "positions", None)
    if isinstance(positions, int):
        return positions
    if getattr(config, "model_type", None) in _OFFSET_POSITIONS:
        return config.max_position_embeddings - config.pad_token_id - 1
    return config.max_position_embeddings


def _model_type(folder: Path) -> str:
    value = _read_json_object(folder / "config.json").get("model_type", "bert")
    return value if isinstance(value, str) else "bert"


def _spec_from_checkpoint(folder: Path, *, name: str, aliases: tuple[str, ...], task: str, pooling: str,
                          normalize: bool, sources: tuple, description: str) -> ModelSpec:
    """The entry of the checkpoint in ``folder`` (its config.json read and checked), before folder settings."""
    from .convert import read_config

    config = read_config(folder)  # a ConversionError naming the field, or listing the supported model types
    return ModelSpec(
        name=name, aliases=aliases, task=task, dim=config.hidden_size,  # type: ignore[arg-type]
        layers=config.num_layers, heads=config.num_heads, max_length=usable_positions(config),
        architecture=_model_type(folder), case_sensitive=_case_sensitive(folder), pooling=pooling,  # type: ignore[arg-type]
        normalize=normalize, sources=sources, description=description,
    )


def spec_from_folder(path: str | os.PathLike, *, alias: str | None = None, task: str | None = None,
                     pooling: str | None = None, normalize: bool | None = None) -> ModelSpec:
    """A :class:`ModelSpec` for a local checkpoint folder, read from its ``config.json``.

    A sentence-transformers folder (``modules.json``) is a sentence model with its own pooling,
    normalisation, ``max_seq_length`` and prompts (:func:`nlu_lite.artifacts.settings.apply_folder_settings`),
    unless ``task='token'``; ``pooling``/``normalize`` that contradict its files are an error (they
    would be overridden at every load; ``predict(pooling=...)`` changes one call). Other folders:
    ``task='token'``, ``pooling='mean'``, ``normalize=False`` by default.
    """
    from .artifacts import settings

    folder = Path(path).expanduser()
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
        pooling=pooling or "mean", normalize=bool(normalize), sources=(LocalSource(path=str(folder.resolve())),),
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
# a repo without tokenizer.json: the families whose vocab.txt nlu_lite reads as a BERT WordPiece
_VOCAB_FALLBACK = ("bert", "distilbert", "electra")


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
    extra = tuple(name for name in settings.module_config_files(folder) if name not in probe.optional)
    if extra:  # a Pooling module stored elsewhere than 1_Pooling/: its config, now that modules.json named it
        probe = dataclasses.replace(probe, revision=folder.name, optional=probe.optional + extra)
        folder = artifacts.fetch(_probe_spec(probe), offline=offline, progress=progress)
    model_type = _model_type(folder)
    tokenizer, tokenizer_optional = _hub_tokenizer(repo, folder, model_type)
    source = HubSource(repo=repo, revision=folder.name, files=("config.json", *tokenizer), weights=HUB_WEIGHTS,
                       optional=tuple(name for name in (*probe.optional, *tokenizer_optional) if name not in tokenizer))
    sentence = settings.is_sentence_transformers_folder(folder)
    task = task if task is not None else ("sentence" if sentence else "token")
    check_choice(task, TASKS, "task", InputError)
    spec = _spec_from_checkpoint(folder, name=repo, aliases=(), task=task, pooling="mean", normalize=False,
                                 sources=(source,), description=f"Hugging Face Hub repo {repo}")
    return settings.apply_folder_settings(spec, folder)


def _probe_spec(source: HubSource) -> ModelSpec:
    """A stand-in entry to fetch a repo's small files through artifacts.fetch (its messages name the repo)."""
    return ModelSpec(name=f"{HUB_PREFIX}{source.repo}", task="token", dim=1, layers=1, heads=1, sources=(source,))


def _hub_tokenizer(repo: str, folder: Path, model_type: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The tokenizer files to fetch, required and optional: ``tokenizer.json``; else, for the families
    :mod:`nlu_lite.spm` builds, whichever SentencePiece model the repo has (with its special-token
    files); else a BERT vocabulary's ``vocab.txt``."""
    from . import spm

    if (folder / "tokenizer.json").is_file():
        return ("tokenizer.json",), ()
    if model_type in spm.RECIPES:  # fetched if present; a repo with none fails to load naming the files
        return (), (*spm.SPM_FILES, "special_tokens_map.json", "added_tokens.json")
    if model_type in _VOCAB_FALLBACK:
        return ("vocab.txt",), ()
    raise ArtifactNotFoundError(
        f"Hub repo {repo} has no tokenizer.json, and nlu_lite reads a {model_type!r} model's tokenizer only from "
        "tokenizer.json (vocab.txt for BERT vocabularies, a SentencePiece model for DeBERTa, ALBERT, XLM-R and "
        "CamemBERT). Save one with transformers (AutoTokenizer.from_pretrained(repo).save_pretrained(folder)) "
        "and load the folder: nlu_lite.load(path=folder)"
    )


def register_model(
    alias: str,
    *,
    path: str | os.PathLike | None = None,
    repo: str | None = None,
    revision: str | None = None,
    task: str | None = None,
    pooling: str | None = None,
    normalize: bool | None = None,
    dim: int | None = None,
    layers: int | None = None,
    heads: int | None = None,
    case_sensitive: bool = False,
    replace: bool = False,
) -> ModelSpec:
    """Register a model under ``alias`` for this process: a local folder (``path``) or an HF repo id.

    For a ``repo``, give ``dim``, ``layers`` and ``heads`` (from its config.json); a
    sentence-transformers repo's own pooling, normalisation and length apply at load. A folder is
    read by :func:`spec_from_folder` (``task``/``pooling``/``normalize`` left out: from its files).

    >>> import nlu_lite
    >>> nlu_lite.register_model('en.embed.my_bert', path='/models/my_bert')  # doctest: +SKIP
    >>> nlu_lite.load('my_bert')  # doctest: +SKIP
    """
    from .registry import parse_model

    if (path is None) == (repo is None):
        raise InputError("register_model() needs exactly one of path= (a local folder) or repo= (an HF repo id)")
    if path is not None:
        spec = dataclasses.replace(spec_from_folder(path, alias=alias, task=task, pooling=pooling, normalize=normalize),
                                   name=alias)
    else:
        if not (dim and layers and heads):
            raise InputError("register_model(repo=...) needs dim=, layers= and heads= (see the repo's config.json)")
        hub: dict = {"repo": repo}
        if revision:
            hub["revision"] = revision
        spec = parse_model({
            "name": alias, "aliases": [alias], "task": task or "token", "dim": dim, "layers": layers, "heads": heads,
            "pooling": pooling or "mean", "normalize": bool(normalize), "case_sensitive": case_sensitive,
            "sources": [{"hf": hub}], "description": f"registered at run time: {repo}",
        })
    default_registry().add(spec, replace=replace)
    return spec


def list_models(*, task: str | None = None) -> pd.DataFrame:
    """The registry as a DataFrame: alias, name, task, architecture, language, dim, layers, size, license,
    source, cached."""
    import pandas as pd

    from . import artifacts

    rows = []
    for spec in default_registry():
        if task is not None and spec.task != task:
            continue
        first = spec.sources[0]
        source = {"hf": lambda s: f"hf:{s.repo}", "pypi": lambda s: f"pypi:{s.requirement}",
                  "url": lambda s: f"url:{s.url}", "local": lambda s: f"local:{s.path}"}[first.kind](first)
        rows.append({
            "alias": spec.alias, "name": spec.name, "task": spec.task, "architecture": spec.architecture,
            "language": spec.language, "dim": spec.dim, "layers": spec.layers,
            "heads": spec.heads, "case_sensitive": spec.case_sensitive, "size_mb": spec.size_mb,
            "license": spec.license, "source": source, "other_aliases": ", ".join(spec.aliases[1:]),
            "cached": artifacts.is_cached(spec),
        })
    return pd.DataFrame(rows)


def print_components(lang: str = "", action: str = "", *, task: str | None = None) -> None:
    """Print every alias and what it loads, as NLU's ``nlu.print_components(lang=, action=)`` does.

    ``lang``: a language code (``'en'``); ``action``: ``'embed'`` (word embeddings) or
    ``'embed_sentence'``; ``''`` or ``'all'`` for every one. ``task``: ``'token'``/``'sentence'``.

    >>> nlu_lite.print_components(lang='en', action='embed_sentence')  # doctest: +SKIP
    """
    table = list_models(task=task)
    wanted_action = {"": None, "all": None}.get(action, action)
    wanted_lang = {"": None, "all": None}.get(lang, lang)
    actions = table["task"].map({"token": "embed", "sentence": "embed_sentence"})
    langs = table["language"]
    keep = ((actions == wanted_action) if wanted_action else True) & ((langs == wanted_lang) if wanted_lang else True)
    table = table[keep] if not isinstance(keep, bool) else table
    if not len(table):
        known = sorted(set(langs)), sorted(set(actions))
        print(f"no components for lang={lang!r}, action={action!r}; languages: {known[0]}, actions: {known[1]}")  # noqa: T201
        return
    width = int(table["alias"].str.len().max())
    registry = default_registry()
    lines = [f"{'alias'.ljust(width)}  task      architecture  lang   dim  layers  size_mb  cached  source  "
             "(other references)"]
    for r in table.itertuples():
        others = [ref for ref in registry.references(r.name) if ref != r.alias]  # every spelling NLU code may use
        lines.append(f"{r.alias.ljust(width)}  {r.task:<8}  {r.architecture:<12}  {r.language:<4} {r.dim:>4}  "
                     f"{r.layers:>6}  {r.size_mb or 0:>7}  {'yes' if r.cached else 'no':>6}  {r.source}"
                     + (f"  ({', '.join(others)})" if others else ""))
    print("\n".join(lines))  # noqa: T201 - printing is this function's purpose


def print_all_model_kinds_for_action(action: str) -> None:
    """NLU's ``nlu.print_all_model_kinds_for_action('embed')``: :func:`print_components` for ``action``."""
    print_components(action=action)


def print_all_model_kinds_for_action_and_lang(lang: str, action: str) -> None:
    """NLU's ``nlu.print_all_model_kinds_for_action_and_lang('en', 'embed')``."""
    print_components(lang=lang, action=action)
