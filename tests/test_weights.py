"""Reading checkpoints without torch: safetensors, torch's zip and legacy pickles, hostile pickles."""
from __future__ import annotations

import os
import pickle
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from _engine_support import FakeStorage, FakeTensor, write_torch_zip
from conftest import build_bert_checkpoint

from nlu_lite.convert import load_torch_checkpoint, load_weights, weights_file
from nlu_lite.errors import ArtifactNotFoundError, ConversionError, UnsafeCheckpointError


@pytest.fixture(scope="module")
def bin_dir(tmp_path_factory) -> Path:
    return build_bert_checkpoint(tmp_path_factory.mktemp("bin"), weights="bin", seed=3)


def torch_state(folder: Path) -> dict[str, np.ndarray]:
    """The reference: what torch itself reads from the folder's weights file."""
    from safetensors.torch import load_file

    path = weights_file(folder)
    state = load_file(path) if path.suffix == ".safetensors" else torch.load(path, weights_only=True)
    return {k: v.float().numpy() if v.is_floating_point() else v.numpy() for k, v in state.items()}


def assert_same_tensors(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> None:
    assert sorted(got) == sorted(want)
    for name, array in want.items():
        assert got[name].shape == array.shape, name
        assert got[name].dtype == np.float32, name
        np.testing.assert_array_equal(got[name], array, err_msg=name)


def test_safetensors_weights_equal_torch(tiny_bert_dir):
    want = {k: v for k, v in torch_state(tiny_bert_dir).items() if k != "embeddings.position_ids"}
    assert_same_tensors(load_weights(tiny_bert_dir), want)


def test_pytorch_bin_zip_equals_torch_load(bin_dir):
    assert zipfile.is_zipfile(bin_dir / "pytorch_model.bin")  # torch.save's default format
    want = {k: v for k, v in torch_state(bin_dir).items() if k != "embeddings.position_ids"}
    assert_same_tensors(load_weights(bin_dir), want)


def test_safetensors_preferred_over_bin(tmp_path, bin_dir):
    from safetensors.numpy import load_file

    folder = build_bert_checkpoint(tmp_path / "both", seed=5)  # model.safetensors from seed 5
    (folder / "pytorch_model.bin").write_bytes((bin_dir / "pytorch_model.bin").read_bytes())  # seed 3
    assert weights_file(folder).name == "model.safetensors"
    name = "encoder.layer.0.attention.self.query.weight"
    got = load_weights(folder)[name]
    np.testing.assert_array_equal(got, load_file(str(folder / "model.safetensors"))[name])
    assert not np.array_equal(got, torch_state(bin_dir)[name])


def test_bert_prefix_and_pretraining_heads(tmp_path):
    """A BertForPreTraining checkpoint: ``bert.`` names kept as BertModel's, cls.* heads dropped."""
    from safetensors.torch import save_file
    from transformers import BertConfig, BertForPreTraining

    torch.manual_seed(0)
    config = BertConfig(vocab_size=99, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)
    model = BertForPreTraining(config).eval()
    state = {k: v.clone().contiguous() for k, v in model.state_dict().items()}  # clone: heads share memory
    assert any(k.startswith("cls.") for k in state) and all(not k.startswith("encoder.") for k in state)
    save_file(state, str(tmp_path / "model.safetensors"))
    got = load_weights(tmp_path)
    want = {k: v.numpy() for k, v in model.bert.state_dict().items() if k != "embeddings.position_ids"}
    assert_same_tensors(got, want)


def test_legacy_gamma_beta_names(tmp_path):
    from safetensors.numpy import save_file

    gamma = np.arange(4, dtype=np.float32)
    save_file({"bert.embeddings.LayerNorm.gamma": gamma, "bert.embeddings.LayerNorm.beta": gamma + 1},
              str(tmp_path / "model.safetensors"))
    got = load_weights(tmp_path)
    assert sorted(got) == ["embeddings.LayerNorm.bias", "embeddings.LayerNorm.weight"]
    np.testing.assert_array_equal(got["embeddings.LayerNorm.bias"], gamma + 1)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_low_and_high_precision_tensors_widen_to_float32(tmp_path, dtype):
    from safetensors.torch import save_file

    torch.manual_seed(1)
    value = torch.randn(5, 3).to(dtype)
    want = value.float().numpy()
    torch.save({"encoder.x": value}, tmp_path / "a.bin")
    torch.save({"encoder.x": value}, tmp_path / "b.bin", _use_new_zipfile_serialization=False)
    save_file({"encoder.x": value}, str(tmp_path / "model.safetensors"))
    for got in (load_torch_checkpoint(tmp_path / "a.bin")["encoder.x"], load_torch_checkpoint(tmp_path / "b.bin")["encoder.x"]):
        np.testing.assert_array_equal(got.astype(np.float32), want)
    np.testing.assert_array_equal(load_weights(tmp_path)["encoder.x"], want)


def test_legacy_non_zip_format_equals_torch_load(tmp_path, bin_dir):
    state = torch.load(bin_dir / "pytorch_model.bin", weights_only=True)
    legacy = tmp_path / "pytorch_model.bin"
    torch.save(state, legacy, _use_new_zipfile_serialization=False)
    assert not zipfile.is_zipfile(legacy)
    got = load_torch_checkpoint(legacy)
    assert sorted(got) == sorted(state)
    for name, tensor in state.items():
        np.testing.assert_array_equal(got[name], tensor.numpy(), err_msg=name)


@pytest.mark.parametrize("zip_format", [True, False])
def test_views_and_shared_storage(tmp_path, zip_format):
    """Non-contiguous views, offsets into a storage, and two tensors sharing one storage."""
    torch.manual_seed(2)
    base = torch.randn(6, 8)
    state = {"t": base.t(), "cols": base[1:, ::3], "row": base[4], "whole": base, "scalar": torch.tensor(3.5),
             "ints": torch.arange(7, dtype=torch.int64)[2:], "empty": torch.zeros(0, 4)}
    path = tmp_path / "views.bin"
    torch.save(state, path, _use_new_zipfile_serialization=zip_format)
    got = load_torch_checkpoint(path)
    for name, tensor in state.items():
        assert got[name].shape == tuple(tensor.shape), name
        assert got[name].dtype == tensor.numpy().dtype, name
        np.testing.assert_array_equal(got[name], tensor.numpy(), err_msg=name)


# --- hostile and malformed checkpoints -------------------------------------------------


class _Payload:
    """Pickles as a call of ``func(*args)``: what an attacker would put in a checkpoint."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _bin_folder(tmp_path: Path, raw: bytes | None = None) -> Path:
    folder = tmp_path / "ckpt"
    folder.mkdir()
    if raw is not None:
        (folder / "pytorch_model.bin").write_bytes(raw)
    return folder


def test_os_system_in_torch_zip_is_refused_and_not_run(tmp_path):
    marker = tmp_path / "pwned"
    folder = _bin_folder(tmp_path)
    torch.save({"encoder.x": torch.ones(2), "evil": _Payload(os.system, f"touch {marker}")}, folder / "pytorch_model.bin")
    with zipfile.ZipFile(folder / "pytorch_model.bin") as zf:  # the payload really is in data.pkl
        assert b"system" in zf.read(next(n for n in zf.namelist() if n.endswith("data.pkl")))
    with pytest.raises(UnsafeCheckpointError, match=r"posix\.system|os\.system|nt\.system"):
        load_weights(folder)
    assert not marker.exists()


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_eval_global_in_plain_pickle_is_refused(tmp_path, protocol):
    marker = tmp_path / "pwned"
    code = f"open({str(marker)!r}, 'w').write('x')"
    folder = _bin_folder(tmp_path, pickle.dumps({"x": _Payload(eval, code)}, protocol=protocol))
    with pytest.raises(UnsafeCheckpointError, match=r"builtins?\.eval"):
        load_weights(folder)
    assert not marker.exists()


def test_exec_after_legitimate_tensors_is_refused(tmp_path):
    """The hostile call comes after real tensors: still nothing runs."""
    marker = tmp_path / "pwned"
    path = tmp_path / "model.bin"
    torch.save({"encoder.a": torch.ones(3), "encoder.b": torch.zeros(2),
                "z": _Payload(exec, f"open({str(marker)!r}, 'w')")}, path)
    with pytest.raises(UnsafeCheckpointError, match=r"builtins?\.exec"):
        load_torch_checkpoint(path)
    assert not marker.exists()


def test_setting_state_on_an_allowed_callable_is_refused(tmp_path):
    """BUILD on the stand-in for _rebuild_tensor_v2 would let a pickle rewrite our reader."""
    name = b"__defaults__"
    # PROTO 2, GLOBAL, EMPTY_DICT, MARK, BINUNICODE name, EMPTY_TUPLE, SETITEMS, BUILD, STOP
    raw = (b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\n}(X" + struct.pack("<I", len(name)) + name + b")ub.")
    with pytest.raises(UnsafeCheckpointError, match="state"):
        load_torch_checkpoint(_bin_folder(tmp_path, raw) / "pytorch_model.bin")


def test_refusal_in_a_fresh_interpreter_runs_nothing(tmp_path):
    """End to end in a clean process, with a payload that would leave a file behind."""
    marker = tmp_path / "pwned"
    folder = _bin_folder(tmp_path)
    torch.save({"w": _Payload(os.system, f"touch {marker}")}, folder / "pytorch_model.bin")
    code = (
        "import sys; from nlu_lite.convert import load_weights; from nlu_lite.errors import UnsafeCheckpointError\n"
        f"try:\n    load_weights({str(folder)!r})\nexcept UnsafeCheckpointError as e:\n    print('REFUSED', e)\n"
        "assert 'torch' not in sys.modules"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=Path(__file__).parents[1])
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("REFUSED") and "re-save" in done.stdout
    assert not marker.exists()


def test_out_of_bounds_tensor_record_is_an_error_not_a_read(tmp_path):
    raw = np.arange(6, dtype=np.float32).tobytes()
    storage = FakeStorage("0", 6)
    ok = write_torch_zip(tmp_path / "ok.bin", {"encoder.v": FakeTensor(storage, 1, (2, 2), (2, 1))}, {"0": raw})
    np.testing.assert_array_equal(load_torch_checkpoint(ok)["encoder.v"], [[1, 2], [3, 4]])
    for name, tensor in {
        "past_end": FakeTensor(storage, 0, (4, 2), (2, 1)),
        "huge_stride": FakeTensor(storage, 0, (2, 2), (1 << 40, 1)),
        "negative_offset": FakeTensor(storage, -1, (2,), (1,)),
        "negative_stride": FakeTensor(storage, 5, (2,), (-1,)),
    }.items():
        path = write_torch_zip(tmp_path / f"{name}.bin", {"encoder.v": tensor}, {"0": raw})
        with pytest.raises(ConversionError):
            load_torch_checkpoint(path)


def test_truncated_and_missing_storages(tmp_path):
    tensor = FakeTensor(FakeStorage("0", 6), 0, (6,), (1,))
    short = write_torch_zip(tmp_path / "short.bin", {"encoder.v": tensor}, {"0": b"\0" * 8})
    with pytest.raises(ConversionError, match="shorter"):
        load_torch_checkpoint(short)
    missing = write_torch_zip(tmp_path / "missing.bin", {"encoder.v": tensor}, {})
    with pytest.raises(ConversionError, match="missing"):
        load_torch_checkpoint(missing)


def test_truncated_real_checkpoints(tmp_path, bin_dir):
    raw = (bin_dir / "pytorch_model.bin").read_bytes()
    legacy = tmp_path / "legacy.bin"
    torch.save(torch.load(bin_dir / "pytorch_model.bin", weights_only=True), legacy, _use_new_zipfile_serialization=False)
    for name, data in {"zip": raw[: len(raw) // 2], "legacy": legacy.read_bytes()[:-100], "empty": b""}.items():
        path = tmp_path / f"cut_{name}.bin"
        path.write_bytes(data)
        with pytest.raises(ConversionError):
            load_torch_checkpoint(path)


def test_not_a_state_dict(tmp_path):
    path = tmp_path / "list.bin"
    torch.save([torch.ones(2)], path)
    with pytest.raises(ConversionError, match="state_dict"):
        load_torch_checkpoint(path)
    text = tmp_path / "text.bin"
    text.write_text("this is not a checkpoint at all")
    with pytest.raises(ConversionError):
        load_torch_checkpoint(text)


def test_missing_and_sharded_weights(tmp_path):
    with pytest.raises(ArtifactNotFoundError, match="model.safetensors"):
        load_weights(tmp_path)
    (tmp_path / "model.safetensors.index.json").write_text("{}")
    with pytest.raises(ConversionError, match="sharded"):
        load_weights(tmp_path)


def test_corrupt_safetensors(tmp_path, tiny_bert_dir):
    raw = (tiny_bert_dir / "model.safetensors").read_bytes()
    (tmp_path / "model.safetensors").write_bytes(raw[: len(raw) // 3])
    with pytest.raises(ConversionError, match="safetensors"):
        load_weights(tmp_path)
