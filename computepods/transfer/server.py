"""StoreServer: a pod's content store, served read-only over SFTP (paramiko).

One listening socket on a loopback or given address, one accept thread, and
per connection paramiko's own transport thread plus its SFTP session
thread.  At most ``MAX_CONNECTIONS`` connections live at once: one more is
closed at once (a client retries), never queued without bound.

Only public-key authentication, and only for keys ``authorized(line)``
accepts (the client keys of pods heard in authenticated hellos): no
password, no "none", no keyboard-interactive.  A session may open the
``sftp`` subsystem and nothing else: no shell, exec, pty or forwarding.
What SFTP may read is in :mod:`computepods.transfer.storesftp`.

``stop()`` closes the listener, joins the accept thread, closes every
transport and joins its threads: no thread of the server outlives it.
"""
from __future__ import annotations

import errno
import logging
import socket
import threading
import time
from pathlib import Path
from typing import Callable

import paramiko

from computepods.errors import TransferError
from computepods.transfer.endpoint import Endpoint
from computepods.transfer.keys import PodKeys, key_fingerprint, public_line
from computepods.transfer.store import ContentStore
from computepods.transfer.storesftp import Served, StoreSFTP
from computepods.transfer.tuning import transport as tuned_transport

MAX_CONNECTIONS = 32                 # live connections at once; more are closed
HANDSHAKE_S = 10.0                   # seconds for key exchange
AUTH_S = 10.0                        # seconds to authenticate once connected
JOIN_S = 5.0                         # seconds stop() waits for each thread
LISTEN_BACKLOG = 64
ACCEPT_RETRY_S = 0.5                 # seconds before accepting again after EMFILE

log = logging.getLogger(__name__)


class _Gate(paramiko.ServerInterface):
    """Who may log in (authorized public keys only) and what a session may
    open (the sftp subsystem only).  Keeps the subsystem threads it starts,
    so that stop() can join them."""

    def __init__(self, authorized: Callable[[str], bool], threads: list[threading.Thread]):
        self._authorized = authorized
        self._threads = threads

    def get_allowed_auths(self, username: str) -> str:
        return "publickey"

    def check_auth_none(self, username: str) -> int:
        return paramiko.AUTH_FAILED

    def check_auth_password(self, username: str, password: str) -> int:
        return paramiko.AUTH_FAILED

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        try:
            ok = bool(self._authorized(public_line(key)))
        except Exception:                      # a broken roster refuses; it never lets in
            log.exception("store server: the authorized() check failed; refusing the key")
            ok = False
        if not ok:
            log.info("store server: refused client key %s (not from a hello heard)",
                     key_fingerprint(public_line(key)))
        return paramiko.AUTH_SUCCESSFUL if ok else paramiko.AUTH_FAILED

    def check_channel_request(self, kind: str, chanid: int) -> int:
        if kind == "session":
            return paramiko.OPEN_SUCCEEDED
        return paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def check_channel_subsystem_request(self, channel: paramiko.Channel, name: str) -> bool:
        if name != "sftp":
            return False
        handler_class, args, kwargs = channel.get_transport()._get_subsystem_handler(name)
        if handler_class is None:
            return False
        handler = handler_class(channel, name, self, *args, **kwargs)
        self._threads.append(handler)
        handler.start()
        return True


class StoreServer:
    """Serves ``store`` (and ``lookup``'s files) read-only on host:port."""

    def __init__(self, store: ContentStore, keys: PodKeys,
                 authorized: Callable[[str], bool],
                 lookup: Callable[[str], Path | None] | None = None,
                 host: str = "127.0.0.1", port: int = 0):
        self._served = Served(store, lookup)
        self._keys = keys
        self._authorized = authorized
        self._host = host
        self._want_port = port
        self._sock: socket.socket | None = None
        self._accepter: threading.Thread | None = None
        self._lock = threading.Lock()
        self._transports: list[paramiko.Transport] = []
        self._threads: list[threading.Thread] = []
        self._stopping = False
        self.port = 0

    @property
    def moved_out(self) -> int:
        """Bytes served since start."""
        return self._served.moved_out

    def endpoint(self, pod: str) -> Endpoint:
        """This server as a hello announces it."""
        if not self.port:
            raise TransferError(f"the store server of pod {pod!r} is not started")
        return Endpoint(pod, self._host, self.port, self._keys.host_public)

    def start(self) -> "StoreServer":
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self._host, self._want_port))
            sock.listen(LISTEN_BACKLOG)
        except OSError as exc:
            sock.close()
            raise TransferError(
                f"store server: cannot listen on {self._host}:{self._want_port}: {exc}"
                f" (choose another --sftp-port, or 0 for a free one)") from exc
        self._sock = sock
        self.port = sock.getsockname()[1]
        self._accepter = threading.Thread(target=self._accept, daemon=True,
                                          name=f"store-server:{self.port}")
        self._accepter.start()
        return self

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
            transports = list(self._transports)
        if self._sock is not None:
            try:
                self._sock.shutdown(socket.SHUT_RDWR)   # wakes accept() on Linux
            except OSError:
                pass
            self._sock.close()
        if self._accepter is not None:
            self._accepter.join(JOIN_S)
        for transport in transports:
            transport.close()
        for transport in transports:
            if transport.is_alive():
                transport.join(JOIN_S)
        with self._lock:
            threads, self._threads[:] = list(self._threads), []
            self._transports.clear()
        for thread in threads:
            thread.join(JOIN_S)

    def __enter__(self) -> "StoreServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # --- connections ------------------------------------------------------------------

    def _accept(self) -> None:
        assert self._sock is not None
        while True:
            try:
                conn, _peer = self._sock.accept()
            except OSError as exc:
                if self._stopping or exc.errno in (errno.EBADF, errno.EINVAL):
                    return                          # the listener was shut down
                # Out of file descriptors, or the like: keep serving those
                # connected, and try again in a moment.
                log.warning("store server on port %s: accept failed: %s", self.port, exc)
                time.sleep(ACCEPT_RETRY_S)
                continue
            with self._lock:
                self._prune()
                refuse = self._stopping or len(self._transports) >= MAX_CONNECTIONS
            if refuse:
                conn.close()
                continue
            try:
                self._serve(conn)
            except Exception:                        # one bad handshake never stops the server
                log.exception("store server: a connection failed to start")
                conn.close()

    def _serve(self, conn: socket.socket) -> None:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        transport = tuned_transport(conn)          # logs to tuning.WIRE_LOG, quietly
        transport.handshake_timeout = HANDSHAKE_S
        transport.auth_timeout = AUTH_S
        transport.add_server_key(self._keys.host_key)
        transport.set_subsystem_handler("sftp", paramiko.SFTPServer, sftp_si=StoreSFTP,
                                        served=self._served)
        with self._lock:
            self._transports.append(transport)
        # With an event, start_server returns at once: the handshake runs in
        # the transport's own thread, so one slow client holds only its own.
        transport.start_server(event=threading.Event(), server=_Gate(self._authorized,
                                                                     self._threads))

    def _prune(self) -> None:
        """Forget finished connections (called under the lock)."""
        self._transports[:] = [t for t in self._transports if t.is_alive()]
        self._threads[:] = [t for t in self._threads if t.is_alive()]
