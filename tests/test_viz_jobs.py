"""Slow projections in their own process (nlu_lite/viz/jobs.py): progress read from the fit's own lines (t-SNE's
iterations, UMAP's epochs), the same coordinates as the in-process fit, and Stop ending the process."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("sklearn")

from _viz_support import clustered_matrix

from nlu_lite.viz.jobs import fit_in_process
from nlu_lite.viz.reduce import clear_cache, project

pytestmark = pytest.mark.usefixtures("fresh_projection_cache")


def test_tsne_reports_its_iterations_and_equals_the_in_process_fit():
    matrix, _ = clustered_matrix(clusters=3, per_cluster=40, dim=16)
    seen = []
    job = fit_in_process(matrix, "tsne", 2, on_progress=lambda i, n: seen.append((i, n)), perplexity=10,
                         max_iter=500, random_state=0)
    got = job.result()
    assert seen and all(n == 500 for _, n in seen) and [i for i, _ in seen] == sorted(i for i, _ in seen)
    assert 0 < seen[-1][0] <= 500
    clear_cache()
    np.testing.assert_allclose(got.coords, project(matrix, "tsne", 2, perplexity=10, max_iter=500,
                                                   random_state=0).coords, atol=1e-4)


@pytest.mark.slow
def test_umap_runs_for_real_reports_its_epochs_and_places_new_rows():
    """umap-learn for real (the viz extra has it): the explorer's menu offers it, its layout epochs come back as
    progress, the child's coordinates equal an in-process fit's with the same seed, and the fitted reducer
    places rows it was not fitted on (a typed query)."""
    pytest.importorskip("umap")
    from nlu_lite.viz.reduce import umap_available

    assert umap_available()
    matrix, _ = clustered_matrix(clusters=3, per_cluster=60, dim=16)
    seen = []
    job = fit_in_process(matrix, "umap", 2, on_progress=lambda i, n: seen.append((i, n)), n_neighbors=10,
                         random_state=0)
    got = job.result()
    assert seen and seen[-1][0] <= seen[-1][1] and len({n for _, n in seen}) == 1, seen
    assert got.coords.shape == (180, 2) and np.isfinite(got.coords).all()
    placed = got.place(matrix[:5] + 0.01)
    assert placed is not None and placed.shape == (5, 2) and np.isfinite(placed).all()
    clear_cache()
    again = project(matrix, "umap", 2, n_neighbors=10, random_state=0)
    np.testing.assert_allclose(got.coords, again.coords, atol=1e-3)
