"""A Hugging Face Hub look-alike on 127.0.0.1, for tests that must not touch the network.

It answers what ``huggingface_hub`` asks of the real Hub:

* ``HEAD``/``GET /{repo}/resolve/{revision}/{file}``: regular files with ``ETag`` (the git
  blob sha1), ``X-Repo-Commit`` and ``Content-Length``; LFS files (weights) with a 302 to a
  second listener (the "CDN", another origin, as on the real Hub) carrying ``X-Linked-Etag``
  (the sha256) and ``X-Linked-Size``;
* 404s with the ``X-Error-Code`` the Hub sends (``RepoNotFound``, ``RevisionNotFound``,
  ``EntryNotFound``) so huggingface_hub raises its usual errors;
* ``Range`` requests, so an interrupted download can resume;
* plain static files (``add_static``), for sources that download an archive by URL.

Faults are scripted per file: ``fail("model.safetensors", "cut")`` cuts the connection half
way, ``"corrupt"`` flips a byte (same size, wrong hash), ``"status"`` answers ``status``
(404, 500, ...), ``"slow"`` waits ``delay`` seconds before the body. Every request is
logged in ``requests`` (``count()`` filters them).

The server stops by itself after ``lifetime`` seconds or ``max_requests`` requests, so a
test that forgets ``stop()`` cannot leave it running::

    with HubServer() as hub:
        commit = hub.add_repo("org/tiny", folder)
        monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
        ...
        assert hub.count("GET") == 3
"""
from __future__ import annotations

import hashlib
import http.server
import re
import socket
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

LFS_SUFFIXES = (".safetensors", ".bin", ".onnx", ".h5", ".msgpack", ".zip", ".gz")
_RESOLVE = re.compile(r"^/(?P<repo>[^/]+(?:/[^/]+)?)/resolve/(?P<revision>[^/]+)/(?P<file>.+)$")
_CDN = re.compile(r"^/cdn/(?P<sha256>[0-9a-f]{64})$")


