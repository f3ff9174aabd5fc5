"""A scikit-learn face for prototyping: embedders that sit in a ``Pipeline`` before any estimator.

    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.linear_model import LogisticRegression
    >>> from nlu_lite.sklearn import Embedder
    >>> clf = make_pipeline(Embedder('en.embed_sentence.minilm_l6'), LogisticRegression())  # doctest: +SKIP
    >>> clf.fit(texts, labels).predict(['a new text'])  # doctest: +SKIP

Both follow scikit-learn's conventions: ``__init__`` stores its parameters and nothing else; ``fit`` learns
nothing (the model is pretrained) and stores nothing from it, so a clone, a grid search or a pickle never carries
a model; the model is loaded on first ``transform`` and kept in a per-process cache keyed by the parameters
that choose it (so the folds of a cross-validation share one). Needs scikit-learn (the ``viz`` extra has it).

- :class:`Embedder`: one sample per text, its document (or sentence-pooled) vector.
- :class:`TokenEmbedder`: one sample per token or span *in its text* (``(text, begin, end)``), its vector in
  that context: the mean of the span's token vectors, as ``predict(output_level='chunk')`` gives it. For token
  classification, NER-like span tasks, keyword or term labelling.

A text (or span) without a vector (an empty text, a span over no word) is an error naming the rows, or, with
``on_empty='zeros'``, a row of zeros; never a NaN passed on to the next estimator.
"""
from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pandas as pd

from ._optional import require
from .errors import InputError

_base = require("sklearn.base", "viz", package="scikit-learn")

_PIPES: dict[tuple, Any] = {}
_LOCK = threading.Lock()
EMPTY = ("error", "zeros")


def _pipeline(model: str | None, path: str | None, precision: str | None, engine: str | None) -> Any:
    """The loaded model for these parameters, loaded once per process."""
    if (model is None) == (path is None):
        raise InputError("pass model= (an alias, e.g. 'en.embed_sentence.minilm_l6') or path= (a folder), not both")
    key = (model, None if path is None else str(path), precision, engine)
    with _LOCK:
        if key not in _PIPES:
            from .api import load

            _PIPES[key] = load(model, path=path, precision=precision, engine=engine)
        return _PIPES[key]


def _width(pipe: Any) -> int:
    """The length of the vectors this pipeline gives (a Dense head may change the model's width)."""
    return int(pipe.resolve_options("document").vector_width)


def clear_cache() -> None:
    """Forget the models the embedders loaded in this process."""
    with _LOCK:
        _PIPES.clear()


def _texts(X: Any) -> list[str]:
    """A 1-D sequence of texts: list, tuple, array, Series, or a one-column DataFrame / 2-D array
    (what ColumnTransformer passes)."""
    if isinstance(X, pd.DataFrame):
        if X.shape[1] != 1:
            raise InputError(f"Embedder takes one column of texts; this frame has {X.shape[1]}: select one "
                             "(or use ColumnTransformer with the text column)")
        X = X.iloc[:, 0]
    if isinstance(X, str):
        raise InputError("Embedder takes a list of texts (one sample each), not one string: wrap it in a list")
    values = np.asarray(X, dtype=object)
    if values.ndim == 2 and values.shape[1] == 1:
        values = values[:, 0]
    if values.ndim != 1:
        raise InputError(f"Embedder takes a 1-D list of texts; got an array of shape {values.shape}")
    bad = [i for i, v in enumerate(values) if not isinstance(v, str)]
    if bad:
        raise InputError(f"sample(s) {bad[:5]} are not text ({type(values[bad[0]]).__name__}); fill or drop them first")
    return values.tolist()


def _no_empty(matrix: np.ndarray, on_empty: str, what: str) -> np.ndarray:
    missing = ~np.isfinite(matrix).all(axis=1)
    if missing.any():
        if on_empty == "error":
            rows = np.flatnonzero(missing)[:5].tolist()
            raise InputError(f"{int(missing.sum())} {what} have no vector (rows {rows}: an empty text or a span "
                             "over no word); drop them, or pass on_empty='zeros' for a row of zeros")
        matrix = matrix.copy()
        matrix[missing] = 0.0
    return matrix


def _check(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise InputError(f"{name}={value!r}: choose one of {list(allowed)}")


class _Base(_base.TransformerMixin, _base.BaseEstimator):
    def fit(self, X: Any, y: Any = None) -> _Base:
        """Nothing to learn (the model is pretrained); checks the parameters and returns self."""
        self._validate()
        return self

    def __sklearn_is_fitted__(self) -> bool:
        return True  # stateless: transform works without fit, as scikit-learn's FunctionTransformer

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = False
        tags.input_tags.two_d_array = False
        tags.input_tags.string = True
        return tags

    def _pipe(self) -> Any:
        return _pipeline(self.model, self.path, self.precision, self.engine)

    def _validate_shared(self) -> None:
        """The parameters both embedders take."""
        _check("on_empty", self.on_empty, EMPTY)
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, (int, np.integer)) \
                or self.batch_size < 1:
            raise InputError(f"batch_size={self.batch_size!r}: a whole number of at least 1")

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """``<prefix>0`` .. ``<prefix>{dim-1}``, the prefix the model's embedding column."""
        pipe = self._pipe()
        prefix = pipe.spec.embedding_column.removesuffix("embeddings")
        return np.asarray([f"{prefix}{i}" for i in range(_width(pipe))], dtype=object)


