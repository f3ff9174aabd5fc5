"""Projecting an embedding matrix to 2 or 3 dimensions, cached per parameter set.

Nine methods, the ones NLU's Streamlit manifold views offer (NLU's spellings are aliases).
Each keeps something different of the original space:

- ``pca``: the directions of largest variance; global and linear. Exact, from the covariance matrix in
  float64 (:class:`PrincipalAxes`, scikit-learn's ``covariance_eigh`` without its float32 rounding, and without
  importing scikit-learn: 1.2-1.4 s of a session's first explorer) up to :data:`EXACT_PCA_FEATURES` features;
  scikit-learn's PCA for wider vectors.
- ``svd`` (TruncatedSVD, NLU's "SVD aka LSA"): the same without centring, so the first axis
  often is the embeddings' shared mean direction.
- ``kernel_pca`` (KernelPCA): PCA in a kernel's feature space (``kernel``, ``gamma``); with the
  linear kernel it is PCA.
- ``tsne`` (TSNE): who is near whom; not distances between clusters, nor their sizes.
- ``umap`` (umap-learn): local neighbourhoods, with more of the global layout than t-SNE.
- ``isomap`` (Isomap): distances measured along the k-nearest-neighbour graph; unrolls curved
  sheets and curves.
- ``mds`` (MDS, metric): all pairwise distances, as well as 2 or 3 axes can hold them.
- ``spectral`` (SpectralEmbedding, Laplacian eigenmaps): the neighbour graph's connectivity;
  groups with no edges between them shrink to points.
- ``lle`` (LocallyLinearEmbedding): how each point is rebuilt from its neighbours.

PCA costs O(n·dim² + dim³) (0.4 s for 100,000 rows of 384 dims on 2 cores), truncated SVD O(n·dim·k). The others
cost at least O(n²) memory or time: Kernel PCA and MDS hold an n×n matrix, Isomap all n²
shortest paths (O(n² log n) time plus an eigen decomposition), MDS redoes O(n²) work for up to
300 iterations. Rather than hang a notebook, each refuses more rows than its ``max_points``
(MDS 1,000; Isomap, Kernel PCA, spectral, LLE 5,000) with an error that names a fast method.
Measured on 2 CPU cores with 384-dim vectors: MDS 12-26 s for 1,000 points; for 5,000 points
Isomap 19 s, LLE 30 s, spectral 10 s (rbf) to 54 s (neighbours), Kernel PCA 5 s. t-SNE and
UMAP have no limit (t-SNE is Barnes-Hut, O(n log n)).

Every result is kept in a small in-process LRU cache keyed by the matrix's bytes and the
parameters the method reads: changing only the colour of a plot, or coming back to a parameter
set, never refits.
"""
from __future__ import annotations

import difflib
import hashlib
import inspect
import logging
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._optional import require
from ..errors import InputError

logger = logging.getLogger(__name__)

CACHE_SIZE = 16
KERNELS = ("linear", "poly", "rbf", "sigmoid", "cosine")
AFFINITIES = ("nearest_neighbors", "rbf")
_FAST_HINT = "method='pca' or 'svd' (seconds at any size)"


@dataclass(frozen=True)
class Reducer:
    """One projection method: its names, the :func:`project` parameters it reads, its size limits.

    ``min_points`` is (2-D, 3-D); ``max_points`` refuses inputs whose O(n²)+ cost would stall
    a notebook; ``fast`` methods run in the widget's own thread instead of a background one.
    """

    key: str
    label: str
    parameters: tuple[str, ...]
    aliases: tuple[str, ...] = ()
    min_points: tuple[int, int] = (4, 5)
    max_points: int | None = None
    cost: str = ""
    fast: bool = False


