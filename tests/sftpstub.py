"""A minimal real paramiko SFTP server, and a probe of one, for the discovery tests.

It stands in for transfer's StoreServer until that is merged: the Scout's
integration test needs an endpoint that really speaks SSH, presents a host
key, and lets in only the client keys it is told to.  It serves an empty
root, read-only.  Only 127.0.0.1, a free port, and it stops everything it
started (its accept thread and every transport).
"""
from __future__ import annotations

import base64
import io
import socket
import threading
from typing import Callable

import paramiko
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from computepods.transfer.endpoint import Endpoint

CONNECT_TIMEOUT_S = 5.0      # seconds a probe waits for the server at each stage
ACCEPT_POLL_S = 0.1          # seconds between looks at the stop flag


def new_key() -> paramiko.PKey:
    """A fresh ed25519 key, as paramiko holds it."""
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption()).decode()
    return paramiko.Ed25519Key.from_private_key(io.StringIO(pem))


def public_line(key: paramiko.PKey) -> str:
    return f"{key.get_name()} {key.get_base64()}"


class _Gate(paramiko.ServerInterface):
    def __init__(self, authorized: Callable[[str], bool]):
        self.authorized = authorized

    def get_allowed_auths(self, username):
        return "publickey"

    def check_auth_publickey(self, username, key):
        if self.authorized(public_line(key)):
            return paramiko.AUTH_SUCCESSFUL
        return paramiko.AUTH_FAILED

    def check_channel_request(self, kind, chanid):
        if kind == "session":
            return paramiko.OPEN_SUCCEEDED
        return paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED


class _EmptyRoot(paramiko.SFTPServerInterface):
    def list_folder(self, path):
        return [] if path in ("/", ".") else paramiko.SFTP_NO_SUCH_FILE

    def stat(self, path):
        if path not in ("/", "."):
            return paramiko.SFTP_NO_SUCH_FILE
        attrs = paramiko.SFTPAttributes()
        attrs.st_mode = 0o40555
        return attrs

    lstat = stat

    def canonicalize(self, path):
        return "/"


class StubSftpServer:
    """``with StubSftpServer(host_key, authorized) as server:`` on ``server.port``."""

    def __init__(self, host_key: paramiko.PKey, authorized: Callable[[str], bool]):
        self.host_key, self.authorized = host_key, authorized
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(8)
        self._sock.settimeout(ACCEPT_POLL_S)
        self.port = self._sock.getsockname()[1]
        self._stopping = threading.Event()
        self._transports: list[paramiko.Transport] = []
        self._thread = threading.Thread(target=self._accept, name="stub-sftp", daemon=True)

    def endpoint(self, pod: str, host_key: str | None = None) -> Endpoint:
        return Endpoint(pod, "127.0.0.1", self.port, host_key or public_line(self.host_key))

    def __enter__(self) -> "StubSftpServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stopping.set()
        self._thread.join(CONNECT_TIMEOUT_S)
        self._sock.close()
        for transport in self._transports:
            transport.close()
            transport.join(CONNECT_TIMEOUT_S)

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                conn, _ = self._sock.accept()
            except socket.timeout:
                continue
            transport = paramiko.Transport(conn)
            transport.add_server_key(self.host_key)
            transport.set_subsystem_handler("sftp", paramiko.SFTPServer, _EmptyRoot)
            self._transports.append(transport)
            try:
                transport.start_server(server=_Gate(self.authorized))
            except (paramiko.SSHException, EOFError, OSError):
                transport.close()


def sftp_probe(client_key: paramiko.PKey) -> Callable[[Endpoint], str | None]:
    """A probe as the Scout wants one: None when the endpoint presents the
    host key its pod announced and lets our key list its root; else why not."""
    def probe(endpoint: Endpoint) -> str | None:
        kind, blob = endpoint.host_key.split()[:2]
        client = paramiko.SSHClient()
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        client.get_host_keys().add(f"[{endpoint.host}]:{endpoint.port}", kind,
                                   paramiko.PKey.from_type_string(kind, base64.b64decode(blob)))
        try:
            client.connect(endpoint.host, endpoint.port, username="cpod", pkey=client_key,
                           look_for_keys=False, allow_agent=False, timeout=CONNECT_TIMEOUT_S,
                           banner_timeout=CONNECT_TIMEOUT_S, auth_timeout=CONNECT_TIMEOUT_S)
            client.open_sftp().listdir("/")
            return None
        except paramiko.BadHostKeyException:
            return "presented another host key than its pod announced"
        except paramiko.AuthenticationException:
            return "refused our client key"
        except (OSError, paramiko.SSHException) as exc:
            return f"could not be reached: {exc}"
        finally:
            client.close()
    return probe
