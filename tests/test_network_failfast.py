"""No network at all fails in a second or two; a network that fails for a moment is still retried.

"No network" is made real where it can be (a port nothing listens on: the connection is refused)
and simulated where it cannot be offline (a name that does not resolve: ``socket.getaddrinfo``
raises what the resolver raises). Retries for cuts and 5xx: tests/test_artifacts_hub.py and
tests/test_artifacts_sources.py (``..._is_retried``, ``..._resumes_with_range``), unchanged.
"""
from __future__ import annotations

import socket
import time

import pytest
from _hub_server import HubServer

from nlu_lite.artifacts import common, fetch
from nlu_lite.artifacts.url import download_file
from nlu_lite.errors import ArtifactNotFoundError, DownloadError
from nlu_lite.pipeline import Pipeline
from nlu_lite.registry import HubSource, ModelSpec

FAST = 2.5  # seconds: what "fail fast" means here (the old behaviour: about 23 s of retries)
UNRESOLVABLE = "hub.nlu-lite-test.invalid"
SPEC = ModelSpec(name="unreachable", task="token", dim=32, layers=2, heads=4, aliases=("en.embed.unreachable",),
                 sources=(HubSource(repo="org/unreachable"),))


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on: connecting is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture()
def no_proxy(isolated_cache, monkeypatch):
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    monkeypatch.setenv("NLU_LITE_PROGRESS", "0")


@pytest.fixture()
def unresolvable(monkeypatch):
    """``UNRESOLVABLE`` does not resolve, as with no DNS server or no such name; other names as usual."""
    real = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        if host == UNRESOLVABLE:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def timed_failure(call, error=ArtifactNotFoundError):
    started = time.monotonic()
    with pytest.raises(error) as info:
        call()
    return time.monotonic() - started, str(info.value)


def test_hub_refused_connection_fails_fast_naming_the_fix(no_proxy, monkeypatch):
    port = closed_port()
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    took, message = timed_failure(lambda: fetch(SPEC))
    assert took < FAST
    for needed in (f"cannot reach 127.0.0.1:{port}", "refused", "HF_ENDPOINT", "nlu-lite download", "path="):
        assert needed in message, needed


def test_hub_name_that_does_not_resolve_fails_fast(no_proxy, unresolvable, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", f"https://{UNRESOLVABLE}")
    took, message = timed_failure(lambda: Pipeline.from_spec(SPEC, progress=False))
    assert took < FAST
    assert f"cannot reach {UNRESOLVABLE}:443" in message and "does not resolve" in message
    assert "en.embed.unreachable" in message


def test_an_unreachable_proxy_is_named(no_proxy, unresolvable, monkeypatch):
    port = closed_port()
    monkeypatch.setenv("HF_ENDPOINT", f"https://{UNRESOLVABLE}")  # through a proxy, only the proxy is looked up
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{port}")
    took, message = timed_failure(lambda: fetch(SPEC))
    assert took < FAST and f"the proxy 127.0.0.1:{port}" in message and "HTTPS_PROXY" in message


def test_a_name_lookup_that_hangs_gives_up_after_the_connect_timeout(no_proxy, monkeypatch):
    real = socket.getaddrinfo

    def hanging(host, *args, **kwargs):
        if host != UNRESOLVABLE:
            return real(host, *args, **kwargs)
        time.sleep(2)  # a resolver that does not answer (it gives up after its own, longer, timeout)
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    monkeypatch.setattr(socket, "getaddrinfo", hanging)
    monkeypatch.setattr(common, "CONNECT_TIMEOUT", 0.3)
    monkeypatch.setenv("HF_ENDPOINT", f"https://{UNRESOLVABLE}")
    took, message = timed_failure(lambda: fetch(SPEC))
    assert took < FAST and "no answer within" in message


def test_a_reachable_hub_is_not_refused_by_the_check(no_proxy, monkeypatch, tiny_bert_dir):
    with HubServer() as hub:
        hub.add_repo("org/unreachable", tiny_bert_dir)
        monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
        assert fetch(SPEC).is_dir()
        assert hub.count("GET") == 3  # the check opened a connection but sent no request


def test_url_refused_connection_fails_at_the_first_attempt(no_proxy, tmp_path):
    url = f"http://127.0.0.1:{closed_port()}/files/model.zip"
    took, message = timed_failure(lambda: download_file(url, tmp_path / "model.zip", progress=False), DownloadError)
    assert took < 1.0  # no 0.5 + 1 + 2 s of backoff
    assert "cannot reach" in message and "Nothing was retried" in message and "HTTPS_PROXY" in message
    assert not (tmp_path / "model.zip").exists()


def test_url_name_that_does_not_resolve_fails_at_the_first_attempt(no_proxy, unresolvable, tmp_path):
    took, message = timed_failure(
        lambda: download_file(f"https://{UNRESOLVABLE}/model.zip", tmp_path / "m.zip", progress=False), DownloadError)
    assert took < 1.0 and "does not resolve" in message


def test_url_a_503_is_still_retried(no_proxy, tmp_path):
    with HubServer() as server:
        url = server.add_static("/files/model.bin", b"weights" * 1000)
        server.fail("/files/model.bin", "status", status=503)
        assert download_file(url, tmp_path / "model.bin", progress=False).read_bytes() == b"weights" * 1000
        assert server.count("GET", "/files/model.bin") == 2
