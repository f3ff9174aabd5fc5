"""Issue 24 (nothing silently wrong, round three): a test per cause, each failing on the code before its fix
(numbered as the issue numbers them), and properties over hypothesis-generated spans, prompts, options and
groups: no row lost, each model's flags, every error an NluLiteError."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_hostile_checkpoints import copy_checkpoint

import nlu_lite
from nlu_lite.convert.weights import load_weights
from nlu_lite.errors import ConversionError, InputError, NluLiteError


@pytest.fixture(scope="module")
def tiny_arrays(tiny_bert_dir):
    from safetensors.numpy import load_file

    return load_file(str(tiny_bert_dir / "model.safetensors"))


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_weights_are_refused_naming_tensor_and_file(tmp_path, tiny_bert_dir, tiny_arrays, value,
                                                               isolated_cache):
    from safetensors.numpy import save_file

    folder = copy_checkpoint(tiny_bert_dir, tmp_path / "ckpt", weights=False)
    arrays = dict(tiny_arrays)
    name = "encoder.layer.0.attention.self.query.weight"
    damaged = arrays[name].copy()
    damaged[3, 5] = value
    arrays[name] = damaged
    save_file(arrays, str(folder / "model.safetensors"))
    for file in ("vocab.txt", "tokenizer.json"):
        if (tiny_bert_dir / file).is_file():
            shutil.copy(tiny_bert_dir / file, folder / file)
    with pytest.raises(ConversionError, match="holds 1 NaN or infinite value") as info:
        load_weights(folder)
    assert name in str(info.value) and str(folder / "model.safetensors") in str(info.value)
    with pytest.raises(ConversionError, match=name):  # and so does load(): nothing converted, nothing cached
        nlu_lite.load(path=folder)


def test_a_tokenizer_id_past_the_embedding_table_is_refused_at_load(tmp_path, tiny_bert_dir, isolated_cache):
    folder = tmp_path / "ckpt"
    shutil.copytree(tiny_bert_dir, folder)
    data = json.loads((folder / "tokenizer.json").read_text())
    vocab = data["model"]["vocab"]
    rows = json.loads((folder / "config.json").read_text())["vocab_size"]
    victim = next(p for p in vocab if p not in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"))
    del vocab[victim]  # the count stays below the table: only the largest id tells
    vocab["zzzword"] = rows + 4000
    (folder / "tokenizer.json").write_text(json.dumps(data))
    with pytest.raises(ConversionError, match=r"maps 'zzzword' to id \d+, past the model's embedding table") as info:
        nlu_lite.load(path=folder)
    assert f"({rows} rows, ids 0 to {rows - 1})" in str(info.value)


def test_a_dask_frame_is_refused_not_embedded_as_its_column_names(tiny_pipe):
    dd = pytest.importorskip("dask.dataframe")
    import pandas as pd

    ddf = dd.from_pandas(pd.DataFrame({"text": ["a cat", "a dog"], "id": [1, 2]}), npartitions=1)
    with pytest.raises(InputError, match=r"nlu_lite\.dask\.predict\(pipe, ddf\)"):
        tiny_pipe.predict(ddf)
    with pytest.raises(InputError, match="distributed collection"):
        tiny_pipe.predict(ddf["text"])


def test_a_lone_surrogate_in_a_prompt_becomes_u_fffd_as_in_texts(tiny_pipe):
    broken = tiny_pipe.embed(["a cat"], prompt="query\ud800: ")
    np.testing.assert_array_equal(broken, tiny_pipe.embed(["a cat"], prompt="query\ufffd: "))
    assert tiny_pipe.resolve_options("sentence", prompt="q\udfff ").prompt == "q\ufffd "


def test_a_pickled_bundle_pipeline_refuses_a_bundle_replaced_since(tiny_bert_dir, tmp_path, isolated_cache):
    """Cause 1: unpickled, a bundle pipeline loaded whatever bundle was at its path (an int8 one: other vectors)."""
    import pickle
    import shutil

    from nlu_lite import pipeline as pipeline_module

    folder = tmp_path / "bundle"
    nlu_lite.load(path=tiny_bert_dir).save(folder)
    pipe = nlu_lite.load(path=folder)
    want = pipe.embed(["a cat sat"])
    blob = pickle.dumps(pipe)

    def fresh():
        pipeline_module._LIVE.clear()
        pipeline_module._KEPT.clear()
        return pickle.loads(blob)

    np.testing.assert_array_equal(fresh().embed(["a cat sat"]), want)  # the same bundle: loads
    shutil.rmtree(folder)
    nlu_lite.load(path=tiny_bert_dir, precision="int8").save(folder)
    with pytest.raises(ConversionError, match="now holds another bundle"):
        fresh()
    shutil.rmtree(folder)
    with pytest.raises(ConversionError, match="now is gone"):
        fresh()


def test_chunk_level_carries_the_windowed_and_truncated_flags(tiny_pipe):
    """Cause 4: with truncation=True a span past the cut got a NaN vector and no column said why."""
    text = " ".join(f"word{i}" for i in range(600))  # one sentence: cut at 128 pieces, or windowed past 512
    tokens = tiny_pipe.predict([text], output_level="token", truncation=True)
    past = tokens[np.isnan(nlu_lite.to_matrix(tokens)[:, 0])]
    assert len(past) and tokens["truncated"].all()
    first, last = tokens.iloc[0], past.iloc[-1]
    spans = [[(int(first.begin), int(first.end)), (int(last.begin), int(last.end)),
              (int(first.begin), int(last.end))]]
    chunks = tiny_pipe.predict([text], output_level="chunk", chunks=spans, truncation=True)
    assert chunks["truncated"].tolist() == [False, True, True]  # the last span is past the cut, the wide one partly
    assert np.isnan(nlu_lite.to_matrix(chunks)[1]).all() and not np.isnan(nlu_lite.to_matrix(chunks)[2]).any()
    assert chunks["n_tokens"].tolist()[1] == 1 and not chunks["windowed"].any()
    whole = tiny_pipe.predict([text], output_level="chunk", chunks=spans)  # no truncation: windows, no NaN
    assert "truncated" not in whole.columns and whole["windowed"].all()
    assert not np.isnan(nlu_lite.to_matrix(whole)).any()


@pytest.mark.parametrize("offset", [2 ** 70, np.uint64(2 ** 64 - 1), -(2 ** 70)])
def test_chunk_offsets_past_int64_are_an_input_error(tiny_pipe, offset):
    """Cause 7: these raised a raw OverflowError."""
    with pytest.raises(InputError, match="lies outside the text"):
        tiny_pipe.predict(["a cat"], output_level="chunk", chunks=[[(0, offset)]])


def test_a_bundle_manifest_nested_absurdly_deep_is_a_conversion_error(tiny_pipe, tmp_path):
    """Cause 7: a manifest of 100,000 nested lists raised a raw RecursionError."""
    folder = tiny_pipe.save(tmp_path / "bundle")
    (folder / "nlu_lite_bundle.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ConversionError, match="is damaged"):
        nlu_lite.load(path=folder)


def test_a_hub_id_with_spaces_around_it_is_the_hub_id():
    """Cause 14: '  org/name  ' was an unknown alias while a registry alias with spaces loaded."""
    from nlu_lite.api import hub_repo

    assert hub_repo("org/name") == "org/name"
    from nlu_lite.errors import OfflineError

    with pytest.raises(OfflineError, match="Hugging Face Hub repo org/no-such-model-for-nlu-lite"):  # read as the id
        nlu_lite.load("  org/no-such-model-for-nlu-lite  ", offline=True)


def test_a_tokenizer_rule_that_panics_is_a_conversion_error_naming_the_file(tiny_bert_dir, tmp_path, isolated_cache):
    """Cause 8: a Split pre-tokenizer with a backtracking pattern made tokenizers panic (pyo3's PanicException, a
    BaseException: it escaped every `except Exception` and lost the batch)."""
    import shutil

    folder = tmp_path / "ckpt"
    shutil.copytree(tiny_bert_dir, folder)
    data = json.loads((folder / "tokenizer.json").read_text())
    data["pre_tokenizer"] = {"type": "Split", "pattern": {"Regex": "(a+)+$"}, "behavior": "Isolated", "invert": False}
    (folder / "tokenizer.json").write_text(json.dumps(data))
    pipe = nlu_lite.load(path=folder)
    with pytest.raises(ConversionError, match="failed inside the tokenizers library") as info:
        pipe.predict(["a" * 48 + "!"], output_level="sentence")
    assert "tokenizer.json" in str(info.value)
    assert len(pipe.predict(["the cat"], output_level="sentence")) == 1  # the pipeline still works afterwards


def test_a_bundle_file_that_is_a_symlink_is_refused_up_front(tiny_pipe, tmp_path):
    """Cause 9: a bundle laid out with links (huggingface_hub snapshots, DVC) passed the digest check, then
    onnxruntime refused it and the error advised deleting the folder: the user's only copy."""
    import shutil

    folder = tiny_pipe.save(tmp_path / "bundle")
    store = tmp_path / "blobs"
    store.mkdir()
    shutil.move(folder / "model.onnx.data", store / "data")
    (folder / "model.onnx.data").symlink_to(store / "data")
    with pytest.raises(ConversionError, match="is a symbolic link") as info:
        nlu_lite.load(path=folder)
    assert "delete" not in str(info.value).lower() and "cp -rL" in str(info.value)
    assert (store / "data").is_file() and (folder / "model.onnx.data").is_symlink()  # nothing removed


