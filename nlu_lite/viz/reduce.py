"""Projecting an embedding matrix to 2 or 3 dimensions: PCA, t-SNE, UMAP, cached per parameter set.

t-SNE and UMAP take seconds to minutes, so each result is kept in a small in-process LRU
cache keyed by the matrix's bytes and the parameters: changing only the colour of a plot,
or coming back to a parameter set, never refits.
"""
from __future__ import annotations

import hashlib
import inspect
import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._optional import require
from ..errors import InputError

logger = logging.getLogger(__name__)

METHODS = {"pca": "PCA", "tsne": "t-SNE", "umap": "UMAP"}
CACHE_SIZE = 16

_cache: OrderedDict[tuple, Projection] = OrderedDict()
_lock = threading.Lock()


@dataclass(frozen=True)
class Projection:
    """Coordinates of each row in 2 or 3 dimensions, with what produced them.

    ``params`` holds the parameters actually used (t-SNE's perplexity is lowered for small
    inputs); ``explained_variance_ratio`` is PCA's share of variance per axis, else None.
    """

    coords: np.ndarray
    method: str
    dimensions: int
    params: dict[str, Any] = field(default_factory=dict)
    explained_variance_ratio: tuple[float, ...] | None = None
    seconds: float = 0.0

    @property
    def label(self) -> str:
        """The method's display name: ``"PCA"``, ``"t-SNE"`` or ``"UMAP"``."""
        return METHODS[self.method]

    def axis_titles(self) -> list[str]:
        if self.explained_variance_ratio is not None:
            return [f"PC{i + 1} ({r:.1%} of variance)" for i, r in enumerate(self.explained_variance_ratio)]
        return [f"{self.label} {i + 1}" for i in range(self.dimensions)]


def normalize_method(method: str) -> str:
    """``"t-SNE"``, ``"TSNE"``, ``"tsne"`` → ``"tsne"``; raises for unknown methods."""
    key = str(method).lower().replace("-", "").replace("_", "").strip()
    if key not in METHODS:
        raise InputError(f"unknown method {method!r}; choose one of {list(METHODS.values())}")
    return key


def _params(method: str, **given: Any) -> dict[str, Any]:
    """The parameters ``method`` uses, with normalised types (so ``"200"`` and ``200.0`` share a cache entry)."""
    lr = given["learning_rate"]
    if isinstance(lr, str) and lr != "auto":
        try:
            lr = float(lr)
        except ValueError:
            raise InputError(f"learning_rate must be 'auto' or a number, got {lr!r}") from None
    given.update(
        perplexity=float(given["perplexity"]), max_iter=int(given["max_iter"]), n_neighbors=int(given["n_neighbors"]),
        min_dist=float(given["min_dist"]), random_state=int(given["random_state"]),
        learning_rate=lr if lr == "auto" else float(lr),
    )
    if method == "pca":
        keys = ("random_state",)
    elif method == "tsne":
        keys = ("perplexity", "learning_rate", "max_iter", "random_state", "metric")
    else:
        keys = ("n_neighbors", "min_dist", "random_state", "metric")
    return {k: given[k] for k in keys}


def _key(matrix: np.ndarray, method: str, dimensions: int, params: dict[str, Any]) -> tuple:
    data = np.ascontiguousarray(matrix, dtype=np.float32)
    digest = hashlib.blake2b(data.tobytes(), digest_size=16).hexdigest()
    return (digest, data.shape, method, dimensions, tuple(sorted(params.items())))


def project(
    matrix: np.ndarray,
    method: str = "pca",
    dimensions: int = 2,
    *,
    random_state: int = 0,
    perplexity: float = 30.0,
    learning_rate: float | str = "auto",
    max_iter: int = 1000,
    n_neighbors: int = 15,
    min_dist: float = 0.1,
    metric: str = "euclidean",
    cache: bool = True,
) -> Projection:
    """Project an ``(n, dim)`` matrix to ``dimensions`` (2 or 3) axes.

    ``method``: ``"pca"`` (scikit-learn's PCA), ``"tsne"`` (scikit-learn's TSNE, PCA-initialised;
    ``perplexity``, ``learning_rate``, ``max_iter``, ``random_state``, ``metric``) or ``"umap"``
    (needs ``pip install umap-learn``; ``n_neighbors``, ``min_dist``, ``random_state``, ``metric``).
    Results are cached per matrix and parameter set unless ``cache=False``.

    >>> import numpy as np
    >>> p = project(np.random.default_rng(0).normal(size=(50, 8)), "pca", 2)
    >>> p.coords.shape
    (50, 2)
    """
    method = normalize_method(method)
    if dimensions not in (2, 3):
        raise InputError(f"dimensions must be 2 or 3, got {dimensions!r}")
    matrix = np.asarray(matrix)
    if matrix.ndim != 2 or len(matrix) == 0:
        raise InputError(f"expected a non-empty (n, dim) matrix, got shape {matrix.shape}")
    params = _params(
        method, random_state=random_state, perplexity=perplexity, learning_rate=learning_rate,
        max_iter=max_iter, n_neighbors=n_neighbors, min_dist=min_dist, metric=metric,
    )
    key = _key(matrix, method, dimensions, params) if cache else None
    if key is not None:
        with _lock:
            if key in _cache:
                _cache.move_to_end(key)
                return _cache[key]
    started = time.perf_counter()
    fit = {"pca": _pca, "tsne": _tsne, "umap": _umap}[method]
    coords, used, ratio = fit(np.asarray(matrix, dtype=np.float32), dimensions, dict(params))
    result = Projection(
        coords=np.asarray(coords, dtype=np.float64), method=method, dimensions=dimensions, params=used,
        explained_variance_ratio=ratio, seconds=time.perf_counter() - started,
    )
    logger.info("%s of %d x %d took %.2f s", result.label, *matrix.shape, result.seconds)
    if key is not None:
        with _lock:
            _cache[key] = result
            while len(_cache) > CACHE_SIZE:
                _cache.popitem(last=False)
    return result


