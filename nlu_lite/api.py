"""The one-liner's entry points: load(), list_models(), register_model(), print_components()."""
from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .bundle import is_bundle
from .errors import InputError, UnknownModelError
from .registry import ModelSpec, default_registry
from .specs import (  # noqa: F401 - nlu_lite.api's names since the first release
    HUB_PREFIX,
    HUB_WEIGHTS,
    hub_repo,
    looks_like_folder,
    spec_from_folder,
    spec_from_hub,
    usable_positions,
)

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
    engine: str | None = None,
    column_names: str = "nlu_lite",
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

    ``engine``: ``'onnxruntime'`` (default), ``'openvino'`` (``pip install openvino``; imported only then) or
    ``'auto'`` (this machine's faster engine for the precision: :func:`nlu_lite.runtime.auto_engine`);
    ``precision='bf16'`` is OpenVINO's bf16 inference on a CPU with AVX512_BF16 or AMX (it picks the engine),
    ``'int8'`` onnxruntime's. Every engine and precision keeps a text's vectors independent of its batch.

    ``column_names``: ``'nlu_lite'`` (default: the reference you asked for, dots as underscores, plus
    ``_embeddings``, as NLU's docs and model cards name it) or ``'nlu5'``: NLU 5's own names,
    ``word_embedding_<name>`` / ``sentence_embedding_<name>`` (:func:`nlu_lite.registry.nlu5_columns`), for
    NLU notebooks whose cells use them.

    NLU's ``gpu=True`` means onnxruntime's CUDA provider (then the CPU for what CUDA lacks); an
    onnxruntime without it is an error naming ``onnxruntime-gpu``. NLU's ``verbose=True`` logs
    nlu_lite's steps (INFO) to stderr.

    The pipeline pickles: unpickled in another process it loads again from the cache with
    the same settings.

    >>> import nlu_lite
    >>> nlu_lite.load('en.embed.minilm_l6').predict('I love NLP')  # doctest: +SKIP
    >>> nlu_lite.load('BAAI/bge-small-en-v1.5').predict('I love NLP')  # doctest: +SKIP
    """
    from .runtime import LoadOptions

    if verbose:
        _log_to_stderr()
    options = LoadOptions.resolve(precision=precision, graph=graph, threads=threads, providers=providers, gpu=gpu,
                                  offline=offline, progress=progress, engine=engine)
    if column_names not in ("nlu_lite", "nlu5"):
        raise InputError(f"column_names must be 'nlu_lite' or 'nlu5'; got {column_names!r}")
    loaded = _load(alias, path, options)
    return _nlu5_named(loaded) if column_names == "nlu5" else loaded


def _nlu5_named(loaded: Pipeline | PipelineGroup) -> Pipeline | PipelineGroup:
    """``loaded`` with NLU 5's column names, decided over every model of the request (pickles carry them)."""
    from .group import PipelineGroup
    from .registry import nlu5_columns

    pipes = loaded.pipelines if isinstance(loaded, PipelineGroup) else [loaded]
    for pipe, name in zip(pipes, nlu5_columns([p.spec for p in pipes])):
        pipe.spec = dataclasses.replace(pipe.spec, column=name)
        if pipe.recipe is not None:
            pipe.recipe = dataclasses.replace(pipe.recipe, spec=pipe.spec)
    return PipelineGroup(pipes) if isinstance(loaded, PipelineGroup) else loaded


def _load(alias: str | None, path: str | os.PathLike | None, options: Any) -> Pipeline | PipelineGroup:
    """:func:`load` with its settings already checked: the alias, folder, bundle or Hub id -> a pipeline."""
    from .pipeline import Pipeline

    if path is None and isinstance(alias, str) and len(alias.split()) > 1:  # NLU: several references in one request
        from .group import PipelineGroup
        from .registry import check_request

        parts = alias.split()
        check_request(parts)  # 'pos sentiment bert': what nlu_lite does not do, and what it would run, before any load
        return PipelineGroup([_load(part, None, options) for part in parts])
    if path is None and isinstance(alias, str) and alias.split():
        alias = alias.split()[0]  # '  org/name  ' as 'org/name', as a registry alias with spaces already was
    if path is None and alias is not None and looks_like_folder(alias):
        path = alias
    if path is not None and is_bundle(path):
        return Pipeline.from_bundle(path, options=options)
    if path is not None:
        spec = spec_from_folder(path)
    elif alias is not None:
        if not isinstance(alias, str):
            raise InputError(f"load() takes an alias string or path=; got {type(alias).__name__}")
        repo = hub_repo(alias)
        spec = _resolve(alias, options) if repo is None else spec_from_hub(repo, offline=options.offline,
                                                                           progress=options.progress)
        if repo is None and alias != spec.alias and default_registry().is_reference(alias):
            # an NLU reference of its own ('bert', 'embed_sentence.bert'): NLU names the column after it
            spec = dataclasses.replace(spec, aliases=(alias, *(a for a in spec.aliases if a != alias)))
    else:
        raise InputError("load() needs an alias, e.g. load('en.embed.minilm_l6'), or path='...'")
    return Pipeline.load(spec, options)


def resolve_spec(alias: str, *, offline: bool | None = None, progress: bool | None = None) -> ModelSpec:
    """The entry ``alias`` loads, as :func:`load` resolves it: a Hub id (its files read first), the registry, or
    NLU's catalogue (a card's repo or public table); what ``nlu-lite download`` fetches."""
    from .runtime import LoadOptions

    repo = hub_repo(alias)
    if repo is not None:
        return spec_from_hub(repo, offline=offline, progress=progress)
    return _resolve(alias, LoadOptions.resolve(offline=offline, progress=progress))


def _resolve(alias: str, options: Any) -> ModelSpec:
    """The registry's entry for ``alias``; else NLU's catalogue: the Hub repo its model card states (read
    through the Hub like any repo id, named after the NLU model), or an error saying why it cannot load."""
    from .registry import catalogue_row, unavailable

    try:
        return default_registry().resolve(alias)
    except UnknownModelError as exc:
        row = catalogue_row(alias)
        if row is None:
            from .registry import nlu_action, not_an_embedding

            if nlu_action(alias) is not None:  # 'pos', 'en.ner.onto': NLU annotators nlu_lite does not run
                raise not_an_embedding([alias]) from None
            raise exc from None
    if row.status == "table":
        return row.table_spec()
    if row.status != "hub":
        raise unavailable(row)
    spec = spec_from_hub(row.hf_repo, task=row.task, offline=options.offline, progress=options.progress)
    return dataclasses.replace(
        spec, name=row.spark_nlp_model, aliases=(row.nlu_reference,), language=row.language,
        spark_nlp_model=row.spark_nlp_model,
        description=f"NLU's {row.nlu_reference}: Spark NLP {row.spark_nlp_model} ({row.annotator}), imported from "
                    f"Hugging Face {row.hf_repo} as its model card states ({row.card})")


def _log_to_stderr() -> None:
    """NLU's verbose=True: nlu_lite's INFO records on stderr, through one handler added once."""
    package = logging.getLogger("nlu_lite")
    package.setLevel(logging.INFO)
    if not any(getattr(h, "_nlu_lite_verbose", False) for h in package.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        handler._nlu_lite_verbose = True  # type: ignore[attr-defined]
        package.addHandler(handler)


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
        spec = dataclasses.replace(spec_from_folder(path, alias=alias, task=task, pooling=pooling, normalize=normalize,
                                                    case_sensitive=case_sensitive), name=alias)
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


def list_models(*, task: str | None = None, language: str | None = None, architecture: str | None = None,
                search: str | None = None, catalogue: bool = False) -> pd.DataFrame:
    """The registry as a DataFrame: alias, name, task, architecture, language, dim, layers, size, license,
    source, cached, spark_nlp_model.

    Filters: ``task`` (``'token'``/``'sentence'``), ``language`` (NLU's code: ``'en'``, ``'xx'``),
    ``architecture`` (config.json's ``model_type``), ``search`` (case-insensitive text in the alias, the
    other references, the name, the Spark NLP model or the description). ``catalogue=True`` adds NLU's
    references that load through the generated catalogue (``status='hub'``: the repo their model card states;
    their sizes are known once loaded, so those columns are empty there).

    >>> nlu_lite.list_models(language='en', search='legal', catalogue=True)  # doctest: +SKIP
    """
    import pandas as pd

    from . import artifacts

    needle = search.lower() if isinstance(search, str) else None
    if search is not None and not isinstance(search, str):
        raise InputError(f"search= takes a text; got {type(search).__name__}")
    rows = []
    for spec in default_registry():
        if task is not None and spec.task != task:
            continue
        if (language is not None and spec.language != language) or (
                architecture is not None and spec.architecture != architecture):
            continue
        if needle is not None and needle not in " ".join(
                (*spec.aliases, spec.name, spec.spark_nlp_model, spec.description)).lower():
            continue
        first = spec.sources[0]
        source = {"hf": lambda s: f"hf:{s.repo}", "pypi": lambda s: f"pypi:{s.requirement}",
                  "url": lambda s: f"url:{s.url}", "local": lambda s: f"local:{s.path}"}[first.kind](first)
        rows.append({
            "alias": spec.alias, "name": spec.name, "task": spec.task, "architecture": spec.architecture,
            "language": spec.language, "dim": spec.dim, "layers": spec.layers,
            "heads": spec.heads, "case_sensitive": spec.case_sensitive, "size_mb": spec.size_mb,
            "license": spec.license, "source": source, "other_aliases": ", ".join(spec.aliases[1:]),
            "spark_nlp_model": spec.spark_nlp_model,
            "cached": artifacts.is_cached(spec),
        })
    if catalogue:
        from .registry import catalogue as nlu_catalogue

        for row in nlu_catalogue().values():
            table = row.status == "table"
            if not row.loads or (task is not None and row.task != task) or (
                    language is not None and row.language != language) or (
                    architecture is not None and not (table and architecture == "static-vectors")):
                continue  # a hub row's architecture is its repo's config.json: known once loaded
            source = f"url:{row.table_url}" if table else f"hf:{row.hf_repo}"
            if needle is not None and needle not in f"{row.nlu_reference} {row.spark_nlp_model} {source}".lower():
                continue
            rows.append({"alias": row.nlu_reference, "name": row.spark_nlp_model, "task": row.task,
                         "architecture": "static-vectors" if table else None, "language": row.language,
                         "dim": int(row.table_dim) if table else None, "layers": 1 if table else None,
                         "heads": 1 if table else None,
                         "case_sensitive": row.case_sensitive == "true" if table else None, "size_mb": None,
                         "license": "unknown", "source": source, "other_aliases": "",
                         "spark_nlp_model": row.spark_nlp_model, "cached": None})
    return pd.DataFrame(rows, columns=_MODEL_COLUMNS)


_MODEL_COLUMNS = ["alias", "name", "task", "architecture", "language", "dim", "layers", "heads", "case_sensitive",
                  "size_mb", "license", "source", "other_aliases", "spark_nlp_model", "cached"]


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
        print(f"no components for lang={lang!r}, action={action!r}; languages: {known[0]}, actions: {known[1]}")
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
    print("\n".join(lines))


def print_all_model_kinds_for_action(action: str) -> None:
    """NLU's ``nlu.print_all_model_kinds_for_action('embed')``: :func:`print_components` for ``action``."""
    print_components(action=action)


def print_all_model_kinds_for_action_and_lang(lang: str, action: str) -> None:
    """NLU's ``nlu.print_all_model_kinds_for_action_and_lang('en', 'embed')``."""
    print_components(lang=lang, action=action)