def test_a_hub_repo_of_an_unsupported_architecture_says_so_first(tiny_bert_dir, tmp_path, isolated_cache,
                                                                 monkeypatch):
    """Cause 12: without tokenizer.json, such a repo got a tokenizer error instead of 'not supported'."""
    from _hub_server import HubServer

    folder = tmp_path / "gpt"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "gpt2", "n_embd": 32}))
    (folder / "vocab.json").write_text("{}")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("NLU_LITE_PROGRESS", "0")
    with HubServer() as server:
        server.add_repo("org/tiny-gpt", folder)
        monkeypatch.setenv("HF_ENDPOINT", server.endpoint)
        with pytest.raises(ConversionError, match="model_type 'gpt2' is not supported; nlu_lite converts 'bert'"):
            nlu_lite.load("org/tiny-gpt")


def test_truncation_cuts_nlus_sent_models_at_spark_nlps_128():
    """Cause 13: truncation=True cut NLU's sent_* BERT models at 512 pieces, not Spark NLP's 128."""
    from nlu_lite.options import truncation_length
    from nlu_lite.registry import default_registry

    registry = default_registry()
    nlu_sent = registry.resolve("en.embed_sentence.small_bert_L2_128")
    assert nlu_sent.spark_nlp_model.startswith("sent_") and nlu_sent.max_length == 512
    assert truncation_length(nlu_sent) == 128
    assert truncation_length(registry.resolve("en.embed.bert")) == 128  # a word-embedding model, as before
    own = registry.resolve("en.embed_sentence.minilm_l6")  # nlu_lite's own sentence-transformers entry
    assert own.spark_nlp_model == "" and truncation_length(own) == own.max_length


