"""sentence-transformers' Dense module: the linear layer (and activation) sentence-t5, GTR, Instructor and LaBSE
put between pooling and normalising. Against sentence-transformers itself on folders it saved, and against the
hub-shaped server; the checks of its config and weights name the file.
"""
from __future__ import annotations

import dataclasses
import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
from _hub_server import HubServer
from test_st_settings import DENSE, NORMALIZE, POOLING, TRANSFORMER, write_st

import nlu_lite
from nlu_lite.artifacts.settings import (
    DenseConfig,
    module_files,
    read_dense_layers,
    read_folder_settings,
)
from nlu_lite.errors import ConversionError, InputError
from nlu_lite.pipeline import Pipeline

TEXTS = ["the dog runs to the river bank", "paris is a city", "a quick brown fox jumps over the lazy dog",
         "It was the best of times, it was the worst of times.", "x"]
DENSE_2 = {"idx": 3, "name": "3", "path": "3_Dense", "type": "sentence_transformers.models.Dense"}
NORMALIZE_3 = {**NORMALIZE, "idx": 4, "name": "4", "path": "4_Normalize"}


def dense_folder(tmp_path: Path, config: dict, *, path: str = "2_Dense", state: dict | None = None,
                 modules=(TRANSFORMER, POOLING, DENSE, NORMALIZE_3)) -> Path:
    """write_st's folder (32-dim pooling) with Dense modules: ``config`` and, when given, ``state`` as weights."""
    folder = write_st(tmp_path, modules=modules)
    (folder / path).mkdir(exist_ok=True)
    (folder / path / "config.json").write_text(json.dumps(config))
    if state is not None:
        from safetensors.numpy import save_file

        save_file(state, str(folder / path / "model.safetensors"))
    return folder


# --- the config, read and checked ------------------------------------------------------------------

def test_dense_configs_are_read_in_order_with_sentence_transformers_defaults(tmp_path):
    folder = dense_folder(tmp_path, {"in_features": 32, "out_features": 16},  # no bias key, no activation: Tanh
                          modules=(TRANSFORMER, POOLING, DENSE, DENSE_2, NORMALIZE_3))
    (folder / "3_Dense").mkdir()
    (folder / "3_Dense" / "config.json").write_text(json.dumps(
        {"in_features": 16, "out_features": 8, "bias": False,
         "activation_function": "torch.nn.modules.linear.Identity"}))
    found = read_folder_settings(folder)
    assert found.dense == (DenseConfig("2_Dense", 32, 16, True, "tanh"), DenseConfig("3_Dense", 16, 8, False, "identity"))
    assert found.normalize is True and found.pooling == "mean"
    assert module_files(folder) == ("1_Pooling/config.json", "2_Dense/config.json", "2_Dense/model.safetensors",
                                    "2_Dense/pytorch_model.bin", "3_Dense/config.json", "3_Dense/model.safetensors",
                                    "3_Dense/pytorch_model.bin", "4_Normalize/config.json")


@pytest.mark.parametrize("config, fragment", [
    ({"in_features": 32, "out_features": 16, "use_residual": True}, "use_residual=True"),
    ({"in_features": 32, "out_features": 16, "activation_function": "torch.nn.modules.activation.GELU"},
     "activation_function 'torch.nn.modules.activation.GELU' is not one nlu_lite applies"),
    ({"in_features": 32, "out_features": 16, "activation_function": "my_pkg.Swish"}, "'my_pkg.Swish'"),
    ({"in_features": 32, "out_features": 0}, "out_features should be a positive whole number"),
    ({"in_features": "32", "out_features": 16}, "in_features should be a positive whole number"),
    ({"in_features": 32, "out_features": 16, "bias": "yes"}, "bias should be true or false"),
    ({"in_features": 32, "out_features": 16, "module_input_name": "token_embeddings"}, "sentence vector only"),
    ({"in_features": 24, "out_features": 16}, "takes 24-dim vectors but the module before it gives 32"),
])
def test_a_dense_layer_nlu_lite_would_not_reproduce_is_refused_naming_its_file(tmp_path, config, fragment):
    folder = dense_folder(tmp_path, config)
    with pytest.raises(ConversionError, match="2_Dense/config.json") as info:
        read_folder_settings(folder)
    assert fragment in str(info.value)


@pytest.mark.parametrize("modules, fragment", [
    ((TRANSFORMER, DENSE, POOLING), "Transformer -> Dense -> Pooling"),
    ((TRANSFORMER, POOLING, NORMALIZE_3, DENSE), "Pooling -> Normalize -> Dense"),
])
def test_a_dense_layer_out_of_place_is_refused(tmp_path, modules, fragment):
    folder = dense_folder(tmp_path, {"in_features": 32, "out_features": 16}, modules=modules)
    with pytest.raises(ConversionError, match="no other order") as info:
        read_folder_settings(folder)
    assert fragment in str(info.value)


