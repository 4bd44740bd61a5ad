"""The thin client: hand a command to the pod that is up for a project.

``cpod up`` writes ``.computepods/pod.json`` (its pid and the path of its
control socket) and serves HTTP on that Unix socket.  ``cpod build``,
``cpod status`` and ``cpod down`` find it here and talk to it with the
standard library only: importing nats-py and the charts would cost more
than a whole no-op (docs/architecture.md §10), so this module imports nothing heavy.

A build is streamed back as JSON lines, one build event each (the events
of ``cp.build.<id>.events``), ending with ``{"t": "exit", "code": N}``.
"""
from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Callable, Iterator

from computepods.paths import POD_FILE, STATE_DIR

SOCKET_NAME = "pod.sock"
MAX_SOCKET_PATH = 100              # sun_path holds 108 bytes; keep a margin
CONNECT_TIMEOUT_S = 5.0            # a pod that does not accept in 5 s is wedged
REPLY_TIMEOUT_S = 30.0             # for status and down; builds stream without limit


class PodUnreachable(Exception):
    """pod.json names a live pod, but its control socket does not answer."""


def state_dir(root: Path) -> Path:
    return Path(root) / STATE_DIR


def socket_path(root: Path) -> str:
    """The control socket: in the state directory, or (for a deep project
    path that would not fit in sun_path) in the runtime directory."""
    path = str(state_dir(root) / SOCKET_NAME)
    if len(path.encode()) <= MAX_SOCKET_PATH:
        return path
    import hashlib
    import tempfile
    digest = hashlib.sha256(str(root).encode()).hexdigest()[:16]
    base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    return os.path.join(base, f"cpod-{digest}.sock")


def running_pod(root: Path) -> dict | None:
    """What pod.json says of a pod whose process is alive, else None."""
    try:
        info = json.loads((Path(root) / POD_FILE).read_text())
        pid = int(info["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return info if pid_alive(pid) else None


def pid_alive(pid: int) -> bool:
    """A zombie counts as gone: it has stopped, its parent just has not reaped it."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


class _Response:
    """Status and body of an HTTP/1.0 answer read straight off the socket
    (importing http.client would show in a handed-off no-op: ``bench/up.py``)."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.file = sock.makefile("rb")
        parts = self.file.readline().split(None, 2)
        if len(parts) < 2 or not parts[1].isdigit():
            raise OSError("not an HTTP answer")
        self.status = int(parts[1])
        while self.file.readline() not in (b"\r\n", b"\n", b""):
            pass                              # headers: the body's shape is known

    def read(self) -> bytes:
        return self.file.read()

    def readline(self) -> bytes:
        return self.file.readline()

    def __enter__(self) -> "_Response":
        return self

    def __exit__(self, *exc) -> None:
        self.file.close()
        self.sock.close()


def _request(info: dict, method: str, path: str, body: dict | None,
             timeout: float | None) -> _Response:
    data = json.dumps(body or {}).encode()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(CONNECT_TIMEOUT_S)
        sock.connect(info["socket"])
        sock.settimeout(timeout)
        sock.sendall(f"{method} {path} HTTP/1.0\r\nHost: cpod\r\n"
                     f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
                     .encode() + data)
        return _Response(sock)
    except OSError as exc:
        sock.close()
        raise PodUnreachable(f"the pod up for this project (pid {info.get('pid')}) does not "
                             f"answer on {info['socket']}: {exc}") from None


def call(info: dict, method: str, path: str, body: dict | None = None) -> dict:
    """One request, one JSON answer."""
    with _request(info, method, path, body, REPLY_TIMEOUT_S) as resp:
        data = json.loads(resp.read() or b"{}")
    if resp.status >= 400:
        raise PodUnreachable(data.get("error") or f"the pod answered {resp.status}")
    return data


def stream_build(info: dict, request: dict, on_event: Callable[[dict], None]) -> int:
    """Hand a build to the pod and feed its events to `on_event`; the exit code."""
    with _request(info, "POST", "/build", request, None) as resp:
        if resp.status >= 400:
            data = json.loads(resp.read() or b"{}")
            on_event({"t": "done", "ok": False, "code": data.get("code", 2),
                      "error": data.get("error") or f"the pod answered {resp.status}"})
            return int(data.get("code", 2))
        for ev in _lines(resp):
            if ev.get("t") == "exit":
                return int(ev["code"])
            on_event(ev)
    raise PodUnreachable(f"the pod (pid {info.get('pid')}) stopped before the build finished")


def _lines(resp: _Response) -> Iterator[dict]:
    while line := resp.readline():
        try:
            ev = json.loads(line)
        except ValueError:
            continue
        if isinstance(ev, dict):
            yield ev


def stop_pod(info: dict, wait_s: float) -> bool:
    """Ask the pod to stop (``POST /down``) and wait, bounded, until its
    process is gone: True if it went."""
    import time
    call(info, "POST", "/down")
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if not pid_alive(int(info["pid"])):
            return True
        time.sleep(0.02)
    return False