def test_a_window_overlap_that_makes_windows_crawl_is_said(tiny_pipe, caplog):
    """Cause 14: window_overlap = max_length - 3 (a one-piece stride) ran 8x longer without a word."""
    import logging

    with caplog.at_level(logging.WARNING, logger="nlu_lite"):
        tiny_pipe.resolve_options("sentence", max_length=32, window_overlap=29)
    assert "moves each window by 1 piece(s)" in caplog.text and "about 30x over" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="nlu_lite"):
        tiny_pipe.resolve_options("sentence", max_length=32, window_overlap=15)
    assert "window_overlap" not in caplog.text


# --- properties over hypothesis-generated arguments: no row lost, every error an NluLiteError -------------

TEXTS = ["Dr. Smith lives in London. He likes tea.", "", "a", "naïve café — 東京!"]
OFFSETS = st.one_of(st.integers(-3, 45), st.integers(-(2 ** 70), 2 ** 70), st.sampled_from([np.int64(3), True, 2.5]))
SPAN = st.one_of(st.tuples(OFFSETS, OFFSETS), st.tuples(OFFSETS, OFFSETS, st.text(max_size=3)), st.just("x"))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(spans=st.lists(st.lists(SPAN, max_size=3), min_size=4, max_size=4), pooling=st.sampled_from(["mean", "first",
                                                                                                     "last", "max"]))