def git_blob_sha1(data: bytes) -> str:
    """The git object id of a file, which the Hub sends as the ETag of non-LFS files."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Request:
    method: str
    path: str
    listener: str  # "hub" or "cdn"
    headers: dict[str, str]
    time: float


@dataclass
class Fault:
    name: str  # a file name ("model.safetensors"), or a static path
    mode: str  # "cut" | "corrupt" | "status" | "slow"
    method: str | None = "GET"  # None: any method
    times: int | None = 1  # None: forever
    status: int = 500
    delay: float = 0.0
    cut_at: float = 0.5  # "cut": stop at this fraction of the whole file (an absolute offset)
    used: int = 0


@dataclass
class _Repo:
    files: dict[str, bytes]
    commit: str
    refs: dict[str, str] = field(default_factory=dict)


class HubServer:
    """Two loopback listeners (hub + CDN) sharing one request log and one fault list."""

    def __init__(self, *, max_requests: int = 500, lifetime: float = 300.0, lfs_redirect: bool = True) -> None:
        self.max_requests = max_requests
        self.lifetime = lifetime
        self.lfs_redirect = lfs_redirect
        self.requests: list[Request] = []
        self._repos: dict[str, _Repo] = {}
        self._commits: dict[str, tuple[str, dict[str, bytes]]] = {}  # commit -> (repo, files)
        self._blobs: dict[str, bytes] = {}  # sha256 -> bytes (the CDN)
        self._static: dict[str, bytes] = {}
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self._servers: list[http.server.ThreadingHTTPServer] = []
        self._threads: list[threading.Thread] = []
        self._timer: threading.Timer | None = None
        self.endpoint = ""
        self.cdn = ""

    # -- content -------------------------------------------------------------------------
    def add_repo(self, repo: str, files: Path | Mapping[str, bytes], *, revision: str = "main") -> str:
        """Publish ``files`` (a folder or name -> bytes) as a new commit of ``repo``; returns its id."""
        if isinstance(files, Path):
            files = {p.relative_to(files).as_posix(): p.read_bytes() for p in sorted(files.rglob("*")) if p.is_file()}
        files = dict(files)
        digest = hashlib.sha1(repo.encode())
        for name in sorted(files):
            digest.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
        with self._lock:
            previous = self._repos.get(repo)
            digest.update((previous.commit if previous else "").encode())
            commit = digest.hexdigest()
            refs = dict(previous.refs) if previous else {}
            refs[revision] = commit
            self._repos[repo] = _Repo(files=files, commit=commit, refs=refs)
            self._commits[commit] = (repo, files)
            for data in files.values():
                self._blobs[hashlib.sha256(data).hexdigest()] = data
        return commit

    def add_static(self, path: str, data: bytes) -> str:
        """Serve ``data`` at ``path`` on the hub listener; returns its full URL."""
        if not path.startswith("/"):
            path = "/" + path
        with self._lock:
            self._static[path] = data
        return self.endpoint + path

    def fail(self, name: str, mode: str, **options) -> Fault:
        """Script a fault for requests of file ``name`` (see :class:`Fault` for the options)."""
        if mode not in ("cut", "corrupt", "status", "slow"):
            raise ValueError(f"unknown fault mode {mode!r}")
        fault = Fault(name=name, mode=mode, **options)
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    # -- observation ---------------------------------------------------------------------
    def count(self, method: str | None = None, contains: str = "", listener: str | None = None) -> int:
        """How many requests matched (all requests when called without arguments)."""
        with self._lock:
            return sum(
                1 for r in self.requests
                if (method is None or r.method == method)
                and contains in r.path
                and (listener is None or r.listener == listener)
            )

    def reset_counts(self) -> None:
        with self._lock:
            self.requests.clear()

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> HubServer:
        # the CDN on another loopback host, as the real one is: huggingface_hub 1.x follows a redirect
        # to the same host when it asks for a file's details, which would hide the LFS redirect
        for role, host in (("hub", "127.0.0.1"), ("cdn", "127.0.0.2")):
            server = http.server.ThreadingHTTPServer((host, 0), _make_handler(self, role))
            server.daemon_threads = True
            thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
            thread.start()
            self._servers.append(server)
            self._threads.append(thread)
        self.endpoint = f"http://127.0.0.1:{self._servers[0].server_address[1]}"
        self.cdn = f"http://127.0.0.2:{self._servers[1].server_address[1]}"
        self._timer = threading.Timer(self.lifetime, self.stop)
        self._timer.daemon = True
        self._timer.start()
        return self

    def stop(self) -> None:
        if self._timer is not None and threading.current_thread() is not self._timer:
            self._timer.cancel()
        with self._lock:  # idempotent: the timer, the request limit and the test may all call it
            servers, self._servers = self._servers, []
        for server in servers:
            server.shutdown()
            server.server_close()

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- used by the handler -------------------------------------------------------------
    def _log(self, handler: http.server.BaseHTTPRequestHandler, role: str) -> bool:
        with self._lock:
            self.requests.append(Request(
                method=handler.command,
                path=handler.path,
                listener=role,
                headers={k.lower(): v for k, v in handler.headers.items()},
                time=time.time(),
            ))
            over = len(self.requests) > self.max_requests
        if over:  # bounded: stop serving, from another thread (shutdown() waits for serve_forever)
            threading.Thread(target=self.stop, daemon=True).start()
        return not over

    def _take_fault(self, name: str, method: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.name != name or (fault.method is not None and fault.method != method):
                    continue
                if fault.times is not None and fault.used >= fault.times:
                    continue
                fault.used += 1
                return fault
        return None


def _make_handler(hub: HubServer, role: str) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = 30  # a stuck client cannot hold a thread for ever

        def log_message(self, format: str, *args) -> None:  # keep test output clean
            pass

        def do_HEAD(self) -> None:
            self._serve(body=False)

        def do_GET(self) -> None:
            self._serve(body=True)

        # -- routing -------------------------------------------------------------------
        def _serve(self, body: bool) -> None:
            if not hub._log(self, role):
                return self._plain(503, b"request limit reached", body)
            path = urlsplit(self.path).path
            if role == "cdn":
                match = _CDN.match(path)
                data = hub._blobs.get(match["sha256"]) if match else None
                if data is None:
                    return self._plain(404, b"no such blob", body)
                name = self._cdn_name(match["sha256"])
                return self._send_file(data, name, body, {
                    "ETag": f'"{match["sha256"]}"',
                    "Content-Disposition": f'inline; filename*=UTF-8\'\'{name}; filename="{name}";',  # as the Hub's CDN
                })
            if path in hub._static:
                return self._send_file(hub._static[path], path, body, {"ETag": f'"{hashlib.sha256(hub._static[path]).hexdigest()}"'})
            match = _RESOLVE.match(path)
            if match is None:
                return self._plain(404, b"not found", body)
            self._resolve(unquote(match["repo"]), unquote(match["revision"]), unquote(match["file"]), body)

        def _cdn_name(self, sha256: str) -> str:
            for _, files in hub._commits.values():
                for name, data in files.items():
                    if hashlib.sha256(data).hexdigest() == sha256:
                        return name.rsplit("/", 1)[-1]
            return sha256

        def _resolve(self, repo_id: str, revision: str, name: str, body: bool) -> None:
            repo = hub._repos.get(repo_id)
            if repo is None:
                return self._plain(404, b"Repository not found", body, {"X-Error-Code": "RepoNotFound"})
            commit = repo.refs.get(revision, revision)
            if commit not in hub._commits or hub._commits[commit][0] != repo_id:
                return self._plain(404, b"Revision not found", body, {"X-Error-Code": "RevisionNotFound"})
            files = hub._commits[commit][1]
            base = name.rsplit("/", 1)[-1]
            fault = hub._take_fault(base, self.command)
            if fault is not None and fault.mode == "status":
                return self._plain(fault.status, b"scripted failure", body, {"X-Repo-Commit": commit})
            if name not in files:
                return self._plain(404, b"Entry not found", body,
                                   {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": commit})
            data = files[name]
            headers = {"X-Repo-Commit": commit}
            if hub.lfs_redirect and name.endswith(LFS_SUFFIXES):
                sha = hashlib.sha256(data).hexdigest()
                headers.update({
                    "X-Linked-Etag": f'"{sha}"',
                    "X-Linked-Size": str(len(data)),
                    "ETag": f'"{sha}"',
                    "Location": f"{hub.cdn}/cdn/{sha}",
                })
                if fault is not None:  # the fault belongs to the CDN leg of this file
                    with hub._lock:
                        fault.used -= 1
                return self._plain(302, b"", body, headers)
            headers["ETag"] = f'"{git_blob_sha1(data)}"'
            self._send_file(data, base, body, headers, fault)

        # -- responses -----------------------------------------------------------------
        def _plain(self, status: int, text: bytes, body: bool, headers: Mapping[str, str] | None = None) -> None:
            self.send_response(status)
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(text)))
            self.end_headers()
            if body:
                self.wfile.write(text)

        def _send_file(self, data: bytes, name: str, body: bool, headers: Mapping[str, str],
                       fault: Fault | None = None) -> None:
            if fault is None:
                fault = hub._take_fault(name.rsplit("/", 1)[-1], self.command) or hub._take_fault(name, self.command)
            if fault is not None and fault.mode == "status":
                return self._plain(fault.status, b"scripted failure", body, headers)
            start, end = 0, len(data)
            status = 200
            ranged = self.headers.get("Range")
            match = re.fullmatch(r"bytes=(\d+)-(\d*)", ranged or "")
            if match:
                start = int(match[1])
                end = min(int(match[2]) + 1, len(data)) if match[2] else len(data)
                if start >= len(data):
                    return self._plain(416, b"range not satisfiable", body, {"Content-Range": f"bytes */{len(data)}"})
                status = 206
            payload = data
            if fault is not None and fault.mode == "corrupt":
                middle = len(data) // 2
                payload = data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1:]
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Length", str(end - start))
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{end - 1}/{len(data)}")
            self.send_header("Content-Type", "application/octet-stream")
            self.end_headers()
            if not body:
                return
            if fault is not None and fault.mode == "slow":
                time.sleep(fault.delay)
            if fault is not None and fault.mode == "cut":
                stop = max(start, min(end, int(len(data) * fault.cut_at)))
                self.wfile.write(payload[start:stop])
                self.wfile.flush()
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                return
            self.wfile.write(payload[start:end])

    return Handler
