"""nlu_lite.sklearn: Embedder and TokenEmbedder follow scikit-learn's conventions (the checks that apply to a
text transformer, listed below), give exactly the pipeline's vectors, and run in Pipeline, ColumnTransformer,
cross-validation and GridSearchCV without carrying a model."""
from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("sklearn")

from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.utils import estimator_checks as checks

import nlu_lite
import nlu_lite.sklearn as face
from nlu_lite.errors import InputError
from nlu_lite.frame import to_matrix

TEXTS = ["the river bank was muddy", "money in the bank", "a cat sat", "stocks fell sharply today",
         "the heron waited by the water", "we paid the loan back", "fish swim upstream", "cash and cards"]
LABELS = [0, 1, 0, 1, 0, 1, 0, 1]


@pytest.fixture(scope="module")
def folder(tiny_bert_dir, tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NLU_LITE_CACHE", str(tmp_path_factory.mktemp("cache")))
        mp.setenv("NLU_LITE_PROGRESS", "0")
        face.clear_cache()
        yield str(tiny_bert_dir)
        face.clear_cache()


# scikit-learn's own checks that apply to a stateless transformer of texts (the rest feed numeric 2-D arrays)
API_CHECKS = ["check_no_attributes_set_in_init", "check_parameters_default_constructible",
              "check_get_params_invariance", "check_set_params", "check_estimator_repr",
              "check_estimator_cloneable", "check_estimator_tags_renamed", "check_valid_tag_types"]


@pytest.mark.parametrize("cls", [face.Embedder, face.TokenEmbedder])
@pytest.mark.parametrize("name", API_CHECKS)
def test_scikit_learns_checks_that_apply_pass(cls, name):
    check = getattr(checks, name, None)
    if check is None:
        pytest.fail(f"scikit-learn {__import__('sklearn').__version__} has no {name}: update API_CHECKS")
    check(cls.__name__, cls())


def test_the_embedder_gives_the_pipelines_vectors_and_learns_nothing(folder):
    est = face.Embedder(model=None, path=folder)
    before = dict(vars(est))
    assert est.fit(TEXTS, LABELS) is est and vars(est) == before  # nothing stored by fit
    got = est.transform(TEXTS)
    pipe = nlu_lite.load(path=folder)
    np.testing.assert_array_equal(got, to_matrix(pipe.predict(TEXTS, output_level="document")))
    assert got.dtype == np.float32 and got.shape == (len(TEXTS), len(est.get_feature_names_out()))
    np.testing.assert_array_equal(est.transform(pd.Series(TEXTS)), got)
    np.testing.assert_array_equal(est.transform(np.array(TEXTS)[:, None]), got)  # ColumnTransformer's shape
    assert est.transform([]).shape == (0, got.shape[1])
    unit = face.Embedder(model=None, path=folder, normalize=True).transform(TEXTS)
    np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1, atol=1e-6)


def test_a_pickled_or_cloned_pipeline_carries_no_model(folder):
    clf = make_pipeline(face.Embedder(model=None, path=folder), LogisticRegression()).fit(TEXTS, LABELS)
    blob = pickle.dumps(clf)
    assert len(blob) < 20_000  # the coefficients, not a model
    again = pickle.loads(blob)
    np.testing.assert_array_equal(again.predict_proba(TEXTS), clf.predict_proba(TEXTS))
    assert clone(clf).get_params()["embedder__path"] == folder


def test_grid_search_and_cross_validation_load_the_model_once(folder):
    face.clear_cache()
    clf = make_pipeline(face.Embedder(model=None, path=folder), LogisticRegression(max_iter=200))
    grid = GridSearchCV(clf, {"embedder__normalize": [True, False], "logisticregression__C": [0.1, 10.0]}, cv=2)
    grid.fit(TEXTS, LABELS)
    assert len(grid.cv_results_["params"]) == 4 and np.isfinite(grid.cv_results_["mean_test_score"]).all()
    assert len(face._PIPES) == 1  # every fold and candidate shared one loaded model
    assert len(cross_val_score(clf, TEXTS, LABELS, cv=2)) == 2


