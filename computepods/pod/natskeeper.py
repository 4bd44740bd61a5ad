"""The pod's embedded nats-server kept running: restarted when it dies.

A server killed under a build (OOM, a stray ``kill``, a crash) would leave
every bridge of the pod reconnecting forever.  :class:`ServerKeeper`
restarts it at once on the same port with the same users
(:meth:`NatsServer.restart`); the bridges reconnect (nats-py's reconnect,
``bus/bridge.py``) and send again the requests that got no answer, which
their handlers take idempotently, so no step is lost or run twice.
"""
from __future__ import annotations

import logging
import os
import select
import threading

from computepods.bus.natsd import NatsServer
from computepods.errors import NatsServerError

log = logging.getLogger("computepods.pod.pod")

RESTARTS_MAX = 10                    # restarts of an embedded server that keeps dying


class ServerKeeper:
    """Restarts a pod's embedded server when it dies, on the same port with
    the same users, so that its clients (whose bridges reconnect and resend
    unanswered requests) go on where they were.

    One thread waits on the server's pidfd.  A server it restarted dies with
    that thread (pdeathsig), so the thread also stops the server, when
    :meth:`close` asks: call close instead of the server's ``stop``.
    """

    def __init__(self, server: NatsServer):
        self.server = server
        self.restarts = 0
        self._stop_r, self._stop_w = os.pipe()
        self._thread = threading.Thread(target=self._run, name="nats-keeper", daemon=True)

    def start(self) -> "ServerKeeper":
        self._thread.start()
        return self

    def close(self, timeout: float = 10.0) -> None:
        """Stop watching, and stop the server (from the keeper's thread)."""
        if self._thread.is_alive():
            os.write(self._stop_w, b"x")
            self._thread.join(timeout)
        else:
            self.server.stop()
        for fd in (self._stop_r, self._stop_w):
            os.close(fd)

    def _run(self) -> None:
        try:
            while self._wait_for_death():
                if self.restarts >= RESTARTS_MAX:
                    log.error("the pod's nats-server died %d times: not restarting it",
                              self.restarts + 1)
                    self._wait_for_close()
                    return
                self.restarts += 1
                log.warning("the pod's nats-server died (%s); restarting it on port %s",
                            self._exit(), self.server.port)
                try:
                    self.server.restart()
                except NatsServerError as exc:
                    log.error("could not restart the pod's nats-server: %s", exc)
                    self._wait_for_close()
                    return
        finally:
            self.server.stop()

    def _exit(self) -> str:
        code = self.server.exit_code()
        return f"exit code {code}" if code is not None else "gone"

    def _wait_for_death(self) -> bool:
        """Block until the server exits (True) or :meth:`close` (False)."""
        pid = self.server.pid
        if pid is None or not self.server.is_running():
            return True
        try:
            pidfd = os.pidfd_open(pid)
        except ProcessLookupError:
            return True
        try:
            poller = select.poll()
            poller.register(pidfd, select.POLLIN)
            poller.register(self._stop_r, select.POLLIN)
            ready = {fd for fd, _ in poller.poll()}
        finally:
            os.close(pidfd)
        return self._stop_r not in ready

    def _wait_for_close(self) -> None:
        select.select([self._stop_r], [], [])
