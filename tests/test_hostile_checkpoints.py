"""Hostile and malformed local checkpoints (issue 11, items 4 and 6).

Every bad config or weights file is a ConversionError (ArtifactNotFoundError for a missing
file) naming the file, the field and the fix, raised at load time. Small files that describe
huge tensors are refused (or skipped) before anything is allocated or decompressed: those
cases run in a fresh child process that reports its peak memory growth (ru_maxrss).
"""
from __future__ import annotations

import collections
import io
import json
import os
import pickle
import struct
import subprocess
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from conftest import build_bert_checkpoint

import nlu_lite
import nlu_lite.convert.bert as bert
import nlu_lite.convert.families as families
from nlu_lite.convert import load_torch_checkpoint, load_weights, read_config
from nlu_lite.convert.bert import CONFIG_LIMITS, BertConfig, expected_shapes, parameter_count
from nlu_lite.errors import ArtifactNotFoundError, ConversionError

ROOT = Path(__file__).parents[1]
GIB = 1 << 30
MAX_EXTRA_MB = 200  # a refused hostile file may cost this much memory, not more


# --- building checkpoints ---------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory) -> Path:
    """A 2-layer, 32-wide BERT (safetensors) with vocab.txt: the healthy base every case edits."""
    return build_bert_checkpoint(tmp_path_factory.mktemp("healthy"), seed=7)


@pytest.fixture(scope="module")
def tiny_arrays(tiny_folder) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(str(tiny_folder / "model.safetensors"))


def copy_checkpoint(source: Path, target: Path, *, weights: bool = True, **config_changes) -> Path:
    """``source``'s config (with changes; a value of ``...`` deletes the field), vocab and weights."""
    target.mkdir(parents=True, exist_ok=True)
    config = json.loads((source / "config.json").read_text())
    for key, value in config_changes.items():
        if value is ...:
            del config[key]
        else:
            config[key] = value
    (target / "config.json").write_text(json.dumps(config))
    (target / "vocab.txt").write_bytes((source / "vocab.txt").read_bytes())
    if weights:
        (target / "model.safetensors").write_bytes((source / "model.safetensors").read_bytes())
    return target


@dataclass(frozen=True)
class ZeroBomb:
    """A zip member that deflates to ``prefix`` + ``zeros`` zero bytes, from about ``zeros / 1000`` bytes."""

    zeros: int
    prefix: bytes = b""

    @property
    def size(self) -> int:
        return len(self.prefix) + self.zeros


@dataclass(frozen=True)
class Storage:
    key: str
    numel: int
    kind: str = "FloatStorage"


@dataclass(frozen=True)
class Tensor:
    storage: Storage
    offset: int
    size: tuple
    stride: tuple


def _deflated(bomb: ZeroBomb) -> tuple[bytes, int]:
    """A raw deflate stream of the bomb's bytes, built from one repeated 1 MiB block, and its CRC."""
    chunk = 1 << 20
    assert bomb.zeros % chunk == 0
    head = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = head.compress(bomb.prefix) + head.flush(zlib.Z_FULL_FLUSH)
    co = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = co.compress(bytes(chunk)) + co.flush(zlib.Z_FULL_FLUSH)  # byte-aligned, no back-references out
    crc, zero = zlib.crc32(bomb.prefix), bytes(chunk)
    for _ in range(bomb.zeros // chunk):
        crc = zlib.crc32(zero, crc)
    return head + block * (bomb.zeros // chunk) + zlib.compressobj(9, zlib.DEFLATED, -15).flush(), crc


def write_zip(path: Path, members: dict[str, bytes | ZeroBomb]) -> Path:
    """A zip archive written by hand, so a member can declare (and really hold) 1 GiB of zeros."""
    local, central = io.BytesIO(), io.BytesIO()
    for name, content in members.items():
        if isinstance(content, ZeroBomb):
            (data, crc), method, size = _deflated(content), 8, content.size
        else:
            data, crc, method, size = content, zlib.crc32(content), 0, len(content)
        encoded = name.encode()
        offset = local.tell()
        local.write(struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, method, 0, 0x21, crc, len(data), size, len(encoded), 0))
        local.write(encoded + data)
        central.write(struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, method, 0, 0x21, crc, len(data), size,
                                  len(encoded), 0, 0, 0, 0, 0, offset))
        central.write(encoded)
    directory = central.getvalue()
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, len(members), len(members), len(directory), local.tell(), 0)
    path.write_bytes(local.getvalue() + directory + end)
    return path