REDUCERS = {r.key: r for r in (
    Reducer("pca", "PCA", ("random_state",), min_points=(1, 1), fast=True),
    Reducer("tsne", "t-SNE", ("perplexity", "learning_rate", "max_iter", "random_state", "metric"), ("TSNE",),
            min_points=(4, 4)),
    Reducer("umap", "UMAP", ("n_neighbors", "min_dist", "random_state", "metric"), min_points=(4, 4)),
    Reducer("svd", "Truncated SVD", ("random_state",), ("TruncatedSVD", "SVD aka LSA", "LSA", "TRUNCATED_SVD"),
            min_points=(2, 2), fast=True),
    Reducer("kernel_pca", "Kernel PCA", ("kernel", "gamma", "random_state"), ("KernelPCA", "KERNEL_PCA"),
            min_points=(2, 2), max_points=5_000, cost="an n×n kernel matrix (O(n²) memory, up to O(n³) time)"),
    Reducer("isomap", "Isomap", ("n_neighbors",), ("ISOMAP",), max_points=5_000,
            cost="all n² shortest paths (O(n²) memory, O(n² log n) time plus an eigen decomposition)"),
    Reducer("mds", "MDS", ("random_state",), ("MultidimensionalScaling",), max_points=1_000,
            cost="n×n distances refitted for up to 300 iterations (O(n²) memory and time per iteration)"),
    Reducer("spectral", "Spectral embedding", ("affinity", "n_neighbors", "gamma", "random_state"),
            ("Spectral Embedding", "SpectralEmbedding", "SPECTRAL_EMBEDDING"), max_points=5_000,
            cost="an n×n graph Laplacian's eigenvectors"),
    Reducer("lle", "LLE", ("n_neighbors", "random_state"), ("LocallyLinearEmbedding", "Locally Linear Embedding"),
            max_points=5_000, cost="a k-neighbour fit per point and an n×n sparse eigen problem"),
)}
METHODS = {key: r.label for key, r in REDUCERS.items()}  # key → display name, in menu order


def _squash(name: str) -> str:
    return "".join(ch for ch in str(name).lower() if ch not in "-_ ").strip()


_ALIASES = {_squash(spelling): r.key for r in REDUCERS.values() for spelling in (r.key, r.label, *r.aliases)}

_cache: OrderedDict[tuple, Projection] = OrderedDict()
_lock = threading.Lock()


@dataclass(frozen=True)
class Projection:
    """Coordinates of each row in 2 or 3 dimensions, with what produced them.

    ``params`` holds the parameters actually used (t-SNE's perplexity and the neighbour
    methods' ``n_neighbors`` are lowered for small inputs); ``explained_variance_ratio`` is
    PCA's or truncated SVD's share of variance per axis, else None.
    """

    coords: np.ndarray
    method: str
    dimensions: int
    params: dict[str, Any] = field(default_factory=dict)
    explained_variance_ratio: tuple[float, ...] | None = None
    seconds: float = 0.0
    titles: tuple[str, ...] | None = None  # axes a caller defined (semantic axes), not a method's
    # the fitted reducer's transform, for methods that can place new rows (PCA, SVD, Kernel PCA, UMAP, Isomap, LLE)
    transform: Callable[[np.ndarray], np.ndarray] | None = field(default=None, compare=False, repr=False)

    def place(self, vectors: np.ndarray) -> np.ndarray | None:
        """Coordinates of rows that were not fitted (a typed query, rows outside a sample), or None where the
        method cannot place new rows (t-SNE, MDS, spectral embedding fit their own points only)."""
        if self.transform is None:
            return None
        x = np.asarray(vectors, dtype=np.float32).reshape(-1, np.shape(vectors)[-1])
        return _padded(np.asarray(self.transform(x), dtype=np.float64), len(x), self.dimensions)

    @property
    def label(self) -> str:
        """The method's display name: ``"PCA"``, ``"t-SNE"``, ``"Isomap"``, ..."""
        return METHODS.get(self.method, "Semantic axes" if self.method == "axes" else self.method)

    def axis_titles(self) -> list[str]:
        if self.titles is not None:
            return list(self.titles)
        if self.explained_variance_ratio is not None:
            prefix = "PC" if self.method == "pca" else "SV"
            return [f"{prefix}{i + 1} ({r:.1%} of variance)" for i, r in enumerate(self.explained_variance_ratio)]
        return [f"{self.label} {i + 1}" for i in range(self.dimensions)]

    def describe(self) -> str:
        """The parameters that shape the picture, for a plot title (``""`` when none do)."""
        p = self.params
        first = f", on {p['pca_components']} principal components" if "pca_components" in p else ""
        if self.method == "tsne":
            return f"perplexity {p['perplexity']:g}, {p['max_iter']} iterations{first}"
        gamma = "auto" if p.get("gamma") is None else f"{p['gamma']:g}"
        if self.method == "kernel_pca":
            return f"{p['kernel']} kernel" + (f", gamma {gamma}" if "gamma" in p else "")
        if self.method == "spectral":
            detail = f"gamma {gamma}" if "gamma" in p else f"n_neighbors {p['n_neighbors']}"
            return f"{p['affinity']} affinity, {detail}"
        if self.method in ("isomap", "lle"):
            return f"n_neighbors {p['n_neighbors']}"
        if self.method == "umap":
            return f"n_neighbors {p['n_neighbors']}, min_dist {p['min_dist']:g}{first}"
        return ""


