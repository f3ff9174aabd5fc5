"""Checkpoint -> ONNX: fidelity to transformers on PyTorch, the graph's interface, and the cache."""
from __future__ import annotations

import collections
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from _engine_support import cosine_per_token, english_batch, max_diff_on_tokens, padded_batch, reference
from conftest import build_bert_checkpoint

import nlu_lite.convert.store as store
from nlu_lite.convert.store import EXTERNAL_ALIGNMENT, data_path_for
from nlu_lite.convert import CONVERTER_VERSION, GRAPH_VARIANTS, OPSET, convert_checkpoint, ensure_onnx
from nlu_lite.errors import ArtifactNotFoundError, ConversionError
from nlu_lite.runtime import DISABLED_OPTIMIZERS, OnnxEncoder, session_options

TOLERANCE = 1e-4
LENGTHS = [7, 19, 1, 12, 19]  # padding, different lengths, a one-token row


def all_outputs(model_path: Path, ids: np.ndarray, mask: np.ndarray) -> dict[str, np.ndarray]:
    encoder = OnnxEncoder.from_path(model_path)
    return encoder.run(ids, mask, outputs=encoder.output_names)


def assert_matches_reference(folder: Path, model_path: Path, lengths=LENGTHS, seed: int = 0) -> None:
    config = json.loads((folder / "config.json").read_text())
    ids, mask = padded_batch(config["vocab_size"], lengths, seed)
    want = reference(folder, ids, mask)
    got = all_outputs(model_path, ids, mask)
    assert set(got) == set(want), "outputs differ from transformers' (hidden states / pooler)"
    for name, array in want.items():
        assert got[name].shape == array.shape and got[name].dtype == np.float32, name
        if name == "pooler_output":
            diff = float(np.abs(got[name] - array).max())
        else:
            diff = max_diff_on_tokens(got[name], array, mask)
        assert diff <= TOLERANCE, f"{name}: max |onnx - transformers| = {diff:.2e}"


@pytest.mark.parametrize("graph", GRAPH_VARIANTS)
@pytest.mark.parametrize("weights", ["safetensors", "bin"])
def test_tiny_bert_matches_transformers(tmp_path, graph, weights):
    folder = build_bert_checkpoint(tmp_path / "ckpt", weights=weights, seed=11)
    out = convert_checkpoint(folder, tmp_path / "model.onnx", graph=graph)
    assert_matches_reference(folder, out)


def test_bert_prefix_and_no_pooler(tmp_path):
    folder = build_bert_checkpoint(tmp_path / "ckpt", bert_prefix=True, with_pooler=False, weights="bin", seed=4)
    out = convert_checkpoint(folder, tmp_path / "model.onnx")
    encoder = OnnxEncoder.from_path(out)
    assert not encoder.has_pooler and "pooler_output" not in encoder.output_names
    assert_matches_reference(folder, out)


@pytest.mark.parametrize("graph", GRAPH_VARIANTS)
@pytest.mark.parametrize("act", ["gelu_new", "relu"])
def test_other_activations(tmp_path, graph, act):
    """The weights don't depend on hidden_act: rewrite it and let transformers read the same folder."""
    folder = build_bert_checkpoint(tmp_path / "ckpt", seed=6)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "hidden_act": act}))
    assert_matches_reference(folder, convert_checkpoint(folder, tmp_path / "model.onnx", graph=graph))


def test_odd_sizes(tmp_path):
    """3 layers, hidden 48 over 3 heads, intermediate 80, layer_norm_eps 1e-5."""
    folder = build_bert_checkpoint(tmp_path / "ckpt", hidden=48, layers=3, heads=3, intermediate=80, seed=8)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "layer_norm_eps": 1e-5}))
    assert_matches_reference(folder, convert_checkpoint(folder, tmp_path / "model.onnx"), lengths=[30, 2, 17])


@pytest.mark.slow
@pytest.mark.parametrize("weights", ["safetensors", "bin"])
def test_exact_small_bert_matches_transformers(tmp_path, weights):
    """google/bert_uncased_L-4_H-512_A-8's exact configuration, randomly initialised."""
    folder = build_bert_checkpoint(tmp_path / "ckpt", hidden=512, layers=4, heads=8, intermediate=2048,
                                   vocab_size=30522, weights=weights, seed=1)
    out = convert_checkpoint(folder, tmp_path / "model.onnx")
    assert_matches_reference(folder, out, lengths=[64, 9, 33, 1, 50, 64, 17, 2])