def torch_pickle(state: dict) -> bytes:
    """``state`` pickled as torch.save does: Tensor values become _rebuild_tensor_v2 calls on storages."""
    import torch

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, Storage):
                return ("storage", getattr(torch, obj.kind), obj.key, "cpu", obj.numel)
            return None

        def reducer_override(self, obj):
            if isinstance(obj, Tensor):
                return torch._utils._rebuild_tensor_v2, (obj.storage, obj.offset, obj.size, obj.stride, False,
                                                         collections.OrderedDict())
            return NotImplemented

    buffer = io.BytesIO()
    Pickler(buffer, protocol=2).dump(collections.OrderedDict(state))
    return buffer.getvalue()


def torch_zip_of(arrays: dict[str, np.ndarray], path: Path, *, extra_state: dict | None = None,
                 extra_members: dict | None = None, members: dict | None = None) -> Path:
    """``arrays`` as a torch zip checkpoint (one float32 storage each), plus extra records and members."""
    state, storages = {}, {}
    for i, (name, array) in enumerate(arrays.items()):
        array = np.ascontiguousarray(array, dtype=np.float32)
        storage = Storage(str(i), array.size)
        state[name] = Tensor(storage, 0, array.shape, tuple(s // 4 for s in array.strides))
        storages[f"archive/data/{i}"] = array.tobytes()
    state.update(extra_state or {})
    content = {"archive/data.pkl": torch_pickle(state), "archive/byteorder": b"little", **storages, **(extra_members or {})}
    content.update(members or {})
    return write_zip(path, content)


def run_measured(call: str, folder: Path, cache: Path) -> dict:
    """Run ``call`` (``load``, ``read_config`` or ``load_weights``) on ``folder`` in a fresh interpreter.

    Returns the error it raised (class names, message) and its peak memory growth over the
    interpreter with nlu_lite, numpy, onnx and onnxruntime already imported.
    """
    code = f"""
import json, resource, sys, time
import numpy, onnx, onnxruntime, nlu_lite, nlu_lite.convert
def peak():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
calls = {{"load": lambda f: nlu_lite.load(path=f), "read_config": nlu_lite.convert.read_config,
         "load_weights": lambda f: sorted(nlu_lite.convert.load_weights(f))}}
before, started = peak(), time.perf_counter()
out = {{}}
try:
    out["result"] = calls[{call!r}]({str(folder)!r})
except BaseException as exc:
    out["error"] = [c.__name__ for c in type(exc).__mro__]
    out["message"] = str(exc)[:3000]
out["extra_mb"] = (peak() - before) / 2**20
out["seconds"] = time.perf_counter() - started
print(json.dumps(out, default=str))
"""
    env = {**os.environ, "NLU_LITE_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "NLU_LITE_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def assert_names(message: str, *parts: str | Path) -> None:
    for part in parts:
        assert str(part) in message, f"{part!r} not in: {message}"


# --- item 6: malformed config.json ------------------------------------------------------

RAW = "@RAW@"  # replaced by the JSON text of a value (NaN, 1e999: json.dumps cannot write them)


@pytest.mark.parametrize(("field", "literal"), [
    ("num_attention_heads", "0"),
    ("hidden_size", "1e999"),  # json.loads reads it as inf
    ("hidden_size", "NaN"),
    ("intermediate_size", "-Infinity"),
    ("num_hidden_layers", "-1"),
    ("vocab_size", "99.5"),
    ("hidden_size", "32.0"),
    ("hidden_size", '"32"'),
    ("num_hidden_layers", "true"),
    ("num_hidden_layers", "null"),
    ("num_hidden_layers", "[2]"),
    ("num_hidden_layers", "1000000"),
    ("max_position_embeddings", "1000000000"),
    ("type_vocab_size", "0"),
    ("layer_norm_eps", "NaN"),
    ("layer_norm_eps", "-1e-12"),
    ("num_attention_heads", "5"),  # 32 is not divisible by 5
])
def test_bad_config_value_is_a_conversion_error_naming_file_and_field(tmp_path, tiny_folder, isolated_cache, field,
                                                                      literal):
    folder = copy_checkpoint(tiny_folder, tmp_path / "ckpt", **{field: RAW})
    (folder / "config.json").write_text((folder / "config.json").read_text().replace(json.dumps(RAW), literal))
    for load in (read_config, lambda f: nlu_lite.load(path=f)):
        with pytest.raises(ConversionError) as caught:
            load(folder)
        message = str(caught.value)
        assert_names(message, folder / "config.json", field)
        assert f"fix {field} in" in message and "download the checkpoint again" in message


@pytest.mark.parametrize("field", ["vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                                   "intermediate_size"])
def test_missing_config_field(tmp_path, tiny_folder, isolated_cache, field):
    folder = copy_checkpoint(tiny_folder, tmp_path / "ckpt", **{field: ...})
    for load in (read_config, lambda f: nlu_lite.load(path=f)):
        with pytest.raises(ConversionError, match=f"lacks the field '{field}'") as caught:
            load(folder)
        assert_names(str(caught.value), folder / "config.json", "add it")


def test_optional_fields_default_and_limits_hold(tmp_path, tiny_folder):
    folder = copy_checkpoint(tiny_folder, tmp_path / "ckpt", max_position_embeddings=..., type_vocab_size=...,
                             layer_norm_eps=...)
    config = read_config(folder)
    assert (config.max_position_embeddings, config.type_vocab_size, config.layer_norm_eps) == (512, 2, 1e-12)
    at_limit = copy_checkpoint(tiny_folder, tmp_path / "limit", num_hidden_layers=CONFIG_LIMITS["num_hidden_layers"])
    assert read_config(at_limit).num_layers == CONFIG_LIMITS["num_hidden_layers"]  # the limit itself is allowed


def test_sizes_implying_too_many_parameters(tmp_path, tiny_folder):
    folder = copy_checkpoint(tiny_folder, tmp_path / "ckpt", vocab_size=CONFIG_LIMITS["vocab_size"],
                             hidden_size=CONFIG_LIMITS["hidden_size"], num_attention_heads=16)
    with pytest.raises(ConversionError, match="parameters") as caught:
        read_config(folder)
    assert_names(str(caught.value), folder / "config.json", "vocab_size", "hidden_size", "fix the sizes")


def test_parameter_count_is_the_sum_of_the_expected_shapes():
    config = BertConfig(vocab_size=101, hidden_size=24, num_layers=3, num_heads=4, intermediate_size=40,
                        max_position_embeddings=77, type_vocab_size=3)
    for with_pooler in (True, False):
        shapes = expected_shapes(config, with_pooler=with_pooler)
        assert parameter_count(config, with_pooler=with_pooler) == sum(int(np.prod(s)) for s in shapes.values())


@pytest.mark.parametrize(("content", "says"), [
    (b"{not json", "not valid JSON"),
    (b"[1, 2, 3]", "JSON list"),
    (b'"bert"', "JSON str"),
    (b"\xff\xfe{}", "not valid JSON"),  # not UTF-8
    (b"[" * 100_000 + b"]" * 100_000, "not valid JSON"),  # deeper than json's recursion limit
])
def test_config_that_is_not_a_json_object(tmp_path, tiny_folder, isolated_cache, content, says):
    folder = copy_checkpoint(tiny_folder, tmp_path / "ckpt")
    (folder / "config.json").write_bytes(content)
    for load in (read_config, lambda f: nlu_lite.load(path=f)):
        with pytest.raises(ConversionError, match=says) as caught:
            load(folder)
        assert_names(str(caught.value), folder / "config.json", "download")


def test_oversized_config_is_refused_before_parsing(tmp_path, tiny_folder, monkeypatch):
    folder = copy_checkpoint(tiny_folder, tmp_path / "ckpt")
    monkeypatch.setattr(families, "MAX_CONFIG_BYTES", 100)
    with pytest.raises(ConversionError, match="not a model config") as caught:
        read_config(folder)
    assert_names(str(caught.value), folder / "config.json")


def test_missing_config_is_artifact_not_found(tmp_path, tiny_folder, isolated_cache):
    folder = copy_checkpoint(tiny_folder, tmp_path / "ckpt")
    (folder / "config.json").unlink()
    for load in (read_config, lambda f: nlu_lite.load(path=f)):
        with pytest.raises(ArtifactNotFoundError, match="config.json") as caught:
            load(folder)
        assert_names(str(caught.value), folder)


# --- item 6: a config whose sizes disagree with the weights ---------------------------


@pytest.mark.parametrize("weights", ["safetensors", "bin"])
@pytest.mark.parametrize(("changes", "field", "truth"), [
    ({"intermediate_size": 65}, "intermediate_size", 64),
    ({"vocab_size": "+1"}, "vocab_size", None),
    ({"hidden_size": 64}, "hidden_size", 32),
    ({"max_position_embeddings": 256}, "max_position_embeddings", 512),
    ({"type_vocab_size": 3}, "type_vocab_size", 2),
    ({"num_hidden_layers": 3}, "num_hidden_layers", 2),
    ({"num_hidden_layers": 1}, "num_hidden_layers", 2),
])
def test_config_disagreeing_with_weights_names_the_field(tmp_path, tiny_folder, tiny_arrays, isolated_cache,
                                                         weights, changes, field, truth):
    vocab = tiny_arrays["embeddings.word_embeddings.weight"].shape[0]
    if changes.get("vocab_size") == "+1":
        changes, truth = {"vocab_size": vocab + 1}, vocab
    folder = copy_checkpoint(tiny_folder, tmp_path / "ckpt", weights=weights == "safetensors", **changes)
    if weights == "bin":
        torch_zip_of(tiny_arrays, folder / "pytorch_model.bin")
    weights_path = folder / ("model.safetensors" if weights == "safetensors" else "pytorch_model.bin")
    for load in (load_weights, lambda f: nlu_lite.load(path=f)):
        with pytest.raises(ConversionError) as caught:
            load(folder)
        message = str(caught.value)
        assert_names(message, folder / "config.json", weights_path, field)
        assert f"set {field} to {truth} in" in message.lower()
    assert not list((isolated_cache / "nlu_lite").rglob("*.onnx"))  # refused before converting


def test_integer_weights_are_refused_by_name(tmp_path, tiny_folder, tiny_arrays):
    from safetensors.numpy import save_file

    folder = copy_checkpoint(tiny_folder, tmp_path / "ckpt", weights=False)
    arrays = dict(tiny_arrays)
    arrays["encoder.layer.1.output.dense.bias"] = arrays["encoder.layer.1.output.dense.bias"].astype(np.int32)
    save_file(arrays, str(folder / "model.safetensors"))
    with pytest.raises(ConversionError, match="int32") as caught:
        load_weights(folder)
    assert_names(str(caught.value), folder / "model.safetensors", "encoder.layer.1.output.dense.bias", "Re-save")


def test_healthy_hand_built_checkpoints_load_exactly(tmp_path, tiny_folder, tiny_arrays):
    """The builders below write valid files: every hostile case differs from a loadable one by its hostility."""
    folder = copy_checkpoint(tiny_folder, tmp_path / "ckpt", weights=False)
    torch_zip_of(tiny_arrays, folder / "pytorch_model.bin", extra_state={"cls.head": Tensor(Storage("x", 3), 0, (3,), (1,))},
                 extra_members={"archive/data/x": np.ones(3, np.float32).tobytes()})
    got = load_weights(folder)
    want = {k: v for k, v in tiny_arrays.items() if k != "embeddings.position_ids"}
    assert sorted(got) == sorted(want)
    for name, array in want.items():
        np.testing.assert_array_equal(got[name], array, err_msg=name)
    assert load_torch_checkpoint(folder / "pytorch_model.bin")["cls.head"].tolist() == [1, 1, 1]


# --- item 4 and 6: hostile safetensors headers ----------------------------------------


def _safetensors(path: Path, header: object, data: bytes = b"", header_len: int | None = None) -> Path:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw) if header_len is None else header_len) + raw + data)
    return path


@pytest.mark.parametrize(("header", "data", "header_len", "says"), [
    ({}, b"", 1 << 60, "claims"),
    (b"{not json", b"", None, "not JSON"),
    ([1, 2], b"", None, "JSON list"),
    ({"embeddings.x": {"dtype": "F32", "shape": [1 << 40], "data_offsets": [0, 4 << 40]}}, b"\0" * 16, None, "outside"),
    ({"embeddings.x": {"dtype": "F32", "shape": [1 << 20], "data_offsets": [0, 16]}}, b"\0" * 16, None, "declares shape"),
    ({"embeddings.x": {"dtype": "F32", "shape": [-4], "data_offsets": [0, 16]}}, b"\0" * 16, None, "has shape"),
    ({"embeddings.x": "F32"}, b"", None, "not an object"),
])
def test_hostile_safetensors_header(tmp_path, header, data, header_len, says):
    _safetensors(tmp_path / "model.safetensors", header, data, header_len)
    with pytest.raises(ConversionError, match=says) as caught:
        load_weights(tmp_path)
    assert_names(str(caught.value), tmp_path / "model.safetensors")


def test_unneeded_safetensors_tensor_is_not_read(tmp_path, tiny_folder, tiny_arrays, monkeypatch):
    from safetensors.numpy import save_file

    from nlu_lite.convert.weights import SafetensorsCheckpoint

    folder = copy_checkpoint(tiny_folder, tmp_path / "ckpt", weights=False)
    save_file({**tiny_arrays, "cls.big": np.zeros(1 << 20, np.float32)}, str(folder / "model.safetensors"))
    asked = []
    original = SafetensorsCheckpoint.read

    def spy(self, names, **kwargs):
        asked.extend(names)
        return original(self, asked, **kwargs)

    monkeypatch.setattr(SafetensorsCheckpoint, "read", spy)
    got = load_weights(folder)
    assert sorted(got) == sorted(asked) == sorted(k for k in tiny_arrays if k != "embeddings.position_ids")


# --- item 4: small files that would exhaust the machine, in a fresh process ----------


def _measured_error(call: str, folder: Path, cache: Path) -> tuple[str, dict]:
    out = run_measured(call, folder, cache)
    assert "error" in out, out
    assert out["error"][0] == "ConversionError" and "NluLiteError" in out["error"], out
    assert out["extra_mb"] < MAX_EXTRA_MB, out
    return out["message"], out


@pytest.mark.parametrize("layers", [10**6, 10**8])
def test_huge_layer_count_fails_small(tmp_path, tiny_folder, layers):
    """Before: 10**6 layers took 16 s and 2.8 GB before failing; 10**8 a MemoryError."""
    folder = copy_checkpoint(tiny_folder, tmp_path / "ckpt", num_hidden_layers=layers)
    message, _ = _measured_error("load", folder, tmp_path / "cache")
    assert_names(message, folder / "config.json", "num_hidden_layers", f"{layers}", "fix num_hidden_layers")


def test_storage_bomb_behind_a_needed_tensor_is_refused_small(tmp_path, tiny_folder, tiny_arrays):
    """Before: 1.2 MB on disk, 1 GiB of zeros behind the word embeddings: 1.8 GB peak, and accepted."""
    folder = copy_checkpoint(tiny_folder, tmp_path / "ckpt", weights=False)
    word = "embeddings.word_embeddings.weight"
    shape = tiny_arrays[word].shape
    rest = {k: v for k, v in tiny_arrays.items() if k != word}
    path = torch_zip_of(rest, folder / "pytorch_model.bin",
                        extra_state={word: Tensor(Storage("bomb", GIB // 4), 0, shape, (shape[1], 1))},
                        extra_members={"archive/data/bomb": ZeroBomb(GIB)})
    assert path.stat().st_size < 2 << 20
    message, _ = _measured_error("load", folder, tmp_path / "cache")
    assert_names(message, path, "'bomb'", word, "re-save")


def test_bomb_matching_a_huge_config_is_not_inflated(tmp_path, tiny_folder, tiny_arrays):
    """The config honestly implies a 256 MiB table, but the file holds 256 KiB: inflating it is refused."""
    vocab = 1 << 21
    folder = copy_checkpoint(tiny_folder, tmp_path / "ckpt", weights=False, vocab_size=vocab)
    word = "embeddings.word_embeddings.weight"
    rest = {k: v for k, v in tiny_arrays.items() if k != word}
    path = torch_zip_of(rest, folder / "pytorch_model.bin",
                        extra_state={word: Tensor(Storage("bomb", vocab * 32), 0, (vocab, 32), (32, 1))},
                        extra_members={"archive/data/bomb": ZeroBomb(vocab * 32 * 4)})
    message, _ = _measured_error("load_weights", folder, tmp_path / "cache")
    assert_names(message, path, "archive/data/bomb", "inflate")


def test_bomb_in_a_dropped_tensor_is_never_inflated(tmp_path, tiny_folder, tiny_arrays):
    """Before: 1.7 GB peak. A ``cls.*`` head is not part of BertModel: its storage is not even opened."""
    folder = copy_checkpoint(tiny_folder, tmp_path / "ckpt", weights=False)
    torch_zip_of(tiny_arrays, folder / "pytorch_model.bin",
                 extra_state={"cls.bomb": Tensor(Storage("bomb", GIB // 4), 0, (GIB // 4,), (1,))},
                 extra_members={"archive/data/bomb": ZeroBomb(GIB)})
    out = run_measured("load_weights", folder, tmp_path / "cache")
    assert "error" not in out, out
    assert out["result"] == sorted(k for k in tiny_arrays if k != "embeddings.position_ids")
    assert out["extra_mb"] < MAX_EXTRA_MB, out


def test_pickle_bomb_is_refused_small(tmp_path, tiny_folder):
    """Before: a data.pkl inflating to a 1 GiB BINBYTES8 took 1.8 GB before failing."""
    folder = copy_checkpoint(tiny_folder, tmp_path / "ckpt", weights=False)
    path = write_zip(folder / "pytorch_model.bin", {
        "archive/data.pkl": ZeroBomb(GIB, b"\x80\x04\x8e" + struct.pack("<Q", GIB)),
        "archive/byteorder": b"little",
    })
    message, _ = _measured_error("load", folder, tmp_path / "cache")
    assert_names(message, path, "archive/data.pkl", "safetensors")


def test_byteorder_bomb_is_refused_small(tmp_path, tiny_folder, tiny_arrays):
    """Before: a 1 GiB ``byteorder`` member was read whole (1.8 GB) and the file accepted."""
    folder = copy_checkpoint(tiny_folder, tmp_path / "ckpt", weights=False)
    path = torch_zip_of(tiny_arrays, folder / "pytorch_model.bin", members={"archive/byteorder": ZeroBomb(GIB)})
    message, _ = _measured_error("load", folder, tmp_path / "cache")
    assert_names(message, path, "archive/byteorder")


def test_legacy_storage_larger_than_the_file_is_refused_small(tmp_path, tiny_folder):
    """Before: a legacy record declaring 2**50 elements was a raw MemoryError."""
    folder = copy_checkpoint(tiny_folder, tmp_path / "ckpt", weights=False)
    body = torch_pickle({"embeddings.x": Tensor(Storage("0", 4), 0, (4,), (1,))})
    header = b"".join(pickle.dumps(v, protocol=2) for v in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}))
    path = folder / "pytorch_model.bin"
    path.write_bytes(header + body + pickle.dumps(["0"], protocol=2) + struct.pack("<q", 1 << 50) + bytes(64))
    message, _ = _measured_error("load_weights", folder, tmp_path / "cache")
    assert_names(message, path, "storage 0", "truncated")


def test_storage_member_size_must_match_its_record(tmp_path, tiny_arrays):
    """A zip member that declares more bytes than its storage record is refused before it is read."""
    path = torch_zip_of({"encoder.x": np.ones(4, np.float32)}, tmp_path / "a.bin",
                        members={"archive/data/0": ZeroBomb(1 << 20)})
    with pytest.raises(ConversionError, match="longer than its header says") as caught:
        load_torch_checkpoint(path)
    assert_names(str(caught.value), path, "archive/data/0")
