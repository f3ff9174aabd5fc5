"""OnnxEncoder: the session options, running padded batches, input validation, layer selection."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _engine_support import max_diff_on_tokens, padded_batch, reference

from nlu_lite.convert import convert_checkpoint
from nlu_lite.errors import ArtifactNotFoundError, InputError, NluLiteError
from nlu_lite.runtime import OnnxEncoder, session_options

ROOT = Path(__file__).parents[1]


@pytest.fixture(scope="module")
def model_path(tiny_bert_dir, tmp_path_factory) -> Path:
    return convert_checkpoint(tiny_bert_dir, tmp_path_factory.mktemp("rt") / "model.onnx")


@pytest.fixture(scope="module")
def encoder(model_path) -> OnnxEncoder:
    return OnnxEncoder.from_path(model_path, threads=1)


@pytest.fixture(scope="module")
def batch(tiny_bert_dir):
    vocab = len((tiny_bert_dir / "vocab.txt").read_text(encoding="utf-8").splitlines())
    return padded_batch(vocab, [9, 3, 14, 1], seed=5)


@pytest.fixture(scope="module")
def want(tiny_bert_dir, batch):
    return reference(tiny_bert_dir, *batch)


def test_attributes_come_from_the_model(encoder, tiny_bert_dir, model_path):
    import json

    config = json.loads((tiny_bert_dir / "config.json").read_text())
    assert encoder.hidden_size == config["hidden_size"] == 32
    assert encoder.num_layers == config["num_hidden_layers"] == 2
    assert encoder.has_pooler
    assert encoder.output_names == ("last_hidden_state", "hidden_state_0", "hidden_state_1", "hidden_state_2", "pooler_output")
    assert encoder.max_positions == config["max_position_embeddings"]
    assert encoder.vocab_size == config["vocab_size"]
    assert f"hidden_size=32" in repr(encoder) and str(model_path) in repr(encoder)


def test_run_returns_requested_outputs_matching_transformers(encoder, batch, want):
    ids, mask = batch
    out = encoder.run(ids, mask)
    assert list(out) == ["last_hidden_state"]
    assert out["last_hidden_state"].shape == (4, 14, 32) and out["last_hidden_state"].dtype == np.float32
    assert max_diff_on_tokens(out["last_hidden_state"], want["last_hidden_state"], mask) < 1e-4
    both = encoder.run(ids, mask, outputs=("pooler_output", "hidden_state_1"))
    assert list(both) == ["pooler_output", "hidden_state_1"]
    np.testing.assert_allclose(both["pooler_output"], want["pooler_output"], atol=1e-4)
    assert max_diff_on_tokens(both["hidden_state_1"], want["hidden_state_1"], mask) < 1e-4


def test_accepts_other_integer_dtypes_and_lists(encoder, batch):
    ids, mask = batch
    expected = encoder.run(ids, mask)["last_hidden_state"]
    for got in (encoder.run(ids.astype(np.int32), mask.astype(bool)), encoder.run(ids.tolist(), mask.tolist())):
        np.testing.assert_array_equal(got["last_hidden_state"], expected)


def test_padding_does_not_change_real_tokens(encoder, batch):
    """A row alone and the same row in a padded batch give the same vectors for its tokens."""
    ids, mask = batch
    full = encoder.run(ids, mask)["last_hidden_state"]
    n = int(mask[1].sum())
    alone = encoder.run(ids[1:2, :n], mask[1:2, :n])["last_hidden_state"]
    np.testing.assert_allclose(full[1, :n], alone[0], atol=1e-5)


@pytest.mark.parametrize("layers", [(-1,), (0,), (-4, -3, -2, -1), (1, -1)])
def test_run_layers_mean_and_concat(encoder, batch, want, layers):
    ids, mask = batch
    states = [want[f"hidden_state_{layer % 3}"] for layer in layers if -3 <= layer <= 2]
    if len(states) != len(layers):  # the tiny model has hidden states 0..2 only
        with pytest.raises(InputError, match="0..2"):
            encoder.run_layers(ids, mask, layers)
        return
    mean = encoder.run_layers(ids, mask, layers, layer_mean=True)
    assert max_diff_on_tokens(mean, np.mean(states, axis=0), mask) < 1e-4
    concat = encoder.run_layers(ids, mask, layers, layer_mean=False)
    assert concat.shape == (4, 14, 32 * len(layers))
    assert max_diff_on_tokens(concat, np.concatenate(states, axis=-1), mask) < 1e-4


def test_layer_output_names(encoder):
    assert encoder.layer_output_names() == ("hidden_state_2",)
    assert encoder.layer_output_names((-3, -2, -1, 0)) == ("hidden_state_0", "hidden_state_1", "hidden_state_2", "hidden_state_0")
    for bad in ((3,), (-4,), (1.0,), (True,)):
        with pytest.raises(InputError, match="does not exist"):
            encoder.layer_output_names(bad)
    with pytest.raises(InputError, match="empty"):
        encoder.run_layers(np.ones((1, 2), np.int64), np.ones((1, 2), np.int64), ())


@pytest.mark.parametrize("ids, mask, message", [
    (np.ones(5, np.int64), np.ones(5, np.int64), "2-D"),
    (np.ones((2, 0), np.int64), np.ones((2, 0), np.int64), "non-empty"),
    (np.ones((2, 3), np.int64), np.ones((2, 4), np.int64), "same shape"),
    (np.ones((2, 3), np.float32), np.ones((2, 3), np.int64), "integers"),
    (np.full((1, 3), 10**6), np.ones((1, 3), np.int64), "input_ids must lie in"),
    (np.full((1, 3), -1), np.ones((1, 3), np.int64), "input_ids must lie in"),
    (np.ones((1, 513), np.int64), np.ones((1, 513), np.int64), "512 positions"),
    (np.ones((1, 3), np.int64), np.full((1, 3), 2), "only 0"),
])
def test_bad_batches_are_clear_errors(encoder, ids, mask, message):
    with pytest.raises(InputError, match=message):
        encoder.run(ids, mask)


def test_unknown_outputs(encoder, batch):
    with pytest.raises(InputError, match="pooler_output"):  # the message lists what exists
        encoder.run(*batch, outputs=("hidden_state_9",))
    with pytest.raises(InputError):
        encoder.run(*batch, outputs=())
    assert list(encoder.run(*batch, outputs="pooler_output")) == ["pooler_output"]


def test_session_settings(model_path, batch):
    ids, mask = batch
    base = OnnxEncoder.from_path(model_path, threads=1).run(ids, mask)["last_hidden_state"]
    for kwargs in ({"optimization": "disable"}, {"optimization": "basic"}, {"enable_arena": False}, {"threads": None},
                   {"providers": ["CPUExecutionProvider"]}):
        got = OnnxEncoder.from_path(model_path, **kwargs).run(ids, mask)["last_hidden_state"]
        assert max_diff_on_tokens(got, base, mask) < 1e-5, kwargs
    options = session_options(threads=3, optimization="extended", enable_arena=False)
    assert options.intra_op_num_threads == 3 and not options.enable_cpu_mem_arena
    assert session_options().intra_op_num_threads == 0  # onnxruntime's default: one per physical core
    for bad in ({"threads": 0}, {"threads": 1.5}, {"threads": True}, {"optimization": "max"}):
        with pytest.raises(InputError):
            session_options(**bad)


def test_missing_or_foreign_model(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    with pytest.raises(ArtifactNotFoundError, match="ensure_onnx"):
        OnnxEncoder.from_path(tmp_path / "nope.onnx")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
    onnx.save_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(tmp_path / "other.onnx"))
    with pytest.raises(NluLiteError, match="interface"):
        OnnxEncoder.from_path(tmp_path / "other.onnx")


def test_graph_without_its_data_file_is_a_clear_error(model_path, tmp_path):
    import shutil

    shutil.copy(model_path, tmp_path / "model.onnx")  # the graph alone, not model.onnx.data
    with pytest.raises(ArtifactNotFoundError, match=r"model\.onnx\.data, which is missing"):
        OnnxEncoder.from_path(tmp_path / "model.onnx")
    shutil.copy(str(model_path) + ".data", tmp_path / "model.onnx.data")
    assert OnnxEncoder.from_path(tmp_path / "model.onnx").hidden_size == 32  # together they open


def test_no_torch_or_transformers_at_run_time(tiny_bert_dir, tmp_path):
    """Importing, converting a pickle checkpoint and running it never imports torch/transformers."""
    from conftest import build_bert_checkpoint

    folder = build_bert_checkpoint(tmp_path / "bin", weights="bin", seed=2)
    code = f"""
import sys
import nlu_lite, nlu_lite.convert, nlu_lite.runtime
assert not {{'torch', 'transformers'}} & set(sys.modules), 'imported at import time'
import numpy as np
from nlu_lite.convert import ensure_onnx
from nlu_lite.runtime import OnnxEncoder
enc = OnnxEncoder.from_path(ensure_onnx({str(folder)!r}, cache_dir={str(tmp_path / 'cache')!r}))
out = enc.run(np.array([[2, 7, 3]]), np.array([[1, 1, 1]]))
assert out['last_hidden_state'].shape == (1, 3, 32)
bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers', 'tensorflow'))
print('LOADED', bad)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "LOADED []"
