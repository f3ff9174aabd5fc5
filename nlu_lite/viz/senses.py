"""Word senses: cluster the occurrences of one word in a token-level frame and name each cluster.

Contextual models give "bank" a different vector by the river and at the teller: the occurrences of a word
fall into groups, one per sense. :func:`senses` clusters them (average-linkage on cosine distance; the number of
senses chosen by the silhouette unless given), names each sense by its most distinctive context words (the
words of the occurrences' sentences, stop words left out, that are more frequent around this sense than around
the others) and lays out a keyword-in-context table per sense.
"""
from __future__ import annotations

import html
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .._optional import require
from ..errors import InputError
from ..frame import embedding_column, to_matrix
from .frames import _token_starts, viz_frame
from .neighbours import unit_rows

if TYPE_CHECKING:
    import plotly.graph_objects as go

MIN_SILHOUETTE = 0.1  # below it, one sense: no split is clearly better than none
CONTEXT_CHARS = 40
NAME_WORDS = 3


def _cluster(vectors: np.ndarray, k: int | None, max_k: int, min_silhouette: float) -> tuple[np.ndarray, float | None]:
    """Labels 0..k-1 (average linkage, cosine) and the silhouette of the chosen k (None for one cluster)."""
    cluster = require("sklearn.cluster", "viz", package="scikit-learn")
    metrics = require("sklearn.metrics", "viz", package="scikit-learn")
    n = len(vectors)

    def fit(n_clusters: int) -> np.ndarray:
        return cluster.AgglomerativeClustering(n_clusters=n_clusters, metric="cosine", linkage="average") \
            .fit_predict(vectors)

    if k is not None:
        if not 1 <= k <= n:
            raise InputError(f"k={k} senses asked for {n} occurrence(s): k is between 1 and {n}")
        if k == 1:
            return np.zeros(n, dtype=np.int64), None
        labels = fit(k)
        return labels, (float(metrics.silhouette_score(vectors, labels, metric="cosine")) if k < n else None)
    best, best_score = np.zeros(n, dtype=np.int64), None
    for candidate in range(2, min(max_k, n - 1) + 1):
        labels = fit(candidate)
        score = float(metrics.silhouette_score(vectors, labels, metric="cosine"))
        if best_score is None or score > best_score:
            best, best_score = labels, score
    if best_score is None or best_score < min_silhouette:
        return np.zeros(n, dtype=np.int64), best_score
    return best, best_score


def _context_words(df: pd.DataFrame, rows: np.ndarray, word: str, stop_words: frozenset[str]) -> list[set[str]]:
    """The content words of each occurrence's sentence (the frame's own tokens, lower-cased)."""
    keys = ["origin_index", "sentence_index"] if "sentence_index" in df.columns else ["origin_index"]
    tokens = df["token"].astype(str).str.lower()
    content = tokens.str.isalpha() & ~tokens.isin(stop_words) & (tokens != word)
    words_of = tokens[content].groupby([df.loc[content, k] for k in keys]).agg(frozenset)
    out = []
    for row in rows:
        key = tuple(df.iloc[row][k] for k in keys)
        out.append(set(words_of.get(key if len(keys) > 1 else key[0], frozenset())))
    return out


def _names(labels: np.ndarray, contexts: list[set[str]]) -> tuple[list[str], list[list[str]]]:
    """Each sense's name (its most distinctive context words) and its keywords, by sense number."""
    names, keywords = [], []
    for sense in range(labels.max() + 1):
        inside = [c for c, label in zip(contexts, labels) if label == sense]
        outside = [c for c, label in zip(contexts, labels) if label != sense]
        vocabulary = sorted(set().union(*inside)) if inside else []
        scores = []
        for w in vocabulary:
            share_in = sum(w in c for c in inside) / len(inside)
            share_out = sum(w in c for c in outside) / len(outside) if outside else 0.0
            scores.append((share_in - share_out, share_in, w))
        scores.sort(key=lambda s: (-s[0], -s[1], s[2]))
        top = [w for score, _, w in scores if score > 0][:NAME_WORDS] or [w for _, _, w in scores][:NAME_WORDS]
        keywords.append(top)
        names.append(" · ".join(top) if top else f"sense {sense + 1}")
    return names, keywords


