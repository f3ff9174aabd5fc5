"""pipe.embed(): predict()'s vectors as a matrix (sentence-transformers' habit); load(gpu=, verbose=) as NLU has them."""
from __future__ import annotations

import logging

import numpy as np
import onnxruntime as ort
import pytest

import nlu_lite
from nlu_lite.errors import InputError

TEXTS = ["I love NLP.", "Dr. Smith lives in London. He is here!", ""]


@pytest.fixture(scope="module")
def pipe(tiny_pipe):
    return tiny_pipe


def test_embed_is_predicts_matrix(pipe):
    for level in ("document", "sentence"):
        np.testing.assert_array_equal(pipe.embed(TEXTS, level), nlu_lite.to_matrix(pipe.predict(TEXTS, level)))
    assert pipe.embed(TEXTS).shape == (3, 32) and pipe.embed(TEXTS, "sentence").shape == (4, 32)
    one = pipe.embed("I love NLP.")
    assert one.shape == (32,)
    np.testing.assert_array_equal(one, pipe.embed(TEXTS)[0])


def test_truncate_dim_then_normalize(pipe):
    full = pipe.embed(TEXTS[:2], normalize=False)
    cut = pipe.embed(TEXTS[:2], truncate_dim=8, normalize=True)
    np.testing.assert_allclose(cut, full[:, :8] / np.linalg.norm(full[:, :8], axis=1, keepdims=True), rtol=1e-6)
    np.testing.assert_array_equal(pipe.embed(TEXTS[:2], truncate_dim=8, normalize=False), full[:, :8])


@pytest.mark.parametrize("kwargs, word", [({"output_level": "token"}, "to_matrix"), ({"truncate_dim": 0}, "truncate_dim"),
                                          ({"truncate_dim": 33}, "32"), ({"pooling": "avg"}, "pooling")])
def test_embed_refuses_what_it_cannot_do(pipe, kwargs, word):
    with pytest.raises(InputError, match=word):
        pipe.embed(TEXTS, **kwargs)


def test_load_gpu_and_verbose(tiny_bert_dir, isolated_cache, caplog):
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        with pytest.raises(InputError, match="onnxruntime-gpu"):
            nlu_lite.load(path=tiny_bert_dir, gpu=True)
    with pytest.raises(InputError, match="not both"):
        nlu_lite.load(path=tiny_bert_dir, gpu=True, providers=["CPUExecutionProvider"])
    package = logging.getLogger("nlu_lite")
    before = list(package.handlers), package.level
    try:
        nlu_lite.load(path=tiny_bert_dir, verbose=True)
        nlu_lite.load(path=tiny_bert_dir, verbose=True)
        added = [h for h in package.handlers if getattr(h, "_nlu_lite_verbose", False)]
        assert len(added) == 1 and package.level == logging.INFO  # one handler, however often
    finally:
        package.handlers[:] = before[0]
        package.setLevel(before[1])
