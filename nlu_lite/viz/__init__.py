"""Exploring predict() frames: projections, similarity heatmaps, neighbours, a Jupyter widget.

Needs the ``viz`` extra (``pip install 'nlu-lite[viz]'``: plotly, ipywidgets, scikit-learn,
anywidget); importing this package does not import them, calling a function does.
"""
from __future__ import annotations

from .corpus import load_corpus
from .neighbours import nearest_neighbours
from .plots import plot_embeddings, plot_neighbours, plot_similarity
from .reduce import Projection, clear_cache, project
from .widget import Explorer, explore

__all__ = [
    "Explorer",
    "Projection",
    "clear_cache",
    "explore",
    "load_corpus",
    "nearest_neighbours",
    "plot_embeddings",
    "plot_neighbours",
    "plot_similarity",
    "project",
]
