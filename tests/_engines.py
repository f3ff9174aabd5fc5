"""What the Spark and Dask tests share: the rows every engine must get right, and the comparison
with single-process predict()."""
from __future__ import annotations

import numpy as np
import pandas as pd

import nlu_lite

LONG = " ".join(["the dog runs to the river bank and the doctor smith lives in london"] * 60)  # > one window


def rows() -> pd.DataFrame:
    texts = ["the dog runs. The cat sleeps!", None, "", "   ", "Dr. Smith lives in London.", LONG,
             "café naïve 東京 😀", "a b c", "x."] * 2
    return pd.DataFrame({"id": np.arange(100, 100 + len(texts), dtype=np.int64), "text": texts,
                         "label": [f"l{i % 3}" for i in range(len(texts))], "score": np.arange(len(texts)) * 0.5})


def assert_same_as_predict(pipe, got: pd.DataFrame, data: pd.DataFrame, level: str, kept: list[str]) -> None:
    """``got`` (an engine's rows, any order, origin_index a column) equals predict() on ``data`` indexed by id."""
    want = pipe.predict(data.set_index("id")[["text", *kept]], output_level=level, keep_columns=kept or False)
    assert list(got.columns) == list(want.columns)
    keys = ["origin_index"] + (["sentence_index"] if "sentence_index" in want.columns else []) + (
        ["begin"] if level == "token" else [])
    got = got.sort_values(keys, kind="stable").reset_index(drop=True)
    want = want.sort_values(keys, kind="stable").reset_index(drop=True)
    column = pipe.spec.embedding_column
    plain = [c for c in want.columns if c != column]
    assert got[plain].astype(str).values.tolist() == want[plain].astype(str).values.tolist()
    np.testing.assert_allclose(nlu_lite.to_matrix(got, column), nlu_lite.to_matrix(want), atol=1e-5, rtol=0)
    assert got.windowed.any() and want.windowed.any()  # the long text was embedded in windows on both sides
