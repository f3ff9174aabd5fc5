"""Errors that used to escape as builtins or as onnxruntime's own: each is now an nlu_lite error
(still the builtin it resembles) whose message names what to do."""
from __future__ import annotations

import json
import shutil

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import nlu_lite
from nlu_lite.errors import ConversionError, InferenceError, InputError, ModelFormatError, NluLiteError
from nlu_lite.runtime import OnnxEncoder


def _copy_with_config(src, dst, **changes):
    shutil.copytree(src, dst)
    config = json.loads((dst / "config.json").read_text())
    for key, value in changes.items():
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
    (dst / "config.json").write_text(json.dumps(config))
    return dst


def test_a_checkpoint_that_is_not_bert_shaped_is_a_conversion_error(tiny_bert_dir, tmp_path, isolated_cache):
    gpt2 = _copy_with_config(tiny_bert_dir, tmp_path / "gpt2", model_type="gpt2", hidden_size=None)
    with pytest.raises(ConversionError, match="model_type 'gpt2' is not supported; nlu_lite converts 'bert', ") as info:
        nlu_lite.load(path=gpt2)
    assert isinstance(info.value, ValueError) and not isinstance(info.value, KeyError)
    assert "'roberta'" in str(info.value) and "'distilbert'" in str(info.value)  # the supported ones, listed
    headless = _copy_with_config(tiny_bert_dir, tmp_path / "headless", num_attention_heads=None)
    with pytest.raises(ConversionError, match="num_attention_heads"):
        nlu_lite.register_model("en.embed.headless", path=headless)


def _failing_model(path):
    """nlu_lite's interface, but the graph reshapes the ids to [-1, 3, 5]: onnxruntime fails at run
    time unless batch x sequence is a multiple of 15."""
    ids = helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "sequence"])
    mask = helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "sequence"])
    out = helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, [None, None, 5])
    shape = helper.make_tensor("shape", TensorProto.INT64, [3], [-1, 3, 5])
    nodes = [helper.make_node("Add", ["input_ids", "attention_mask"], ["summed"]),
             helper.make_node("Cast", ["summed"], ["as_float"], to=TensorProto.FLOAT),
             helper.make_node("Reshape", ["as_float", "shape"], ["last_hidden_state"])]
    graph = helper.make_graph(nodes, "failing", [ids, mask], [out], initializer=[shape])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_an_onnxruntime_failure_names_the_model_and_batch_shape(tmp_path):
    encoder = OnnxEncoder.from_path(_failing_model(tmp_path / "failing.onnx"))
    ok = encoder.run(np.ones((3, 5), np.int64), np.ones((3, 5), np.int64))["last_hidden_state"]
    assert ok.shape == (1, 3, 5)
    with pytest.raises(InferenceError) as info:
        encoder.run(np.ones((2, 7), np.int64), np.ones((2, 7), np.int64))
    message = str(info.value)
    assert "failing.onnx" in message and "(2, 7)" in message and "batch_size" in message
    assert isinstance(info.value, RuntimeError) and info.value.__cause__ is not None


def test_a_damaged_model_file_is_an_inference_error_naming_it(tmp_path):
    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"\x08\x07" + b"not a protobuf at all" * 50)
    with pytest.raises(InferenceError) as info:
        OnnxEncoder.from_path(bad)
    assert str(bad) in str(info.value) and "delete its folder" in str(info.value)


def test_a_foreign_onnx_model_is_a_model_format_error(tmp_path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "foreign", [x], [y])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(tmp_path / "f.onnx"))
    with pytest.raises(ModelFormatError, match="convert_checkpoint"):
        OnnxEncoder.from_path(tmp_path / "f.onnx")


def test_providers_reach_onnxruntime_and_a_missing_one_is_refused(tiny_bert_dir, isolated_cache):
    import onnxruntime as ort

    pipe = nlu_lite.load(path=tiny_bert_dir, providers=["CPUExecutionProvider"])
    assert pipe.encoder.session.get_providers() == ["CPUExecutionProvider"]
    # (name, options) pairs: kept in the recipe as sorted pairs, so the recipe stays hashable
    tuned = nlu_lite.load(path=tiny_bert_dir, providers=[("CPUExecutionProvider", {"b": "2", "a": "1"})])
    assert tuned.recipe.providers == (("CPUExecutionProvider", (("a", "1"), ("b", "2"))),)
    assert hash(tuned.recipe) and tuned.encoder.session.get_providers() == ["CPUExecutionProvider"]
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        with pytest.raises(InputError, match="onnxruntime-gpu"):
            nlu_lite.load(path=tiny_bert_dir, providers=["CUDAExecutionProvider"])
    with pytest.raises(InputError, match="available"):
        nlu_lite.load(path=tiny_bert_dir, providers=["NoSuchExecutionProvider"])
    with pytest.raises(InputError, match="empty"):
        nlu_lite.load(path=tiny_bert_dir, providers=[])


@pytest.mark.parametrize("kwargs, word", [({"precision": "int4"}, "precision"), ({"graph": "fast"}, "graph"),
                                          ({"threads": 0}, "threads"), ({"threads": 1.5}, "threads")])
def test_load_options_are_checked_with_the_shared_choices(tiny_bert_dir, isolated_cache, kwargs, word):
    with pytest.raises(InputError, match=word):
        nlu_lite.load(path=tiny_bert_dir, **kwargs)


def test_every_public_error_is_rooted_and_a_builtin():
    for name in nlu_lite.__all__:
        obj = getattr(nlu_lite, name)
        if isinstance(obj, type) and issubclass(obj, Exception) and obj is not NluLiteError:
            assert issubclass(obj, NluLiteError)
            assert any(issubclass(obj, b) for b in (ValueError, KeyError, ImportError, OSError, RuntimeError)), name
