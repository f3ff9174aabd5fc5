"""The predictor: texts -> sentences -> word pieces -> length-sorted batches -> vectors -> DataFrame.

Semantics follow Spark NLP's BertEmbeddings (which produced NLU's numbers): each sentence is
one sequence ``[CLS] pieces [SEP]``; a token's vector is its first piece's state of the last
layer. Unlike Spark NLP nothing is truncated: a sentence longer than the model's window is
embedded in overlapping windows (see :mod:`nlu_lite.pooling`) and its rows say ``windowed``.
"""
from __future__ import annotations

import dataclasses
import html
import logging
import operator
import os
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from . import pooling
from ._env import progress_enabled
from .errors import InputError
from .frame import build_frame
from .inputs import Rows, to_rows
from .registry import ModelSpec
from .sentences import split_sentences
from .tokenize import Pieces, WordPieceTokenizer

logger = logging.getLogger(__name__)

OutputLevel = Literal["token", "sentence", "document"]
OUTPUT_LEVELS = ("token", "sentence", "document")
PROGRESS_MIN_SEQUENCES = 256  # below this a progress bar is noise


@dataclass(frozen=True)
class PredictOptions:
    """predict()'s keyword options; ``None`` means the model's registry default.

    text_column: DataFrame column holding the text (default ``text``).
    keep_columns: True keeps every other DataFrame column alongside the output; a list keeps those.
    subtoken_pooling: 'first' (default), 'last', 'mean', 'first_last' (concatenated, 2*dim).
    pooling: sentence/document pooling: 'mean', 'cls', 'max', 'pooler'.
    normalize: L2-normalise sentence/document vectors.
    layers: hidden layers to use, e.g. [-1] (default) or [-4, -3, -2, -1] (averaged, as flair).
    batch_size: at most this many sequences per onnxruntime call; sequences are sorted by length first.
    max_batch_tokens: at most this many padded positions (sequences x longest) per call, so a
        batch of long sequences (documents, 512-piece windows) does not multiply onnxruntime's
        working memory; a single sequence longer than this still runs alone.
    max_length: window size in word pieces including [CLS]/[SEP] (default: the model's).
    window_overlap: pieces shared by consecutive windows of a long text.
    progress: show a tqdm progress bar (default: for long inputs, unless NLU_LITE_PROGRESS=0).
    skip_invalid: keep non-string values as rows without text instead of raising.
    """

    text_column: str | None = None
    keep_columns: bool | tuple[str, ...] = False
    subtoken_pooling: str | None = None
    pooling: str | None = None
    normalize: bool | None = None
    layers: tuple[int, ...] = (-1,)
    batch_size: int = 32
    max_batch_tokens: int = 1024
    max_length: int | None = None
    window_overlap: int = 128
    progress: bool | None = None
    skip_invalid: bool = False


_OPTION_NAMES = tuple(f.name for f in dataclasses.fields(PredictOptions))


def _options(kwargs: dict[str, Any]) -> PredictOptions:
    unknown = sorted(set(kwargs) - set(_OPTION_NAMES))
    if unknown:
        raise InputError(f"unknown option(s) {unknown} for predict(); valid options are {list(_OPTION_NAMES)}")
    for key in ("layers", "keep_columns"):
        if isinstance(kwargs.get(key), (list, np.ndarray)):
            kwargs[key] = tuple(int(v) if key == "layers" else v for v in kwargs[key])
    if isinstance(kwargs.get("layers"), int):
        kwargs["layers"] = (kwargs["layers"],)
    return PredictOptions(**kwargs)


@dataclass
class _Units:
    """The texts that become sequences: sentences (token/sentence level) or whole documents."""

    row: np.ndarray  # (n_units,) row position
    sentence_index: np.ndarray  # (n_units,)
    begin: np.ndarray  # (n_units,) char offset of the unit in its row's text
    end: np.ndarray
    text: list[str]


def _sentence_units(rows: Rows, *, placeholder: bool) -> _Units:
    """One unit per sentence; with ``placeholder`` a row without sentences gets an empty unit."""
    row, sent, begin, end, text = [], [], [], [], []
    for r, doc in enumerate(rows.texts):
        spans = split_sentences(doc) if doc else []
        if not spans and placeholder:
            spans = [(0, 0)]
        for i, (b, e) in enumerate(spans):
            row.append(r)
            sent.append(i)
            begin.append(b)
            end.append(e)
            text.append(doc[b:e])
    return _Units(np.array(row, np.int64), np.array(sent, np.int64), np.array(begin, np.int64),
                  np.array(end, np.int64), text)


