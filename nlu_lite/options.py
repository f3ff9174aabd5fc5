"""predict()'s options, resolved and checked in one place before any text is touched.

Every option is checked against the model (its layers, pooler, positions) and the output
level: a wrong value, or an option that means nothing at that level (``pooling`` for
tokens, ``subtoken_pooling`` for sentences), is an :class:`InputError` naming the option,
the value and the valid choices. Defaults come from the model's registry entry. The result
is a frozen :class:`PredictOptions` with every value concrete, which the steps of
predict() read and never re-check.
"""
from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .choices import (
    CHUNK_POOLINGS,
    PREDICT_LEVELS,
    SENTENCE_POOLINGS,
    SUBTOKEN_POOLINGS,
    check_choice,
)
from .errors import InputError
from .registry import ModelSpec

logger = logging.getLogger(__name__)
_SURROGATE = re.compile("[\ud800-\udfff]")  # lone surrogates: what inputs.to_rows replaces in texts


@dataclass(frozen=True)
class ModelFacts:
    """What option checks need to know about a loaded model beyond its registry entry."""

    hidden_size: int
    num_layers: int
    has_pooler: bool
    max_positions: int  # the most positions a sequence may have, framing included
    framing_overhead: int = 2  # [CLS] + [SEP]
    sentence_width: int | None = None  # a sentence-transformers Dense head's output (None: hidden_size)


@dataclass(frozen=True)
class PredictOptions:
    """predict()'s options, resolved: every value concrete and valid for the model and level.

    output_level: 'token', 'sentence', 'document', or 'chunk' (the spans given as ``chunks``).
    text_column: DataFrame column holding the text (None: ``text``).
    keep_columns: True keeps every other DataFrame column alongside the output; a tuple keeps those.
    subtoken_pooling: token level only: 'first', 'last', 'mean', 'first_last' (concatenated, 2*dim).
    pooling: sentence/document level only: 'mean', 'cls', 'max', 'pooler', 'lasttoken'.
    normalize: L2-normalise each output vector (token, sentence or document).
    layers: hidden layers to use, e.g. (-1,) or (-4, -3, -2, -1) (averaged, as flair).
    batch_size: at most this many sequences per onnxruntime call; sequences are sorted by length first.
    max_batch_tokens: at most this many padded positions (sequences x longest) per call; a single
        longer sequence still runs alone.
    max_length: window size in word pieces including [CLS]/[SEP] (with ``truncation``: where the cut is).
    truncation: cut each sentence (document) after ``max_length`` pieces, framing included, as Spark
        NLP and sentence-transformers do, instead of embedding it in windows; the frame gains a
        ``truncated`` column, and tokens after the cut keep their rows with NaN vectors. Default
        ``max_length`` then: 128 (Spark NLP's ``maxSentenceLength``) for word-embedding models, the
        model's own ``max_seq_length`` for sentence models.
    window_overlap: pieces shared by consecutive windows of a long text (default 128, or half of
        a window of 128 pieces or fewer).
    progress: tqdm progress bar (None: for long inputs, unless NLU_LITE_PROGRESS=0).
    skip_invalid: keep non-string values as rows without text instead of raising.
    deduplicate: embed each distinct sentence (document, at document level) once per call and
        copy its vectors to every repeat; exact, since a unit is one sequence on its own.
    NLU's parameters: positions (None: ``begin``/``end``; True: NLU's ``token_begin``/``token_end``
        or ``sentence_begin``/...; False: no offsets), metadata (per token its pieces, piece ids,
        piece count and whether one is [UNK]; per sentence/document its piece and [UNK] counts),
        keep_stranger_features (NLU's name for keep_columns=True/False), drop_irrelevant_cols
        (True drops the token rows' ``sentence`` text), get_embeddings (False: no model run and no
        vectors, only tokens or sentences), multithread (accepted; threads are load(threads=)).
    chunks: output_level='chunk' only: per input row a list of (begin, end[, label]) character spans, or
        a DataFrame with origin_index, begin, end[, label] (see :mod:`nlu_lite.chunks`).
    chunk_pooling: a chunk's vector from its tokens': 'mean' (default), 'first' or 'last'.
    prompt: text put before every sentence (document) before it is embedded, as
        sentence-transformers' ``prompt=``/``prompt_name=`` (E5's ``'query: '``); '' for none.
        Sentence and document level only; blank texts get none.
    """

    output_level: str
    text_column: str | None
    keep_columns: bool | tuple[str, ...]
    subtoken_pooling: str | None
    pooling: str | None
    normalize: bool
    layers: tuple[int, ...]
    batch_size: int
    max_batch_tokens: int
    max_length: int
    window_overlap: int
    progress: bool | None
    skip_invalid: bool
    deduplicate: bool = True
    keep_strangers: bool = False  # keep_columns came from NLU's keep_stranger_features
    positions: bool | None = None
    metadata: bool = False
    drop_irrelevant_cols: bool = False
    get_embeddings: bool = True
    dim: int = 0  # the model's hidden size
    prompt: str = ""
    truncation: bool = False
    chunks: Any = None
    chunk_pooling: str | None = None

    @property
    def reshapes_frame(self) -> bool:
        """Whether NLU's column options change the frame predict() builds (offsets, metadata, columns)."""
        return self.positions is not None or self.metadata or self.drop_irrelevant_cols or not self.get_embeddings

    @property
    def vector_width(self) -> int:
        """Width of each output vector: the hidden size, doubled by ``subtoken_pooling='first_last'``."""
        return self.dim * (2 if self.subtoken_pooling == "first_last" else 1)


