"""A pod with its Desk and its REST app under a real gunicorn, for tests.

`live_pod(root, nats_url)` starts a real Pod (on the test's nats-server), the
Desk chart, and gunicorn on a free port (``--no-control-socket``, through
:func:`computepods.api.serve.start_http`); on exit it stops gunicorn with
SIGTERM and FAILS the test if gunicorn had to be killed (falcon's own model,
tests/test_wsgi_servers.py).  `http` is a small stdlib client that never
raises on an error status.
"""
from __future__ import annotations

import contextlib
import http.client
import json
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator
from urllib.parse import urlsplit

import pytest

from computepods.bus.natsd import free_port
from computepods.charts.desk import Desk
from computepods.pod.pod import Pod, PodOptions
from computepods.api.serve import HttpServer, start_http
from cpodrun import write

GATED = """
    [project]
    default = ["out/all.txt"]

    [alias]
    broken = ["out/broken.txt"]

    [[rule]]
    name = "copy"
    inputs = ["src/%.txt"]
    outputs = ["build/%.txt"]
    command = "cp {in} {out}"

    [[rule]]
    name = "gate"
    inputs = ["build/a.txt"]
    outputs = ["build/gated.txt"]
    command = "while [ ! -f gate ]; do sleep 0.01; done; cp {in} {out}"

    [[rule]]
    name = "all"
    inputs = ["build/gated.txt", "build/b.txt"]
    outputs = ["out/all.txt"]
    command = "cat {in} > {out}"

    [[rule]]
    name = "broken"
    inputs = ["src/a.txt"]
    outputs = ["out/broken.txt"]
    command = "echo compiling {in}; echo 'error: no such thing' >&2; exit 3"
"""


def gated_project(root: Path) -> Path:
    """out/all.txt waits for a file `gate` in the root; out/broken.txt fails."""
    return write(root, {"computepods.toml": GATED, "src/a.txt": "a\n", "src/b.txt": "b\n"})


@dataclass
class Response:
    status: int
    headers: dict
    body: bytes

    @property
    def json(self):
        return json.loads(self.body)


@dataclass
class Live:
    root: Path
    pod: Pod
    desk: Desk
    server: HttpServer

    @property
    def url(self) -> str:
        return self.server.url

    def request(self, method: str, path: str, body: bytes | dict | None = None,
                headers: dict | None = None, timeout: float = 30) -> Response:
        return request(self.url, method, path, body, headers, timeout)

    def get(self, path: str, **kw) -> Response:
        return self.request("GET", path, **kw)

    def post_build(self, targets: list[str] | None = None, token: str | None = None) -> Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return self.request("POST", "/v1/builds", {"targets": targets or []}, headers)

    def open_gate(self) -> None:
        (self.root / "gate").write_text("open\n")


def request(url: str, method: str, path: str, body: bytes | dict | None = None,
            headers: dict | None = None, timeout: float = 30) -> Response:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    if isinstance(body, dict):
        body = json.dumps(body).encode()
    headers = dict(headers or {})
    if body is not None and not any(k.lower() == "content-type" for k in headers):
        headers["Content-Type"] = "application/json"     # as the API wants a body
    try:
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        return Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
    finally:
        conn.close()


def raw_exchange(url: str, data: bytes, timeout: float = 30) -> Response:
    """Send `data` as it is (a whole request, framed by hand, ending with
    ``Connection: close``) and parse the one answer."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=timeout) as sock:
        sock.sendall(data)
        got = bytearray()
        while chunk := sock.recv(65536):
            got += chunk
    head, _, body = bytes(got).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    return Response(int(lines[0].split()[1]), headers, body)


def chunked(body: bytes, sizes: list[int]) -> bytes:
    """`body` in chunked framing, cut into pieces of `sizes` (the rest last)."""
    out, at = bytearray(), 0
    for size in [*sizes, len(body)]:
        piece = body[at:at + size]
        at += len(piece)
        if piece:
            out += b"%x\r\n" % len(piece) + piece + b"\r\n"
    return bytes(out + b"0\r\n\r\n")


def sse_events(url: str, path: str, timeout: float = 60, headers: dict | None = None,
               on_event=None) -> list[tuple[int, str, dict]]:
    """Read a whole event stream: (id, event, data) for each event, to its
    end; http.client.IncompleteRead if the server cut it instead of ending it."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    out = []
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        assert resp.status == 200, (resp.status, resp.read())
        assert resp.getheader("Content-Type").startswith("text/event-stream")
        fields: dict = {}
        while True:
            line = resp.readline()
            if not line:
                resp.read()        # raises IncompleteRead if the stream was cut, not ended
                return out
            line = line.decode().rstrip("\n")
            if line == "":
                if "data" in fields:
                    ev = (int(fields["id"]), fields["event"], json.loads(fields["data"]))
                    out.append(ev)
                    if on_event:
                        on_event(ev)
                fields = {}
            elif not line.startswith(":"):
                key, _, value = line.partition(":")
                fields[key] = value.lstrip(" ")
    finally:
        conn.close()


