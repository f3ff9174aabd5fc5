"""pipe.save(folder) / load(path=folder): a self-contained bundle that loads read-only, offline,
without conversion, gives the original's vectors, and refuses a damaged copy."""
from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import nlu_lite
from nlu_lite.errors import ArtifactNotFoundError, ConversionError, InputError

TEXTS = ["the quick brown fox jumps over the lazy dog.", "Dr. Smith lives in London. He loves NLP!", "", None]


@pytest.fixture()
def saved(tiny_bert_dir, isolated_cache, tmp_path):
    pipe = nlu_lite.load(path=tiny_bert_dir, precision="int8")
    return pipe, pipe.save(tmp_path / "bundle")


def test_a_bundle_holds_everything_and_nothing_else(saved):
    pipe, folder = saved
    assert sorted(p.name for p in folder.iterdir()) == ["model.onnx", "model.onnx.data", "nlu_lite_bundle.json",
                                                        "tokenizer.json"]
    manifest = json.loads((folder / "nlu_lite_bundle.json").read_text())
    assert manifest["precision"] == "int8" and manifest["spec"]["name"] == pipe.spec.name
    umask = os.umask(0)
    os.umask(umask)
    assert all(p.stat().st_mode & 0o777 == 0o666 & ~umask for p in folder.iterdir())  # the umask, as any file
    assert folder.stat().st_mode & 0o777 == 0o777 & ~umask
    with pytest.raises(InputError, match="not an empty folder"):
        pipe.save(folder)


_CHILD = textwrap.dedent("""
    import json, pickle, sys
    import numpy as np
    import nlu_lite.convert.store as store
    from nlu_lite.pipeline import Pipeline

    def refuse(*args, **kwargs):
        raise AssertionError("a bundle load converted, fetched or went through the cache")

    store.convert_checkpoint = store.quantize_int8 = refuse
    Pipeline.from_spec = classmethod(refuse)  # the only way to the network and the conversion cache
    import nlu_lite

    folder, texts, out = sys.argv[1:4]
    pipe = nlu_lite.load(path=folder)
    texts = json.load(open(texts))
    np.savez(out, **{level: nlu_lite.to_matrix(pipe.predict(texts, output_level=level))
                     for level in ("token", "sentence", "document")})
    print(pipe.precision, pipe.spec.alias)
""")


def test_a_read_only_bundle_loads_offline_without_conversion_in_a_fresh_process(saved, tmp_path):
    pipe, folder = saved
    copy = shutil.copytree(folder, tmp_path / "copied")  # as SparkFiles or a Docker layer would hold it
    for path in [*copy.iterdir(), copy]:
        path.chmod(0o555 if path.is_dir() else 0o444)
    texts = tmp_path / "texts.json"
    texts.write_text(json.dumps(TEXTS))
    env = {**os.environ, "NLU_LITE_OFFLINE": "1", "NLU_LITE_CACHE": str(tmp_path / "no_cache_here")}
    done = subprocess.run([sys.executable, "-c", _CHILD, str(copy), str(texts), str(tmp_path / "out.npz")],
                          env=env, check=True, capture_output=True, text=True, timeout=300)
    assert done.stdout.split() == ["int8", pipe.spec.alias]
    assert not (tmp_path / "no_cache_here").exists()  # nothing written anywhere
    got = np.load(tmp_path / "out.npz")
    for level in ("token", "sentence", "document"):
        np.testing.assert_array_equal(got[level], nlu_lite.to_matrix(pipe.predict(TEXTS, output_level=level)))


@pytest.mark.parametrize("damage, error", [
    (lambda f: (f / "model.onnx.data").write_bytes((f / "model.onnx.data").read_bytes()[:-10]), ConversionError),
    (lambda f: _flip(f / "model.onnx.data"), ConversionError),  # same size: only the sha256 sees it
    (lambda f: _flip(f / "tokenizer.json"), ConversionError),
    (lambda f: (f / "model.onnx").unlink(), ArtifactNotFoundError),
    (lambda f: (f / "nlu_lite_bundle.json").write_text("{"), ConversionError),
    (lambda f: _edit_manifest(f, lambda m: m["spec"].update(pooling="max")), ConversionError),
    (lambda f: _edit_manifest(f, lambda m: m.pop("files")), ConversionError),
], ids=["truncated-data", "flipped-data", "flipped-tokenizer", "missing-graph", "broken-manifest", "edited-spec",
        "no-file-records"])
def test_a_damaged_bundle_is_refused_never_used(saved, damage, error):
    _, folder = saved
    damage(folder)
    with pytest.raises(error, match=str(folder)):
        nlu_lite.load(path=folder)


def _edit_manifest(folder, change):
    path = folder / "nlu_lite_bundle.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest))


def _flip(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def test_bundle_pipelines_pickle_and_settings_are_checked(saved):
    pipe, folder = saved
    loaded = nlu_lite.load(path=folder, threads=1)
    assert pickle.loads(pickle.dumps(loaded)) is loaded and loaded.recipe.bundle == str(folder.resolve())
    again = loaded.save(folder.parent / "again")  # a bundle saves like any pipeline
    np.testing.assert_array_equal(nlu_lite.to_matrix(nlu_lite.load(path=again).predict(TEXTS[:2])),
                                  nlu_lite.to_matrix(pipe.predict(TEXTS[:2])))
    with pytest.raises(InputError, match="holds a 'int8' model"):
        nlu_lite.load(path=folder, precision="fp32")


def test_a_worker_reloads_a_bundle_saved_again_and_refuses_a_stale_copy(tiny_bert_dir, isolated_cache, tmp_path):
    from conftest import build_bert_checkpoint

    from nlu_lite.runners import bundle_id, worker_pipeline

    first = nlu_lite.load(path=tiny_bert_dir).save(tmp_path / "b")
    expected = bundle_id(first)
    pipe = worker_pipeline(first, 1, expected)
    assert worker_pipeline(first, 1, expected) is pipe  # once per process
    shutil.rmtree(first)
    other = nlu_lite.load(path=build_bert_checkpoint(tmp_path / "other", seed=7)).save(tmp_path / "b")
    with pytest.raises(InputError, match="not the one the driver shipped"):
        worker_pipeline(other, 1, expected)
    again = worker_pipeline(other, 1, bundle_id(other))
    assert again is not pipe
    assert not np.array_equal(nlu_lite.to_matrix(again.predict("the dog")), nlu_lite.to_matrix(pipe.predict("the dog")))
