"""A pipeline pickles: unpickled in a fresh process it loads again from the cache, offline,
converts nothing, and gives the vectors the original gives."""
from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import textwrap
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import pytest
from _hub_server import HubServer

import nlu_lite
from nlu_lite.pipeline import Pipeline

TEXTS = ["the quick brown fox jumps over the lazy dog.", "Dr. Smith lives in London. He loves NLP!", ""]

# runs in a fresh interpreter: conversion is made impossible before the pipeline is unpickled
_CHILD = textwrap.dedent("""
    import json, pickle, sys
    import numpy as np
    import nlu_lite.convert.store as store

    def refuse(*args, **kwargs):
        raise AssertionError("unpickling converted the model again")

    store.convert_checkpoint = store.quantize_int8 = refuse
    import nlu_lite
    from nlu_lite.registry import default_registry

    blob, texts_file, out = sys.argv[1:4]
    pipe = pickle.loads(open(blob, "rb").read())
    texts = json.load(open(texts_file))
    result = {"alias": pipe.spec.alias, "registered_here": pipe.spec.alias in default_registry(),
              "precision": pipe.precision, "threads": pipe.recipe.threads,
              "providers": pipe.encoder.session.get_providers()}
    arrays = {}
    for level in ("token", "sentence", "document"):
        df = pipe.predict(texts, output_level=level)
        arrays[level] = nlu_lite.to_matrix(df)
        result[level + "_rows"] = df.drop(columns=[pipe.spec.embedding_column]).astype(str).values.tolist()
    np.savez(out + ".npz", **arrays)
    json.dump(result, open(out + ".json", "w"))
""")


def _manifests(cache: Path) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for p in cache.rglob("*") if p.is_file() and "hashes" not in p.parts}


def _in_fresh_process(pipe: Pipeline, tmp_path: Path, env: dict[str, str]) -> tuple[dict, dict]:
    blob, texts, out = tmp_path / "pipe.pkl", tmp_path / "texts.json", tmp_path / "out"
    blob.write_bytes(pickle.dumps(pipe))
    texts.write_text(json.dumps(TEXTS))
    subprocess.run([sys.executable, "-c", _CHILD, str(blob), str(texts), str(out)], check=True,
                   env={**os.environ, **env}, timeout=300)
    arrays = np.load(str(out) + ".npz")
    return json.loads(Path(str(out) + ".json").read_text()), {k: arrays[k] for k in arrays.files}


def _assert_same_as(pipe: Pipeline, meta: dict, arrays: dict) -> None:
    for level in ("token", "sentence", "document"):
        df = pipe.predict(TEXTS, output_level=level)
        np.testing.assert_array_equal(arrays[level], nlu_lite.to_matrix(df))
        assert meta[level + "_rows"] == df.drop(columns=[pipe.spec.embedding_column]).astype(str).values.tolist()


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_path_pipeline_unpickles_offline_in_a_fresh_process_without_converting(tiny_bert_dir, isolated_cache,
                                                                               tmp_path, precision):
    pipe = nlu_lite.load(path=tiny_bert_dir, precision=precision, threads=1)
    before = _manifests(isolated_cache / "nlu_lite")
    meta, arrays = _in_fresh_process(pipe, tmp_path, {"NLU_LITE_OFFLINE": "1", "NLU_LITE_PROGRESS": "0"})
    _assert_same_as(pipe, meta, arrays)
    assert meta["precision"] == precision and meta["threads"] == 1
    assert _manifests(isolated_cache / "nlu_lite") == before  # nothing written: no conversion, no new entry


def test_registered_hub_pipeline_unpickles_where_the_alias_is_unknown_and_sends_no_request(
        tiny_bert_dir, isolated_cache, monkeypatch, tmp_path):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    with HubServer() as hub:
        hub.add_repo("org/pickled-tiny", tiny_bert_dir)
        monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
        nlu_lite.register_model("en.embed.pickled_tiny", repo="org/pickled-tiny", dim=32, layers=2, heads=4,
                                replace=True)
        pipe = nlu_lite.load("en.embed.pickled_tiny")
        hub.reset_counts()
        meta, arrays = _in_fresh_process(pipe, tmp_path, {"NLU_LITE_OFFLINE": "1", "NLU_LITE_PROGRESS": "0"})
        assert hub.count() == 0
    assert meta["alias"] == "en.embed.pickled_tiny" and meta["registered_here"] is False
    _assert_same_as(pipe, meta, arrays)


def test_pickle_is_small_and_shares_the_pipeline_already_loaded_here(tiny_bert_dir, isolated_cache):
    import copy

    pipe = nlu_lite.load(path=tiny_bert_dir, threads=1, providers=["CPUExecutionProvider"])
    blob = pickle.dumps(pipe)
    assert len(blob) < 10_000  # the recipe, not the weights
    assert pickle.loads(blob) is pipe and copy.copy(pipe) is pipe  # loaded once per process
    assert hash(pickle.loads(blob).recipe) == hash(pipe.recipe)  # usable as a cache key
    other = nlu_lite.load(path=tiny_bert_dir, threads=2)
    assert pickle.loads(pickle.dumps(other)) is other and other.recipe != pipe.recipe
    assert other.encoder.session.get_session_options().intra_op_num_threads == 2


def _embed(pipe: Pipeline, text: str) -> tuple[int, int, np.ndarray]:
    return os.getpid(), id(pipe), nlu_lite.to_matrix(pipe.predict(text, output_level="sentence"))


def test_a_process_pool_takes_the_pipeline_and_loads_it_once_per_worker(tiny_bert_dir, isolated_cache, monkeypatch):
    # spawn, not fork: this test process runs Spark's and Dask's threads, and a forked child can
    # inherit a lock one of them held (fork-safety of the pipeline itself: the test below)
    monkeypatch.setenv("NLU_LITE_OFFLINE", "1")  # inherited by the workers: the cache must suffice
    pipe = nlu_lite.load(path=tiny_bert_dir)
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        got = list(pool.map(_embed, [pipe] * 6, TEXTS * 2, timeout=120))
    assert len({(pid, ident) for pid, ident, _ in got}) == 1  # six tasks, one worker, one load
    assert got[0][0] != os.getpid()
    for text, (_, _, vectors) in zip(TEXTS * 2, got):
        np.testing.assert_array_equal(vectors, _embed(pipe, text)[2])


def test_a_pipeline_built_from_parts_says_how_to_make_it_picklable(tiny_bert_dir, isolated_cache):
    pipe = nlu_lite.load(path=tiny_bert_dir)
    parts = Pipeline(pipe.spec, pipe.encoder, pipe.tokenizer)
    with pytest.raises(TypeError, match="nlu_lite.load"):
        pickle.dumps(parts)


def test_a_forked_child_loads_its_own_pipeline_not_the_parents(tiny_bert_dir, isolated_cache, monkeypatch):
    import nlu_lite.pipeline as pipeline_module

    pipe = nlu_lite.load(path=tiny_bert_dir)
    blob = pickle.dumps(pipe)
    assert pickle.loads(blob) is pipe
    parent = os.getpid()
    monkeypatch.setattr(pipeline_module.os, "getpid", lambda: parent + 1)  # as in a child after fork
    child = pickle.loads(blob)
    assert child is not pipe and child.encoder.session is not pipe.encoder.session
    assert pickle.loads(blob) is child  # and once per process there too