def _document_units(rows: Rows) -> _Units:
    n = len(rows.texts)
    lengths = np.fromiter(map(len, rows.texts), dtype=np.int64, count=n)
    return _Units(np.arange(n), np.zeros(n, np.int64), np.zeros(n, np.int64), lengths, list(rows.texts))


@dataclass
class _Sequences:
    """Model inputs: sequence k covers pieces [start, end) of unit ``unit[k]`` (window ``window[k]``)."""

    unit: np.ndarray
    window: np.ndarray
    start: np.ndarray
    end: np.ndarray
    owner: np.ndarray  # (n_pieces,) owning window number of each piece (within its unit)
    windowed_unit: np.ndarray  # (n_units,) bool
    piece_start: np.ndarray = None  # (n_sequences,) global number of each sequence's first piece

    def __post_init__(self) -> None:
        self.lengths = self.end - self.start  # (n_sequences,) word pieces, without [CLS]/[SEP]


def _plan(pieces: Pieces, capacity: int, overlap: int) -> _Sequences:
    seqs = _plan_windows(pieces, capacity, overlap)
    seqs.piece_start = pieces.text_piece_start[seqs.unit] + seqs.start
    return seqs


def _plan_windows(pieces: Pieces, capacity: int, overlap: int) -> _Sequences:
    counts = np.diff(pieces.text_piece_start)
    n_units = len(counts)
    owner = np.zeros(int(pieces.text_piece_start[-1]), dtype=np.int64)
    long_units = np.flatnonzero(counts > capacity)
    if len(long_units) == 0:  # the common case: one window per unit with pieces
        has = np.flatnonzero(counts > 0)
        return _Sequences(has, np.zeros(len(has), np.int64), np.zeros(len(has), np.int64), counts[has],
                          owner, np.zeros(n_units, bool))
    unit, window, start, end = [], [], [], []
    for u in np.flatnonzero(counts > 0):
        n = int(counts[u])
        plan = pooling.plan_windows(n, capacity, overlap)
        if len(plan) > 1:
            lo = pieces.text_piece_start[u]
            owner[lo:lo + n] = pooling.owner_window(n, plan)
        unit.extend([u] * len(plan))
        window.extend(range(len(plan)))
        start.extend(plan[:, 0])
        end.extend(plan[:, 1])
    windowed = np.zeros(n_units, bool)
    windowed[long_units] = True
    return _Sequences(np.array(unit, np.int64), np.array(window, np.int64), np.array(start, np.int64),
                      np.array(end, np.int64), owner, windowed)


def _batches(order: np.ndarray, widths: np.ndarray, batch_size: int, max_tokens: int) -> list[np.ndarray]:
    """Split ``order`` (sequence numbers sorted by ascending ``widths``) into consecutive batches of
    at most ``batch_size`` sequences and at most ``max_tokens`` padded positions (at least one each)."""
    batches, start, n = [], 0, len(order)
    while start < n:
        candidates = widths[order[start:start + batch_size]]
        # ascending widths: the k-th candidate makes the batch (k + 1) x widths[k] positions, which only grows
        size = max(1, int(np.count_nonzero(np.arange(1, len(candidates) + 1) * candidates <= max_tokens)))
        batches.append(order[start:start + size])
        start += size
    return batches


def _batch_layout(lengths: np.ndarray, piece_start: np.ndarray, batch: np.ndarray):
    """Where a batch's pieces sit, without a loop per sequence: ``(row, column, global piece)``.

    Row b, column c (after [CLS]) of the padded batch holds global piece ``src``; ``piece_start``
    is each sequence's first global piece (``text_piece_start[unit] + start``).
    """
    n = lengths[batch]
    total = int(n.sum())
    before = np.cumsum(n) - n  # pieces of earlier sequences in this batch
    row = np.repeat(np.arange(len(batch)), n)
    offset = np.arange(total) - np.repeat(before, n)
    return row, offset + 1, np.repeat(piece_start[batch], n) + offset


