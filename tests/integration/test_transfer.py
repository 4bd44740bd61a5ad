"""Pulling files by hash between two pods' stores over a real paramiko SFTP
server on 127.0.0.1: what arrives, what moves, and what is refused."""
from __future__ import annotations

import hashlib
import os
import socket
import threading
from dataclasses import dataclass
from pathlib import Path

import paramiko
import pytest

from computepods.errors import HostKeyRefused, TransferError
from computepods.transfer.endpoint import Endpoint
from computepods.transfer.keys import PodKeys, key_fingerprint
from computepods.transfer import pull as pull_module
from computepods.transfer.pull import Puller
from computepods.transfer import server as server_module
from computepods.transfer.server import StoreServer
from computepods.transfer.store import ContentStore
from helpers import wait_for

MiB = 1 << 20


@dataclass
class Pod:
    name: str
    store: ContentStore
    keys: PodKeys


def make_pod(tmp_path: Path, name: str) -> Pod:
    return Pod(name, ContentStore(tmp_path / name / "store"),
               PodKeys.load_or_create(tmp_path / name / "keys"))


@pytest.fixture
def a(tmp_path) -> Pod:
    return make_pod(tmp_path, "A")


@pytest.fixture
def b(tmp_path) -> Pod:
    return make_pod(tmp_path, "B")


class Lookup:
    """The server's lookup: files outside the store by sha, and a hook that
    runs first (to hold a transfer while a test arranges something)."""

    def __init__(self):
        self.files: dict[str, Path] = {}
        self.hold = None

    def __call__(self, sha: str) -> Path | None:
        if self.hold is not None:
            self.hold(sha)
        return self.files.get(sha)


@pytest.fixture
def lookup() -> Lookup:
    return Lookup()


@pytest.fixture
def server(a, b, lookup):
    """A's store server, letting in B's client key only."""
    with StoreServer(a.store, a.keys, authorized=lambda line: line == b.keys.client_public,
                     lookup=lookup) as running:
        yield running


@pytest.fixture
def puller(b, server):
    """B's puller, knowing A's endpoint as A's hello would announce it."""
    endpoints = {"A": server.endpoint("A")}
    made = Puller(b.store, b.keys, endpoints.get)
    yield made
    made.close()


def put(pod: Pod, tmp_path: Path, data: bytes) -> str:
    src = tmp_path / f"src-{hashlib.sha256(data).hexdigest()[:8]}"
    src.write_bytes(data)
    return pod.store.add(src)


def sftp_as(pod: Pod, endpoint: Endpoint) -> paramiko.SSHClient:
    """A plain SSHClient logged in with this pod's client key (for probing the server)."""
    client = paramiko.SSHClient()
    client.get_host_keys().add(f"[{endpoint.host}]:{endpoint.port}", "ssh-ed25519",
                               paramiko.Ed25519Key(data=_blob(endpoint.host_key)))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect(endpoint.host, endpoint.port, username="t", pkey=pod.keys.client_key,
                   allow_agent=False, look_for_keys=False, timeout=10)
    return client


def _blob(line: str) -> bytes:
    import base64
    return base64.b64decode(line.split()[1])


def temp_files(store: ContentStore) -> list[str]:
    return [p.name for p in store.root.rglob(".tmp-*")]


# --- what moves -----------------------------------------------------------------------

def test_pulled_bytes_equal_the_served_ones_and_are_counted(a, b, puller, server, tmp_path):
    data = os.urandom(3 * MiB + 12345)          # not a multiple of a read
    sha = put(a, tmp_path, data)
    empty = put(a, tmp_path, b"")
    got = puller.fetch("A", sha)
    assert got == b.store.path(sha) and got.read_bytes() == data
    assert puller.fetch("A", empty).read_bytes() == b""
    assert puller.moved_in == len(data) == server.moved_out
    assert puller.rate("A") and puller.rate("A") > 0


def test_an_equal_hash_moves_zero_bytes(a, b, puller, server, tmp_path):
    sha = put(a, tmp_path, os.urandom(MiB))
    puller.fetch("A", sha)
    before = (puller.moved_in, server.moved_out)
    assert puller.fetch_many("A", [sha, sha]) == {sha: b.store.path(sha)}
    mine = put(b, tmp_path, b"B made this itself")
    put(a, tmp_path, b"B made this itself")
    assert puller.fetch("A", mine) == b.store.path(mine)
    assert (puller.moved_in, server.moved_out) == before


def test_eight_threads_fetching_one_sha_cause_one_transfer(b, puller, server, lookup,
                                                           tmp_path):
    data = os.urandom(4 * MiB)
    src = tmp_path / "served-by-lookup"
    src.write_bytes(data)
    sha = hashlib.sha256(data).hexdigest()
    opened, release = [], threading.Event()

    def hold(wanted):                  # hold the one transfer until every thread asked
        opened.append(wanted)
        release.wait(10)

    lookup.files[sha] = src
    lookup.hold = hold
    started, results, errors = [], [], []

    def fetch():
        started.append(1)
        try:
            results.append(puller.fetch("A", sha))
        except Exception as exc:        # reported below, never lost
            errors.append(exc)

    threads = [threading.Thread(target=fetch) for _ in range(8)]
    for t in threads:
        t.start()
    wait_for(lambda: len(started) == 8 and opened, what="8 fetches and one open")
    release.set()
    for t in threads:
        t.join(20)
    assert errors == [] and results == [b.store.path(sha)] * 8
    assert len(opened) == 1
    assert server.moved_out == len(data) == puller.moved_in