def normalize_method(method: str) -> str:
    """``"t-SNE"``, ``"TSNE"``, ``"Spectral Embedding"``, ``"SVD aka LSA"`` → the key; raises for unknown methods."""
    key = _ALIASES.get(_squash(method))
    if key is None:
        close = difflib.get_close_matches(_squash(method), list(_ALIASES), n=1, cutoff=0.6)
        hint = f" (did you mean {_ALIASES[close[0]]!r}?)" if close else ""
        raise InputError(f"unknown method {method!r}{hint}; choose one of {list(METHODS)}")
    return key


def method_parameters(method: str, *, kernel: str = "rbf", affinity: str = "nearest_neighbors") -> tuple[str, ...]:
    """The :func:`project` parameters ``method`` reads: gamma only for kernels and affinities that use it."""
    method = normalize_method(method)
    names = REDUCERS[method].parameters
    if method == "kernel_pca" and kernel in ("linear", "cosine"):
        names = tuple(n for n in names if n != "gamma")
    if method == "spectral":
        names = tuple(n for n in names if n != ("n_neighbors" if affinity == "rbf" else "gamma"))
    return names


def _whole(name: str, value: Any, minimum: int | None = None) -> int:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not number.is_integer() or isinstance(value, bool):
        raise InputError(f"{name} must be a whole number, got {value!r}")
    if minimum is not None and number < minimum:
        raise InputError(f"{name} must be at least {minimum}, got {value!r}")
    return int(number)


def _real(name: str, value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number, got {value!r}") from None


def check_choice(name: str, value: Any, allowed: tuple[str, ...]) -> str:
    """``value`` as one of ``allowed`` (``"Nearest-Neighbors"`` → ``"nearest_neighbors"``), else an error."""
    chosen = str(value).strip().lower().replace("-", "_").replace(" ", "_")
    if chosen not in allowed:
        raise InputError(f"{name}={value!r} is not supported; choose one of {list(allowed)}")
    return chosen


def _gamma(value: Any) -> float | None:
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "auto", "none")):
        return None  # scikit-learn's default: 1 / number of embedding dimensions
    gamma = _real("gamma", value)
    if not gamma > 0:
        raise InputError(f"gamma must be a positive number or None ('auto'), got {value!r}")
    return gamma


def _params(method: str, **given: Any) -> dict[str, Any]:
    """The parameters ``method`` reads, validated, with normalised types (``"200"`` and ``200.0`` share a cache entry).

    Every parameter is checked, used or not, so a typo fails at once rather than when the
    method is switched.
    """
    lr = given["learning_rate"]
    lr = "auto" if isinstance(lr, str) and lr.strip().lower() == "auto" else _real("learning_rate", lr)
    given.update(
        perplexity=_real("perplexity", given["perplexity"]), max_iter=_whole("max_iter", given["max_iter"]),
        n_neighbors=_whole("n_neighbors", given["n_neighbors"], minimum=2),
        min_dist=_real("min_dist", given["min_dist"]), random_state=_whole("random_state", given["random_state"]),
        learning_rate=lr,
        kernel=check_choice("kernel", given["kernel"], KERNELS),
        affinity=check_choice("affinity", given["affinity"], AFFINITIES),
        gamma=_gamma(given["gamma"]),
    )
    return {k: given[k] for k in method_parameters(method, kernel=given["kernel"], affinity=given["affinity"])}


