"""A damaged, read-only, shared or half-written cache never gives wrong vectors, and never blocks a load.

Every test starts from a copy of one cache filled once (the tiny model fetched from the loopback
Hub and converted), damages one kind of cached file the hardest way (same size, same inode, mtime
put back), loads again and compares the vectors with a load of the untouched checkpoint: equal,
or a clear error. ``cache.FULL_CHECK_BYTES`` is lowered so that the tiny weights and ONNX data take
the path big files take (known by identity, read again only when it changed).
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from _hub_server import HubServer

import nlu_lite
import nlu_lite.cache as nlu_cache
from nlu_lite.artifacts import cache_entries, fetch
from nlu_lite.artifacts.store import sweep_stale
from nlu_lite.cli import main
from nlu_lite.errors import ArtifactNotFoundError, ConversionError, IntegrityError, RegistryError
from nlu_lite.pipeline import Pipeline
from nlu_lite.registry import HubSource, LocalSource, ModelSpec, Registry, UrlSource

REPO = "org/tiny-integrity"
ALIAS = "en.embed.tiny_integrity"
SPEC = ModelSpec(name="tiny_integrity", task="token", dim=32, layers=2, heads=4, aliases=(ALIAS,),
                 sources=(HubSource(repo=REPO, files=("config.json", "vocab.txt", "tokenizer.json")),))
TEXT = "the quick brown fox jumps over the lazy dog"
SMALL = 64 << 10  # FULL_CHECK_BYTES in these tests: config, vocab, tokenizer, graph below; weights, data above
ROOT = Path(__file__).resolve().parents[1]


def vectors(pipe: Pipeline) -> np.ndarray:
    return nlu_lite.to_matrix(pipe.predict(TEXT))


def load(**options) -> np.ndarray:
    return vectors(Pipeline.from_spec(SPEC, progress=False, **options))


def point_caches(monkeypatch, root: Path) -> None:
    monkeypatch.setenv("NLU_LITE_CACHE", str(root / "nlu_lite"))
    monkeypatch.setenv("HF_HOME", str(root / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(root / "hf" / "hub"))
    monkeypatch.setenv("NLU_LITE_PROGRESS", "0")
    for name in ("NLU_LITE_OFFLINE", "HF_HUB_OFFLINE", "HF_TOKEN", "NLU_LITE_FULL_VERIFY"):
        monkeypatch.delenv(name, raising=False)


@dataclass
class Golden:
    root: Path
    reference: np.ndarray  # a load of the untouched checkpoint folder


@pytest.fixture(scope="module")
def golden(tmp_path_factory, tiny_bert_dir) -> Golden:
    """One cache holding the tiny model fetched from the loopback Hub and converted; tests get copies."""
    root = tmp_path_factory.mktemp("golden")
    with pytest.MonkeyPatch.context() as mp, HubServer() as hub:
        point_caches(mp, root)
        mp.setenv("HF_ENDPOINT", hub.endpoint)
        hub.add_repo(REPO, tiny_bert_dir)
        fetched = load()
    with pytest.MonkeyPatch.context() as mp:
        point_caches(mp, tmp_path_factory.mktemp("reference_cache"))
        reference = vectors(nlu_lite.load(path=tiny_bert_dir))
    np.testing.assert_array_equal(fetched, reference)
    return Golden(root, reference)


@dataclass
class Env:
    root: Path
    hub: HubServer
    reference: np.ndarray

    @property
    def snapshot(self) -> Path:
        (folder,) = (self.root / "hf" / "hub" / ("models--" + REPO.replace("/", "--")) / "snapshots").iterdir()
        return folder

    @property
    def entry(self) -> Path:
        (model,) = (self.root / "nlu_lite" / "onnx").glob("*/model.onnx")
        return model.parent


@pytest.fixture()
def env(golden, tmp_path, monkeypatch, tiny_bert_dir) -> Env:
    root = tmp_path / "cache"
    shutil.copytree(golden.root, root, symlinks=True)
    point_caches(monkeypatch, root)
    monkeypatch.setattr(nlu_cache, "FULL_CHECK_BYTES", SMALL)
    monkeypatch.setattr(nlu_cache, "_SEEN", {})
    with HubServer() as hub:
        hub.add_repo(REPO, tiny_bert_dir)
        monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
        yield Env(root, hub, golden.reference)


# -- damage, the hardest way to notice ------------------------------------------------------

def rewrite_in_place(path: Path, change) -> None:
    """``change(bytes) -> bytes`` of the same length, written into the same inode; mtime put back."""
    real = path.resolve()
    before = real.stat()
    data = real.read_bytes()
    new = change(data)
    assert len(new) == len(data) and new != data
    with open(real, "r+b") as fh:
        fh.write(new)
    os.utime(real, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = real.stat()
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (before.st_ino, before.st_size, before.st_mtime_ns)


def flip(data: bytes, at: int, count: int = 64) -> bytes:
    return data[:at] + bytes(b ^ 0xFF for b in data[at:at + count]) + data[at + count:]


def swap(data: bytes, a: bytes, b: bytes) -> bytes:
    assert len(a) == len(b) and a in data and b in data
    return data.replace(a, b"\0SWAP\0").replace(b, a).replace(b"\0SWAP\0", b)


def negate_a_layer0_tensor(model: Path) -> bytes:
    """model.onnx.data with the sign of every float of one layer-0 weight flipped (same size)."""
    import onnx

    graph = onnx.load_model(str(model), load_external_data=False).graph
    tensor = next(t for t in graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL and "layer.0" in t.name)
    info = {e.key: e.value for e in tensor.external_data}
    start, length = int(info["offset"]), int(info["length"])
    data = bytearray((model.parent / info["location"]).read_bytes())
    for i in range(start + 3, start + length, 4):  # little-endian float32: the sign is the top bit of byte 3
        data[i] ^= 0x80
    return bytes(data)


def flip_a_layer0_weight(data: bytes) -> bytes:
    """64 bytes flipped inside a layer-0 attention weight of a safetensors file."""
    length = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + length])
    start, _ = header["encoder.layer.0.attention.self.query.weight"]["data_offsets"]
    return flip(data, 8 + length + start)


SOURCE_DAMAGE = {
    # weights: 64 bytes of a tensor flipped (the case: max diff 1.38 before)
    "weights": ("model.safetensors", flip_a_layer0_weight),
    # config: valid JSON, another activation: a silently different model
    "config": ("config.json", lambda data: data.replace(b'"gelu"', b'"relu"')),
    # tokenizer: two words' ids swapped: silently different token ids
    "tokenizer": ("tokenizer.json", lambda data: swap(data, b'"quick"', b'"brown"')),
    "vocab": ("vocab.txt", lambda data: swap(data, b"\nquick\n", b"\nbrown\n")),
}


@pytest.mark.parametrize("kind", list(SOURCE_DAMAGE))
def test_a_damaged_downloaded_file_is_fetched_again_never_used(env, tmp_path, kind):
    name, change = SOURCE_DAMAGE[kind]
    good = (env.snapshot / name).read_bytes()
    np.testing.assert_array_equal(load(), env.reference)  # this copy's files are now known by identity
    rewrite_in_place(env.snapshot / name, change)
    if kind != "vocab":  # (tokenizer.json wins over vocab.txt; the vocab case is checked through the Hub's record)
        damaged = tmp_path / "damaged"
        shutil.copytree(env.snapshot, damaged)  # the same bytes as a local folder, which nothing checks
        assert not np.allclose(vectors(nlu_lite.load(path=damaged)), env.reference, atol=1e-3)  # the damage matters
    env.hub.reset_counts()

    np.testing.assert_array_equal(load(), env.reference)
    assert (env.snapshot / name).read_bytes() == good  # fetched again, and only it
    if name == "model.safetensors":
        assert env.hub.count("GET", listener="cdn") == 1 and env.hub.count("GET", listener="hub") == 0
    else:
        assert env.hub.count("GET") == 1 and env.hub.count("GET", f"/{name}") == 1
    env.hub.reset_counts()
    np.testing.assert_array_equal(load(), env.reference)
    assert env.hub.count() == 0  # repaired: the next load is a cached one again


@pytest.mark.parametrize("kind", ["weights", "config", "tokenizer"])
def test_offline_a_damaged_downloaded_file_is_a_clear_error(env, kind):
    name, change = SOURCE_DAMAGE[kind]
    rewrite_in_place(env.snapshot / name, change)
    with pytest.raises(IntegrityError) as info:
        load(offline=True)
    message = str(info.value)
    assert name in message and "damaged" in message and f"nlu-lite download {ALIAS}" in message
    assert not (env.snapshot / name).exists()  # removed: a later online load fetches it
    assert env.hub.count() == 0
    np.testing.assert_array_equal(load(), env.reference)


def test_a_damaged_graph_is_converted_again_not_a_protobuf_error_on_every_load(env):
    model = env.entry / "model.onnx"
    good = model.read_bytes()
    rewrite_in_place(model, lambda data: flip(data, len(data) // 2))
    np.testing.assert_array_equal(load(offline=True), env.reference)
    assert model.read_bytes() == good


def test_a_sign_flip_in_the_onnx_data_with_size_and_mtime_kept_is_caught(env):
    from nlu_lite.runtime import OnnxEncoder

    model = env.entry / "model.onnx"
    data_file = model.with_name("model.onnx.data")
    good = data_file.read_bytes()
    np.testing.assert_array_equal(load(offline=True), env.reference)  # the data file is now known by identity
    ids = np.array([[2, 10, 11, 12, 3]], dtype=np.int64)
    before = OnnxEncoder.from_path(model).run(ids, np.ones_like(ids))["last_hidden_state"]
    rewrite_in_place(data_file, lambda _: negate_a_layer0_tensor(model))
    after = OnnxEncoder.from_path(model).run(ids, np.ones_like(ids))["last_hidden_state"]
    assert not np.allclose(before, after, atol=1e-3)  # used as it is, the damaged file gives other vectors

    np.testing.assert_array_equal(load(offline=True), env.reference)  # ctime moved: read again, converted again
    assert data_file.read_bytes() == good


@pytest.mark.parametrize("damage", ["truncated", "records_changed"])
def test_a_damaged_manifest_is_converted_again_and_killed_scratch_goes(env, damage):
    manifest = env.entry / "manifest.json"
    if damage == "truncated":
        rewrite_in_place(manifest, lambda data: data[: len(data) // 2] + b" " * (len(data) - len(data) // 2))
    else:  # still valid JSON: the data file's record points at other bytes
        record = json.loads(manifest.read_text())
        record["data"]["sha256"] = "0" * 64
        manifest.write_text(json.dumps(record))
    scratch = env.entry / ".model.onnx.data.0badf00d.tmp"  # what a conversion killed half way leaves
    scratch.write_bytes(b"\0" * 100_000)
    (env.entry / ".nlu_lite_int8_dead").mkdir()
    np.testing.assert_array_equal(load(offline=True), env.reference)
    assert json.loads(manifest.read_text())["data"]["sha256"] == hashlib.sha256(
        (env.entry / "model.onnx.data").read_bytes()).hexdigest()
    assert not scratch.exists() and not (env.entry / ".nlu_lite_int8_dead").exists()


def forge_identity(path: Path, digest: str) -> None:
    """Make the memo vouch for ``path`` as it is now: what a bit flip on the disk itself looks like."""
    nlu_cache._SEEN.clear()
    nlu_cache.remember_digest(path, digest)


def test_weights_rotting_under_an_unchanged_identity_are_never_converted(env):
    weights = env.snapshot / "model.safetensors"
    good = hashlib.sha256(weights.read_bytes()).hexdigest()
    rewrite_in_place(weights, flip_a_layer0_weight)
    forge_identity(weights, good)
    np.testing.assert_array_equal(load(), env.reference)  # the converted model is intact: weights not read
    with pytest.raises(IntegrityError) as info:  # a new conversion reads the sources in full first
        load(graph="standard")
    assert "model.safetensors" in str(info.value) and "Nothing was converted" in str(info.value)
    assert len(list((env.root / "nlu_lite" / "onnx").glob("*/model.onnx"))) == 1
    # the memo was dropped: the next load finds the damage, fetches the weights again and converts them
    np.testing.assert_allclose(load(graph="standard"), env.reference, atol=1e-5)


def test_onnx_data_rotting_under_an_unchanged_identity_is_found_by_cache_verify(env, capsys, monkeypatch):
    """The window left open on purpose (documented): a cached load trusts a big file whose identity did not
    change. `nlu-lite cache verify`, or NLU_LITE_FULL_VERIFY=1 on every load, closes it."""
    model = env.entry / "model.onnx"
    data_file = model.with_name("model.onnx.data")
    good = hashlib.sha256(data_file.read_bytes()).hexdigest()
    rewrite_in_place(data_file, lambda _: negate_a_layer0_tensor(model))
    forge_identity(data_file, good)

    monkeypatch.setenv("NLU_LITE_FULL_VERIFY", "1")
    np.testing.assert_array_equal(load(offline=True), env.reference)  # read in full: converted again
    monkeypatch.delenv("NLU_LITE_FULL_VERIFY")

    rewrite_in_place(data_file, lambda _: negate_a_layer0_tensor(model))
    forge_identity(data_file, good)
    entry = env.entry
    assert main(["cache", "verify"]) == 1
    out = capsys.readouterr().out
    assert "DAMAGED  onnx" in out and "model.onnx.data has sha256" in out and "ok       hf" in out
    assert not entry.exists()  # removed: the next load converts again
    np.testing.assert_array_equal(load(offline=True), env.reference)
    assert main(["cache", "verify"]) == 0


def test_cache_verify_finds_and_removes_a_damaged_download(env, capsys):
    weights = env.snapshot / "model.safetensors"
    rewrite_in_place(weights, flip_a_layer0_weight)
    forge_identity(weights, "whatever the memo says")  # verify reads in full, whatever is remembered
    assert main(["cache", "verify"]) == 1
    out = capsys.readouterr().out
    assert "DAMAGED  hf" in out and "model.safetensors" in out and "nlu-lite download" in out
    assert not weights.exists()
    np.testing.assert_array_equal(load(), env.reference)


def test_download_repairs_a_damaged_config_and_force_fetches_everything(env, capsys):
    nlu_lite.register_model(ALIAS, repo=REPO, dim=32, layers=2, heads=4, replace=True)
    config = env.snapshot / "config.json"
    good = config.read_bytes()
    rewrite_in_place(config, SOURCE_DAMAGE["config"][1])
    env.hub.reset_counts()
    assert main(["download", ALIAS, "--no-progress"]) == 0
    assert config.read_bytes() == good
    assert env.hub.count("GET") == 1 and env.hub.count("GET", "/config.json") == 1

    env.hub.reset_counts()
    assert main(["download", ALIAS, "--no-progress", "--force"]) == 0
    assert env.hub.count("GET", "/config.json") == 1 and env.hub.count("GET", "/vocab.txt") == 1
    assert env.hub.count("GET", listener="cdn") == 1  # the weights too
    assert set(capsys.readouterr().out.split()) == {str(env.snapshot)}
    np.testing.assert_array_equal(load(), env.reference)


def test_a_wheel_or_archive_source_is_checked_against_its_unpacking_record(env, tmp_path, tiny_bert_dir):
    payload = tmp_path / "m.zip"
    with zipfile.ZipFile(payload, "w") as zf:
        for path in tiny_bert_dir.iterdir():
            zf.write(path, f"model/{path.name}")
    data = payload.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    spec = ModelSpec(name="zipped", task="token", dim=32, layers=2, heads=4, sources=(
        UrlSource(url=env.hub.add_static("/files/m.zip", data), sha256=sha, path="model",
                  files=("config.json", "vocab.txt", "tokenizer.json")),))
    folder = fetch(spec, progress=False)
    target = folder.parent
    dead = target.parent / f".tmp-{target.name}+0badf00d"  # a download killed half way
    (dead / "archive").parent.mkdir()
    (dead / "archive").write_bytes(data[:1000])

    rewrite_in_place(folder / "model.safetensors", flip_a_layer0_weight)
    env.hub.reset_counts()
    assert fetch(spec) == folder and env.hub.count("GET", "/files/m.zip") == 1
    assert (folder / "model.safetensors").read_bytes() == (tiny_bert_dir / "model.safetensors").read_bytes()
    assert not dead.exists()

    (target / ".nlu_lite_source.json").unlink()  # the record is gone: nothing in the folder can be trusted
    with pytest.raises(IntegrityError, match="record of what was fetched"):
        fetch(spec, offline=True)
    env.hub.reset_counts()
    assert fetch(spec) == folder and env.hub.count("GET", "/files/m.zip") == 1
    np.testing.assert_array_equal(vectors(Pipeline.from_spec(spec, offline=True, progress=False)), env.reference)


# -- a read-only cache that moved -------------------------------------------------------------

_READ_ONLY: list[str] = []  # folders the audit hook refuses writes in; empty: the hook does nothing
_REFUSED: list[str] = []
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
_PATH_EVENTS = {"os.rename": 2, "os.link": 2, "os.symlink": 2, "os.remove": 1, "os.rmdir": 1, "os.mkdir": 1,
                "os.chmod": 1, "os.utime": 1, "os.truncate": 1, "os.chown": 1}


def _refuse_writes(event: str, args: tuple) -> None:
    """An audit hook: EROFS for every Python-level write under ``_READ_ONLY`` (tests run as root, where
    chmod does not stop writes). Native code (onnxruntime, tokenizers) only reads the cache."""
    if not _READ_ONLY:
        return
    if event == "open":
        paths = [args[0]] if args[2] & _WRITE_FLAGS else []
    elif event in _PATH_EVENTS:
        paths = list(args[:_PATH_EVENTS[event]])
    else:
        return
    for path in paths:
        if isinstance(path, int):
            continue
        full = os.path.abspath(os.fsdecode(path))
        if any(full == root or full.startswith(root + os.sep) for root in _READ_ONLY):
            _REFUSED.append(f"{event} {full}")
            raise OSError(errno.EROFS, "Read-only file system (simulated)", full)


_HOOKED: list[bool] = []


@pytest.fixture()
def read_only():
    """Call with a folder to make it read-only: chmod -R a-w, and the audit hook for root."""
    if not _HOOKED:
        sys.addaudithook(_refuse_writes)
        _HOOKED.append(True)
    modes: dict[Path, int] = {}

    def make(folder: Path) -> None:
        for path in [folder, *folder.rglob("*")]:
            if not path.is_symlink():
                modes[path] = path.stat().st_mode
                path.chmod(modes[path] & ~0o222)
        _READ_ONLY.append(str(folder))

    yield make
    _READ_ONLY.clear()
    _REFUSED.clear()
    for path, mode in modes.items():
        path.chmod(mode)


def test_a_read_only_cache_that_moved_loads(env, tmp_path, monkeypatch, read_only):
    moved = tmp_path / "elsewhere"
    env.root.rename(moved)  # e.g. a Docker layer, an NFS share, a Spark executor's copy
    point_caches(monkeypatch, moved)
    read_only(moved)
    np.testing.assert_array_equal(load(offline=True), env.reference)
    assert any("hashes" in refused for refused in _REFUSED)  # the digest memo could not be written, and that is fine
    _REFUSED.clear()
    np.testing.assert_array_equal(load(), env.reference)  # online too: a cached model sends no request
    assert env.hub.count() == 0


def test_a_read_only_cache_without_the_conversion_names_the_fix(env, monkeypatch, read_only):
    (env.entry / "manifest.json").unlink()
    read_only(env.root)
    with pytest.raises(ConversionError) as info:
        load(offline=True)
    assert "not writable" in str(info.value) and "NLU_LITE_CACHE" in str(info.value)


# -- shared caches, local folders ---------------------------------------------------------------

def test_cache_files_follow_the_umask(tmp_path, monkeypatch, tiny_bert_dir):
    point_caches(monkeypatch, tmp_path / "cache")
    monkeypatch.setattr(nlu_cache, "FULL_CHECK_BYTES", SMALL)  # so the digest memo is written too
    previous = os.umask(0o007)  # a group-shared cache
    try:
        with HubServer() as hub:
            hub.add_repo(REPO, tiny_bert_dir)
            monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
            load()
    finally:
        os.umask(previous)
    ours = [p for p in (tmp_path / "cache" / "nlu_lite").rglob("*") if not p.is_symlink()]
    assert {p.name for p in ours} >= {"model.onnx", "model.onnx.data", "manifest.json"}
    assert any(p.parent.name == "hashes" for p in ours) and any(p.parent.name == "hub" for p in ours)
    wrong = {str(p): oct(p.stat().st_mode & 0o777) for p in ours
             if p.stat().st_mode & 0o777 != (0o770 if p.is_dir() else 0o660)}
    assert wrong == {}


def test_a_relative_local_path_may_not_climb_out_of_nlu_lite_home(tmp_path, monkeypatch, tiny_bert_dir):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("NLU_LITE_HOME", str(home))
    outside = ModelSpec(name="outside", task="token", dim=32, layers=2, heads=4,
                        sources=(LocalSource(path=os.path.relpath(tiny_bert_dir, home)),))
    assert ".." in Path(outside.sources[0].path).parts
    with pytest.raises(ArtifactNotFoundError) as info:
        fetch(outside)
    assert "NLU_LITE_HOME" in str(info.value) and "absolute path" in str(info.value)
    assert isinstance(info.value.__cause__, RegistryError)
    shutil.copytree(tiny_bert_dir, home / "tiny")
    inside = ModelSpec(name="inside", task="token", dim=32, layers=2, heads=4, sources=(LocalSource(path="tiny"),))
    assert fetch(inside) == home / "tiny"


# -- scratch left by killed processes -------------------------------------------------------------

HOLD = """
import sys, time
from nlu_lite.cache import lock_for
lock = lock_for(sys.argv[1])
lock.acquire()
print("held", flush=True)
time.sleep(60)
"""


def test_scratch_of_killed_processes_is_swept_but_a_live_ones_is_kept(isolated_cache, capsys):
    root = isolated_cache / "nlu_lite"
    url = root / "url"
    dead = url / f".tmp-{'a' * 64}+0badf00d"  # its owner's lock is free: the process is gone
    live_target = url / ("b" * 64)
    live = url / f".tmp-{live_target.name}+cafecafe"
    old_legacy, new_legacy = url / ".tmp-k3j4h5g6", url / ".tmp-zq81mm2p"  # older nlu_lite: no owner in the name
    entry = root / "onnx" / "0123456789abcdef01234567"
    killed = [dead / "archive", live / "archive", old_legacy / "wheel.whl", new_legacy / "wheel.whl",
              entry / ".model.onnx.data.1a2b3c4d.tmp", root / "hashes" / ".0f0f.json.5e6f7a8b.tmp",
              root / "hub" / ".models--org--x.json.9c0d1e2f.tmp"]
    for path in killed:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"\0" * 1_000_000)
    hours_ago = time.time() - 7 * 3600
    for path in (old_legacy / "wheel.whl", old_legacy, root / "hashes" / ".0f0f.json.5e6f7a8b.tmp"):
        os.utime(path, (hours_ago, hours_ago))
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(live_target)], cwd=ROOT, stdout=subprocess.PIPE,
                              text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert holder.stdout.readline().strip() == "held"
        assert main(["cache", "list"]) == 0
        assert "removed 5.0 MB of scratch" in capsys.readouterr().out
        assert [p.exists() for p in killed] == [False, True, False, True, False, False, False]
    finally:
        holder.kill()  # as a killed load: its lock goes with it
        holder.wait(timeout=30)
    assert sweep_stale() == 1_000_000 and not live.exists()
    assert new_legacy.exists()  # recent, and no lock says whose: kept until it is stale


def test_cache_list_shows_models_only(isolated_cache):
    root = isolated_cache / "nlu_lite"
    (root / "onnx" / "hashes").mkdir(parents=True)
    (root / "onnx" / "hashes" / "0123.json").write_text("{}")  # an older nlu_lite's digest memo
    (root / "onnx" / "fedcba9876543210fedcba98").mkdir()
    (root / "onnx" / "fedcba9876543210fedcba98" / ".model.onnx.lock").touch()  # a conversion that failed
    (root / "pypi" / "some-wheel-0123").mkdir(parents=True)
    (root / "pypi" / "some-wheel-0123" / ".lock").touch()
    real = root / "onnx" / "00112233445566778899aabb"
    real.mkdir()
    (real / "model.onnx").write_bytes(b"\0" * 10)
    (real / "manifest.json").write_text("{}")
    assert [(e.kind, e.path) for e in cache_entries(Registry([]))] == [("onnx", real)]