def test_a_dead_connection_is_made_anew_once(a, b, tmp_path):
    first, second = (put(a, tmp_path, os.urandom(1000 + i)) for i in range(2))
    authorized = lambda line: line == b.keys.client_public     # noqa: E731
    server = StoreServer(a.store, a.keys, authorized).start()
    endpoint = server.endpoint("A")
    puller = Puller(b.store, b.keys, {"A": endpoint}.get)
    try:
        puller.fetch("A", first)
        server.stop()                   # the pod restarts on the same port
        server = StoreServer(a.store, a.keys, authorized, port=endpoint.port).start()
        assert puller.fetch("A", second).read_bytes() == a.store.path(second).read_bytes()
    finally:
        puller.close()
        server.stop()


def test_a_sha_the_pod_lacks_is_an_error_naming_pod_and_sha(puller):
    missing = "0" * 64
    with pytest.raises(TransferError, match=f"pod 'A' does not hold {missing}"):
        puller.fetch("A", missing)


def test_corrupt_content_is_refused_and_nothing_is_installed(b, puller, lookup, tmp_path):
    promised = hashlib.sha256(b"the real content").hexdigest()
    liar = tmp_path / "changed-since-hashed"
    liar.write_bytes(b"other content, same old hash")
    lookup.files[promised] = liar
    with pytest.raises(TransferError) as caught:
        puller.fetch("A", promised)
    assert "'A'" in str(caught.value) and promised in str(caught.value)
    assert not b.store.has(promised) and temp_files(b.store) == []


# --- keys -----------------------------------------------------------------------------

def test_a_pod_with_no_known_host_key_is_refused(b, server, puller):
    with pytest.raises(HostKeyRefused, match="pod 'C' is unknown"):
        puller.fetch("C", "1" * 64)
    garbled = Endpoint("D", "127.0.0.1", server.port, "ssh-ed25519 not-a-key")
    other = Puller(b.store, b.keys, {"D": garbled}.get)
    try:
        with pytest.raises(HostKeyRefused, match="pod 'D' announced a host key that is not"):
            other.fetch("D", "1" * 64)
    finally:
        other.close()
    assert server.moved_out == 0


def test_a_changed_host_key_is_refused_naming_the_pod(a, b, server, tmp_path):
    impostor = PodKeys.load_or_create(tmp_path / "impostor")
    pinned = Endpoint("A", "127.0.0.1", server.port, impostor.host_public)
    puller = Puller(b.store, b.keys, {"A": pinned}.get)
    try:
        with pytest.raises(HostKeyRefused) as caught:
            puller.fetch("A", put(a, tmp_path, b"x"))
        message = str(caught.value)
        assert "pod 'A'" in message
        assert key_fingerprint(impostor.host_public) in message
        assert key_fingerprint(a.keys.host_public) in message
        assert puller.probe(pinned) == message
    finally:
        puller.close()
    assert puller.moved_in == 0 and server.moved_out == 0


def test_a_client_key_the_pod_never_heard_is_refused(a, server, tmp_path):
    stranger = make_pod(tmp_path, "S")
    puller = Puller(stranger.store, stranger.keys, {"A": server.endpoint("A")}.get)
    try:
        with pytest.raises(TransferError, match="pod 'A' .* refused our client key"):
            puller.fetch("A", put(a, tmp_path, b"y"))
        assert "refused our client key" in puller.probe(server.endpoint("A"))
    finally:
        puller.close()
    assert server.moved_out == 0


def test_password_and_anonymous_logins_are_refused(server):
    for login in (lambda t: t.auth_password("root", "root"), lambda t: t.auth_none("root")):
        transport = paramiko.Transport(("127.0.0.1", server.port))
        try:
            transport.start_client(timeout=10)
            with pytest.raises(paramiko.BadAuthenticationType) as caught:
                login(transport)
            assert caught.value.allowed_types == ["publickey"]
            assert not transport.is_authenticated()
        finally:
            transport.close()


# --- a read-only store ----------------------------------------------------------------