def _key(matrix: np.ndarray, method: str, dimensions: int, params: dict[str, Any]) -> tuple:
    data = np.ascontiguousarray(matrix, dtype=np.float32)
    return (_digest(data), data.shape, method, dimensions, tuple(sorted(params.items())))


_DIGESTS: dict[int, tuple[Any, str]] = {}  # id -> (weak reference to a frozen matrix, its digest)


def frozen(matrix: np.ndarray) -> np.ndarray:
    """``matrix`` (float32, C order, holding its own data) made read-only and hashed now, so the projection
    cache hashes it once (0.17 s per 100,000 x 384 with blake2b here, outside Python's lock) however often it
    is looked up; a matrix that is a view of other data, or not float32 in C order, is returned as it is and
    hashed on each lookup."""
    if matrix.dtype == np.float32 and matrix.flags.c_contiguous and matrix.base is None:
        matrix.flags.writeable = False
        _digest(matrix)
    return matrix


def _digest(data: np.ndarray) -> str:
    """The matrix's blake2b digest, hashed in place (no copy); remembered for a :func:`frozen` matrix (read-only
    and holding its data: its bytes cannot change while it lives)."""
    remember = data.base is None and not data.flags.writeable
    known = _DIGESTS.get(id(data)) if remember else None
    if known is not None and known[0]() is data:
        return known[1]
    digest = hashlib.blake2b(memoryview(data).cast("B"), digest_size=16).hexdigest()
    if remember:
        key = id(data)
        _DIGESTS[key] = (weakref.ref(data, lambda _ref, key=key: _DIGESTS.pop(key, None)), digest)
    return digest


