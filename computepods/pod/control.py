"""The pod's control socket: HTTP on a Unix socket, for the thin client.

Three routes, served on threads so a long build never blocks ``status``:

- ``GET /status``: the pod's pid, root, NATS URL, HTTP address, last build;
- ``POST /build``: body ``{targets, cwd, keep_going, dry_run}``; the answer
  streams one JSON line per build event and ends with ``{"t": "exit"}``;
  with ``"render"`` in the body (the thin client, :mod:`computepods.cli.quick`)
  it streams what to print instead, in frames (:mod:`computepods.pod.rendered`);
- ``POST /down``: the pod stops after answering.

The other end is :mod:`computepods.pod.handoff` (standard library only), or
the thin client.  The
socket file is made private to the user (0600) before it is listened on:
whoever can connect can start builds.
"""
from __future__ import annotations

import http.server
import json
import logging
import os
import select
import socketserver
import threading
from typing import Callable, Protocol

from computepods.errors import EXIT_CANNOT_START, ComputePodsError
from computepods.pod.rendered import RenderedBuild

log = logging.getLogger("computepods.pod.control")

MAX_BODY_BYTES = 1 << 20          # a build request is a few targets


class Controlled(Protocol):
    def status(self) -> dict: ...
    def build(self, request: dict, emit: Callable[[dict], None]) -> int: ...
    def abandoned(self, accepted: dict) -> None: ...   # the client of a build went away
    def request_stop(self) -> None: ...


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def __init__(self, path: str, target: Controlled):
        self.target = target
        super().__init__(path, _Handler, bind_and_activate=False)
        old = os.umask(0o177)
        try:
            self.server_bind()
        finally:
            os.umask(old)
        self.server_activate()


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"      # the answer ends when the connection closes
    server: _Server

    def do_GET(self) -> None:
        if self.path == "/status":
            return self._json(200, self.server.target.status())
        self._json(404, {"error": f"no route {self.path}"})

    def do_POST(self) -> None:
        try:
            body = self._body()
        except ValueError as exc:
            return self._json(400, {"error": str(exc), "code": EXIT_CANNOT_START})
        if self.path == "/down":
            self._json(202, {"stopping": True})
            self.server.target.request_stop()
        elif self.path == "/build":
            self._build(body)
        else:
            self._json(404, {"error": f"no route {self.path}"})

    def _build(self, request: dict) -> None:
        self.send_response(200)
        render = request.get("render")
        rendered = isinstance(render, dict)
        self.send_header("Content-Type", "application/x-cpod-frames" if rendered
                         else "application/x-ndjson")
        self.end_headers()
        lock = threading.Lock()
        accepted: dict = {}
        finished = threading.Event()

        def send(data: bytes) -> None:
            with lock:
                try:
                    self.wfile.write(data)
                    self.wfile.flush()
                except OSError:
                    pass            # the client went away: _watch_client saw it

        if rendered:
            shown = RenderedBuild(render, os.getpid(), send)

        def emit(ev: dict) -> None:
            if ev.get("t") == "accepted":
                accepted.update(ev)
            if rendered:
                shown.event(ev)
            else:
                send(json.dumps(ev, separators=(",", ":")).encode() + b"\n")

        threading.Thread(target=self._watch_client, args=(finished, accepted),
                         name="control:client", daemon=True).start()
        try:
            code = self.server.target.build(request, emit)
        except ComputePodsError as exc:
            emit({"t": "done", "ok": False, "code": exc.exit_code, "error": str(exc)})
            code = exc.exit_code
        except Exception as exc:          # a bug must reach the user, not hang them
            log.exception("control: build request failed")
            emit({"t": "done", "ok": False, "code": 1, "error": f"internal error: {exc}"})
            code = 1
        finished.set()
        if rendered:
            shown.exit(code)
        else:
            emit({"t": "exit", "code": code})

    def _watch_client(self, finished: threading.Event, accepted: dict) -> None:
        """The request is read whole, so the client's side of the socket only
        becomes readable when it closes (Ctrl-C, killed): then its build is
        abandoned, which cancels it unless it had joined another's."""
        poller = select.poll()
        poller.register(self.connection, select.POLLIN | select.POLLRDHUP)
        while not finished.is_set():
            if poller.poll(100):
                if not finished.is_set() and accepted:
                    self.server.target.abandoned(dict(accepted))
                return

    def _body(self) -> dict:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            raise ValueError(f"request body of {length} bytes is over {MAX_BODY_BYTES}")
        raw = self.rfile.read(length) if length else b"{}"
        try:
            body = json.loads(raw)
        except ValueError as exc:
            raise ValueError(f"request body is not JSON: {exc}") from None
        if not isinstance(body, dict):
            raise ValueError("request body must be a JSON object")
        return body

    def _json(self, status: int, data: dict) -> None:
        raw = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, fmt: str, *args) -> None:
        log.debug("control: " + fmt, *args)


class ControlServer:
    """Serve `target` on the Unix socket at `path` until :meth:`stop`."""

    def __init__(self, path: str, target: Controlled):
        self.path = path
        if os.path.exists(path):
            os.unlink(path)          # left by a pod that was killed
        self._server = _Server(path, target)
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        name="control", daemon=True)

    def start(self) -> "ControlServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