def cached_projection(matrix: np.ndarray, method: str = "pca", dimensions: int = 2, **params: Any) -> Projection | None:
    """The cached result for these arguments (same defaults as :func:`project`), or None."""
    method = normalize_method(method)
    unknown = set(params) - set(_DEFAULTS)
    if unknown:
        raise InputError(f"unknown parameters {sorted(unknown)}; valid: {sorted(_DEFAULTS)}")
    key = _key(np.asarray(matrix), method, dimensions, _params(method, **{**_DEFAULTS, **params}))
    with _lock:
        return _cache.get(key)


_DEFAULTS = {  # project()'s reducer parameters and their defaults, read from its signature
    name: p.default for name, p in inspect.signature(project).parameters.items()
    if p.kind is p.KEYWORD_ONLY and name != "cache"
}


def clear_cache() -> None:
    """Forget every cached projection."""
    with _lock:
        _cache.clear()


def _pca(x: np.ndarray, dimensions: int, params: dict[str, Any]):
    decomposition = require("sklearn.decomposition", "viz", package="scikit-learn")
    coords = np.zeros((len(x), dimensions))
    k = min(dimensions, len(x), x.shape[1])
    if len(x) < 2:  # one point: nothing to spread
        return coords, params, tuple(0.0 for _ in range(dimensions))
    pca = decomposition.PCA(n_components=k, random_state=params["random_state"])
    coords[:, :k] = pca.fit_transform(x)
    ratio = tuple(float(r) for r in pca.explained_variance_ratio_) + (0.0,) * (dimensions - k)
    return coords, params, ratio


def _tsne(x: np.ndarray, dimensions: int, params: dict[str, Any]):
    manifold = require("sklearn.manifold", "viz", package="scikit-learn")
    n = len(x)
    if n < 4:
        raise InputError(f"t-SNE needs at least 4 points, got {n}; use method='pca'")
    if params["perplexity"] >= n:  # scikit-learn requires perplexity < n_samples
        lowered = max(1.0, (n - 1) / 3)
        logger.info("perplexity %.1f is too large for %d points: using %.1f", params["perplexity"], n, lowered)
        params["perplexity"] = lowered
    if params["max_iter"] < 250:
        raise InputError(f"t-SNE needs max_iter >= 250, got {params['max_iter']}")
    iterations = "max_iter" if "max_iter" in inspect.signature(manifold.TSNE).parameters else "n_iter"
    tsne = manifold.TSNE(
        n_components=dimensions, perplexity=params["perplexity"], learning_rate=params["learning_rate"], init="pca",
        random_state=params["random_state"], metric=params["metric"], **{iterations: params["max_iter"]},
    )
    return tsne.fit_transform(x), params, None


def _umap(x: np.ndarray, dimensions: int, params: dict[str, Any]):
    umap = require("umap", "umap", package="umap-learn")
    n = len(x)
    if n < 4:
        raise InputError(f"UMAP needs at least 4 points, got {n}; use method='pca'")
    params["n_neighbors"] = min(params["n_neighbors"], n - 1)
    reducer = umap.UMAP(
        n_components=dimensions, n_neighbors=params["n_neighbors"], min_dist=params["min_dist"],
        random_state=params["random_state"], metric=params["metric"],
    )
    return reducer.fit_transform(x), params, None


def umap_available() -> bool:
    """Whether the optional ``umap-learn`` package can be imported."""
    try:
        require("umap", "umap", package="umap-learn")
    except ImportError:
        return False
    return True