@contextlib.contextmanager
def live_pod(root: Path, nats_url: str, *, token: str | None = None,
             workers: int = 2, graceful_s: float = 5) -> Iterator[Live]:
    pod = Pod(root, PodOptions(nats_url=nats_url, slots=2)).start()
    server = None
    try:
        desk = Desk(pod.bridge, root)
        desk.start()
        pod.charts.append(desk)          # stopped with the pod's charts
        server = start_http(root, nats_url, "cp", bind=f"127.0.0.1:{free_port()}",
                            workers=workers, threads=8, token=token or "",
                            graceful_s=graceful_s)
        desk.http = server.url
        yield Live(root, pod, desk, server)
    finally:
        killed = server.stop() if server else False
        pod.stop()
        if killed:
            pytest.fail(f"gunicorn did not stop on SIGTERM and had to be killed:\n"
                        f"{server.log_tail()}")


class SlowCrowd:
    """Connections that hold a server's attention without finishing: a
    slowloris (a request line and part of the headers, then nothing), an
    idle one (connected, nothing sent), a kept-alive one (one request
    answered, then idle) and an open event stream.  Closes them all on exit."""

    def __init__(self, url: str):
        parts = urlsplit(url)
        self.addr, self.host = (parts.hostname, parts.port), parts.netloc
        self.socks: list[socket.socket] = []
        self.streams: list[http.client.HTTPConnection] = []
        self.refused_streams = 0

    def _connect(self) -> socket.socket:
        sock = socket.create_connection(self.addr, timeout=30)
        self.socks.append(sock)
        return sock

    def slowloris(self, n: int, rng) -> None:
        for _ in range(n):
            head = f"GET /healthz HTTP/1.1\r\nHost: {self.host}\r\nX-Slow: ".encode()
            self._connect().sendall(head[:rng.randrange(1, len(head) + 1)])

    def idle(self, n: int) -> None:
        for _ in range(n):
            self._connect()

    def kept_alive(self, n: int) -> None:
        for _ in range(n):
            sock = self._connect()
            sock.sendall(f"GET /v1/openapi.json HTTP/1.1\r\nHost: {self.host}\r\n\r\n".encode())
            f = sock.makefile("rb")
            status = f.readline()
            assert status.split()[1] == b"200", status
            length = 0
            while (line := f.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            f.read(length)

    def event_streams(self, n: int, build_id: str) -> None:
        """Open `n` streams of a running build; those the server refuses
        (503: it holds as many as it may) are counted, not kept."""
        for _ in range(n):
            conn = http.client.HTTPConnection(*self.addr, timeout=30)
            conn.request("GET", f"/v1/builds/{build_id}/events")
            resp = conn.getresponse()
            assert resp.status in (200, 503), (resp.status, resp.read()[:300])
            if resp.status == 200:
                self.streams.append(conn)
            else:
                resp.read()
                conn.close()
                self.refused_streams += 1

    def close(self) -> None:
        for sock in self.socks:
            sock.close()
        for conn in self.streams:
            conn.close()
        self.socks, self.streams = [], []

    def __enter__(self) -> "SlowCrowd":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def timed_health(url: str, timeout: float = 10) -> tuple[int, float]:
    """(status, seconds) of one GET /healthz on a fresh connection."""
    start = time.monotonic()
    try:
        status = request(url, "GET", "/healthz", timeout=timeout).status
    except (OSError, http.client.HTTPException):
        status = 0
    return status, time.monotonic() - start