def test_any_chunk_spans_give_one_row_each_or_an_nlu_lite_error(tiny_pipe, spans, pooling):
    try:
        df = tiny_pipe.predict(TEXTS, output_level="chunk", chunks=spans, chunk_pooling=pooling)
    except NluLiteError:
        return
    assert len(df) == sum(len(s) for s in spans)  # no span lost
    assert (df["n_tokens"] >= 0).all() and df["windowed"].dtype == bool


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(prompt=st.one_of(st.none(), st.text(max_size=12), st.just("q\ud800 "), st.integers()),
       level=st.sampled_from(["sentence", "document", "token"]),
       options=st.dictionaries(st.sampled_from(["batch_size", "max_length", "window_overlap", "deduplicate",
                                                "truncation", "normalize"]),
                               st.one_of(st.integers(-2, 600), st.booleans(), st.none()), max_size=3))
def test_any_prompt_and_options_keep_every_row_or_give_an_nlu_lite_error(tiny_pipe, prompt, level, options):
    try:
        df = tiny_pipe.predict(TEXTS, output_level=level, prompt=prompt, **options)
    except NluLiteError:
        return
    if level == "document":
        assert len(df) == len(TEXTS)
    elif level == "sentence":
        assert set(df["origin_index"]) == set(range(len(TEXTS)))  # every row, blank ones included


@pytest.fixture(scope="module")
def pair(tiny_pipe):
    import dataclasses

    from nlu_lite.group import PipelineGroup
    from nlu_lite.pipeline import Pipeline

    other = Pipeline(dataclasses.replace(tiny_pipe.spec, aliases=("en.embed_sentence.tiny_other",), task="sentence",
                                         max_length=12), tiny_pipe.encoder, tiny_pipe.tokenizer, recipe=tiny_pipe.recipe)
    return PipelineGroup([tiny_pipe, other])


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(level=st.sampled_from(["token", "sentence", "document"]), truncation=st.booleans(),
       texts=st.lists(st.text(alphabet=st.sampled_from(list("ab .!Zé東 ")), max_size=40), min_size=1, max_size=4),
       as_generator=st.booleans())
def test_a_group_keeps_every_row_and_each_models_flags(pair, level, truncation, texts, as_generator):
    data = (t for t in texts) if as_generator else texts
    try:
        df = pair.predict(data, level, truncation=truncation)
    except NluLiteError:
        return
    alone = pair.pipelines[0].predict(texts, level, truncation=truncation)
    assert len(df) == len(alone)
    for pipe in pair.pipelines:
        column = pipe.spec.embedding_column
        assert f"{column}_windowed" in df.columns and (f"{column}_truncated" in df.columns) == truncation


def test_a_full_disk_while_converting_names_the_folder(tiny_bert_dir, tmp_path, monkeypatch):
    """Cause 14: a disk-full error named no path."""
    import builtins
    import errno

    from nlu_lite.convert import convert_checkpoint

    real_open = builtins.open

    def full(file, mode="r", *args, **kwargs):
        if "w" in mode and str(tmp_path / "out") in str(file):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", full)
    with pytest.raises(ConversionError, match="No space left on device") as info:
        convert_checkpoint(tiny_bert_dir, tmp_path / "out" / "model.onnx")
    assert str(tmp_path / "out") in str(info.value) and "NLU_LITE_CACHE" in str(info.value)
    assert not list((tmp_path / "out").glob("model.onnx*"))  # nothing half-written left behind