# the keywords predict() takes, with their documented defaults (None: the model's)
DEFAULTS: dict[str, Any] = {
    "text_column": None, "keep_columns": False, "subtoken_pooling": None, "pooling": None, "normalize": None,
    "layers": (-1,), "batch_size": 32, "max_batch_tokens": 1024, "max_length": None, "window_overlap": None,
    "progress": None, "skip_invalid": False, "deduplicate": True,
    # NLU's predict() parameters, with NLU's meaning (README: "NLU's predict() parameters")
    "positions": None, "metadata": False, "keep_stranger_features": None, "drop_irrelevant_cols": None,
    "get_embeddings": True, "multithread": None,
    # sentence-transformers' prompts: a named one of the model's, or any text (None: the model's default)
    "prompt_name": None, "prompt": None,
    "truncation": False,
    "chunks": None, "chunk_pooling": None,
}
OPTION_NAMES: tuple[str, ...] = tuple(DEFAULTS)


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _positive_int(name: str, value: object) -> int:
    if not _is_int(value) or value < 1:
        raise InputError(f"{name} must be a positive integer; got {value!r}")
    return int(value)


def _optional_bool(name: str, value: object) -> bool | None:
    if value is None or isinstance(value, (bool, np.bool_)):
        return None if value is None else bool(value)
    raise InputError(f"{name} must be True, False or None; got {value!r}")


def _required_bool(name: str, value: object) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise InputError(f"{name} must be True or False; got {value!r}")


def _layers(value: object, num_layers: int) -> tuple[int, ...]:
    values = (value,) if _is_int(value) else value
    if isinstance(values, (str, bytes)) or not isinstance(values, (list, tuple, np.ndarray, range)):
        raise InputError(f"layers must be an int or a list of ints, e.g. [-1] or [-4, -3, -2, -1]; got {value!r}")
    layers = tuple(values)
    if not layers:
        raise InputError("layers is empty; pass e.g. [-1] or [-4, -3, -2, -1]")
    for layer in layers:
        if not _is_int(layer) or not -num_layers - 1 <= layer <= num_layers:
            raise InputError(
                f"layers: layer {layer!r} does not exist: this model has hidden states 0..{num_layers} "
                f"(or -{num_layers + 1}..-1 counting from the last)"
            )
    return tuple(int(v) for v in layers)


def _keep_columns(value: object) -> bool | tuple[str, ...]:
    if value is None or isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, str):
        return (value,)
    if isinstance(value, (list, tuple, np.ndarray)) or type(value).__name__ == "Index":
        return tuple(value)  # names are checked against the DataFrame's columns by inputs.to_rows
    raise InputError(f"keep_columns must be True, False or a list of column names; got {value!r}")


def _prompt(spec: ModelSpec, level: str, name: object, text: object) -> str:
    """The prompt text: ``prompt=`` as given, ``prompt_name=`` looked up, else the model's default one."""
    prompts = dict(getattr(spec, "prompts", ()) or ())
    if name is not None and text is not None:
        raise InputError("pass prompt_name= (one of the model's prompts) or prompt= (your own text), not both")
    if text is not None and not isinstance(text, str):
        raise InputError(f"prompt must be a string put before each text, e.g. 'query: '; got {text!r}")
    if name is not None:
        if not isinstance(name, str) or name not in prompts:
            known = f"one of {sorted(prompts)}" if prompts else "not available: this model defines no prompts (use prompt=)"
            raise InputError(f"prompt_name={name!r} is {known}")
        text = prompts[name]
    explicit = text is not None
    if text is None:
        default = getattr(spec, "default_prompt_name", None)
        text = prompts.get(default, "") if default else ""
    if not text:
        return ""
    if level == "token":
        if explicit:
            raise InputError("prompts apply to sentence and document embeddings; output_level='token' takes none "
                             "(drop prompt=/prompt_name=, or ask for output_level='sentence' or 'document')")
        return ""  # the model's default prompt is for its pooled vectors
    if _SURROGATE.search(text):  # as texts get: a lone surrogate is not text, and tokenizers cannot take it
        logger.warning("the prompt held lone surrogates (not valid Unicode text): each was replaced by U+FFFD")
        text = _SURROGATE.sub("\ufffd", text)
    return text