def _check_size(method: str, n: int, dimensions: int) -> None:
    """Refuse too few points for ``method``, or more than its O(n²)+ cost allows (naming a method that works)."""
    reducer = REDUCERS[method]
    least = reducer.min_points[dimensions - 2]
    if n < least:
        raise InputError(f"{reducer.label} needs at least {least} points in {dimensions}-D, got {n}; use method='pca'")
    if reducer.max_points is not None and n > reducer.max_points:
        raise InputError(
            f"{reducer.label} of {n:,} points is refused: it needs {reducer.cost}, and stops at "
            f"{reducer.max_points:,} points. Use {_FAST_HINT}, 'umap' or 'tsne', or project a sample "
            f"(plot_embeddings / explore: max_points={reducer.max_points})"
        )


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
    kernel: str = "rbf",
    gamma: float | str | None = None,
    affinity: str = "nearest_neighbors",
    cache: bool = True,
) -> Projection:
    """Project an ``(n, dim)`` matrix to ``dimensions`` (2 or 3) axes.

    ``method`` (NLU's spellings such as ``"TSNE"``, ``"ISOMAP"``, ``"KernelPCA"``, ``"SVD aka LSA"``
    work too; see the module docstring for what each keeps and costs):

    - ``"pca"``, ``"svd"`` (truncated SVD, no centring): ``random_state``; any size.
    - ``"kernel_pca"``: ``kernel`` (one of :data:`KERNELS`, default ``"rbf"``), ``gamma``
      (``None``/``"auto"`` = 1 / dim; larger is more local), ``random_state``; ≤ 5,000 points.
    - ``"tsne"`` (PCA-initialised): ``perplexity``, ``learning_rate``, ``max_iter`` (≥ 250),
      ``random_state``, ``metric``.
    - ``"umap"`` (``pip install umap-learn``): ``n_neighbors``, ``min_dist``, ``random_state``, ``metric``.
    - t-SNE and UMAP run on the first 50 principal components of wider inputs (``params["pca_components"]``
      says so): as scikit-learn advises for t-SNE, faster and less noisy; UMAP places new rows through both.
    - ``"isomap"``: ``n_neighbors``; ≤ 5,000 points. It takes no seed: refits agree to ~1e-12.
    - ``"mds"`` (metric MDS, SMACOF, classical-MDS start where scikit-learn offers it):
      ``random_state``; ≤ 1,000 points.
    - ``"spectral"``: ``affinity`` (``"nearest_neighbors"`` with ``n_neighbors``, or ``"rbf"`` with
      ``gamma``), ``random_state``; ≤ 5,000 points.
    - ``"lle"`` (standard locally linear embedding): ``n_neighbors``, ``random_state``; ≤ 5,000 points.

    ``n_neighbors`` is lowered to n - 1 for small inputs (``Projection.params`` has the value
    used). Bad values raise :class:`~nlu_lite.errors.InputError` naming the parameter. Results are
    cached per matrix and the parameters the method reads, unless ``cache=False``.

    >>> import numpy as np
    >>> p = project(np.random.default_rng(0).normal(size=(50, 8)), "isomap", 2, n_neighbors=10)
    >>> p.coords.shape, p.label
    ((50, 2), 'Isomap')
    """
    method, matrix, params, key = prepare(
        matrix, method, dimensions, cache, random_state=random_state, perplexity=perplexity,
        learning_rate=learning_rate, max_iter=max_iter, n_neighbors=n_neighbors, min_dist=min_dist, metric=metric,
        kernel=kernel, gamma=gamma, affinity=affinity,
    )
    hit = cached(key)
    if hit is not None:
        return hit
    started = time.perf_counter()
    fit = _FITS[method](np.asarray(matrix, dtype=np.float32), dimensions, dict(params))
    return finish(method, dimensions, fit, time.perf_counter() - started, key, matrix.shape)


def prepare(matrix: np.ndarray, method: str, dimensions: int, cache: bool, **given: Any):
    """Check the arguments of a projection: ``(method, matrix, params, cache key or None)``."""
    method = normalize_method(method)
    if dimensions not in (2, 3):
        raise InputError(f"dimensions must be 2 or 3, got {dimensions!r}")
    matrix = np.asarray(matrix)
    if matrix.ndim != 2 or len(matrix) == 0:
        raise InputError(f"expected a non-empty (n, dim) matrix, got shape {matrix.shape}")
    params = _params(method, **given)
    _check_size(method, len(matrix), dimensions)
    return method, matrix, params, (_key(matrix, method, dimensions, params) if cache else None)


def finish(method: str, dimensions: int, fit: tuple, seconds: float, key: tuple | None,
           shape: tuple[int, ...]) -> Projection:
    """A fit's ``(coords, params used, variance ratio, fitted reducer)`` as a :class:`Projection`, cached."""
    coords, used, ratio, fitted = fit
    result = Projection(
        coords=np.asarray(coords, dtype=np.float64), method=method, dimensions=dimensions, params=used,
        explained_variance_ratio=ratio, seconds=seconds,
        transform=getattr(fitted, "transform", None) if method in PLACEABLE else None,
    )
    logger.info("%s of %d x %d took %.2f s", result.label, *shape, result.seconds)
    if key is not None:
        with _lock:
            _cache[key] = result
            while len(_cache) > CACHE_SIZE:
                _cache.popitem(last=False)
    return result


def cached(key: tuple | None) -> Projection | None:
    """The cached projection under ``key`` (from :func:`prepare`), or None; a hit is the most recently used."""
    if key is None:
        return None
    with _lock:
        if key not in _cache:
            return None
        _cache.move_to_end(key)
        return _cache[key]


