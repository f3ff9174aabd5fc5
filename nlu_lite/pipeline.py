"""The predictor: a loaded model whose ``predict()`` composes the data flow's steps.

options -> rows (:mod:`inputs`) -> units (:mod:`units`) -> word pieces (:mod:`tokenize`) ->
sequences (:mod:`windows`) -> batches (:mod:`batching`) -> encoder states (:mod:`encode`) ->
vectors (:mod:`pooling`) -> DataFrame (:mod:`frame`). Each step is a function of plain data;
this module only wires them, and holds the one factory that does file and network work
(:meth:`Pipeline.from_spec`).

Semantics follow Spark NLP's BertEmbeddings (which produced NLU's numbers): each sentence is
one sequence ``[CLS] pieces [SEP]``; a token's vector is its first piece's state of the last
layer. Unlike Spark NLP nothing is truncated: a sentence longer than the model's window is
embedded in overlapping windows and its rows say ``windowed``.

A pipeline pickles: it carries how it was loaded (:class:`LoadRecipe`) and, unpickled, loads
again from the cache (no network when cached, no reconversion), so joblib, multiprocessing,
Spark and Dask can ship it to workers. A process loads a given pipeline once: unpickling it
again (a worker gets it with every task) returns the one already loaded.
"""
from __future__ import annotations

import collections
import dataclasses
import html
import logging
import os
import threading
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .batching import iter_batches
from .chunks import chunk_frame, parse_chunks
from .encode import encode_batches
from .errors import ConversionError, InputError
from .frame import (
    apply_nlu_columns,
    check_kept_columns,
    output_columns,
    pooled_frame,
    to_matrix,
    token_frame,
    token_metadata,
    unit_metadata,
)
from .inputs import to_rows
from .options import ModelFacts, PredictOptions, resolve_options
from .pooling import SequencePooler, TokenPooler, normalize_rows, project
from .registry import ModelSpec
from .tokenize import PieceTokenizer
from .units import drop_empty_sentences, make_units
from .windows import embedded_pieces, plan_sequences

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadRecipe:
    """How a pipeline was loaded: enough to load it again, in another process, from the cache.

    ``spec`` is the registry entry itself (so a model added by ``register_model`` or loaded
    from a folder needs no registry on the other side); the rest are :func:`nlu_lite.load`'s
    arguments.
    """

    spec: ModelSpec
    precision: str = "fp32"
    threads: int | None = None
    providers: tuple[Any, ...] | None = None
    graph: str = "fused"
    offline: bool | None = None
    bundle: str | None = None  # a bundle folder (pipe.save): loaded from it, with no network and no writes
    bundle_manifest: str | None = None  # that bundle's manifest sha256 when loaded: unpickled, the same one or an error
    engine: str = "onnxruntime"  # or "openvino" (precision 'fp32' or 'bf16')


def _describe_runtime(encoder: Any) -> str:
    return getattr(encoder, "description", type(encoder).__name__)


# Pipelines loaded in this process, by recipe, so that unpickling one that is already loaded here
# (a worker receiving the same pipeline with every task, copy.copy) shares it instead of loading
# it again. Keyed by process id too: a forked child must not reuse its parent's onnxruntime
# session, whose thread pool did not survive the fork.
_LIVE: weakref.WeakValueDictionary = weakref.WeakValueDictionary()
_KEPT: collections.OrderedDict = collections.OrderedDict()  # the last few unpickled pipelines, held
KEEP_UNPICKLED = 4
_LOCK = threading.RLock()  # from_spec registers under it while _restore holds it