def test_a_column_transformer_embeds_the_text_column(folder):
    frame = pd.DataFrame({"text": TEXTS, "n": np.arange(len(TEXTS), dtype=float)})
    ct = ColumnTransformer([("emb", face.Embedder(model=None, path=folder), ["text"]), ("n", "passthrough", ["n"])])
    out = ct.fit_transform(frame)
    width = face.Embedder(model=None, path=folder).transform(TEXTS).shape[1]
    assert out.shape == (len(TEXTS), width + 1) and (out[:, -1] == frame.n).all()
    assert list(ct.get_feature_names_out()[:2]) == [f"emb__{n}" for n in
                                                     face.Embedder(model=None, path=folder).get_feature_names_out()[:2]]


def test_bad_samples_are_errors_naming_the_fix_never_nan(folder):
    est = face.Embedder(model=None, path=folder)
    with pytest.raises(InputError, match="on_empty='zeros'"):
        est.transform(["a text", "", "another"])
    zeros = face.Embedder(model=None, path=folder, on_empty="zeros").transform(["a text", "", "another"])
    assert (zeros[1] == 0).all() and np.isfinite(zeros).all()
    with pytest.raises(InputError, match="not text"):
        est.transform(["a text", None])
    with pytest.raises(InputError, match="not one string"):
        est.transform("a text")
    with pytest.raises(InputError, match="one column"):
        est.transform(pd.DataFrame({"a": ["x"], "b": ["y"]}))
    with pytest.raises(InputError, match="on_empty="):
        face.Embedder(model=None, path=folder, on_empty="nan").fit(TEXTS)
    with pytest.raises(InputError, match="not both"):
        face.Embedder(path=folder).transform(TEXTS)  # the default model and a path


@settings(max_examples=15, deadline=None)
@given(st.lists(st.tuples(st.integers(0, len(TEXTS) - 1), st.integers(0, 5)), min_size=1, max_size=12),
       st.sampled_from(["mean", "first", "last"]))
def test_token_embedder_gives_each_span_its_tokens_vectors_in_context(folder, picks, pooling):
    pipe = nlu_lite.load(path=folder)
    tokens = pipe.predict(TEXTS, output_level="token")
    samples, expected = [], []
    for text_id, token_id in picks:
        rows = tokens[tokens.origin_index == text_id]
        row = rows.iloc[min(token_id, len(rows) - 1)]
        if token_id % 2 and token_id < len(rows) - 1:  # a two-token span
            nxt = rows.iloc[token_id + 1]
            pair = to_matrix(rows.iloc[[token_id, token_id + 1]])
            samples.append((TEXTS[text_id], int(row.begin), int(nxt.end)))
            expected.append({"mean": pair.mean(axis=0), "first": pair[0], "last": pair[1]}[pooling])
        else:
            samples.append((TEXTS[text_id], int(row.begin), int(row.end)))
            expected.append(to_matrix(rows.iloc[[min(token_id, len(rows) - 1)]])[0])
    got = face.TokenEmbedder(model=None, path=folder, pooling=pooling).transform(samples)
    np.testing.assert_allclose(got, np.stack(expected), atol=1e-6)  # in the samples' own order
    frame = pd.DataFrame(samples, columns=["text", "begin", "end"])
    np.testing.assert_array_equal(face.TokenEmbedder(model=None, path=folder, pooling=pooling).transform(frame), got)


def test_token_embedder_errors(folder):
    est = face.TokenEmbedder(model=None, path=folder)
    with pytest.raises(InputError, match="on_empty='zeros'"):
        est.transform([("a cat sat", 1, 2)])  # a span over a space: no token
    with pytest.raises(InputError, match=r"\(text, begin, end\)"):
        est.transform(["a cat sat"])
    with pytest.raises(InputError, match="missing"):
        est.transform(pd.DataFrame({"text": ["a"], "begin": [0]}))
    with pytest.raises(InputError, match="pooling="):
        face.TokenEmbedder(model=None, path=folder, pooling="max").fit([("a", 0, 1)])