def test_nothing_can_be_written_removed_or_listed(a, b, server, tmp_path):
    sha = put(a, tmp_path, b"keep me")
    path = f"/sha256/{sha}"
    client = sftp_as(b, server.endpoint("A"))
    try:
        sftp = client.open_sftp()
        refused = [
            lambda: sftp.open(path, "r+b"),
            lambda: sftp.open(f"/sha256/{'c' * 64}", "wb"),
            lambda: sftp.open(path, "ab"),
            lambda: sftp.remove(path),
            lambda: sftp.rename(path, f"/sha256/{'d' * 64}"),
            lambda: sftp.mkdir("/sha256/new"),
            lambda: sftp.rmdir("/sha256"),
            lambda: sftp.chmod(path, 0o666),
            lambda: sftp.symlink(path, f"/sha256/{'e' * 64}"),
            lambda: sftp.listdir("/sha256"),
            lambda: sftp.listdir("/"),
        ]
        for attempt in refused:
            with pytest.raises(PermissionError):
                attempt()
        with sftp.open(path, "rb") as f:
            assert f.read() == b"keep me"
            with pytest.raises(IOError):
                f.write(b"over")
        exec_channel = client.get_transport().open_session()
        with pytest.raises(paramiko.SSHException):
            exec_channel.exec_command("cat /etc/passwd")
    finally:
        client.close()
    assert a.store.path(sha).read_bytes() == b"keep me"


def test_paths_that_escape_the_store_are_refused(a, b, server, tmp_path):
    sha = put(a, tmp_path, b"inside")
    planted = "f" * 64
    a.store.path(planted).parent.mkdir(parents=True, exist_ok=True)
    os.symlink("/etc/passwd", a.store.path(planted))
    client = sftp_as(b, server.endpoint("A"))
    try:
        sftp = client.open_sftp()
        for path in (f"/sha256/../{sha}", "/sha256/../x", "/etc/passwd", "../../etc/passwd",
                     f"/sha256/00/{sha}", str(a.store.path(sha))):
            with pytest.raises(PermissionError):
                sftp.open(path, "rb")
            with pytest.raises(PermissionError):
                sftp.stat(path)
        with pytest.raises(FileNotFoundError):
            sftp.open(f"/sha256/{planted}", "rb")
    finally:
        client.close()
    assert server.moved_out == 0


# --- stopping -------------------------------------------------------------------------

def test_stop_leaves_no_thread_of_the_server_or_the_puller(a, b, tmp_path):
    before = set(threading.enumerate())
    sha = put(a, tmp_path, os.urandom(MiB))
    server = StoreServer(a.store, a.keys, lambda line: line == b.keys.client_public).start()
    puller = Puller(b.store, b.keys, {"A": server.endpoint("A")}.get)
    try:
        puller.fetch("A", sha)
        assert len(set(threading.enumerate()) - before) >= 3   # accept, transports, sftp
    finally:
        server.stop()
    assert [t for t in set(threading.enumerate()) - before if _server_side(t)] == []
    puller.close()
    wait_for(lambda: not set(threading.enumerate()) - before, timeout=5,
             what="the puller's threads to end")


def _server_side(thread: threading.Thread) -> bool:
    return (isinstance(thread, paramiko.SubsystemHandler)
            or (isinstance(thread, paramiko.Transport) and thread.server_mode)
            or thread.name.startswith("store-server"))


def test_a_taken_port_is_an_error_naming_it(a, server):
    with pytest.raises(TransferError, match=f"127.0.0.1:{server.port}"):
        StoreServer(a.store, a.keys, lambda line: False, port=server.port).start()


def test_connections_past_the_limit_are_closed_at_once(a, monkeypatch):
    monkeypatch.setattr(server_module, "MAX_CONNECTIONS", 2)
    with StoreServer(a.store, a.keys, lambda line: False) as server:
        held = [socket.create_connection(("127.0.0.1", server.port), timeout=10)
                for _ in range(2)]
        try:
            for conn in held:               # each has a transport: it says its banner
                assert conn.recv(64).startswith(b"SSH-2.0-")
            extra = socket.create_connection(("127.0.0.1", server.port), timeout=10)
            with extra:
                assert extra.recv(64) == b""
        finally:
            for conn in held:
                conn.close()


def test_a_pod_that_stalls_fails_the_pull_instead_of_hanging_it(b, server, lookup, tmp_path,
                                                                 monkeypatch):
    monkeypatch.setattr(pull_module, "STALL_S", 0.5)
    release = threading.Event()
    lookup.hold = lambda sha: release.wait(10)
    puller = Puller(b.store, b.keys, {"A": server.endpoint("A")}.get)
    try:
        with pytest.raises(TransferError, match=f"pod 'A': pulling {'2' * 64} failed"):
            puller.fetch("A", "2" * 64)
    finally:
        release.set()
        puller.close()
    assert temp_files(b.store) == []


def test_many_small_files_arrive_each_once_and_a_missing_one_is_named(a, b, puller, server,
                                                                      tmp_path):
    contents = {put(a, tmp_path, os.urandom(100 + i)): 100 + i for i in range(40)}
    shas = list(contents) + list(contents)[:5]             # some asked twice
    got = puller.fetch_many("A", shas)
    assert set(got) == set(contents)
    assert all(got[sha].read_bytes() == a.store.path(sha).read_bytes() for sha in got)
    assert puller.moved_in == server.moved_out == sum(contents.values())
    missing = "3" * 64
    with pytest.raises(TransferError, match=f"does not hold {missing}"):
        puller.fetch_many("A", [put(a, tmp_path, b"one more"), missing])