@dataclass
class Senses:
    """What :func:`senses` found: ``occurrences`` (the word's token rows, vectors kept, with ``sense``,
    ``sense_name``, ``left`` and ``right``), ``summary`` (one row per sense: name, count, keywords, cohesion = mean
    cosine to the sense's centre), the ``silhouette`` of the split (None for one sense)."""

    word: str
    occurrences: pd.DataFrame
    summary: pd.DataFrame
    silhouette: float | None

    @property
    def k(self) -> int:
        return len(self.summary)

    def kwic(self, sense: int | None = None, rows: int | None = None) -> pd.DataFrame:
        """Keyword in context: ``left``, the word, ``right``, per occurrence (of one ``sense`` when given)."""
        occ = self.occurrences
        if sense is not None:
            if sense not in set(self.summary["sense"]):
                raise InputError(f"sense={sense} is not one of {self.summary['sense'].tolist()}")
            occ = occ[occ["sense"] == sense]
        table = occ[["sense", "sense_name", "left", "token", "right"]]
        return table if rows is None else table.head(rows)

    def figure(self, method: str = "pca", **reducer: Any) -> go.Figure:
        """The occurrences projected (``method`` as in :func:`.plots.plot_embeddings`), coloured by sense."""
        from .plots import plot_embeddings

        return plot_embeddings(self.occurrences, method, color="sense_name", title=(
            f"{len(self.occurrences)} occurrences of {self.word!r}: {self.k} sense{'s' * (self.k != 1)}"), **reducer)

    def _repr_html_(self) -> str:
        parts = [f"<b>{html.escape(self.word)}</b>: {len(self.occurrences)} occurrences, {self.k} "
                 f"sense{'s' * (self.k != 1)}"
                 + (f" (silhouette {self.silhouette:.2f})" if self.silhouette is not None else ""),
                 self.summary.to_html(index=False, escape=True, border=0, float_format=lambda v: f"{v:.3f}")]
        for sense, name in zip(self.summary["sense"], self.summary["name"]):
            parts.append(f"<i>{html.escape(str(sense))}: {html.escape(name)}</i>"
                         + self.kwic(sense, 5).drop(columns=["sense", "sense_name"]).to_html(index=False, border=0))
        return "".join(parts)

    def __repr__(self) -> str:
        return f"Senses({self.word!r}: {len(self.occurrences)} occurrences, {self.k} senses)"


def senses(
    df: Any,
    word: str,
    *,
    k: int | None = None,
    max_k: int = 6,
    min_silhouette: float = MIN_SILHOUETTE,
    column: str | None = None,
    stop_words: Any = None,
) -> Senses:
    """The senses of ``word`` in a token-level frame: its occurrences clustered and each cluster named.

    ``k``: the number of senses; None picks the ``k`` in 2..``max_k`` with the best cosine silhouette, or one
    sense when none reaches ``min_silhouette`` (0.1). ``stop_words``: words never used to name a sense
    (default scikit-learn's English list). Matching is case-insensitive on the frame's own tokens.

    >>> import nlu_lite
    >>> df = nlu_lite.load('en.embed_sentence.minilm_l6').predict(nlu_lite.viz.load_corpus().text,
    ...                                                         output_level='token')  # doctest: +SKIP
    >>> bank = nlu_lite.senses(df, 'bank')  # doctest: +SKIP
    >>> bank.summary  # doctest: +SKIP
    """
    df = viz_frame(df, column)
    if "token" not in df.columns or "sentence" not in df.columns:
        raise InputError("senses() reads a token-level frame: predict(..., output_level='token')")
    target = (word or "").strip().lower()
    if not target:
        raise InputError("pass the word whose senses to find, e.g. senses(df, 'bank')")
    rows = np.flatnonzero(df["token"].astype(str).str.lower().to_numpy() == target)
    if len(rows) < 2:
        raise InputError(f"{word!r} occurs {len(rows)} time(s) among the frame's tokens: senses need at least 2")
    vectors = to_matrix(df.iloc[rows]).astype(np.float64)
    finite = np.isfinite(vectors).all(axis=1)
    if not finite.all():
        raise InputError(f"{int((~finite).sum())} occurrence(s) of {word!r} have no vector (NaN); drop them first")
    vectors = unit_rows(vectors)
    labels, silhouette = _cluster(vectors, k, max_k, min_silhouette)
    # number senses by size, then by first occurrence, so the same frame always gives the same numbers
    order = sorted(range(labels.max() + 1), key=lambda c: (-(labels == c).sum(), np.flatnonzero(labels == c)[0]))
    labels = np.argsort(order)[labels]
    if stop_words is None:
        stop_words = require("sklearn.feature_extraction.text", "viz", package="scikit-learn").ENGLISH_STOP_WORDS
    contexts = _context_words(df, rows, target, frozenset(w.lower() for w in stop_words))
    names, keywords = _names(labels, contexts)

    occ = df.iloc[rows].copy()
    sentences = occ["sentence"].astype(str).to_numpy(dtype=object)
    tokens = occ["token"].astype(str).to_numpy(dtype=object)
    groups = list(zip(occ["origin_index"], occ["sentence_index"] if "sentence_index" in occ else [0] * len(occ)))
    starts = _token_starts(tokens, sentences, groups)
    left, right = [], []
    for sentence, token, start in zip(sentences, tokens, starts):
        if start < 0:
            left.append("")
            right.append("")
            continue
        left.append(sentence[:start][-CONTEXT_CHARS:])
        right.append(sentence[start + len(token):][:CONTEXT_CHARS])
    occ["sense"] = labels
    occ["sense_name"] = [names[label] for label in labels]
    occ["left"], occ["right"] = left, right
    centres = unit_rows(np.stack([vectors[labels == s].mean(axis=0) for s in range(len(names))]))
    summary = pd.DataFrame({
        "sense": np.arange(len(names)),
        "name": names,
        "count": np.bincount(labels, minlength=len(names)),
        "keywords": keywords,
        "cohesion": [float((vectors[labels == s] @ centres[s]).mean()) for s in range(len(names))],
    })
    occ.attrs = dict(df.attrs)
    embedding_column(occ)  # the vectors stay: explore(result.occurrences, color='sense_name') works
    return Senses(word, occ, summary, silhouette)
