"""The thin client: hand a command to the pod that is up for a project.

``cpod up`` writes ``.computepods/pod.json`` (its pid and the path of its
control socket) and serves HTTP on that Unix socket.  ``cpod build``,
``cpod status`` and ``cpod down`` find it here and talk to it with the
standard library only: importing nats-py and the charts would cost more
than a whole no-op (design.md §10), so this module imports nothing heavy.

A build is streamed back as JSON lines, one build event each (the events
of ``cp.build.<id>.events``), ending with ``{"t": "exit", "code": N}``.
"""
from __future__ import annotations

import hashlib
import http.client
import json
import os
import socket
import tempfile
from pathlib import Path
from typing import Callable, Iterator

POD_FILE = "pod.json"              # in the state directory
SOCKET_NAME = "pod.sock"
MAX_SOCKET_PATH = 100              # sun_path holds 108 bytes; keep a margin
CONNECT_TIMEOUT_S = 5.0            # a pod that does not accept in 5 s is wedged
REPLY_TIMEOUT_S = 30.0             # for status and down; builds stream without limit


class PodUnreachable(Exception):
    """pod.json names a live pod, but its control socket does not answer."""


def state_dir(root: Path) -> Path:
    return Path(root) / ".computepods"


def socket_path(root: Path) -> str:
    """The control socket: in the state directory, or (for a deep project
    path that would not fit in sun_path) in the runtime directory."""
    path = str(state_dir(root) / SOCKET_NAME)
    if len(path.encode()) <= MAX_SOCKET_PATH:
        return path
    digest = hashlib.sha256(str(root).encode()).hexdigest()[:16]
    base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    return os.path.join(base, f"cpod-{digest}.sock")


def running_pod(root: Path) -> dict | None:
    """What pod.json says of a pod whose process is alive, else None."""
    try:
        info = json.loads((state_dir(root) / POD_FILE).read_text())
        pid = int(info["pid"])
        os.kill(pid, 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return info


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float | None):
        super().__init__("cpod", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(CONNECT_TIMEOUT_S)
        try:
            sock.connect(self._path)
        except OSError:
            sock.close()
            raise
        sock.settimeout(self.timeout)
        self.sock = sock


def _request(info: dict, method: str, path: str, body: dict | None,
             timeout: float | None) -> http.client.HTTPResponse:
    conn = _UnixConnection(info["socket"], timeout)
    try:
        conn.request(method, path, body=json.dumps(body or {}).encode(),
                     headers={"Content-Type": "application/json"})
        return conn.getresponse()
    except (OSError, http.client.HTTPException) as exc:
        conn.close()
        raise PodUnreachable(f"the pod up for this project (pid {info.get('pid')}) does not "
                             f"answer on {info['socket']}: {exc}") from None


def call(info: dict, method: str, path: str, body: dict | None = None) -> dict:
    """One request, one JSON answer."""
    resp = _request(info, method, path, body, REPLY_TIMEOUT_S)
    with resp:
        data = json.loads(resp.read() or b"{}")
    if resp.status >= 400:
        raise PodUnreachable(data.get("error") or f"the pod answered {resp.status}")
    return data


def stream_build(info: dict, request: dict, on_event: Callable[[dict], None]) -> int:
    """Hand a build to the pod and feed its events to `on_event`; the exit code."""
    resp = _request(info, "POST", "/build", request, None)
    with resp:
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


def _lines(resp: http.client.HTTPResponse) -> Iterator[dict]:
    while line := resp.readline():
        try:
            ev = json.loads(line)
        except ValueError:
            continue
        if isinstance(ev, dict):
            yield ev
