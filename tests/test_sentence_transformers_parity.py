"""Sentence models equal SentenceTransformer.encode: every pooling, normalisation, a short
max_seq_length with truncation=True on long texts, prompts by name and by text; and the real
all-MiniLM-L6-v2 on long texts."""
from __future__ import annotations

import numpy as np
import pytest

import nlu_lite

SHORT = ["the dog runs to the river bank", "paris is a city", "a quick brown fox"]
LONG = [" ".join(["the quick brown fox jumps over the lazy dog near the river bank"] * k) for k in (3, 5, 9)]


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


@pytest.fixture(scope="module")
def st_models(tmp_path_factory, tiny_bert_dir):
    """The tiny BERT saved by sentence-transformers with each pooling (max_seq_length 12, prompts)."""
    import sentence_transformers as st
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer

    out = {}
    for pooling, normalize in (("mean", True), ("cls", False), ("max", True), ("lasttoken", True)):
        modules = [Transformer(str(tiny_bert_dir), max_seq_length=12), Pooling(32, pooling_mode=pooling)]
        model = st.SentenceTransformer(modules=modules + ([Normalize()] if normalize else []),
                                       prompts={"query": "query: ", "passage": "passage: "}, device="cpu")
        folder = tmp_path_factory.mktemp(f"st_{pooling}") / "model"
        model.save(str(folder))
        out[pooling] = (folder, model)
    return out


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NLU_LITE_CACHE", str(tmp_path_factory.mktemp("cache")))
        mp.setenv("NLU_LITE_PROGRESS", "0")
        yield


@pytest.mark.parametrize("pooling", ["mean", "cls", "max", "lasttoken"])
def test_every_pooling_with_the_cut_and_prompts(st_models, cache, pooling):
    folder, model = st_models[pooling]
    pipe = nlu_lite.load(path=folder)
    assert pipe.spec.max_length == model.max_seq_length == 12
    texts = SHORT + LONG
    assert max(len(pipe.tokenizer.encode([t]).ids) for t in LONG) > 30  # cut well past the window
    cases = [({}, {}), ({"prompt_name": "query"}, {"prompt_name": "query"}),
             ({"prompt": "passage: "}, {"prompt": "passage: "})]
    for ours, theirs in cases:
        got = pipe.embed(texts, output_level="document", truncation=True, **ours)
        want = model.encode(texts, convert_to_numpy=True, **theirs)
        assert _cosines(got, want).min() > 0.99999, (pooling, ours)
        np.testing.assert_allclose(got, want, atol=1e-4)
    frame = pipe.predict(texts, output_level="document", truncation=True)
    assert frame["truncated"].tolist() == [False] * len(SHORT) + [True] * len(LONG)
    plain = pipe.embed(SHORT, output_level="document")
    assert np.abs(plain - model.encode(SHORT, convert_to_numpy=True, prompt_name="query")).max() > 1e-3  # it matters


def test_lasttoken_keeps_the_last_window_whatever_the_batch(st_models, cache):
    """Without truncation a long text is windowed: its vector is its last window's last position,
    the same alone, in any batch, at any batch size (lasttoken keeps a window, never a batch's)."""
    folder, _ = st_models["lasttoken"]
    pipe = nlu_lite.load(path=folder)
    texts = SHORT + LONG
    together = pipe.embed(texts, output_level="document")
    for i, text in enumerate(texts):
        np.testing.assert_array_equal(pipe.embed([text], output_level="document")[0], together[i])
    np.testing.assert_array_equal(pipe.embed(texts[::-1], output_level="document", batch_size=1)[::-1], together)
    mean = pipe.embed(texts, output_level="document", pooling="mean")
    assert np.abs(mean - together).max() > 1e-2  # a different pooling gives other vectors


def test_a_prompt_name_the_model_lacks_is_an_error(st_models, cache):
    pipe = nlu_lite.load(path=st_models["mean"][0])
    with pytest.raises(nlu_lite.InputError, match="query"):
        pipe.embed(SHORT, prompt_name="question")
    with pytest.raises(nlu_lite.InputError, match="token"):
        pipe.predict(SHORT, output_level="token", prompt="query: ")


@pytest.mark.slow
def test_real_minilm_on_long_texts(minilm_dir, cache):
    import sentence_transformers as st

    model = st.SentenceTransformer(str(minilm_dir), device="cpu")
    pipe = nlu_lite.load(path=minilm_dir)
    assert pipe.spec.max_length == model.max_seq_length == 256
    texts = [" ".join(["Spark NLP and sentence-transformers both cut long texts; nlu_lite does so when asked"] * 18),
             "A short sentence about London."]
    assert len(pipe.tokenizer.encode(texts[:1]).ids) > 280
    got = pipe.embed(texts, output_level="document", truncation=True)
    want = model.encode(texts, convert_to_numpy=True)
    assert _cosines(got, want).min() > 0.99999
    windowed = pipe.embed(texts[:1], output_level="document")  # the default: windows of 256, nothing dropped
    assert pipe.predict(texts[:1], output_level="document")["windowed"].all()
    assert 0.9 < _cosines(windowed, want[:1])[0] < 0.99999
