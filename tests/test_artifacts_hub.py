"""The Hub source against a hub-shaped server on 127.0.0.1, through the real huggingface_hub.

Every test asserts on the server's request log and on what the cache holds afterwards.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _hub_server import HubServer, git_blob_sha1
from conftest import build_bert_checkpoint

from nlu_lite.artifacts import download, fetch, is_cached
from nlu_lite.errors import ArtifactNotFoundError, IntegrityError, OfflineError
from nlu_lite.registry import HubSource, ModelSpec

REPO = "org/tiny-bert"
FILES = ("config.json", "vocab.txt", "tokenizer.json")
ROOT = Path(__file__).resolve().parents[1]


def make_spec(repo: str = REPO, revision: str | None = None, files=FILES, name: str = "tiny_bert") -> ModelSpec:
    return ModelSpec(name=name, task="token", dim=32, layers=2, heads=4, aliases=(f"en.embed.{name}",),
                     sources=(HubSource(repo=repo, files=files, revision=revision),))


@pytest.fixture()
def hub(isolated_cache, monkeypatch, tiny_bert_dir):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("NLU_LITE_PROGRESS", "0")
    with HubServer() as server:
        server.commit = server.add_repo(REPO, tiny_bert_dir)
        monkeypatch.setenv("HF_ENDPOINT", server.endpoint)
        yield server


def hf_repo_dir(isolated_cache: Path, repo: str = REPO) -> Path:
    return isolated_cache / "hf" / "hub" / ("models--" + repo.replace("/", "--"))


def leftovers(root: Path) -> list[Path]:
    """Partial downloads and scratch folders anywhere under the cache."""
    return [p for p in root.rglob("*") if p.name.endswith((".incomplete", ".tmp")) or p.name.startswith(".tmp-")]


def assert_blobs_match_their_names(repo_dir: Path) -> None:
    """Every blob in the HF cache holds what its name (the Hub's ETag) says."""
    for blob in (repo_dir / "blobs").iterdir():
        data = blob.read_bytes()
        actual = hashlib.sha256(data).hexdigest() if len(blob.name) == 64 else git_blob_sha1(data)
        assert actual == blob.name, f"{blob} does not match its name"


def test_fetch_downloads_into_the_hf_cache_and_a_second_fetch_makes_no_request(hub, isolated_cache, tiny_bert_dir):
    spec = make_spec()
    assert not is_cached(spec)
    folder = fetch(spec)

    assert folder == hf_repo_dir(isolated_cache) / "snapshots" / hub.commit
    for name in (*FILES, "model.safetensors"):
        assert (folder / name).read_bytes() == (tiny_bert_dir / name).read_bytes(), name
    assert not (folder / "pytorch_model.bin").exists()  # only the first weights file that exists
    assert hub.count("GET", "model.safetensors", listener="hub") == 0  # LFS files come from the "CDN"
    assert hub.count("GET", listener="cdn") == 1
    assert hub.count("HEAD", "/resolve/") == 4  # one per file: the Hub was asked once each, nothing more
    assert is_cached(spec)

    hub.reset_counts()
    assert fetch(spec) == folder
    assert fetch(spec, offline=False) == folder
    assert hub.count() == 0


def test_the_cache_is_huggingface_hubs_own_and_transformers_reads_it(hub, isolated_cache, tiny_bert_dir):
    folder = fetch(make_spec())
    from transformers import BertConfig, BertModel

    cache_dir = isolated_cache / "hf" / "hub"
    model = BertModel.from_pretrained(REPO, cache_dir=cache_dir, local_files_only=True)
    assert model.config.hidden_size == json.loads((tiny_bert_dir / "config.json").read_text())["hidden_size"]
    assert BertConfig.from_pretrained(REPO, cache_dir=cache_dir, local_files_only=True).vocab_size > 0
    assert (hf_repo_dir(isolated_cache) / "refs" / "main").read_text() == hub.commit
    assert_blobs_match_their_names(hf_repo_dir(isolated_cache))
    assert folder.is_dir()


def test_token_goes_to_the_hub_but_not_to_the_cdn(hub, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_test_token_123")
    fetch(make_spec())
    hub_auth = {r.headers.get("authorization") for r in hub.requests if r.listener == "hub"}
    cdn_auth = {r.headers.get("authorization") for r in hub.requests if r.listener == "cdn"}
    assert hub_auth == {"Bearer hf_test_token_123"}
    assert cdn_auth == {None}


@pytest.mark.parametrize("how", ["argument", "NLU_LITE_OFFLINE", "HF_HUB_OFFLINE"])
def test_offline_with_an_empty_cache_raises_at_once_without_a_request(hub, isolated_cache, monkeypatch, how):
    if how != "argument":
        monkeypatch.setenv(how, "1")
    spec = make_spec()
    started = time.monotonic()
    with pytest.raises(OfflineError) as info:
        fetch(spec, offline=True if how == "argument" else None)
    assert time.monotonic() - started < 5
    assert hub.count() == 0
    message = str(info.value)
    for needed in ("en.embed.tiny_bert", REPO, "config.json", "vocab.txt", "tokenizer.json", "model.safetensors",
                   "nlu-lite download en.embed.tiny_bert", "path=", str(isolated_cache / "nlu_lite"),
                   str(isolated_cache / "hf" / "hub")):
        assert needed in message, needed
    assert (how if how != "argument" else "offline=True") in message
    assert isinstance(info.value, FileNotFoundError)  # OfflineError is an ArtifactNotFoundError
    assert not hf_repo_dir(isolated_cache).exists()


@pytest.mark.parametrize("how", ["argument", "NLU_LITE_OFFLINE", "HF_HUB_OFFLINE"])
def test_offline_with_the_files_cached_makes_no_request(hub, monkeypatch, how):
    spec = make_spec()
    folder = fetch(spec)
    hub.reset_counts()
    if how != "argument":
        monkeypatch.setenv(how, "true")
    assert fetch(spec, offline=True if how == "argument" else None) == folder
    assert hub.count() == 0


def test_offline_false_argument_beats_the_environment(hub, monkeypatch):
    monkeypatch.setenv("NLU_LITE_OFFLINE", "1")
    assert fetch(make_spec(), offline=False).is_dir()
    assert hub.count("GET", listener="hub") == 3 and hub.count("GET", listener="cdn") == 1


def test_a_pinned_commit_is_requested_by_id_and_reused_without_a_request(hub):
    spec = make_spec(revision=hub.commit)
    folder = fetch(spec)
    assert folder.name == hub.commit
    assert all(f"/resolve/{hub.commit}/" in r.path for r in hub.requests if r.listener == "hub")
    hub.reset_counts()
    assert fetch(spec) == folder
    assert hub.count() == 0


def test_fetch_keeps_the_resolved_commit_and_download_moves_to_the_new_one(hub, isolated_cache, tiny_bert_dir, tmp_path):
    spec = make_spec()
    old = fetch(spec)
    newer = build_bert_checkpoint(tmp_path / "newer", seed=1)
    new_commit = hub.add_repo(REPO, newer)
    assert new_commit != hub.commit
    hub.reset_counts()

    assert fetch(spec) == old  # no request: the remembered commit is still complete
    assert hub.count() == 0

    (folder,) = download([spec], progress=False)
    assert folder.name == new_commit
    assert (folder / "model.safetensors").read_bytes() == (newer / "model.safetensors").read_bytes()
    assert (old / "model.safetensors").read_bytes() == (tiny_bert_dir / "model.safetensors").read_bytes()
    hub.reset_counts()
    assert fetch(spec) == folder
    assert hub.count() == 0


def test_a_newer_commit_fetched_by_another_library_does_not_make_fetch_go_online(hub, isolated_cache, tmp_path):
    spec = make_spec()
    ours = fetch(spec)
    from huggingface_hub import hf_hub_download

    newer = hub.add_repo(REPO, build_bert_checkpoint(tmp_path / "newer", seed=2))
    # e.g. transformers fetched only config.json of the new main: refs/main moves, its snapshot is partial
    hf_hub_download(REPO, "config.json", cache_dir=isolated_cache / "hf" / "hub", endpoint=hub.endpoint)
    assert (hf_repo_dir(isolated_cache) / "refs" / "main").read_text() == newer
    hub.reset_counts()
    assert fetch(spec) == ours
    assert fetch(spec, offline=True) == ours
    assert hub.count() == 0


def test_a_connection_cut_half_way_is_retried_and_the_file_is_whole(hub, isolated_cache, tiny_bert_dir):
    hub.fail("model.safetensors", "cut")
    folder = fetch(make_spec())
    assert hub.count("GET", listener="cdn") == 2  # cut, then fetched again
    assert (folder / "model.safetensors").read_bytes() == (tiny_bert_dir / "model.safetensors").read_bytes()
    assert leftovers(isolated_cache) == []


def test_a_connection_that_always_breaks_fails_clearly_and_leaves_nothing_partial(hub, isolated_cache, tiny_bert_dir):
    hub.fail("model.safetensors", "cut", times=None)
    spec = make_spec()
    with pytest.raises(ArtifactNotFoundError) as info:
        fetch(spec)
    message = str(info.value)
    assert "model.safetensors" in message and REPO in message and "nlu-lite download" in message
    assert hub.count("GET", listener="cdn") >= 2  # huggingface_hub did retry
    assert leftovers(isolated_cache) == []
    repo_dir = hf_repo_dir(isolated_cache)
    assert not (repo_dir / "snapshots" / hub.commit / "model.safetensors").exists()
    assert_blobs_match_their_names(repo_dir)
    assert not is_cached(spec)

    hub.clear_faults()
    folder = fetch(spec)
    assert (folder / "model.safetensors").read_bytes() == (tiny_bert_dir / "model.safetensors").read_bytes()


@pytest.mark.parametrize("name", ["model.safetensors", "vocab.txt"])  # an LFS file (sha256), a git file (sha1)
def test_corrupted_bytes_are_refused_and_removed_then_a_good_fetch_works(hub, isolated_cache, tiny_bert_dir, name):
    hub.fail(name, "corrupt")
    spec = make_spec()
    with pytest.raises(IntegrityError) as info:
        fetch(spec)
    assert name in str(info.value) and "removed" in str(info.value)
    repo_dir = hf_repo_dir(isolated_cache)
    assert not (repo_dir / "snapshots" / hub.commit / name).exists()
    assert_blobs_match_their_names(repo_dir)
    assert leftovers(isolated_cache) == []
    assert not is_cached(spec)

    folder = fetch(spec)  # the fault was one-off
    assert (folder / name).read_bytes() == (tiny_bert_dir / name).read_bytes()


def test_a_missing_file_is_a_clear_404_error(hub):
    spec = make_spec(files=("config.json", "vocab.txt", "special_tokens_map.json"))
    with pytest.raises(ArtifactNotFoundError) as info:
        fetch(spec)
    assert "special_tokens_map.json" in str(info.value) and "'files'" in str(info.value)
    assert not is_cached(spec)


def test_an_unknown_repo_names_the_repo_and_the_token(hub):
    with pytest.raises(ArtifactNotFoundError) as info:
        fetch(make_spec(repo="org/does-not-exist"))
    assert "org/does-not-exist" in str(info.value) and "HF_TOKEN" in str(info.value)


def test_weights_fall_back_to_pytorch_model_bin_when_safetensors_is_404(hub, isolated_cache, tmp_path):
    folder_bin = build_bert_checkpoint(tmp_path / "bin_only", weights="bin")
    commit = hub.add_repo("org/bin-only", folder_bin)
    folder = fetch(make_spec(repo="org/bin-only"))
    assert folder.name == commit
    assert (folder / "pytorch_model.bin").read_bytes() == (folder_bin / "pytorch_model.bin").read_bytes()
    assert not (folder / "model.safetensors").exists()
    assert hub.count("HEAD", "/model.safetensors") == 1  # asked, answered 404, moved on
    hub.reset_counts()
    assert fetch(make_spec(repo="org/bin-only")) == folder
    assert hub.count() == 0


def test_a_500_on_the_metadata_request_is_retried(hub, tiny_bert_dir):
    hub.fail("config.json", "status", status=500, method="HEAD")
    folder = fetch(make_spec())
    assert hub.count("HEAD", "/config.json") == 2
    assert (folder / "config.json").read_bytes() == (tiny_bert_dir / "config.json").read_bytes()


def test_a_500_on_the_download_is_a_clear_error_and_nothing_is_kept(hub, isolated_cache):
    hub.fail("model.safetensors", "status", status=500, times=None)
    spec = make_spec()
    with pytest.raises(ArtifactNotFoundError) as info:
        fetch(spec)
    assert "500" in str(info.value) and "model.safetensors" in str(info.value)
    assert leftovers(isolated_cache) == []
    assert not (hf_repo_dir(isolated_cache) / "snapshots" / hub.commit / "model.safetensors").exists()
    hub.clear_faults()
    assert fetch(spec).is_dir()


@pytest.mark.parametrize("progress, env, shown", [(None, "0", False), (None, None, True), (False, None, False),
                                                   (True, "0", True)])
def test_progress_bars_follow_the_argument_then_the_environment(hub, monkeypatch, capsys, progress, env, shown):
    if env is None:
        monkeypatch.delenv("NLU_LITE_PROGRESS", raising=False)
    else:
        monkeypatch.setenv("NLU_LITE_PROGRESS", env)
    fetch(make_spec(), progress=progress)
    err = capsys.readouterr().err
    assert ("model.safetensors" in err) == shown, err


RACE = """
import json, sys, time
from pathlib import Path
from nlu_lite.artifacts import fetch
from nlu_lite.registry import HubSource, ModelSpec
import huggingface_hub  # imported before the start signal, so both racers start level

Path(sys.argv[1]).touch()
deadline = time.time() + 60
while not Path(sys.argv[2]).exists():
    if time.time() > deadline:
        sys.exit("no start signal")
    time.sleep(0.005)
spec = ModelSpec(name="tiny_bert", task="token", dim=32, layers=2, heads=4,
                 sources=(HubSource(repo=sys.argv[3], files=("config.json", "vocab.txt", "tokenizer.json")),))
start = time.time()
folder = fetch(spec, progress=False)
print(json.dumps({"folder": str(folder), "start": start, "end": time.time()}))
"""


def test_two_processes_fetching_the_same_model_download_it_once(hub, isolated_cache, tmp_path, tiny_bert_dir):
    hub.fail("model.safetensors", "slow", delay=1.5)  # hold the first download open while the second arrives
    script = tmp_path / "race.py"
    script.write_text(RACE)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    go = tmp_path / "go"
    procs = [
        subprocess.Popen([sys.executable, str(script), str(tmp_path / f"ready{i}"), str(go), REPO],
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i in range(2)
    ]
    deadline = time.time() + 60
    while not all((tmp_path / f"ready{i}").exists() for i in range(2)):
        assert time.time() < deadline and all(p.poll() is None for p in procs), "a racer did not start"
        time.sleep(0.01)
    go.touch()
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))

    folders = {r["folder"] for r in results}
    assert len(folders) == 1
    folder = Path(folders.pop())
    for name in (*FILES, "model.safetensors"):
        assert (folder / name).read_bytes() == (tiny_bert_dir / name).read_bytes()
    assert hub.count("GET", listener="cdn") == 1  # one download of the weights
    assert hub.count("GET", "/config.json") == 1
    assert hub.count("HEAD", "/config.json") == 1  # the waiting process reused the files without asking
    weights_get = next(r for r in hub.requests if r.listener == "cdn")
    assert all(r["start"] < weights_get.time + 1.5 for r in results)  # both were running during the download
    assert leftovers(isolated_cache) == []


def test_the_test_server_is_bounded_and_stops_by_itself():
    import urllib.error
    import urllib.request

    server = HubServer(max_requests=2, lifetime=30).start()
    url = server.add_static("/files/x", b"hello")
    assert urllib.request.urlopen(url, timeout=5).read() == b"hello"
    assert urllib.request.urlopen(url, timeout=5).read() == b"hello"
    with pytest.raises(urllib.error.HTTPError) as info:  # over the limit: refused, then the server shuts down
        urllib.request.urlopen(url, timeout=5)
    assert info.value.code == 503
    deadline = time.time() + 10
    while server._servers and time.time() < deadline:
        time.sleep(0.05)
    assert not server._servers
    with pytest.raises(OSError):
        urllib.request.urlopen(url, timeout=2)
