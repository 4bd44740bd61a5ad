"""Serving the REST app: gunicorn as a child process of the pod.

``start_http`` checks the address is free (a clear error naming it, rather
than gunicorn's five retries), starts ``python -m gunicorn`` with gthread
workers that read each request before a thread takes it
(:mod:`computepods.api.worker`: slow clients hold no thread; threads hold
the app at work and the long-lived SSE streams, a bounded number of them,
docs/architecture.md §10), without
gunicorn's control socket, under ``setpriv --pdeathsig KILL`` (it dies with
the pod even if the pod is SIGKILLed; see computepods/bus/natsd.py; its
workers follow within a second) in a process group of its own, and
returns once ``/healthz`` answers 200 with this pod's NATS URL — the whole
chain works, and it is our server, not a stranger on the port.
:meth:`HttpServer.stop` sends SIGTERM and says whether it had to kill.
"""
from __future__ import annotations

import errno
import http.client
import ipaddress
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from computepods.bus.natsd import _pdeathsig_prefix
from computepods.errors import HttpServerError
from computepods.paths import HTTP_LOG

log = logging.getLogger("computepods.api")

DEFAULT_BIND = "127.0.0.1:8765"
DEFAULT_WORKERS = 2
DEFAULT_THREADS = 128        # per worker: each open SSE stream holds one
RESERVED_THREADS = 16        # per worker, never taken by event streams (StreamSlots)
GRACEFUL_S = 5               # seconds gunicorn gives a stopping worker
START_TIMEOUT_S = 30.0       # seconds to wait for /healthz
STOP_TIMEOUT_S = GRACEFUL_S + 10.0
POLL_S = 0.02                # between readiness probes
LOG_TAIL_BYTES = 3000


