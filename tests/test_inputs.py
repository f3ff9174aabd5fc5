import numpy as np
import pandas as pd
import pytest

from nlu_lite.errors import InputError
from nlu_lite.inputs import to_rows


def test_every_input_type_gives_the_same_texts():
    texts = ["a b", "c"]
    for data in (texts, tuple(texts), np.array(texts), pd.Series(texts), pd.DataFrame({"text": texts}), iter(texts)):
        rows = to_rows(data)
        assert rows.texts == texts and list(rows.index) == [0, 1]
    assert to_rows("only one").texts == ["only one"]


def test_series_index_and_dataframe_column_are_kept():
    s = pd.Series(["x", "y"], index=["r1", "r2"])
    assert list(to_rows(s).index) == ["r1", "r2"]
    df = pd.DataFrame({"body": ["x", "y"], "label": [1, 2]}, index=[10, 20])
    rows = to_rows(df, text_column="body", keep_columns=True)
    assert rows.texts == ["x", "y"] and list(rows.index) == [10, 20]
    assert rows.extra.to_dict("list") == {"label": [1, 2]}
    assert to_rows(df).texts == ["x", "y"]  # no 'text' column: the first, as NLU does, when it holds text
    with pytest.raises(InputError, match="'text' column"):
        to_rows(df[["label", "body"]])  # a first column of numbers is never embedded
    with pytest.raises(InputError, match="unknown column"):
        to_rows(df, text_column="body", keep_columns=["nope"])


def test_missing_and_empty_values_are_rows_without_text():
    rows = to_rows(["ok", None, float("nan"), pd.NA, "", "   "])
    assert rows.texts == ["ok", "", "", "", "", "   "]
    assert rows.missing.tolist() == [False, True, True, True, True, True]


def test_non_strings_raise_with_position_and_type_unless_skipped():
    with pytest.raises(InputError) as info:
        to_rows(pd.Series(["ok", 42], index=["a", "b"]))
    assert "row 1" in str(info.value) and "'b'" in str(info.value) and "int" in str(info.value)
    rows = to_rows(["ok", 42, b"x"], skip_invalid=True)
    assert rows.texts == ["ok", "", ""] and rows.missing.tolist() == [False, True, True]


@pytest.mark.parametrize("bad", [42, b"bytes", {"text": "x"}, np.array([["a"]])])
def test_unsupported_containers(bad):
    with pytest.raises(InputError):
        to_rows(bad)


def test_caller_objects_are_not_mutated():
    df = pd.DataFrame({"text": ["a", None], "k": [1, 2]})
    before = df.copy()
    to_rows(df, keep_columns=True)
    pd.testing.assert_frame_equal(df, before)
