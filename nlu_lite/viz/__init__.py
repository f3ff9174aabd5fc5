"""Exploring predict() frames: projections, similarity heatmaps, neighbours, a Jupyter widget.

Needs the ``viz`` extra (``pip install 'nlu-lite[viz]'``: plotly, ipywidgets, scikit-learn,
anywidget); importing this package does not import them, calling a function does.
"""
from __future__ import annotations

from .axes import plot_axes, semantic_axes
from .compare import Comparison, compare
from .corpus import load_corpus
from .neighbours import nearest_neighbours, similar
from .plots import plot_embeddings, plot_neighbours, plot_similarity
from .reduce import Projection, clear_cache, project
from .senses import Senses, senses
from .widget import Explorer, explore
from .words import distinct_words

__all__ = [
    "Comparison",
    "Explorer",
    "Projection",
    "Senses",
    "clear_cache",
    "compare",
    "distinct_words",
    "explore",
    "load_corpus",
    "nearest_neighbours",
    "plot_axes",
    "plot_embeddings",
    "plot_neighbours",
    "plot_similarity",
    "project",
    "semantic_axes",
    "senses",
    "similar",
]
