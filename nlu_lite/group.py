"""Several models in one request, as NLU's ``nlu.load('bert en.embed_sentence.small_bert_L2_128')``.

One frame with one embedding column per model at the requested level, and each model's own flags
(``<column>_windowed``, with ``truncation=True`` ``<column>_truncated``: one model may cut or window a
text another takes whole). Rows come from the first model whose task is that level (tokens and sentences are the same for every model,
whatever its tokenizer: one word splitter, one sentence splitter; a mismatch is an error,
never a silent misalignment). At token level a sentence model's column holds the vector of the
token's sentence, as NLU does.

>>> group = nlu_lite.load('en.embed.bert.small_L4_512 en.embed_sentence.small_bert_L4_512')  # doctest: +SKIP
>>> group.predict('I love NLP').columns.tolist()[-2:]  # doctest: +SKIP
['en_embed_bert_small_L4_512_embeddings', 'en_embed_sentence_small_bert_L4_512_embeddings']
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from .chunks import label_positions
from .errors import InputError
from .frame import ATTRS_KEY, to_matrix
from .pipeline import Pipeline

FLAGS = ("windowed", "truncated")  # per model in a group: each model's own
_ROW_KEYS = {"token": ["origin_index", "sentence_index", "begin", "end"],
             "sentence": ["origin_index", "sentence_index", "begin", "end"], "document": ["origin_index"],
             "chunk": ["origin_index", "chunk_index", "begin", "end"]}
# what a single pipeline has and a group cannot do as one: the error says what to do instead
_SINGLE = {
    "embed": "group.predict(data, 'document') and nlu_lite.to_matrix(df, column=...) per model, or "
             "group.pipelines[i].embed(data)",
    "save": "each model's own bundle: [p.save(f'bundles/{i}') for i, p in enumerate(group.pipelines)]",
    "spec": "group.pipelines[i].spec (one per model)",
    "encoder": "group.pipelines[i].encoder",
    "tokenizer": "group.pipelines[i].tokenizer",
    "resolve_options": "group.pipelines[i].resolve_options(...)",
    "output_columns": "group.pipelines[i].output_columns(...)",
    "recipe": "group.pipelines[i] (Spark and Dask run one pipeline: run each model and join on origin_index)",
}


class GroupAttributeError(InputError, AttributeError):
    """What belongs to one model, asked of several."""


class PipelineGroup:
    """Pipelines predicted together into one frame; build it with ``nlu_lite.load('alias1 alias2')``."""

    def __init__(self, pipelines: Sequence[Pipeline]) -> None:
        names = [p.spec.embedding_column for p in pipelines]
        if len(set(names)) != len(names):
            raise InputError(f"the request names a model twice ({names}); name each once")
        self.pipelines = list(pipelines)

    def __repr__(self) -> str:
        return f"PipelineGroup({[p.spec.alias for p in self.pipelines]})"

    def __getattr__(self, name: str) -> Any:
        if name in _SINGLE:  # an AttributeError too: hasattr() and getattr(group, name, None) answer as usual
            raise GroupAttributeError(f"{name} belongs to one model, and this request loaded several "
                                      f"({[p.spec.alias for p in self.pipelines]}); use {_SINGLE[name]}")
        raise AttributeError(f"'PipelineGroup' object has no attribute {name!r}")

    def print_info(self) -> None:
        """Each model's ``print_info()``, one block per model, as NLU prints a pipeline of several."""
        for pipe in self.pipelines:
            pipe.print_info()

    @property
    def embedding_columns(self) -> list[str]:
        return [p.spec.embedding_column for p in self.pipelines]

    def predict(self, data: object, output_level: str | None = None, **options: Any) -> pd.DataFrame:
        """One frame, one ``*_embeddings`` column per model (``nlu_lite.to_matrix(df, column=...)``).

        ``output_level`` (None or ``''``): token when any model is a word-embedding model, else
        sentence. Options go to every model; kept columns come with the first model's rows.
        """
        level = output_level or ("token" if any(p.spec.task == "token" for p in self.pipelines) else "sentence")
        for pipe in self.pipelines:  # every option checked for every model before any work
            if level == "token" and pipe.spec.task == "sentence":
                pipe.resolve_options("sentence", **{k: v for k, v in options.items() if k != "subtoken_pooling"})
            else:
                pipe.resolve_options(level, **options)
        if not isinstance(data, (str, bytes, pd.DataFrame, pd.Series, np.ndarray, list, tuple)) and \
                hasattr(data, "__iter__") and not hasattr(data, "__len__"):
            data = list(data)  # a generator or iterator: read once, then every model sees the same rows
        labels, positional = _positional(data)
        if level == "chunk" and labels is not None and isinstance(options.get("chunks"), pd.DataFrame):
            options = {**options, "chunks": _chunks_by_position(options["chunks"], labels)}
        order = sorted(self.pipelines, key=lambda p: (level == "token") == (p.spec.task != "token"))
        base = order[0]
        frame = base.predict(positional, level, **options)
        if options.get("get_embeddings") is False:  # tokens or sentences only: the same rows for every model
            if labels is not None:
                frame["origin_index"] = labels.take(frame["origin_index"].to_numpy())
            return frame
        flags = [f for f in FLAGS if f in frame.columns]
        frame = frame.rename(columns={f: f"{base.spec.embedding_column}_{f}" for f in flags})
        others = {k: v for k, v in options.items() if k not in ("keep_columns", "keep_stranger_features")}
        for pipe in order[1:]:
            column = pipe.spec.embedding_column
            if level == "token" and pipe.spec.task == "sentence":
                vectors, sentence_flags = _sentence_vectors_for_tokens(pipe, positional, frame, others, flags)
                frame[column] = vectors
                for f in flags:
                    frame[f"{column}_{f}"] = sentence_flags[f]
                continue
            other = pipe.predict(positional, level, **others)
            keys = [k for k in _ROW_KEYS[level] if k in frame.columns and k in other.columns]
            if len(other) != len(frame) or not frame[keys].reset_index(drop=True).equals(other[keys].reset_index(drop=True)):
                raise InputError(f"{pipe.spec.alias} splits the text into other {level}s than {base.spec.alias}; "
                                 "predict them apart and join on origin_index")
            frame[column] = other[column].to_numpy()
            for f in flags:
                frame[f"{column}_{f}"] = other[f].to_numpy()
        flag_columns = [f"{p.spec.embedding_column}_{f}" for p in self.pipelines for f in flags]
        ordered = ([c for c in frame.columns if c not in self.embedding_columns and c not in flag_columns]
                   + flag_columns + self.embedding_columns)
        frame = frame[[c for c in ordered if c in frame.columns]]
        frame.attrs[ATTRS_KEY] = {}  # several vector columns: to_matrix needs column=
        if labels is not None:
            frame["origin_index"] = labels.take(frame["origin_index"].to_numpy())
        return frame

    def __reduce__(self):
        return PipelineGroup, (self.pipelines,)