def cached_projection(matrix: np.ndarray, method: str = "pca", dimensions: int = 2, **params: Any) -> Projection | None:
    """The cached result for these arguments (same defaults as :func:`project`), or None."""
    method = normalize_method(method)
    key = _key(np.asarray(matrix), method, dimensions, _params(method, **with_defaults(params)))
    with _lock:
        return _cache.get(key)


def with_defaults(params: dict[str, Any]) -> dict[str, Any]:
    """:func:`project`'s reducer parameters: ``params`` over the defaults; an unknown name is an error."""
    unknown = set(params) - set(_DEFAULTS)
    if unknown:
        raise InputError(f"unknown parameters {sorted(unknown)}; valid: {sorted(_DEFAULTS)}")
    return {**_DEFAULTS, **params}


_DEFAULTS = {  # project()'s reducer parameters and their defaults, read from its signature
    name: p.default for name, p in inspect.signature(project).parameters.items()
    if p.kind is p.KEYWORD_ONLY and name != "cache"
}


def clear_cache() -> None:
    """Forget every cached projection."""
    with _lock:
        _cache.clear()


def _sklearn(module: str):
    return require(f"sklearn.{module}", "viz", package="scikit-learn")


def _padded(coords: np.ndarray, n: int, dimensions: int) -> np.ndarray:
    """``coords`` with zero columns added up to ``dimensions`` (fewer points or features than axes)."""
    out = np.zeros((n, dimensions))
    out[:, : coords.shape[1]] = coords
    return out


def _fewer_neighbours(params: dict[str, Any], n: int) -> None:
    """A neighbour graph needs n_neighbors < n: lower it for small inputs, as UMAP and t-SNE's perplexity are."""
    if params["n_neighbors"] >= n:
        logger.info("n_neighbors %d is too large for %d points: using %d", params["n_neighbors"], n, n - 1)
        params["n_neighbors"] = n - 1


EXACT_PCA_FEATURES = 1024  # up to this width PCA is PrincipalAxes (a d x d eigenproblem); wider: scikit-learn's
_ROWS = 8192


class PrincipalAxes:
    """PCA fitted exactly: the eigenvectors of the covariance matrix, summed in float64 over blocks of rows.

    What scikit-learn's PCA computes (its ``covariance_eigh`` solver, which it picks for n ≥ 10·d up to 1,000
    features; the same axes as its full SVD), with its sign rule (each axis's largest entry is positive), its
    ``explained_variance_ratio_`` and ``transform``. It is the float64 PCA (measured: 1e-12 from scikit-learn's
    full SVD of the float64 matrix, where scikit-learn's PCA of the float32 matrix is 3e-5 to 2e-4 from it,
    coordinates of size 31-34), and imports no scikit-learn.
    Costs n·d² + d³ in float64: 0.4 s for 100,000 x 384 on 2 cores."""

    def __init__(self, x: np.ndarray, k: int) -> None:
        n, d = x.shape
        self.mean_ = x.mean(axis=0, dtype=np.float64)
        cov = np.zeros((d, d))
        for start in range(0, n, _ROWS):
            block = np.asarray(x[start:start + _ROWS], dtype=np.float64) - self.mean_
            cov += block.T @ block
        cov /= max(n - 1, 1)
        values, vectors = np.linalg.eigh(cov)
        order = np.argsort(values)[::-1][:k]
        components = vectors[:, order].T
        components *= np.sign(components[np.arange(k), np.abs(components).argmax(axis=1)])[:, None]
        self.components_ = components
        total = values.clip(min=0).sum()
        self.explained_variance_ratio_ = values[order].clip(min=0) / total if total > 0 else np.zeros(k)

    def transform(self, x: np.ndarray) -> np.ndarray:
        out = np.empty((len(x), len(self.components_)))
        for start in range(0, len(x), _ROWS):
            block = np.asarray(x[start:start + _ROWS], dtype=np.float64) - self.mean_
            out[start:start + _ROWS] = block @ self.components_.T
        return out