def _restore(recipe: LoadRecipe) -> Pipeline:
    """Unpickling: the pipeline already loaded in this process for ``recipe``, else load it again
    (from the cache; the network only if it is not cached) and keep it for the next unpickling."""
    key = (os.getpid(), recipe)
    with _LOCK:
        pipe = _LIVE.get(key)
        if pipe is None and recipe.bundle is not None:
            _check_same_bundle(recipe)
            from .runtime import LoadOptions

            options = LoadOptions.resolve(threads=recipe.threads, providers=recipe.providers, engine=recipe.engine,
                                          precision=recipe.precision if recipe.engine == "openvino" else None)
            pipe = Pipeline.from_bundle(recipe.bundle, options=options)
        elif pipe is None:
            pipe = Pipeline.from_spec(recipe.spec, precision=recipe.precision, threads=recipe.threads,
                                      providers=recipe.providers, graph=recipe.graph, offline=recipe.offline,
                                      progress=False, engine=recipe.engine)
        _KEPT[key] = pipe
        _KEPT.move_to_end(key)
        while len(_KEPT) > KEEP_UNPICKLED:
            _KEPT.popitem(last=False)
    return pipe


def _manifest_digest(folder: str | os.PathLike) -> str | None:
    from .bundle import MANIFEST
    from .cache import sha256_file

    path = Path(folder) / MANIFEST
    return sha256_file(path) if path.is_file() else None


def _check_same_bundle(recipe: LoadRecipe) -> None:
    """An unpickled bundle pipeline loads the bundle it was pickled from, or fails: the folder at its path may
    have been saved again or replaced (another model, another precision) since."""
    if recipe.bundle_manifest is None:
        return
    found = _manifest_digest(recipe.bundle)
    if found != recipe.bundle_manifest:
        what = "is gone" if found is None else "holds another bundle (saved again or replaced since)"
        raise ConversionError(f"this pipeline was pickled from the bundle at {recipe.bundle}, which now {what}; "
                              "unpickling it would load other vectors. Pickle the pipeline again after loading "
                              "that bundle, or save each model to its own path")


def _check_parts(spec: ModelSpec, encoder: Any, tokenizer: PieceTokenizer, folder: Any, head: tuple = ()) -> None:
    """The loaded parts agree: a mismatch would give wrong vectors or fail mid-predict."""
    rows = getattr(encoder, "vocab_size", None)
    if rows and tokenizer.vocab_size > rows:
        raise ConversionError(
            f"{tokenizer.source} has {tokenizer.vocab_size} entries but the model's embedding table in {folder} "
            f"has {rows} rows: the tokenizer and the weights come from different models; download the model again"
        )
    largest = tokenizer.max_id
    if rows and largest >= rows:  # the count may fit while one id points past the table (a gap in the ids)
        piece = tokenizer.piece_of(largest)
        raise ConversionError(
            f"{tokenizer.source} maps {piece!r} to id {largest}, past the model's embedding table in {folder} "
            f"({rows} rows, ids 0 to {rows - 1}): the tokenizer and the weights come from different models; "
            "download the model again"
        )
    if encoder.hidden_size != spec.dim:
        raise ConversionError(f"the model in {folder} has {encoder.hidden_size}-dim states but its entry says "
                              f"dim={spec.dim}; fix the registry entry (or register_model's dim=)")
    if head and head[0].weight.shape[1] != encoder.hidden_size:
        raise ConversionError(f"the Dense layer in {folder / head[0].config.path} takes {head[0].weight.shape[1]}-dim "
                              f"vectors but the model in {folder} gives {encoder.hidden_size}; the sentence-transformers "
                              "modules come from another model; download the model again")


def _family(spec: ModelSpec) -> Any:
    """The model's :class:`~nlu_lite.convert.family.Family` (``None`` for an architecture none converts)."""
    from .convert.families import find_family

    return find_family(spec.architecture)


def _int8_check(spec: ModelSpec, folder: Path, threads: int | None) -> Any:
    """The self-check a new int8 graph of ``spec`` runs (:mod:`nlu_lite.int8_check`), with the model's tokenizer."""
    from .int8_check import Int8Check, bound_from_env

    def tokenizer() -> PieceTokenizer:  # read only when the graph is new: a cached entry needs no check
        return _tokenizer(spec, folder)

    return Int8Check(tokenizer, int(spec.max_length or 512), bound_from_env(), threads)