def test_dense_weights_are_checked_against_the_config(tmp_path):
    rng = np.random.default_rng(0)
    good = {"linear.weight": rng.normal(size=(16, 32)).astype(np.float32),
            "linear.bias": rng.normal(size=16).astype(np.float32)}
    folder = dense_folder(tmp_path / "ok", {"in_features": 32, "out_features": 16}, state=good)
    (layer,) = read_dense_layers(folder)
    np.testing.assert_array_equal(layer.weight, good["linear.weight"])
    np.testing.assert_array_equal(layer.bias, good["linear.bias"])
    cases = {
        "missing": (None, "holds no weights (model.safetensors or pytorch_model.bin)"),
        "shape": ({**good, "linear.weight": good["linear.weight"].T.copy()}, "is (32, 16) but its config.json says (16, 32)"),
        "no_bias": ({"linear.weight": good["linear.weight"]}, "has no 'linear.bias'"),
        "nan": ({**good, "linear.bias": np.where(np.arange(16) == 3, np.nan, good["linear.bias"]).astype(np.float32)},
                "linear.bias holds 1 NaN or infinite value(s)"),
        "ints": ({**good, "linear.weight": np.ones((16, 32), np.int32)}, "stored as int32"),
    }
    for name, (state, fragment) in cases.items():
        folder = dense_folder(tmp_path / name, {"in_features": 32, "out_features": 16}, state=state)
        with pytest.raises(ConversionError, match="2_Dense") as info:
            read_dense_layers(folder)
        assert fragment in str(info.value), name
    assert read_dense_layers(tmp_path / "nothing") == ()


# --- against sentence-transformers ------------------------------------------------------------------

@pytest.fixture(scope="module")
def saved(tmp_path_factory, tiny_bert_dir):
    """Two models sentence-transformers saved itself: the tiny BERT with mean pooling, Dense 32 -> 16 (tanh,
    bias), Normalize; and a tiny T5 encoder as sentence-t5 / GTR are built: mean, Dense 24 -> 24 without bias
    or activation, Normalize."""
    st = pytest.importorskip("sentence_transformers")
    import torch
    from sentence_transformers.sentence_transformer.modules import (
        Dense,
        Normalize,
        Pooling,
        Transformer,
    )
    from test_families_end_to_end import _build

    torch.manual_seed(5)
    out = {}
    bert = st.SentenceTransformer(modules=[Transformer(str(tiny_bert_dir), max_seq_length=128),
                                           Pooling(32, pooling_mode="mean"), Dense(32, 16), Normalize()], device="cpu")
    t5_ckpt = tmp_path_factory.mktemp("t5") / "ckpt"
    _build("t5", t5_ckpt)
    transformer = Transformer(str(t5_ckpt))
    width = transformer.get_embedding_dimension()
    t5 = st.SentenceTransformer(modules=[transformer, Pooling(width, pooling_mode="mean"),
                                         Dense(width, width, bias=False, activation_function=torch.nn.Identity()),
                                         Normalize()], device="cpu")
    # INSTRUCTOR's layout: the T5 encoder, mean pooling without the instruction's positions, Dense, Normalize
    instructor = st.SentenceTransformer(
        modules=[transformer, Pooling(width, pooling_mode="mean", include_prompt=False),
                 Dense(width, width, bias=False, activation_function=torch.nn.Identity()), Normalize()],
        prompts={"query": "Represent the question for retrieving documents: "}, device="cpu")
    bert_max = st.SentenceTransformer(modules=[Transformer(str(tiny_bert_dir), max_seq_length=128),
                                               Pooling(32, pooling_mode="max", include_prompt=False), Normalize()],
                                      prompts={"query": "query: "}, device="cpu")
    for name, model in (("bert", bert), ("t5", t5), ("instructor", instructor), ("bert_max", bert_max)):
        target = tmp_path_factory.mktemp(f"dense_{name}") / "model"
        model.save(str(target))
        out[name] = (target, model)
    return out


@pytest.mark.parametrize("name", ["bert", "t5", "instructor"])
def test_sentence_vectors_equal_sentence_transformers_with_its_dense_layer(saved, name, isolated_cache):
    folder, model = saved[name]
    pipe = nlu_lite.load(path=folder)
    assert pipe.spec.task == "sentence" and len(pipe.head) == 1
    got = pipe.embed(TEXTS, output_level="document")
    want = model.encode(TEXTS, convert_to_numpy=True)
    assert got.shape == want.shape == (len(TEXTS), model.get_embedding_dimension())
    np.testing.assert_allclose(got, want, atol=2e-5, rtol=0)
    assert pipe.resolve_options("sentence").vector_width == want.shape[1]
    if name == "t5":  # same width with and without the layer: it really ran (the pooled states differ)
        headless = Pipeline(pipe.spec, pipe.encoder, pipe.tokenizer).embed(TEXTS, output_level="document")
        assert np.abs(headless - got).max() > 1e-2