def _pca(x: np.ndarray, dimensions: int, params: dict[str, Any]):
    if len(x) < 2:  # one point: nothing to spread
        return np.zeros((len(x), dimensions)), params, tuple(0.0 for _ in range(dimensions)), None
    k = min(dimensions, len(x), x.shape[1])
    if x.shape[1] <= EXACT_PCA_FEATURES:
        pca = PrincipalAxes(x, k)
        coords = pca.transform(x)
    else:
        pca = _sklearn("decomposition").PCA(n_components=k, random_state=params["random_state"])
        coords = pca.fit_transform(x)
    ratio = tuple(float(r) for r in pca.explained_variance_ratio_) + (0.0,) * (dimensions - k)
    return _padded(coords, len(x), dimensions), params, ratio, pca


def _svd(x: np.ndarray, dimensions: int, params: dict[str, Any]):
    """Truncated SVD (LSA): PCA's projection without centring, so it also shows the rows' shared mean direction."""
    if x.shape[1] < 2:
        raise InputError(f"Truncated SVD needs at least 2 embedding dimensions, got {x.shape[1]}; use method='pca'")
    k = min(dimensions, len(x), x.shape[1])
    svd = _sklearn("decomposition").TruncatedSVD(n_components=k, random_state=params["random_state"])
    coords = svd.fit_transform(x)
    ratio = tuple(float(r) for r in svd.explained_variance_ratio_) + (0.0,) * (dimensions - k)
    return _padded(coords, len(x), dimensions), params, ratio, svd


def _kernel_pca(x: np.ndarray, dimensions: int, params: dict[str, Any]):
    """PCA of the centred kernel matrix: ``linear`` gives PCA's coordinates, ``rbf`` weighs near pairs more."""
    kpca = _sklearn("decomposition").KernelPCA(
        n_components=dimensions, kernel=params["kernel"], gamma=params.get("gamma"),
        random_state=params["random_state"],
    )
    return _padded(kpca.fit_transform(x), len(x), dimensions), params, None, kpca


PCA_FIRST = 50  # t-SNE and UMAP start from this many principal components (scikit-learn's advice for t-SNE)


def _principal_first(x: np.ndarray, params: dict[str, Any]):
    """``x`` reduced to its first :data:`PCA_FIRST` principal components when it has more (faster, less
    noise), and the fitted PCA (None when ``x`` is used as it is); ``params`` records it."""
    if x.shape[1] <= PCA_FIRST or len(x) <= PCA_FIRST:
        return x, None
    pca = _sklearn("decomposition").PCA(n_components=PCA_FIRST, random_state=params["random_state"]).fit(x)
    params["pca_components"] = PCA_FIRST
    return pca.transform(x).astype(np.float32), pca


class _Chain:
    """PCA then the reducer fitted on its output: places new rows the way the fitted rows were placed."""

    def __init__(self, first: Any, then: Any) -> None:
        self.first, self.then = first, then

    def transform(self, x: np.ndarray) -> np.ndarray:
        inner = x if self.first is None else self.first.transform(x).astype(np.float32)
        return self.then.transform(inner)


def _tsne(x: np.ndarray, dimensions: int, params: dict[str, Any]):
    manifold = _sklearn("manifold")
    verbose = params.pop("verbose", 0)  # the subprocess runner reads t-SNE's progress lines
    x, _ = _principal_first(x, params)
    n = len(x)
    if params["perplexity"] >= n:  # scikit-learn requires perplexity < n_samples
        lowered = max(1.0, (n - 1) / 3)
        logger.info("perplexity %.1f is too large for %d points: using %.1f", params["perplexity"], n, lowered)
        params["perplexity"] = lowered
    if params["max_iter"] < 250:
        raise InputError(f"t-SNE needs max_iter >= 250, got {params['max_iter']}")
    iterations = "max_iter" if "max_iter" in inspect.signature(manifold.TSNE).parameters else "n_iter"
    tsne = manifold.TSNE(
        n_components=dimensions, perplexity=params["perplexity"], learning_rate=params["learning_rate"], init="pca",
        random_state=params["random_state"], metric=params["metric"], verbose=verbose,
        **{iterations: params["max_iter"]},
    )
    return tsne.fit_transform(x), params, None, None