def resolve_options(spec: ModelSpec, facts: ModelFacts, output_level: str | None,
                    options: Mapping[str, Any]) -> PredictOptions:
    """Check ``options`` (predict()'s keywords) and fill the model's defaults; no text is touched.

    >>> resolve_options(spec, facts, 'token', {'subtoken_pooling': 'avg'})  # doctest: +SKIP
    Traceback (most recent call last):
    InputError: subtoken_pooling must be one of ['first', 'last', 'mean', 'first_last']; got 'avg'
    """
    unknown = sorted(set(options) - set(OPTION_NAMES))
    if unknown:
        raise InputError(f"unknown option(s) {unknown} for predict(); valid options are {list(OPTION_NAMES)}")
    given = {**DEFAULTS, **options}
    # None or NLU's '' infer the level as NLU does: tokens for word embeddings, sentences for sentence ones
    inferred = "token" if spec.task == "token" else "sentence"
    level = check_choice(inferred if output_level in (None, "") else output_level, PREDICT_LEVELS,
                         "output_level", InputError)
    chunk_pooling = _chunk_options(level, given)
    words = level in ("token", "chunk")  # chunks are pooled from token vectors

    stranger = _optional_bool("keep_stranger_features", given["keep_stranger_features"])
    if stranger is not None:
        if "keep_columns" in options and _keep_columns(options["keep_columns"]) != stranger:
            raise InputError("keep_stranger_features is NLU's name for keep_columns=True/False; pass one of them")
        given["keep_columns"] = stranger  # NLU: strangers are a DataFrame's other columns; other inputs have none
    _optional_bool("multithread", given["multithread"])  # accepted for NLU code: threads are load(threads=)
    text_column = given["text_column"]
    if text_column is not None and (not isinstance(text_column, str) or not text_column):
        raise InputError(f"text_column must be a column name (a string); got {text_column!r}")

    if words:
        if given["pooling"] is not None:
            raise InputError(
                f"pooling={given['pooling']!r} has no meaning at output_level={level!r} (it pools sentences and "
                f"documents); a token's vector from its word pieces is subtoken_pooling= {list(SUBTOKEN_POOLINGS)}"
            )
        chosen = given["subtoken_pooling"]
        subtoken = check_choice(spec.subtoken_pooling if chosen is None else chosen, SUBTOKEN_POOLINGS,
                                "subtoken_pooling", InputError)
        pooling = None
    else:
        if given["subtoken_pooling"] is not None:
            raise InputError(
                f"subtoken_pooling={given['subtoken_pooling']!r} has no meaning at output_level={level!r} (it pools "
                f"a token's word pieces); a {level}'s vector is pooling= {list(SENTENCE_POOLINGS)}"
            )
        subtoken = None
        default = spec.pooling if spec.task == "sentence" else "mean"
        pooling = check_choice(default if given["pooling"] is None else given["pooling"], SENTENCE_POOLINGS,
                               "pooling", InputError)
        if pooling == "pooler" and not facts.has_pooler:
            origin = "" if given["pooling"] is not None else f" (the default of {spec.alias!r})"
            raise InputError(f"pooling='pooler'{origin} needs a model with a pooler, and this checkpoint has none; "
                             f"pass pooling= one of {[p for p in SENTENCE_POOLINGS if p != 'pooler']}")

    normalize = _optional_bool("normalize", given["normalize"])
    if normalize is None:
        normalize = spec.normalize if not words else False

    layers = _layers(given["layers"], facts.num_layers)
    if pooling == "pooler" and {v % (facts.num_layers + 1) for v in layers} != {facts.num_layers}:
        raise InputError(f"layers={list(layers)} has no effect with pooling='pooler' (BERT's pooler reads the "
                         "last layer only); drop layers=, or use pooling='mean' or 'cls' over those layers")

    batch_size = _positive_int("batch_size", given["batch_size"])
    max_batch_tokens = _positive_int("max_batch_tokens", given["max_batch_tokens"])
    limit = min(spec.max_length, facts.max_positions)
    truncation = _required_bool("truncation", given["truncation"])
    max_length = limit if given["max_length"] is None else given["max_length"]
    if truncation and given["max_length"] is None:
        max_length = min(limit, truncation_length(spec))
    if not _is_int(max_length) or not facts.framing_overhead < max_length <= limit:
        raise InputError(f"max_length must be an integer from {facts.framing_overhead + 1} to the model's "
                         f"{limit} positions ([CLS] and [SEP] included); got {given['max_length']!r}")
    capacity = int(max_length) - facts.framing_overhead
    overlap = given["window_overlap"]
    if overlap is None:  # 128 pieces, or half of a window too small for that
        overlap = 128 if capacity > 128 else capacity // 2
    if not _is_int(overlap) or not 0 <= overlap < capacity:
        raise InputError(f"window_overlap must be an integer from 0 to {capacity - 1} (less than max_length "
                         f"{int(max_length)} minus [CLS] and [SEP]); got {overlap!r}")
    if overlap > capacity * 3 // 4:  # each window moves by capacity - overlap pieces
        logger.warning("window_overlap=%d with %d pieces per window moves each window by %d piece(s): a text longer "
                       "than one window is embedded about %dx over; 128 (the default) or capacity // 2 is usual",
                       overlap, capacity, capacity - overlap, capacity // max(capacity - overlap, 1))

    return PredictOptions(
        output_level=level,
        text_column=text_column,
        keep_columns=_keep_columns(given["keep_columns"]),
        subtoken_pooling=subtoken,
        pooling=pooling,
        normalize=normalize,
        layers=layers,
        batch_size=batch_size,
        max_batch_tokens=max_batch_tokens,
        max_length=int(max_length),
        window_overlap=int(overlap),
        progress=_optional_bool("progress", given["progress"]),
        skip_invalid=bool(_optional_bool("skip_invalid", given["skip_invalid"])),
        deduplicate=_required_bool("deduplicate", given["deduplicate"]),
        keep_strangers=stranger is not None,
        positions=_optional_bool("positions", given["positions"]),
        metadata=_required_bool("metadata", given["metadata"]),
        drop_irrelevant_cols=bool(_optional_bool("drop_irrelevant_cols", given["drop_irrelevant_cols"])),
        get_embeddings=_required_bool("get_embeddings", given["get_embeddings"]),
        dim=facts.sentence_width if level in ("sentence", "document") and facts.sentence_width else
        facts.hidden_size,
        prompt=_prompt(spec, "token" if words else level, given["prompt_name"], given["prompt"]),
        truncation=truncation,
        chunks=given["chunks"],
        chunk_pooling=chunk_pooling,
    )


_NLU_COLUMN_OPTIONS = {"positions": None, "metadata": False, "drop_irrelevant_cols": None, "get_embeddings": True}


def _chunk_options(level: str, given: Mapping[str, Any]) -> str | None:
    """``chunk_pooling`` resolved; ``chunks=`` required at chunk level and refused elsewhere."""
    if level != "chunk":
        for name in ("chunks", "chunk_pooling"):
            if given[name] is not None:
                raise InputError(f"{name}= has meaning only at output_level='chunk' (vectors for your own spans); "
                                 f"got output_level={level!r}")
        return None
    if given["chunks"] is None:
        raise InputError("output_level='chunk' embeds the spans you give: pass chunks= (per input row a list of "
                         "(begin, end[, label]) character spans, or a DataFrame with origin_index, begin, end[, label])")
    for name, default in _NLU_COLUMN_OPTIONS.items():
        if given[name] != default:
            raise InputError(f"{name}={given[name]!r} is not available at output_level='chunk'; drop it (chunk rows "
                             "always have begin/end and their vectors)")
    return check_choice("mean" if given["chunk_pooling"] is None else given["chunk_pooling"], CHUNK_POOLINGS,
                        "chunk_pooling", InputError)


SPARK_NLP_MAX_SENTENCE_LENGTH = 128  # BertEmbeddings' and BertSentenceEmbeddings' maxSentenceLength default


def truncation_length(spec: ModelSpec) -> int:
    """Where ``truncation=True`` cuts by default, framing included: the entry's own
    ``truncation_length``; else Spark NLP's 128 for word-embedding models and for the entries that stand
    for NLU's ``sent_*`` models (Spark NLP's ``BertSentenceEmbeddings`` family, whose ``maxSentenceLength``
    is 128 too), and the model's own ``max_length`` (sentence-transformers' ``max_seq_length``) for other
    sentence models."""
    own = getattr(spec, "truncation_length", None)
    if own:
        return int(own)
    nlu_sentence = getattr(spec, "spark_nlp_model", "").startswith("sent_")
    return SPARK_NLP_MAX_SENTENCE_LENGTH if spec.task == "token" or nlu_sentence else spec.max_length

