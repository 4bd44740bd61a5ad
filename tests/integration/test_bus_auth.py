"""Nobody on the bus without a password, and each role only where it belongs
(issue 11, break 1): against real nats-servers, as an attacker on the
machine would try."""
from __future__ import annotations

import asyncio
import stat
import subprocess
from pathlib import Path

import nats
import pytest

from computepods.bus import messages as m
from computepods.bus.auth import API, CHEF, MAJORDOMO, ROLES, WATCHER, BusUsers, Credentials
from computepods.bus.bridge import NatsBridge
from computepods.bus.client import request_build
from computepods.bus.natsd import free_port, nats_server_binary
from computepods.errors import BusError
from computepods.paths import BUS_USERS, POD_FILE, STATE_DIR
from computepods.pod.pod import Pod, PodOptions
from busclients import attempt_connect, connect, forged_run, login
from projects import COPY as PROJECT
from cpodrun import cpod, write
from helpers import wait_for

@pytest.fixture
def pod(tmp_path):
    """A pod on its embedded nats-server, its chef in-process."""
    root = write(tmp_path / "p", PROJECT)
    pod = Pod(root, PodOptions(slots=1)).start()
    yield pod
    pod.stop()


def test_a_client_without_a_password_can_neither_connect_nor_read(pod):
    assert "Authorization Violation" in asyncio.run(attempt_connect(pod.url))
    assert "Authorization Violation" in asyncio.run(
        attempt_connect(pod.url, user=MAJORDOMO, password="guess"))
    with pytest.raises(BusError, match="refused a client without credentials"):
        NatsBridge(pod.url, name="anonymous", credentials=Credentials()).start()

    # A user of another role cannot read what the MajorDomo sends its chefs.
    async def eavesdrop(role: str) -> tuple[list, list]:
        errors: list = []
        refused = asyncio.Event()

        async def on_error(exc):
            errors.append(str(exc))
            refused.set()
        nc = await connect(pod.url, error_cb=on_error, **login(pod.server.users, role))
        try:
            sub = await nc.subscribe(">")
            await nc.flush()
            pod.bridge.publish(m.CHEFS_QUERY, {})
            await asyncio.wait_for(refused.wait(), 10)     # the server's answer to SUB
            got = []
            try:
                got.append(await sub.next_msg(timeout=0.2))
            except nats.errors.TimeoutError:
                pass
            return errors, got
        finally:
            await nc.close()

    for role in (CHEF, WATCHER, API):
        errors, got = asyncio.run(eavesdrop(role))
        assert any("permissions violation for subscription" in e.lower() for e in errors), role
        assert got == [], role


def test_only_the_majordomo_can_send_a_run(pod, tmp_path):
    chef = pod.chefs[0].chef
    marker = tmp_path / "PWNED"
    for role in (CHEF, API, WATCHER):
        forger = NatsBridge(pod.url, name=f"forger-{role}",
                            credentials=pod.server.users.credentials(role)).start()
        try:
            forger.publish_raw(pod.bridge.subject(m.CHEF_RUN, chef=chef),
                               m.encode(forged_run(chef, marker)))
            wait_for(lambda: any("permissions violation for publish" in e.lower()
                                 for e in forger.stats.errors), what=f"{role}: refused")
        finally:
            forger.stop()
    # The chef is alive and serves its MajorDomo: a build goes through...
    assert request_build(pod.bridge, [], pod.root) == 0
    assert (pod.root / "out/a.txt").read_text() == "a\n"
    # ...and ran nothing it was not sent by the MajorDomo.
    assert not marker.exists()
    # The same message from the MajorDomo runs: the forgeries were refused
    # by the bus, not malformed.
    reply = pod.bridge.request_sync(m.CHEF_RUN, forged_run(chef, marker), chef=chef)
    assert reply["rejected"] == []
    wait_for(marker.exists, what="the MajorDomo's run")