def _umap(x: np.ndarray, dimensions: int, params: dict[str, Any]):
    umap = require("umap", "viz", package="umap-learn")
    verbose = bool(params.pop("verbose", 0))  # the subprocess runner reads its epoch lines as progress
    x, first = _principal_first(x, params)
    _fewer_neighbours(params, len(x))
    reducer = umap.UMAP(
        n_components=dimensions, n_neighbors=params["n_neighbors"], min_dist=params["min_dist"],
        random_state=params["random_state"], metric=params["metric"], verbose=verbose,
    )
    return reducer.fit_transform(x), params, None, _Chain(first, reducer)


def _isomap(x: np.ndarray, dimensions: int, params: dict[str, Any]):
    """Classical MDS of shortest-path distances in the k-neighbour graph (scikit-learn joins unconnected parts)."""
    _fewer_neighbours(params, len(x))
    isomap = _sklearn("manifold").Isomap(n_neighbors=params["n_neighbors"], n_components=dimensions)
    coords = isomap.fit_transform(x.astype(np.float64))  # float32 ARPACK refits differ at 1e-5
    return coords, params, None, _Float64(isomap)


def _mds(x: np.ndarray, dimensions: int, params: dict[str, Any]):
    """Metric MDS by SMACOF, started from classical MDS where scikit-learn (1.8+) offers it."""
    manifold = _sklearn("manifold")
    accepted = inspect.signature(manifold.MDS).parameters
    options = {"init": "classical_mds", "n_init": 1, "normalized_stress": "auto"}
    mds = manifold.MDS(
        n_components=dimensions, random_state=params["random_state"],
        **{name: value for name, value in options.items() if name in accepted},
    )
    return mds.fit_transform(x.astype(np.float64)), params, None, None


def _spectral(x: np.ndarray, dimensions: int, params: dict[str, Any]):
    """Laplacian eigenmaps of a k-neighbour graph or a dense rbf affinity."""
    neighbours = {}
    if params["affinity"] == "nearest_neighbors":
        _fewer_neighbours(params, len(x))
        neighbours = {"n_neighbors": params["n_neighbors"]}
    spectral = _sklearn("manifold").SpectralEmbedding(
        n_components=dimensions, affinity=params["affinity"], gamma=params.get("gamma"),
        random_state=params["random_state"], **neighbours,
    )
    return spectral.fit_transform(x.astype(np.float64)), params, None, None


def _lle(x: np.ndarray, dimensions: int, params: dict[str, Any]):
    """Standard LLE: each point rebuilt from its ``n_neighbors`` nearest, then the weights kept in low dimensions."""
    _fewer_neighbours(params, len(x))
    lle = _sklearn("manifold").LocallyLinearEmbedding(
        n_neighbors=params["n_neighbors"], n_components=dimensions, random_state=params["random_state"],
    )
    return lle.fit_transform(x.astype(np.float64)), params, None, _Float64(lle)


class _Float64:
    """A fitted reducer whose transform is called with float64 rows, as it was fitted."""

    def __init__(self, fitted: Any) -> None:
        self.fitted = fitted

    def transform(self, x: np.ndarray) -> np.ndarray:
        return self.fitted.transform(np.asarray(x, dtype=np.float64))


PLACEABLE = ("pca", "svd", "kernel_pca", "umap", "isomap", "lle")  # methods whose fit can place new rows
_FITS = {
    "pca": _pca, "svd": _svd, "kernel_pca": _kernel_pca, "tsne": _tsne, "umap": _umap, "isomap": _isomap,
    "mds": _mds, "spectral": _spectral, "lle": _lle,
}


def umap_available() -> bool:
    """Whether the optional ``umap-learn`` package is installed: found, not imported (importing umap and numba
    takes 1.5-2 s, which the explorer's menu should not cost; a broken install fails where UMAP runs, with
    :func:`~nlu_lite._optional.require`'s error)."""
    import importlib.util

    return importlib.util.find_spec("umap") is not None