def _describe_runtime(encoder: Any) -> str:
    session = getattr(encoder, "session", None)
    if session is None:
        return type(encoder).__name__
    import onnxruntime as ort

    threads = session.get_session_options().intra_op_num_threads
    providers = ", ".join(p.replace("ExecutionProvider", "") for p in session.get_providers())
    return f"onnxruntime {ort.__version__} ({providers}, {threads or 'all'} threads)"


class Pipeline:
    """A loaded model: ``predict(texts, output_level=...)`` returns a pandas DataFrame.

    Built by :func:`nlu_lite.load`; the constructor only stores already-loaded parts.

    >>> import nlu_lite
    >>> pipe = nlu_lite.load('en.embed.minilm_l6')  # doctest: +SKIP
    >>> pipe.predict('I love NLP', output_level='token').token.tolist()  # doctest: +SKIP
    ['I', 'love', 'NLP']
    """

    def __init__(self, spec: ModelSpec, encoder: Any, tokenizer: WordPieceTokenizer, *,
                 source: str = "", model_path: str = "", precision: str = "fp32") -> None:
        self.spec = spec
        self.encoder = encoder
        self.tokenizer = tokenizer
        self.source = source
        self.model_path = model_path
        self.precision = precision

    # -- presentation -------------------------------------------------------------------
    def _summary(self) -> dict[str, str]:
        runtime = _describe_runtime(self.encoder)
        return {
            "alias": self.spec.alias,
            "task": f"{self.spec.task} embeddings",
            "dim": str(self.spec.dim),
            "layers": str(self.spec.layers),
            "max_length": str(self.spec.max_length),
            "precision": self.precision,
            "runtime": str(runtime),
            "source": self.source,
            "output column": self.spec.embedding_column,
        }

    def __repr__(self) -> str:
        s = self._summary()
        return (f"Pipeline(alias={s['alias']!r}, task={self.spec.task!r}, dim={self.spec.dim}, "
                f"layers={self.spec.layers}, precision={self.precision!r}, runtime={s['runtime']!r})")

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><th style='text-align:left'>{html.escape(k)}</th><td style='text-align:left'>{html.escape(v)}</td></tr>"
            for k, v in self._summary().items()
        )
        return f"<div><b>nlu_lite Pipeline</b><table>{rows}</table></div>"

    # -- prediction ---------------------------------------------------------------------
    def predict(self, data: object, output_level: OutputLevel | None = None, **options: Any) -> pd.DataFrame:
        """Embed ``data`` and return one row per token, sentence or document.

        ``data``: a string, a list/tuple/array of strings, a pandas Series (index kept as
        ``origin_index``) or a DataFrame (``text`` column, or ``text_column=``).
        ``output_level``: 'token' (default for token models), 'sentence' (default for sentence
        models) or 'document'. Options: see :class:`PredictOptions`.

        >>> pipe.predict(['I love NLP', 'Dr. Smith is here. He waits.'], output_level='sentence')  # doctest: +SKIP
        """
        level = self.resolve_level(output_level)
        opts = _options(dict(options))
        rows = to_rows(data, text_column=opts.text_column, keep_columns=opts.keep_columns,
                       skip_invalid=opts.skip_invalid)
        units = _document_units(rows) if level == "document" else _sentence_units(rows, placeholder=level == "sentence")
        pieces = self.tokenizer.encode(units.text)
        if level == "token":
            df = self._token_frame(rows, units, pieces, opts)
        else:
            df = self._pooled_frame(rows, units, pieces, opts, level)
        if rows.extra is not None:
            positions = df.pop("_row").to_numpy()
            extra = rows.extra.take(positions).reset_index(drop=True)
            df = pd.concat([df.iloc[:, :1], extra, df.iloc[:, 1:]], axis=1)
        else:
            df = df.drop(columns="_row")
        return df

    def resolve_level(self, output_level: OutputLevel | None) -> OutputLevel:
        """``output_level``, or the model's default ('token' for token models, else 'sentence'), validated."""
        level = output_level or ("token" if self.spec.task == "token" else "sentence")
        if level not in OUTPUT_LEVELS:
            raise InputError(f"output_level must be one of {list(OUTPUT_LEVELS)}; got {output_level!r}")
        return level

    def predict_iter(self, data: object, *, output_level: OutputLevel | None = None, chunk_size: int = 1000,
                     **options: Any):
        """predict() over ``data`` in chunks of ``chunk_size`` input rows, yielding one DataFrame per chunk.

        Memory stays bounded by the chunk, whatever the corpus size; ``data`` may be any iterable.

        >>> for part in pipe.predict_iter(open('corpus.txt'), chunk_size=5000): ...  # doctest: +SKIP
        """
        from .stream import predict_iter

        return predict_iter(self, data, output_level=output_level, chunk_size=chunk_size, **options)

    def predict_to_parquet(self, data: object, path: str | os.PathLike, *, output_level: OutputLevel | None = None,
                           chunk_size: int = 1000, compression: str = "zstd", **options: Any):
        """Stream predict() results to a parquet file (written under a temporary name, then renamed).

        Read it back with :func:`nlu_lite.read_parquet`, which restores the float32 vectors.

        >>> pipe.predict_to_parquet(texts, 'embeddings.parquet', output_level='token')  # doctest: +SKIP
        """
        from .stream import predict_to_parquet

        return predict_to_parquet(self, data, path, output_level=output_level, chunk_size=chunk_size,
                                  compression=compression, **options)

    def explore(self, data: object, output_level: OutputLevel | None = None, **kwargs: Any):
        """Embed ``data`` and open the interactive explorer on the result (needs ``nlu-lite[viz]``).

        predict() options (see :class:`PredictOptions`) go to predict(); the rest to
        :func:`nlu_lite.viz.explore` (method, dimensions, color, ...).

        >>> pipe.explore(['The bank of the river.', 'The bank raised rates.'], color='token')  # doctest: +SKIP
        """
        from .viz import explore

        predict_options = {k: kwargs.pop(k) for k in list(kwargs) if k in _OPTION_NAMES}
        frame = self.predict(data, output_level=output_level, **predict_options)
        return explore(frame, pipe=self, **kwargs)

    def _run(self, pieces: Pieces, opts: PredictOptions, *, want_pooled: bool):
        """Yield ``(sequence numbers, states (B,S,H), pooled or None, own-window mask)`` per batch."""
        max_length = opts.max_length or self.spec.max_length
        if max_length > self.spec.max_length:
            raise InputError(f"max_length {max_length} exceeds the model's {self.spec.max_length} positions")
        for name in ("batch_size", "max_batch_tokens"):
            value = getattr(opts, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise InputError(f"{name} must be a positive integer; got {value!r}")
        seqs = _plan(pieces, max_length - 2, opts.window_overlap)
        outputs = list(self.encoder.layer_output_names(opts.layers))
        if want_pooled:
            outputs = outputs + ["pooler_output"]
        lengths, piece_start = seqs.lengths, seqs.piece_start
        order = np.argsort(lengths, kind="stable")  # length-sorted batches; order restored by scatter
        batches = _batches(order, lengths + 2, opts.batch_size, opts.max_batch_tokens)
        bar = None
        if progress_enabled(opts.progress, default=len(order) >= PROGRESS_MIN_SEQUENCES):
            from tqdm.auto import tqdm

            bar = tqdm(total=len(order), desc=f"nlu_lite {self.spec.alias}", unit="seq")
        try:
            for batch in batches:
                n = lengths[batch]
                width = int(n.max()) + 2
                ids = np.full((len(batch), width), self.tokenizer.pad_id, dtype=np.int64)
                mask = (np.arange(width) < (n + 2)[:, None]).astype(np.int64)
                row, col, src = _batch_layout(lengths, piece_start, batch)
                ids[row, col] = pieces.ids[src]
                ids[:, 0] = self.tokenizer.cls_id
                ids[np.arange(len(batch)), n + 1] = self.tokenizer.sep_id
                result = self.encoder.run(ids, mask, outputs=tuple(dict.fromkeys(outputs)))
                layer_states = [result[name] for name in outputs if name != "pooler_output"]
                states = layer_states[0] if len(layer_states) == 1 else np.mean(layer_states, axis=0, dtype=np.float32)
                yield batch, seqs, states, result.get("pooler_output")
                if bar is not None:
                    bar.update(len(batch))
        finally:
            if bar is not None:
                bar.close()

    def _token_frame(self, rows: Rows, units: _Units, pieces: Pieces, opts: PredictOptions) -> pd.DataFrame:
        mode = opts.subtoken_pooling or self.spec.subtoken_pooling
        piece_unit = np.repeat(np.arange(len(units.row)), np.diff(pieces.text_piece_start))
        piece_states = None
        windowed_unit = np.zeros(len(units.row), bool)
        # 'first'/'last' need one piece per word: scatter it straight into the word matrix
        # instead of keeping every piece's vector and gathering afterwards
        word_start = np.r_[True, pieces.word[1:] != pieces.word[:-1]] if len(pieces.word) else np.empty(0, bool)
        direct = {"first": word_start, "last": np.r_[word_start[1:], True] if len(word_start) else word_start}.get(mode)
        for batch, seqs, states, _ in self._run(pieces, opts, want_pooled=False):
            if piece_states is None:
                rows_needed = pieces.n_words if direct is not None else len(pieces.ids)
                piece_states = np.empty((rows_needed, states.shape[2]), dtype=np.float32)
                windowed_unit = seqs.windowed_unit
            # scatter each window's owned pieces to their global positions
            row, col, src = _batch_layout(seqs.lengths, seqs.piece_start, batch)
            keep = seqs.owner[src] == seqs.window[batch][row]
            if direct is not None:
                keep &= direct[src]
                piece_states[pieces.word[src[keep]]] = states[row[keep], col[keep]]
            else:
                piece_states[src[keep]] = states[row[keep], col[keep]]
        if piece_states is None:
            piece_states = np.empty((0, self.encoder.hidden_size), dtype=np.float32)
        vectors = piece_states if direct is not None else pooling.word_pool(piece_states, pieces.word, mode)
        word_unit = piece_unit[word_start]
        word_row = units.row[word_unit]
        begin = units.begin[word_unit] + pieces.word_begin
        end = units.begin[word_unit] + pieces.word_end
        texts = np.array(rows.texts, dtype=object)[word_row] if len(word_row) else np.empty(0, object)
        tokens = list(map(operator.getitem, texts, map(slice, begin.tolist(), end.tolist())))
        sentence_text = np.array(units.text, dtype=object)[word_unit] if len(word_unit) else np.empty(0, object)
        empty_rows = np.setdiff1d(np.arange(len(rows.texts)), word_row)
        if len(empty_rows):
            logger.info("%d input row(s) have no tokens (empty or missing text) and produce no token rows", len(empty_rows))
        columns = {
            "origin_index": rows.index.take(word_row),
            "sentence_index": units.sentence_index[word_unit],
            "token": tokens,
            "begin": begin,
            "end": end,
            "sentence": sentence_text,
            "windowed": windowed_unit[word_unit],
            "_row": word_row,
        }
        return build_frame(columns, vectors, self.spec.embedding_column)

    def _pooled_frame(self, rows: Rows, units: _Units, pieces: Pieces, opts: PredictOptions, level: str) -> pd.DataFrame:
        mode = opts.pooling or (self.spec.pooling if self.spec.task == "sentence" else "mean")
        normalize = self.spec.normalize if opts.normalize is None else opts.normalize
        pooler = None
        windowed_unit = np.zeros(len(units.row), bool)
        for batch, seqs, states, pooled in self._run(pieces, opts, want_pooled=mode == "pooler"):
            if pooler is None:
                pooler = pooling.SequencePooler(len(units.row), states.shape[2], mode)
                windowed_unit = seqs.windowed_unit
            own = np.zeros(states.shape[:2], dtype=bool)
            row, col, src = _batch_layout(seqs.lengths, seqs.piece_start, batch)
            own[row, col] = seqs.owner[src] == seqs.window[batch][row]
            own[:, 0] = True  # [CLS]
            own[np.arange(len(batch)), seqs.lengths[batch] + 1] = True  # [SEP]
            pooler.add(seqs.unit[batch], states, own, pooled)
        if pooler is None:
            vectors = np.full((len(units.row), self.encoder.hidden_size), np.nan, dtype=np.float32)
        else:
            vectors = pooler.result()
        if normalize:
            vectors = pooling.normalize_rows(vectors)
        text_name = "document" if level == "document" else "sentence"
        columns: dict[str, Any] = {
            "origin_index": rows.index.take(units.row),
        }
        if level == "sentence":
            columns.update(sentence_index=units.sentence_index, sentence=units.text, begin=units.begin, end=units.end)
        else:
            columns[text_name] = units.text
        columns["windowed"] = windowed_unit
        columns["_row"] = units.row
        return build_frame(columns, vectors, self.spec.embedding_column)