@pytest.mark.slow
def test_minilm_real_weights_match_transformers(minilm_dir, tmp_path):
    ids, mask = english_batch(minilm_dir)
    assert ids.shape[0] >= 50 and (mask.sum(1) != mask.shape[1]).any()  # 50+ sentences, padded
    want = reference(minilm_dir, ids, mask)["last_hidden_state"]
    got = OnnxEncoder.from_path(convert_checkpoint(minilm_dir, tmp_path / "m.onnx")).run(ids, mask)["last_hidden_state"]
    assert max_diff_on_tokens(got, want, mask) <= TOLERANCE
    assert cosine_per_token(got, want, mask).min() >= 0.99999


@pytest.mark.slow
def test_minilm_int8_close_to_fp32(minilm_dir, isolated_cache):
    import onnx

    ids, mask = english_batch(minilm_dir)
    fp32_path = ensure_onnx(minilm_dir)
    int8_path = ensure_onnx(minilm_dir, precision="int8")
    assert int8_path != fp32_path and int8_path.parent != fp32_path.parent
    graph = onnx.load(str(int8_path)).graph
    ops = collections.Counter(n.op_type for n in graph.node)
    # every projection quantized per token: Q/K/V (then fp32 MultiHeadAttention), 3 MatMuls per layer, the pooler's
    assert ops["QAttention"] == 0 and ops["MultiHeadAttention"] == 6, ops
    assert ops["MatMulIntegerToFloat"] == 6 * 4 + 1 and ops["MatMulInteger"] + ops["DynamicQuantizeMatMul"] == 0, ops
    assert not [n for n in graph.node if n.op_type == "MatMul" and any(i.endswith("weight_t") for i in n.input)]
    assert data_path_for(int8_path).stat().st_size < 0.4 * data_path_for(fp32_path).stat().st_size
    fp32 = OnnxEncoder.from_path(fp32_path).run(ids, mask)["last_hidden_state"]
    int8 = OnnxEncoder.from_path(int8_path).run(ids, mask)["last_hidden_state"]
    cos = cosine_per_token(int8, fp32, mask)
    # these bounds catch a broken quantizer; benchmarks/run.py reports the corpus-wide figures
    assert cos.mean() >= 0.985 and cos.min() >= 0.9, (cos.mean(), cos.min())
    assert 1 - cos.mean() > 1e-6  # it really is a different (quantized) model
    assert json.loads((int8_path.parent / "manifest.json").read_text())["precision"] == "int8"
    assert OnnxEncoder.from_path(int8_path).metadata["precision"] == "int8"


# --- the graph itself --------------------------------------------------------------------


def test_graph_is_valid_onnx_with_the_interface(tmp_path, tiny_bert_dir):
    import onnx

    path = convert_checkpoint(tiny_bert_dir, tmp_path / "model.onnx")
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=False)
    assert {o.version for o in model.opset_import if o.domain in ("", "ai.onnx")} == {OPSET}
    inputs = {i.name: i.type.tensor_type for i in model.graph.input}
    assert list(inputs) == ["input_ids", "attention_mask"]
    for tensor_type in inputs.values():
        assert tensor_type.elem_type == onnx.TensorProto.INT64
        assert [d.dim_param for d in tensor_type.shape.dim] == ["batch", "sequence"]  # dynamic axes
    names = [o.name for o in model.graph.output]
    assert names == ["last_hidden_state", "hidden_state_0", "hidden_state_1", "hidden_state_2", "pooler_output"]
    assert "token_type_ids" not in {i.name for i in model.graph.input}


def test_default_graph_keeps_onnxruntime_fusions(tmp_path, tiny_bert_dir):
    """The extra outputs (hidden states, pooler) must not stop the fused kernels."""
    import onnx

    path = convert_checkpoint(tiny_bert_dir, tmp_path / "model.onnx")
    optimized = tmp_path / "optimized.onnx"
    import onnxruntime as ort

    ort.InferenceSession(str(path), session_options(threads=1, optimized_model_path=optimized),
                         providers=["CPUExecutionProvider"], disabled_optimizers=list(DISABLED_OPTIMIZERS))
    ops = collections.Counter(n.op_type for n in onnx.load(str(optimized)).graph.node)
    layers = 2
    assert ops["Attention"] == layers
    assert ops["SkipLayerNormalization"] == 0 and ops["LayerNormalization"] == 2 * layers + 1  # + embeddings
    assert ops["BiasGelu"] == layers and ops["FastGelu"] == 0  # exact erf GELU, not the tanh one
    assert ops["Softmax"] == 0 and ops["Erf"] == 0