def split_bind(bind: str) -> tuple[str, int]:
    host, sep, port = bind.rpartition(":")
    if not sep or not port.isdigit():
        raise HttpServerError(f"--http {bind!r}: expected ADDR:PORT, e.g. {DEFAULT_BIND}")
    host = host.strip("[]") or "127.0.0.1"
    return host, int(port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False              # a name: it may resolve to anything


def accepted_hosts(host: str, extra: Sequence[str] = ()) -> list[str]:
    """The names a request's Host header may give: the bound address,
    localhost, and ``extra`` (``--http-host``)."""
    names = [host, "localhost", *(h.strip() for h in extra if h.strip())]
    return list(dict.fromkeys(names))


def max_streams(threads: int) -> int:
    """Event streams a worker may hold open: its threads but a reserve, so
    that followers never leave it without a thread for other requests."""
    return max(1, threads - RESERVED_THREADS, threads // 2)


def check_exposure(host: str, token: str | None) -> None:
    """Refuse to serve other machines without a token: they could start
    builds (and read every step's command and log) unasked."""
    if not token and not is_loopback(host):
        raise HttpServerError(
            f"--http {host}: other machines can reach this address and no token is set; "
            "set CP_API_TOKEN to a secret of your choosing (mutating requests will need "
            "'Authorization: Bearer <token>'), or bind to 127.0.0.1")


def check_free(host: str, port: int) -> None:
    """Bind the address as gunicorn will (SO_REUSEADDR); raise naming it if taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            why = "is in use" if exc.errno == errno.EADDRINUSE else f"cannot be bound: {exc}"
            raise HttpServerError(f"HTTP address {host}:{port} {why} (choose another with "
                            f"--http ADDR:PORT, or --no-http)") from None


def gunicorn_argv(bind: str, workers: int, threads: int, app: str,
                  graceful_s: float = GRACEFUL_S) -> list[str]:
    return [*_pdeathsig_prefix(), sys.executable, "-m", "gunicorn",
            "--bind", bind, "--workers", str(workers),
            "--worker-class", "computepods.api.worker.ArrivalWorker",
            "--threads", str(threads), "--no-control-socket",
            "--graceful-timeout", str(graceful_s), "--timeout", "60",
            "--config", "python:computepods.api.gunicorn_conf",
            "--error-logfile", "-", "--log-level", "warning", app]


@dataclass
class HttpServer:
    proc: subprocess.Popen
    url: str
    log_path: Path
    was_killed: bool = False

    def log_tail(self) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(max(0, os.path.getsize(self.log_path) - LOG_TAIL_BYTES))
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> bool:
        """SIGTERM, wait; SIGKILL if it is still there.  True if it had to be killed."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)      # the arbiter and its workers
                self.proc.wait()
                self.was_killed = True
                log.warning("gunicorn at %s did not stop within %.0f s of SIGTERM: killed",
                            self.url, timeout)
        return self.was_killed


def start_http(root: Path, nats_url: str, namespace: str, bind: str = DEFAULT_BIND,
               workers: int = DEFAULT_WORKERS, *, threads: int = DEFAULT_THREADS,
               token: str | None = None, hosts: Sequence[str] | None = None,
               app: str = "computepods.api.wsgi:app",
               timeout: float = START_TIMEOUT_S, graceful_s: float = GRACEFUL_S,
               bus_env: Mapping[str, str] | None = None) -> HttpServer:
    """Serve the REST app of the pod on `nats_url` at `bind`; see the module
    docstring.  `token` (default: env CP_API_TOKEN) guards mutating routes.
    `graceful_s` is what gunicorn gives a stopping worker to finish its
    requests (open event streams end at once, see gunicorn_conf.py).
    `bus_env`: the environment the app joins the bus with (default: ours),
    which holds its login as the api role (``Pod.client_env``).
    Call it from a thread that lives as long as the server (pdeathsig)."""
    host, port = split_bind(bind)
    token = os.environ.get("CP_API_TOKEN") if token is None else token
    check_exposure(host, token)
    check_free(host, port)
    if hosts is None:
        hosts = (os.environ.get("CP_HTTP_HOSTS") or "").split(",")
    root = Path(root)
    log_path = root / HTTP_LOG
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ if bus_env is None else bus_env,
               CP_NATS_URL=nats_url, CP_NAMESPACE=namespace, CP_ROOT=str(root),
               CP_HTTP_HOSTS=",".join(accepted_hosts(host, hosts)),
               CP_HTTP_MAX_STREAMS=str(max_streams(threads)))
    env.pop("CP_API_TOKEN", None)
    if token:
        env["CP_API_TOKEN"] = token
    with open(log_path, "ab") as logf:
        proc = subprocess.Popen(gunicorn_argv(bind, workers, threads, app, graceful_s), env=env,
                                stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
                                close_fds=True, cwd=root, process_group=0)
    url = f"http://{'[' + host + ']' if ':' in host else host}:{port}"
    server = HttpServer(proc, url, log_path)
    try:
        _wait_ready(server, host, port, nats_url, timeout)
    except BaseException:
        server.stop()
        raise
    return server


def _wait_ready(server: HttpServer, host: str, port: int, nats_url: str,
                timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise HttpServerError(f"gunicorn for {server.url} exited with {server.proc.returncode}:\n"
                            f"{server.log_tail()}")
        status, body = _probe(host, port)
        if status == 200 and body.get("nats") == nats_url:
            return
        if status == 200:
            raise HttpServerError(f"{server.url} is served by another pod (NATS {body.get('nats')})")
        last = f"HTTP {status}: {body.get('description', '')}" if status else "no answer"
        time.sleep(POLL_S)
    raise HttpServerError(f"gunicorn at {server.url} did not answer /healthz within {timeout:.0f} s "
                    f"({last}):\n{server.log_tail()}")


def _probe(host: str, port: int) -> tuple[int, dict]:
    conn = http.client.HTTPConnection(host, port, timeout=5)
    try:
        conn.request("GET", "/healthz")
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read() or b"{}")
    except (OSError, http.client.HTTPException, ValueError):
        return 0, {}
    finally:
        conn.close()