def _chunks_by_position(chunks: pd.DataFrame, labels: pd.Index) -> pd.DataFrame:
    """A chunks= frame's ``origin_index`` labels as row positions (the group predicts the rows by position)."""
    if "origin_index" not in chunks.columns:
        return chunks  # chunks.parse_chunks says what is missing
    return chunks.assign(origin_index=label_positions(chunks["origin_index"], labels))


def _positional(data: object) -> tuple[pd.Index | None, object]:
    """Row positions as index labels (so rows are matched by position), and the caller's labels."""
    if isinstance(data, (pd.DataFrame, pd.Series)):
        return data.index, data.reset_index(drop=True)
    return None, data


def _sentence_vectors_for_tokens(pipe: Pipeline, data: object, tokens: pd.DataFrame, options: dict[str, Any],
                                 flags: Sequence[str] = ()) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Each token row's sentence vector from a sentence model (NLU's behaviour at token level), and that
    sentence's ``flags`` as the sentence model set them."""
    sentence_options = {k: v for k, v in options.items() if k != "subtoken_pooling"}
    sentences = pipe.predict(data, "sentence", **sentence_options)
    matrix = to_matrix(sentences, pipe.spec.embedding_column)
    where = pd.MultiIndex.from_arrays([sentences["origin_index"], sentences["sentence_index"]])
    wanted = pd.MultiIndex.from_arrays([tokens["origin_index"], tokens["sentence_index"]])
    found = where.get_indexer(wanted)
    if (found < 0).any():
        raise InputError(f"{pipe.spec.alias} splits the text into other sentences than the token model; "
                         "predict them apart")
    cells = np.empty(len(found), dtype=object)
    cells[:] = list(matrix[found]) if len(found) else []
    return cells, {f: sentences[f].to_numpy()[found] for f in flags}