def test_standard_graph_gets_fused_by_onnxruntime(tmp_path, tiny_bert_dir):
    import onnx
    import onnxruntime as ort

    path = convert_checkpoint(tiny_bert_dir, tmp_path / "model.onnx", graph="standard")
    for lean in (False, True):  # with every output declared, and with last_hidden_state only
        model = onnx.load(str(path))
        if lean:
            keep = [o for o in model.graph.output if o.name == "last_hidden_state"]
            del model.graph.output[:]
            model.graph.output.extend(keep)
        optimized = tmp_path / f"opt_{lean}.onnx"
        ort.InferenceSession(model.SerializeToString(), session_options(threads=1, optimized_model_path=optimized),
                             providers=["CPUExecutionProvider"], disabled_optimizers=list(DISABLED_OPTIMIZERS))
        ops = collections.Counter(n.op_type for n in onnx.load(str(optimized)).graph.node)
        # GELU fused; residual + LayerNorm left as Add + LayerNormalization (SkipLayerNormFusion is off)
        assert ops["BiasGelu"] == 2 and ops["SkipLayerNormalization"] == 0 and ops["LayerNormalization"] == 5, (lean, ops)


def test_unsupported_checkpoints(tmp_path, tiny_bert_dir):
    folder = tmp_path / "x"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes((tiny_bert_dir / "model.safetensors").read_bytes())
    config = json.loads((tiny_bert_dir / "config.json").read_text())
    with pytest.raises(ArtifactNotFoundError, match="config.json"):
        convert_checkpoint(folder, tmp_path / "a.onnx")
    for change, message in [
        ({"model_type": "gpt2"}, "model_type 'gpt2' is not supported; nlu_lite converts 'bert', .*'roberta'"),
        ({"position_embedding_type": "relative_key"}, "position_embedding_type"),
        ({"hidden_act": "swish"}, "hidden_act"),
        ({"num_attention_heads": 5}, "divisible"),
        ({"num_hidden_layers": 3}, "lacks"),
        ({"intermediate_size": 65}, "shape"),
    ]:
        (folder / "config.json").write_text(json.dumps({**config, **change}))
        with pytest.raises(ConversionError, match=message):
            convert_checkpoint(folder, tmp_path / "a.onnx")
    del config["hidden_size"]
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConversionError, match="hidden_size"):
        convert_checkpoint(folder, tmp_path / "a.onnx")
    (folder / "config.json").write_text("{not json")
    with pytest.raises(ConversionError, match="JSON"):
        convert_checkpoint(folder, tmp_path / "a.onnx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x"]  # nothing, not even a temp file, written