def _tokenizer(spec: ModelSpec, folder: Path) -> PieceTokenizer:
    """The model's tokenizer from its folder, with the spec's case rule and the family's framing."""
    return PieceTokenizer.from_folder(folder, lowercase=not spec.case_sensitive,
                                      bare=getattr(_family(spec), "bare_framing", False))


def _prompted(texts: list[str], prompt: str) -> list[str]:
    """``prompt + text`` for every text that is not blank (a blank one stays without vector, as ever)."""
    return [prompt + t if t.strip() else t for t in texts] if prompt else texts


# methods that became functions over a pipeline (the layout keeps pipeline.py left of them)
_MOVED = {
    "predict_iter": "nlu_lite.predict_iter(pipe, data, chunk_size=...)",
    "predict_to_parquet": "nlu_lite.predict_to_parquet(pipe, data, path)",
    "explore": "nlu_lite.explore(pipe.predict(data), pipe=pipe)",
    "resolve_level": "pipe.resolve_options(output_level).output_level",
}


class Pipeline:
    """A loaded model: ``predict(texts, output_level=...)`` returns a pandas DataFrame.

    Built by :func:`nlu_lite.load` (or :meth:`from_spec`); the constructor only stores
    already-loaded parts.

    >>> import nlu_lite
    >>> pipe = nlu_lite.load('en.embed.minilm_l6')  # doctest: +SKIP
    >>> pipe.predict('I love NLP', output_level='token').token.tolist()  # doctest: +SKIP
    ['I', 'love', 'NLP']
    """

    def __init__(self, spec: ModelSpec, encoder: Any, tokenizer: PieceTokenizer, *,
                 source: str = "", model_path: str = "", precision: str = "fp32",
                 recipe: LoadRecipe | None = None, head: tuple = ()) -> None:
        self.spec = spec
        self.head = tuple(head)  # a sentence-transformers model's Dense layers, applied to sentence vectors
        self.encoder = encoder
        self.tokenizer = tokenizer
        self.source = source
        self.model_path = model_path
        self.precision = precision
        self.recipe = recipe

    @classmethod
    def from_spec(cls, spec: ModelSpec, *, precision: str = "fp32", threads: int | None = None,
                  providers: Any = None, graph: str = "fused", offline: bool | None = None,
                  progress: bool | None = None, engine: str | None = None) -> Pipeline:
        """:meth:`load` with :func:`nlu_lite.load`'s settings as keywords (checked here, once)."""
        from .runtime import LoadOptions

        return cls.load(spec, LoadOptions.resolve(precision=precision, graph=graph, threads=threads,
                                                  providers=providers, offline=offline, progress=progress,
                                                  engine=engine))

    @classmethod
    def load(cls, spec: ModelSpec, options: Any) -> Pipeline:
        """Fetch ``spec``'s files (cache first), convert them once to ONNX, open the session and tokenizer.

        The one place that touches files and the network; :func:`nlu_lite.load` resolves an alias or
        folder to a spec and its settings to a checked :class:`~nlu_lite.runtime.LoadOptions`, and calls
        this. Each setting goes to the one step that uses it: ``offline``/``progress`` to the fetch,
        ``precision``/``graph`` to the converter, ``threads``/``providers`` to the session.
        """
        from . import artifacts
        from .convert import ensure_onnx, static

        folder = artifacts.fetch(spec, offline=options.offline, progress=options.progress)
        if static.importable(folder) is not None:  # a table or a model2vec folder: imported once
            folder = static.ensure_checkpoint(folder, case_sensitive=spec.case_sensitive)
        spec = artifacts.apply_folder_settings(spec, folder)  # a sentence-transformers folder's own settings
        head = artifacts.read_dense_layers(folder) if spec.task == "sentence" else ()  # its Dense layers, if any
        precision, graph = options.precision or "fp32", options.graph or "fused"
        check = _int8_check(spec, folder, options.threads) if precision == "int8" else None
        onnx_path = ensure_onnx(folder, precision="fp32" if precision == "bf16" else precision, graph=graph,
                                int8_check=check)
        if check is not None:
            from .convert.store import int8_report
            from .int8_check import refusal

            report = int8_report(onnx_path)
            if report is not None and not report["accepted"]:
                raise refusal(spec.name, report)
        return cls._assemble(LoadRecipe(spec, precision, options.threads, options.providers, graph, options.offline,
                                        engine=options.engine), folder, onnx_path, source=str(folder), head=head)

    @classmethod
    def _assemble(cls, recipe: LoadRecipe, folder: Path, model_path: Path, *, source: str,
                  head: tuple = ()) -> Pipeline:
        """Open the session and the tokenizer, check they agree, and remember the pipeline in this process."""
        if recipe.engine == "openvino":
            from .openvino_engine import OpenVinoEncoder

            encoder = OpenVinoEncoder.from_path(model_path, threads=recipe.threads, precision=recipe.precision)
        else:
            from .runtime import OnnxEncoder

            encoder = OnnxEncoder.from_path(model_path, threads=recipe.threads, providers=recipe.providers)
        tokenizer = _tokenizer(recipe.spec, folder)
        _check_parts(recipe.spec, encoder, tokenizer, folder, head)
        pipe = cls(recipe.spec, encoder, tokenizer, source=source, model_path=str(model_path),
                   precision=recipe.precision, recipe=recipe, head=head)
        with _LOCK:
            _LIVE[(os.getpid(), recipe)] = pipe
        return pipe

    @classmethod
    def from_bundle(cls, folder: str | os.PathLike, *, threads: int | None = None, providers: Any = None,
                    verify: bool = True, options: Any = None) -> Pipeline:
        """Load a bundle written by :meth:`save`: no network, no conversion, no write (the folder may be
        read-only); every file's size and, with ``verify``, sha256 is checked against the manifest.
        ``options``: a checked :class:`~nlu_lite.runtime.LoadOptions` (instead of ``threads``/``providers``);
        a ``precision`` or ``graph`` in it other than the bundle's is an error."""
        from .bundle import read_bundle
        from .runtime import LoadOptions

        options = options or LoadOptions.resolve(threads=threads, providers=providers)
        bundle = read_bundle(folder, verify=verify)
        for name, asked, has in (("precision", options.precision, bundle.precision), ("graph", options.graph, bundle.graph)):
            if asked is not None and asked != has and not (name == "precision" and asked == "bf16" and has == "fp32"):
                raise InputError(f"the bundle {folder} holds a {has!r} model; drop {name}={asked!r}, or save a "
                                 f"bundle from load(..., {name}={asked!r})")
        precision = "bf16" if options.precision == "bf16" else bundle.precision  # bf16: OpenVINO's, on the fp32 graph
        recipe = LoadRecipe(bundle.spec, precision, options.threads, options.providers, bundle.graph, True,
                            str(bundle.folder.resolve()), _manifest_digest(bundle.folder), options.engine)
        return cls._assemble(recipe, bundle.folder, bundle.model_path, source=f"bundle {bundle.folder}",
                             head=bundle.head)

    def save(self, folder: str | os.PathLike) -> Path:
        """Write a self-contained, read-only-safe bundle of this pipeline to ``folder`` (a new path).

        ``nlu_lite.load(path=folder)`` loads it anywhere: no network, no conversion, no writes.

        >>> pipe.save('bundles/minilm')  # doctest: +SKIP
        PosixPath('bundles/minilm')
        """
        from .bundle import write_bundle

        graph = self.recipe.graph if self.recipe is not None else "fused"
        graph_precision = "fp32" if self.precision == "bf16" else self.precision  # bf16 is OpenVINO's, at load
        return write_bundle(folder, spec=self.spec, model_path=self.model_path, tokenizer=self.tokenizer._tok,
                            precision=graph_precision, graph=graph, head=self.head)

    def __getattr__(self, name: str) -> Any:
        if name in _MOVED:
            raise AttributeError(f"Pipeline.{name} is now a function over a pipeline: use {_MOVED[name]}")
        raise AttributeError(f"'Pipeline' object has no attribute {name!r}")

    # -- pickling -------------------------------------------------------------------------
    def __reduce__(self):
        """Pickled as its recipe; unpickled, the same model is loaded again, or shared if this
        process already has it loaded (so ``copy.copy(pipe) is pipe``)."""
        if self.recipe is None:
            raise TypeError("this Pipeline was built from parts, so it cannot be loaded again elsewhere; "
                            "build it with nlu_lite.load() or Pipeline.from_spec() to pickle it")
        return _restore, (self.recipe,)

    # -- presentation -------------------------------------------------------------------
    def _summary(self) -> dict[str, str]:
        return {
            "alias": self.spec.alias,
            **({"NLU model": f"Spark NLP {self.spec.spark_nlp_model}"} if self.spec.spark_nlp_model else {}),
            "task": f"{self.spec.task} embeddings",
            "dim": str(self.spec.dim),
            "layers": str(self.spec.layers),
            "max_length": str(self.spec.max_length),
            **({"sentence head": " -> ".join(f"Dense {d.weight.shape[1]}->{d.weight.shape[0]} ({d.activation})"
                                             for d in self.head)} if self.head else {}),
            "precision": self.precision,
            **({"int8 check": self._int8_summary()} if self.precision == "int8" else {}),
            "runtime": _describe_runtime(self.encoder),
            "source": self.source,
            "output column": self.spec.embedding_column,
        }

    def _int8_summary(self) -> str:
        from .convert.store import int8_report
        from .int8_check import summary

        return summary(int8_report(self.model_path) if self.model_path else None)

    def __repr__(self) -> str:
        s = self._summary()
        check = f", int8 check={s['int8 check']!r}" if "int8 check" in s else ""
        return (f"Pipeline(alias={s['alias']!r}, task={self.spec.task!r}, dim={self.spec.dim}, "
                f"layers={self.spec.layers}, precision={self.precision!r}, runtime={s['runtime']!r}{check})")

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><th style='text-align:left'>{html.escape(k)}</th><td style='text-align:left'>{html.escape(v)}</td></tr>"
            for k, v in self._summary().items()
        )
        return f"<div><b>nlu_lite Pipeline</b><table>{rows}</table></div>"

    def print_info(self) -> None:
        """Print what can be set, as NLU's ``pipe.print_info()`` does: predict()'s options with this
        model's defaults, and how it was loaded (what ``load()`` takes)."""
        from .options import DEFAULTS

        resolved = self.resolve_options()
        known = f", also {', '.join(self.spec.aliases[1:])}" if len(self.spec.aliases) > 1 else ""
        lines = [f"The following parameters are configurable for this nlu_lite pipeline ({self.spec.alias}{known}):",
                 ">>> pipe.predict(data, ...) options, with this model's defaults:"]
        for name in ("output_level", *DEFAULTS):
            value = getattr(resolved, name, DEFAULTS.get(name))
            lines.append(f"    {name}={value!r}")
        if self.spec.spark_nlp_model:
            lines.insert(1, f"NLU's model: Spark NLP {self.spec.spark_nlp_model}"
                            + (f" ({self.spec.description})" if self.spec.description else ""))
        recipe = self.recipe
        lines.append(">>> nlu_lite.load(...) settings of this pipeline:")
        for name in ("engine", "precision", "threads", "providers", "graph", "offline"):
            lines.append(f"    {name}={getattr(recipe, name, None) if recipe else None!r}")
        if self.precision == "int8":
            lines.append(f"int8 check: {self._int8_summary()}")
        print("\n".join(lines))

    # -- options and schema -------------------------------------------------------------
    @property
    def facts(self) -> ModelFacts:
        """What option checks need to know about the loaded model."""
        positions = getattr(self.encoder, "max_positions", None) or self.spec.max_length
        return ModelFacts(hidden_size=self.encoder.hidden_size, num_layers=self.encoder.num_layers,
                          has_pooler=self.encoder.has_pooler, max_positions=int(positions),
                          framing_overhead=self.tokenizer.framing.overhead,
                          sentence_width=self.head[-1].weight.shape[0] if self.head else None)

    def resolve_options(self, output_level: str | None = None, **options: Any) -> PredictOptions:
        """predict()'s options checked against this model and filled with its defaults; no text is touched.

        >>> pipe.resolve_options('sentence').pooling  # doctest: +SKIP
        'mean'
        """
        return resolve_options(self.spec, self.facts, output_level, options)

    def output_columns(self, output_level: str | None = None, *, index_dtype: Any = "int64",
                       **options: Any) -> dict[str, np.dtype]:
        """The columns and dtypes predict() returns at ``output_level`` (before any text is embedded).

        ``origin_index`` takes the input's index dtype (``int64`` for lists); the embedding
        column holds float32 vectors of width ``resolve_options(...).vector_width``.
        """
        opts = self.resolve_options(output_level, **options)
        if not opts.reshapes_frame:
            return output_columns(opts.output_level, self.spec.embedding_column, index_dtype=index_dtype,
                                  truncation=opts.truncation)
        empty = self.predict(pd.Series([], dtype=object, index=pd.Index([], dtype=index_dtype)), output_level,
                             **options)  # NLU's options reshape the frame: the empty result is its schema
        return {column: empty[column].dtype for column in empty.columns}

    # -- prediction ---------------------------------------------------------------------
    def predict(self, data: object, output_level: str | None = None, **options: Any) -> pd.DataFrame:
        """Embed ``data`` and return one row per token, sentence or document.

        ``data``: a string, a list/tuple/array of strings, a pandas Series (index kept as
        ``origin_index``) or a DataFrame (``text`` column, or ``text_column=``).
        ``output_level``: 'token' (default for token models), 'sentence' (default for sentence
        models), 'document', or 'chunk' with ``chunks=`` (your own spans, see :mod:`nlu_lite.chunks`). Options: see :class:`~nlu_lite.options.PredictOptions`; every
        option is checked before any text is tokenized.

        >>> pipe.predict(['I love NLP', 'Dr. Smith is here. He waits.'], output_level='sentence')  # doctest: +SKIP
        """
        opts = self.resolve_options(output_level, **options)
        keep = opts.keep_columns if isinstance(data, pd.DataFrame) or not opts.keep_strangers else False
        rows = to_rows(data, text_column=opts.text_column, keep_columns=keep, skip_invalid=opts.skip_invalid)
        if rows.extra is not None:
            check_kept_columns(list(rows.extra.columns), opts.output_level)
        if opts.output_level == "chunk":  # the user's spans, pooled from the token level of the same rows
            chunks = parse_chunks(opts.chunks, rows)
            token_opts = dataclasses.replace(opts, output_level="token", chunks=None, chunk_pooling=None)
            tokens, token_row, _ = self._frame(dataclasses.replace(rows, extra=None), token_opts)
            return chunk_frame(rows, chunks, tokens, token_row, to_matrix(tokens), opts.chunk_pooling,
                               self.spec.embedding_column)
        frame, _, pieces = self._frame(rows, opts)
        if not opts.reshapes_frame:
            return frame
        metadata = None
        if opts.metadata:
            unk = self.tokenizer.unk_id
            metadata = (token_metadata(pieces, self.tokenizer.vocabulary, unk) if opts.output_level == "token"
                        else unit_metadata(pieces, unk, opts.output_level))
        return apply_nlu_columns(frame, opts.output_level, positions=opts.positions, metadata=metadata,
                                 drop_irrelevant=opts.drop_irrelevant_cols, get_embeddings=opts.get_embeddings)

    def _frame(self, rows: Any, opts: PredictOptions) -> tuple[pd.DataFrame, np.ndarray | None]:
        """The frame of ``rows`` at ``opts.output_level`` (before NLU's column options), and at token
        level each token's input row position."""
        units = make_units(rows, opts.output_level)
        token_level = opts.output_level == "token"
        distinct, pieces = self._distinct_pieces(units, opts.deduplicate, token_level, opts.prompt)
        if opts.output_level == "sentence":
            counts = np.diff(pieces.text_piece_start)
            kept = drop_empty_sentences(units, counts if distinct is None else counts[distinct])
            if kept is not None:  # rare: tokenize the kept sentences again
                units = kept
                distinct, pieces = self._distinct_pieces(units, opts.deduplicate, token_level, opts.prompt)
        # every step below works on distinct texts: a repeated sentence is embedded once
        framing = self.tokenizer.framing
        seqs = plan_sequences(pieces, opts.max_length - framing.overhead, opts.window_overlap,
                              truncate=opts.truncation)
        batches = iter_batches(pieces, seqs, framing, batch_size=opts.batch_size,
                               max_batch_tokens=opts.max_batch_tokens,
                               equal_lengths=not getattr(self.encoder, "exact_with_padding", True))
        reused = 0 if distinct is None else len(units) - (len(pieces.text_piece_start) - 1)
        desc = f"nlu_lite {self.spec.alias}" + (f" ({reused:,} repeats embedded once)" if reused else "")
        encoded = encode_batches(self.encoder, batches, n_sequences=len(seqs), layers=opts.layers,
                                 pooler=opts.pooling == "pooler", progress=opts.progress, desc=desc)
        width = self.encoder.hidden_size
        if not opts.get_embeddings:  # NLU's get_embeddings=False: tokens or sentences only, no model run
            vectors = np.empty((pieces.n_words if opts.output_level == "token" else len(seqs.windowed_unit), 0),
                               dtype=np.float32)
        elif opts.output_level == "token":
            links = embedded_pieces(seqs, pieces.n_pieces)[pieces.link_piece]  # all, unless truncated
            tokens = TokenPooler(pieces.link_piece[links], pieces.link_word[links], pieces.n_words, pieces.n_pieces,
                                 width, opts.subtoken_pooling)
            for item in encoded:
                tokens.add_batch(item.batch, item.states)
            vectors = tokens.result()
        else:
            skip = 0 if self.spec.include_prompt else self._prompt_positions(opts.prompt)
            without = self.tokenizer.unk_id if getattr(self.encoder, "metadata", {}).get("mean_without_unknown") \
                else None  # model2vec: a mean of the known pieces only
            pooler = SequencePooler(len(pieces.text_piece_start) - 1, width, opts.pooling,
                                    class_token_last=getattr(_family(self.spec), "class_token_last", False),
                                    skip=skip, without=without)
            for item in encoded:
                pooler.add_batch(seqs.unit[item.batch.seq], item.batch, item.states, item.pooled,
                                  seqs.window[item.batch.seq])
            vectors = pooler.result()
            if self.head:  # sentence-transformers' Dense layers, after pooling and before normalising, as it runs them
                vectors = project(vectors, self.head)
        if opts.normalize:
            vectors = normalize_rows(vectors)
        windowed = seqs.windowed_unit
        truncated = seqs.truncated_unit
        vector_rows = None  # each output row's row of `vectors`: with repeats, several rows share one
        if distinct is not None:  # back to every unit, in order
            logger.info("%d of %d %s were repeats, each embedded once", reused, len(units),
                        "documents" if opts.output_level == "document" else "sentences")
            windowed = windowed[distinct]
            truncated = None if truncated is None else truncated[distinct]
            pieces, words = pieces.take(distinct)
            vector_rows = words if opts.output_level == "token" else distinct
        if opts.output_level == "token":
            empty = len(rows.texts) - len(np.unique(units.row[np.diff(pieces.text_word_start) > 0]))
            if empty:
                logger.info("%d input row(s) have no tokens (empty or missing text) and produce no token rows", empty)
            unseen = pieces.n_words - len(np.unique(pieces.link_word))
            if unseen:
                logger.warning("%d token(s) are covered by no word piece of %s (e.g. a lone combining mark an "
                               "uncased model strips): their vectors are NaN", unseen, self.spec.alias)
            frame = token_frame(rows, units, pieces, vectors, windowed, self.spec.embedding_column, truncated,
                                vector_rows)
            return frame, np.repeat(units.row, np.diff(pieces.text_word_start)), pieces
        frame = pooled_frame(rows, units, vectors, windowed, opts.output_level, self.spec.embedding_column, truncated,
                             vector_rows)
        return frame, None, pieces

    def embed(self, data: object, output_level: str = "document", *, normalize: bool | None = None,
              truncate_dim: int | None = None, **options: Any) -> np.ndarray:
        """predict()'s vectors as one float32 matrix: the sentence-transformers habit.

        ``output_level='document'`` (default) gives one row per input text, ``'sentence'`` one
        per sentence; a lone string at document level gives one 1-D vector. ``truncate_dim``
        keeps the first dimensions (for Matryoshka-trained models), before ``normalize``
        (default: the model's). Other keywords are predict()'s options.

        >>> pipe.embed(['I love NLP', 'Paris is big.']).shape  # doctest: +SKIP
        (2, 384)
        """
        if output_level not in ("sentence", "document"):
            raise InputError(f"embed() gives one vector per sentence or document, not output_level={output_level!r}; "
                             "for tokens use nlu_lite.to_matrix(pipe.predict(data, output_level='token'))")
        resolved = self.resolve_options(output_level, normalize=normalize, **options)
        width = resolved.vector_width
        if truncate_dim is not None and (isinstance(truncate_dim, bool) or not isinstance(truncate_dim, int)
                                         or not 1 <= truncate_dim <= width):
            raise InputError(f"truncate_dim must be an integer from 1 to the model's {width} dimensions; "
                             f"got {truncate_dim!r}")
        if truncate_dim is None:
            matrix = to_matrix(self.predict(data, output_level, normalize=normalize, **options))
        else:
            full = to_matrix(self.predict(data, output_level, normalize=False, **options))
            matrix = np.ascontiguousarray(full[:, :truncate_dim])
            if resolved.normalize:
                matrix = normalize_rows(matrix)
        return matrix[0] if isinstance(data, str) and output_level == "document" else matrix

    def _prompt_positions(self, prompt: str) -> int:
        """How many leading positions the prompt takes, as sentence-transformers counts them for
        ``include_prompt=False``: the prompt tokenized alone and framed, less its last position when
        that is a framing token (``[CLS] query : [SEP]`` -> 3: ``[CLS]`` and the prompt's pieces)."""
        if not prompt:
            return 0
        framing = self.tokenizer.framing
        pieces = len(self.tokenizer.encode([prompt], words=False).ids)
        framed = len(framing.prefix) + pieces + len(framing.suffix)
        return framed - (1 if framing.suffix or (not pieces and framing.prefix) else 0)

    def _distinct_pieces(self, units: Any, deduplicate: bool, words: bool,
                         prompt: str = "") -> tuple[np.ndarray | None, Any]:
        """The word pieces of the units' distinct texts (each after ``prompt``, unless blank), and for
        each unit its distinct text's number (``None`` when every text is distinct, or ``deduplicate``
        is off: then the pieces are the units')."""
        texts = units.text
        if deduplicate:
            first: dict[str, int] = {}
            distinct = np.fromiter((first.setdefault(t, len(first)) for t in texts), dtype=np.int64, count=len(texts))
            if len(first) < len(texts):
                return distinct, self.tokenizer.encode(_prompted(list(first), prompt), words=words)
        return None, self.tokenizer.encode(_prompted(texts, prompt), words=words)