def test_the_head_applies_to_sentences_and_documents_not_to_tokens(saved, isolated_cache):
    folder, model = saved["bert"]
    pipe = nlu_lite.load(path=folder)
    tokens = pipe.predict(TEXTS[:2], output_level="token")
    assert nlu_lite.to_matrix(tokens).shape[1] == 32  # the transformer's states, as output_value='token_embeddings'
    sentences = pipe.predict(["Paris is big. The dog runs."], output_level="sentence")
    assert nlu_lite.to_matrix(sentences).shape == (2, 16)
    np.testing.assert_allclose(nlu_lite.to_matrix(sentences), model.encode(["Paris is big.", "The dog runs."]),
                               atol=2e-5, rtol=0)
    unnormalised = pipe.embed(TEXTS, normalize=False)
    assert not np.allclose(np.linalg.norm(unnormalised, axis=1), 1.0)
    assert np.abs(unnormalised).max() < 1.0  # tanh's range: the activation ran before any normalising
    assert pipe._summary()["sentence head"] == "Dense 32->16 (tanh)" and "Dense 32-&gt;16" in pipe._repr_html_()
    with pytest.raises(InputError, match="truncate_dim must be an integer from 1 to the model's 16"):
        pipe.embed(TEXTS, truncate_dim=17)


def test_a_texts_vector_does_not_depend_on_its_batch(saved, isolated_cache):
    folder, _ = saved["bert"]
    pipe = nlu_lite.load(path=folder)
    corpus = [f"{t} number {i}" for i in range(40) for t in TEXTS[:2]]
    alone = pipe.embed(TEXTS[:1])
    together = pipe.embed([*corpus, TEXTS[0], *corpus[:7]], batch_size=5)
    np.testing.assert_array_equal(together[len(corpus)], alone[0])
    np.testing.assert_array_equal(pipe.embed(TEXTS * 3, deduplicate=False)[len(TEXTS)], pipe.embed(TEXTS)[0])


def test_bundles_and_pickles_keep_the_head(saved, isolated_cache, tmp_path):
    from nlu_lite import pipeline as pipeline_module

    folder, _ = saved["bert"]
    pipe = nlu_lite.load(path=folder)
    want = pipe.embed(TEXTS)
    bundle = pipe.save(tmp_path / "bundle")
    assert (bundle / "sentence_head.npz").is_file()
    np.testing.assert_array_equal(nlu_lite.load(path=bundle).embed(TEXTS), want)
    blob = pickle.dumps(pipe)
    pipeline_module._LIVE.clear()
    pipeline_module._KEPT.clear()
    np.testing.assert_array_equal(pickle.loads(blob).embed(TEXTS), want)  # loaded again from the cache
    # a replaced head file is refused, never a different model
    damaged = tmp_path / "damaged"
    shutil.copytree(bundle, damaged)
    with open(damaged / "sentence_head.npz", "wb") as fh:
        np.savez(fh, weight_0=np.zeros((16, 32), np.float32), bias_0=np.zeros(16, np.float32))
    with pytest.raises(ConversionError, match="sentence_head.npz differs from its manifest"):
        nlu_lite.load(path=damaged)


def test_a_hub_repo_with_a_dense_layer_fetches_it(saved, isolated_cache, monkeypatch):
    folder, model = saved["bert"]
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("NLU_LITE_PROGRESS", "0")
    with HubServer() as server:
        server.add_repo("org/tiny-dense", folder)
        monkeypatch.setenv("HF_ENDPOINT", server.endpoint)
        pipe = nlu_lite.load("org/tiny-dense")
        dense_config, dense_weights = server.count(contains="2_Dense/config.json"), server.count(
            contains="2_Dense/model.safetensors")
    assert dense_config >= 1 and dense_weights >= 1
    np.testing.assert_allclose(pipe.embed(TEXTS), model.encode(TEXTS), atol=2e-5, rtol=0)


@pytest.mark.parametrize("name", ["instructor", "bert_max"])
def test_include_prompt_false_pools_without_the_prompts_positions(saved, name, isolated_cache):
    """INSTRUCTOR's instruction and sentence-transformers' include_prompt=False: the prompt conditions the
    text's states but its positions ([CLS] too, for BERT) are left out of mean and max pooling."""
    folder, model = saved[name]
    pipe = nlu_lite.load(path=folder)
    assert pipe.spec.include_prompt is False
    got = pipe.embed(TEXTS, prompt_name="query")
    want = model.encode(TEXTS, prompt_name="query", convert_to_numpy=True)
    np.testing.assert_allclose(got, want, atol=2e-5, rtol=0)
    # pooling the prompt too gives other vectors: the exclusion is what makes them equal
    included = pipe.embed(TEXTS, prompt=model.prompts["query"], pooling=pipe.spec.pooling)
    np.testing.assert_array_equal(included, got)  # the same prompt by text: the same exclusion
    with_prompt = Pipeline(dataclasses.replace(pipe.spec, include_prompt=True), pipe.encoder, pipe.tokenizer,
                           head=pipe.head).embed(TEXTS, prompt_name="query")
    assert np.abs(with_prompt - got).max() > 1e-3
    np.testing.assert_allclose(pipe.embed(TEXTS), model.encode(TEXTS, convert_to_numpy=True), atol=2e-5, rtol=0)