def test_failed_write_leaves_no_file(tmp_path, tiny_bert_dir, monkeypatch):
    original = Path.write_bytes

    def broken_write(self, data):  # the graph is written after the weights' data file
        original(self, data[: len(data) // 2])
        raise OSError("disk full")

    monkeypatch.setattr(Path, "write_bytes", broken_write)
    out = tmp_path / "out" / "model.onnx"
    with pytest.raises(ConversionError, match=f"could not write the converted model to {out.parent} .disk full") as info:
        convert_checkpoint(tiny_bert_dir, out)  # the folder named (issue 24), the OSError kept as its cause
    assert isinstance(info.value.__cause__, OSError)
    assert list(out.parent.iterdir()) == []  # neither file, nor a temporary one


def test_weights_are_external_data_at_aligned_offsets(tmp_path, tiny_bert_dir):
    import onnx

    out = convert_checkpoint(tiny_bert_dir, tmp_path / "model.onnx")
    data = data_path_for(out)
    assert data.name == "model.onnx.data" and data.is_file()
    model = onnx.load(str(out), load_external_data=False)
    spans = []
    for tensor in model.graph.initializer:
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            info = {e.key: e.value for e in tensor.external_data}
            assert info["location"] == "model.onnx.data"
            spans.append((int(info["offset"]), int(info["length"]), tensor.name))
        else:  # only small constants stay inside the graph
            assert len(tensor.raw_data) < store.EXTERNAL_MIN_BYTES, tensor.name
    assert "embeddings.word_embeddings.weight" in {name for _, _, name in spans}
    spans.sort()
    assert all(offset % EXTERNAL_ALIGNMENT == 0 for offset, _, _ in spans)
    assert all(a[0] + a[1] <= b[0] for a, b in zip(spans, spans[1:]))  # no overlap
    assert spans[-1][0] + spans[-1][1] == data.stat().st_size
    assert out.stat().st_size < 100_000  # the graph file holds no weights
    # the bytes behind each reference are the checkpoint's tensor
    loaded = {t.name: onnx.numpy_helper.to_array(t, base_dir=str(tmp_path)) for t in onnx.load(str(out)).graph.initializer}
    from nlu_lite.convert import load_weights

    np.testing.assert_array_equal(loaded["embeddings.word_embeddings.weight"],
                                  load_weights(tiny_bert_dir)["embeddings.word_embeddings.weight"])


# --- ensure_onnx: the cache ------------------------------------------------------------


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture()
def ckpt(tmp_path) -> Path:
    return build_bert_checkpoint(tmp_path / "ckpt", seed=21)


@pytest.fixture()
def count_conversions(monkeypatch):
    calls = []
    original = store.convert_checkpoint

    def counting(*args, **kwargs):
        calls.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(store, "convert_checkpoint", counting)
    return calls


def test_ensure_onnx_converts_once_with_manifest(ckpt, isolated_cache, count_conversions):
    path = ensure_onnx(ckpt)
    assert path.name == "model.onnx" and path.parent.parent == isolated_cache / "nlu_lite" / "onnx"
    manifest = json.loads((path.parent / "manifest.json").read_text())
    assert manifest["sources"] == {"config.json": sha256(ckpt / "config.json"),
                                   "model.safetensors": sha256(ckpt / "model.safetensors")}
    assert manifest["converter_version"] == CONVERTER_VERSION and manifest["opset"] == OPSET
    assert manifest["precision"] == "fp32" and manifest["graph"] in GRAPH_VARIANTS
    assert manifest["source_folder"] == str(ckpt.resolve())
    assert manifest["model"]["sha256"] == sha256(path) and manifest["model"]["size"] == path.stat().st_size
    data = data_path_for(path)
    assert manifest["data"]["sha256"] == sha256(data) and manifest["data"]["file"] == "model.onnx.data"
    mtime = path.stat().st_mtime_ns
    assert ensure_onnx(ckpt) == path and ensure_onnx(str(ckpt)) == path
    assert len(count_conversions) == 1 and path.stat().st_mtime_ns == mtime
    assert_matches_reference(ckpt, path)
    assert [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")] == []


def test_cached_load_reads_only_the_small_files(ckpt, isolated_cache, monkeypatch):
    import nlu_lite.cache as cache

    monkeypatch.setattr(cache, "FULL_CHECK_BYTES", 64 << 10)  # the tiny weights and data count as big files here
    monkeypatch.setattr(cache, "_SEEN", {})
    ensure_onnx(ckpt)
    hashed = []
    original = cache.sha256_file
    monkeypatch.setattr(cache, "sha256_file", lambda p, *a: hashed.append(Path(p).name) or original(p, *a))
    monkeypatch.setattr(cache, "_SEEN", {})  # as a new process: only the memo on disk
    ensure_onnx(ckpt)
    # config.json and the graph are read in full; the weights and model.onnx.data are known by identity
    assert sorted(hashed) == ["config.json", "model.onnx"]
    # a touched weights file is hashed again, once; same bytes -> same entry
    hashed.clear()
    os.utime(ckpt / "model.safetensors", ns=(time.time_ns(), time.time_ns() + 10**9))
    first = ensure_onnx(ckpt)
    assert sorted(hashed) == ["config.json", "model.onnx", "model.safetensors"] and first == ensure_onnx(ckpt)


@pytest.mark.parametrize("damage", ["truncate", "same_size", "no_manifest", "bad_manifest", "foreign_manifest", "no_model",
                                    "truncate_data", "same_size_data", "no_data"])
def test_damaged_entry_is_reconverted_not_used(ckpt, isolated_cache, count_conversions, damage):
    path = ensure_onnx(ckpt)
    good = path.read_bytes()
    data_file = data_path_for(path)
    good_data = data_file.read_bytes()
    manifest = path.parent / "manifest.json"
    if damage == "truncate_data":
        data_file.write_bytes(good_data[: len(good_data) // 2])
    elif damage == "same_size_data":  # e.g. a copy from another model of the same shape
        data_file.write_bytes(bytes(len(good_data)))
        os.utime(data_file, ns=(time.time_ns(), time.time_ns() + 10**9))
    elif damage == "no_data":
        data_file.unlink()
    elif damage == "truncate":  # a half-written file
        path.write_bytes(good[: len(good) // 2])
    elif damage == "same_size":
        path.write_bytes(good[:100] + bytes(len(good) - 100))
    elif damage == "no_manifest":
        manifest.unlink()
    elif damage == "bad_manifest":
        manifest.write_text(manifest.read_text()[:40])
    elif damage == "foreign_manifest":
        data = json.loads(manifest.read_text())
        manifest.write_text(json.dumps({**data, "converter_version": "0-old"}))
    else:
        path.unlink()
    assert ensure_onnx(ckpt) == path
    assert len(count_conversions) == 2
    assert sha256(path) == hashlib.sha256(good).hexdigest()  # conversion is deterministic
    assert sha256(data_file) == hashlib.sha256(good_data).hexdigest()
    assert json.loads(manifest.read_text())["model"]["sha256"] == sha256(path)
    assert json.loads(manifest.read_text())["data"]["sha256"] == sha256(data_file)


def test_copied_entry_with_new_mtime_is_verified_by_hash(ckpt, isolated_cache, count_conversions):
    path = ensure_onnx(ckpt)
    os.utime(path, ns=(time.time_ns(), path.stat().st_mtime_ns + 10**9))  # e.g. `cp` without -p
    assert ensure_onnx(ckpt) == path and len(count_conversions) == 1


def test_new_key_for_changed_source_converter_or_precision(ckpt, isolated_cache, monkeypatch):
    first = ensure_onnx(ckpt)
    config = json.loads((ckpt / "config.json").read_text())
    (ckpt / "config.json").write_text(json.dumps({**config, "layer_norm_eps": 1e-6}, indent=1))
    changed = ensure_onnx(ckpt)
    assert changed != first and first.is_file()
    assert json.loads((changed.parent / "manifest.json").read_text())["sources"]["config.json"] == sha256(ckpt / "config.json")
    monkeypatch.setattr(store, "CONVERTER_VERSION", "999")
    assert ensure_onnx(ckpt) not in (first, changed)
    other_graph = [g for g in GRAPH_VARIANTS if g != store.DEFAULT_GRAPH][0]
    assert ensure_onnx(ckpt, graph=other_graph) not in (first, changed)


def test_cache_dir_argument(ckpt, isolated_cache, tmp_path):
    path = ensure_onnx(ckpt, cache_dir=tmp_path / "elsewhere")
    assert path.parent.parent == tmp_path / "elsewhere"
    assert not (isolated_cache / "nlu_lite" / "onnx").exists() or not any((isolated_cache / "nlu_lite" / "onnx").glob("*/model.onnx"))


def test_bad_options(ckpt, isolated_cache):
    with pytest.raises(ConversionError, match="precision"):
        ensure_onnx(ckpt, precision="fp16")
    with pytest.raises(ConversionError, match="graph"):
        convert_checkpoint(ckpt, ckpt / "x.onnx", graph="turbo")


_RACE = """
import sys, time
import nlu_lite.convert.store as store
from nlu_lite.convert.store import EXTERNAL_ALIGNMENT, data_path_for
original = store.convert_checkpoint
def slow(*args, **kwargs):
    with open(sys.argv[2], "a") as fh:
        fh.write("converted\\n")
    time.sleep(1.0)  # hold the lock long enough for the other process to arrive
    return original(*args, **kwargs)
store.convert_checkpoint = slow
print(store.ensure_onnx(sys.argv[1]))
"""


def test_two_processes_convert_once(ckpt, isolated_cache, tmp_path):
    log = tmp_path / "conversions.log"
    env = {**os.environ, "NLU_LITE_CACHE": str(isolated_cache / "nlu_lite")}
    root = Path(__file__).parents[1]
    procs = [subprocess.Popen([sys.executable, "-c", _RACE, str(ckpt), str(log)], cwd=root, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err for _, err in results]
    paths = {out.strip() for out, _ in results}
    assert len(paths) == 1
    assert log.read_text().count("converted") == 1
    assert_matches_reference(ckpt, Path(paths.pop()))