class Embedder(_Base):
    """Texts to vectors for scikit-learn: one row per text.

    ``model``: an alias (``'en.embed_sentence.minilm_l6'``), or ``path=`` a local folder; ``output_level``:
    ``'document'`` (one vector per text, default) or ``'sentence'`` is not offered here (a sample is a text);
    ``normalize``: None (the model's own), True or False; ``batch_size``; ``precision`` / ``engine`` as in
    :func:`nlu_lite.load`; ``on_empty``: ``'error'`` (default) or ``'zeros'``.
    """

    def __init__(self, model: str | None = "en.embed_sentence.minilm_l6", *, path: str | None = None,
                 normalize: bool | None = None, batch_size: int = 32, precision: str | None = None,
                 engine: str | None = None, on_empty: str = "error") -> None:
        self.model = model
        self.path = path
        self.normalize = normalize
        self.batch_size = batch_size
        self.precision = precision
        self.engine = engine
        self.on_empty = on_empty

    def _validate(self) -> None:
        self._validate_shared()
        if self.normalize not in (None, True, False):
            raise InputError(f"normalize={self.normalize!r}: None (the model's own), True or False")

    def transform(self, X: Any) -> np.ndarray:
        """The ``(n_texts, dim)`` float32 matrix of the texts' vectors."""
        self._validate()
        texts = _texts(X)
        pipe = self._pipe()
        if not texts:
            return np.zeros((0, _width(pipe)), dtype=np.float32)
        matrix = pipe.embed(texts, "document", normalize=self.normalize, batch_size=int(self.batch_size))
        return _no_empty(np.asarray(matrix, dtype=np.float32), self.on_empty, "text(s)")


class TokenEmbedder(_Base):
    """Tokens or spans in their text to vectors: one row per ``(text, begin, end)`` sample.

    ``X``: a DataFrame with ``text``, ``begin`` and ``end`` columns, or a list of ``(text, begin, end)``
    tuples (character offsets, ``end`` exclusive). Each span's vector is the ``pooling`` (``'mean'``, ``'first'``
    or ``'last'``) of the vectors of the tokens it overlaps, computed in the span's own sentence; a text shared by
    several samples is embedded once. Other parameters as :class:`Embedder`.
    """

    def __init__(self, model: str | None = "en.embed_sentence.minilm_l6", *, path: str | None = None,
                 pooling: str = "mean", batch_size: int = 32, precision: str | None = None,
                 engine: str | None = None, on_empty: str = "error") -> None:
        self.model = model
        self.path = path
        self.pooling = pooling
        self.batch_size = batch_size
        self.precision = precision
        self.engine = engine
        self.on_empty = on_empty

    def _validate(self) -> None:
        self._validate_shared()
        _check("pooling", self.pooling, ("mean", "first", "last"))

    @staticmethod
    def _spans(X: Any) -> pd.DataFrame:
        if isinstance(X, pd.DataFrame):
            missing = {"text", "begin", "end"} - set(X.columns)
            if missing:
                raise InputError(f"TokenEmbedder's frame needs columns text, begin, end; missing {sorted(missing)}")
            frame = X[["text", "begin", "end"]].reset_index(drop=True)
        else:
            rows = list(X)
            if any(not isinstance(r, (tuple, list)) or len(r) != 3 for r in rows):
                raise InputError("TokenEmbedder takes (text, begin, end) samples, e.g. [('the river bank', 10, 14)], "
                                 "or a DataFrame with text, begin and end columns")
            frame = pd.DataFrame(rows, columns=["text", "begin", "end"])
        bad = [i for i, t in enumerate(frame["text"]) if not isinstance(t, str)]
        if bad:
            raise InputError(f"sample(s) {bad[:5]} have no text; fill or drop them first")
        return frame

    def transform(self, X: Any) -> np.ndarray:
        """The ``(n_samples, dim)`` float32 matrix of the spans' vectors, in the samples' order."""
        from .frame import to_matrix

        self._validate()
        spans = self._spans(X)
        pipe = self._pipe()
        if spans.empty:
            return np.zeros((0, _width(pipe)), dtype=np.float32)
        texts = list(dict.fromkeys(spans["text"]))  # each text once, in first-seen order
        at = {t: i for i, t in enumerate(texts)}
        order = spans.assign(_text=spans["text"].map(at), _sample=np.arange(len(spans))).sort_values(
            ["_text", "_sample"], kind="stable")
        chunks = pd.DataFrame({"origin_index": order["_text"].to_numpy(), "begin": order["begin"].to_numpy(),
                               "end": order["end"].to_numpy()})
        frame = pipe.predict(texts, output_level="chunk", chunks=chunks, chunk_pooling=self.pooling,
                             batch_size=int(self.batch_size))
        matrix = np.empty((len(spans), _width(pipe)), dtype=np.float32)
        matrix[order["_sample"].to_numpy()] = to_matrix(frame)  # chunk rows come in the order given
        return _no_empty(matrix, self.on_empty, "span(s)")