def test_the_pods_files_keep_the_passwords_to_the_owner(pod):
    users = BusUsers.load(pod.root / BUS_USERS)
    assert users.passwords == pod.server.users.passwords
    for path in (pod.root / BUS_USERS, pod.server.store_dir / "nats.conf"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    state = pod.root / STATE_DIR
    leaks = [p for p in state.rglob("*") if p.is_file() and stat.S_IMODE(p.stat().st_mode) & 0o077
             and any(pw.encode() in p.read_bytes() for pw in users.passwords.values())]
    assert leaks == []
    assert not (pod.root / POD_FILE).exists() or all(
        pw not in (pod.root / POD_FILE).read_text() for pw in users.passwords.values())


class BareServer:
    """nats-server as a user might start it: from the command line, no pod's."""

    def __init__(self, tmp: Path, *args: str):
        self.port = free_port()
        self.url = f"nats://127.0.0.1:{self.port}"
        self.log = tmp / f"nats-{self.port}.log"
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen([nats_server_binary(), "-a", "127.0.0.1",
                                          "-p", str(self.port), *args],
                                         stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        wait_for(lambda: self.proc.poll() is not None or "Server is ready" in self.log.read_text(),
                 what="nats-server to start")
        assert self.proc.poll() is None, self.log.read_text()

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            pytest.fail(f"nats-server ignored SIGTERM:\n{self.log.read_text()}")


@pytest.fixture
def bare_server(tmp_path):
    servers: list[BareServer] = []

    def start(*args: str) -> BareServer:
        servers.append(BareServer(tmp_path, *args))
        return servers[-1]
    yield start
    for server in servers:
        server.stop()


def test_a_pod_refuses_a_server_without_authentication(tmp_path, bare_server, monkeypatch):
    for name in ("CP_NATS_USER", "CP_NATS_PASSWORD", "CP_INSECURE_BUS"):
        monkeypatch.delenv(name, raising=False)
    server = bare_server()
    root = write(tmp_path / "p", PROJECT)
    run = cpod(root, "build", "--nats", server.url)
    assert run.code == 2, run.err
    assert "asks for no authentication" in run.err and "--insecure-bus" in run.err
    assert not (root / "out/a.txt").exists()
    run = cpod(root, "build", "--nats", server.url, "--insecure-bus")
    assert run.code == 0, run.err
    assert (root / "out/a.txt").read_text() == "a\n"
    assert run.err.count("can run commands through its chefs") == 1, run.err


def test_nats_config_writes_a_server_users_and_one_env_file_per_role(tmp_path, bare_server,
                                                                     monkeypatch):
    conf = tmp_path / "bus"
    run = cpod(tmp_path, "nats-config", str(conf), "--namespace", "cp", "--namespace", "team")
    assert run.code == 0, run.err
    names = sorted(p.name for p in conf.iterdir())
    assert names == sorted(["nats.conf", *(f"{role}.env" for role in ROLES)])
    for path in conf.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    server = bare_server("-c", str(conf / "nats.conf"))

    def env_of(role: str) -> dict:
        lines = (conf / f"{role}.env").read_text().splitlines()
        return dict(line.split("=", 1) for line in lines)

    # The server refuses strangers, and a pod built with the majordomo's
    # file builds (its chef process logs in with the same environment).
    assert "Authorization Violation" in asyncio.run(attempt_connect(server.url))
    root = write(tmp_path / "p", PROJECT)
    for name, value in env_of(MAJORDOMO).items():
        monkeypatch.setenv(name, value)
    run = cpod(root, "build", "--nats", server.url)
    assert run.code == 0, run.err
    assert (root / "out/a.txt").read_text() == "a\n"
    # The watcher's file logs in, and may only say what changed.
    watcher = NatsBridge(server.url, name="watcher", namespace="team",
                         credentials=Credentials.from_env(env_of(WATCHER))).start()
    try:
        watcher.publish_raw(watcher.subject(m.BUILD_REQUEST), m.encode({"targets": []}))
        wait_for(lambda: any("permissions violation" in e.lower() for e in watcher.stats.errors),
                 what="the watcher refused a build request")
    finally:
        watcher.stop()
