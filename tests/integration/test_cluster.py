"""The bus across servers, on NATS' own clustering and leaf nodes (issue 12,
item 1): three clustered real nats-servers on loopback, a hub and its leaf,
and a pod whose own server joins the cluster."""
from __future__ import annotations

import asyncio
import os
import json
import queue
import time

import nats
import pytest

from computepods.bus import chefwire
from computepods.bus import messages as m
from computepods.bus.auth import CHEF, MAJORDOMO, BusUsers
from computepods.bus.bridge import NatsBridge
from computepods.bus.client import request_build
from computepods.bus.natscluster import Login, ROUTE_USER
from computepods.bus.natsd import NatsServer
from computepods.charts.chef import Chef
from computepods.pod.pod import Pod, PodOptions
from busclients import forged_run, login
from cpodrun import write
from helpers import wait_for
import uppod

up = uppod.up           # the fixture: `cpod up` processes, stopped after the test

DELIVERY_S = 10.0        # seconds a message gets to cross the cluster
RESEND_S = 0.05          # between publishes while interest crosses the routes


async def _connect(url: str, users: BusUsers, role: str, **options):
    return await nats.connect(url, connect_timeout=2, allow_reconnect=False,
                              max_reconnect_attempts=0, **login(users, role), **options)


async def _until_heard(pub, subject: str, sub, data: bytes = b"{}") -> bytes:
    """Publish on ``pub`` until ``sub`` hears it (interest crosses routes
    a moment after the subscription): bounded by DELIVERY_S."""
    deadline = time.monotonic() + DELIVERY_S
    while time.monotonic() < deadline:
        await pub.publish(subject, data)
        await pub.flush()
        try:
            return (await sub.next_msg(timeout=RESEND_S)).data
        except nats.errors.TimeoutError:
            continue
    raise AssertionError(f"{subject} never crossed the cluster in {DELIVERY_S} s")


def test_a_chefs_message_on_server_1_reaches_a_subscriber_on_server_3(nats_cluster):
    first, third = nats_cluster.urls[0], nats_cluster.urls[2]
    users = nats_cluster.users

    async def run() -> bytes:
        chef = await _connect(first, users, CHEF)
        md = await _connect(third, users, MAJORDOMO)
        try:
            sub = await md.subscribe("cp.chefs.status")
            await md.flush()
            return await _until_heard(chef, "cp.chefs.status", sub, b'{"hello": 3}')
        finally:
            await chef.close()
            await md.close()
    assert asyncio.run(run()) == b'{"hello": 3}'


@pytest.mark.parametrize("member", [0, 1, 2])
def test_a_roles_permissions_hold_on_every_member(nats_cluster, member):
    """A chef logged in to any member can neither send a run nor read
    another role's subjects; what it may send still crosses."""
    users, urls = nats_cluster.users, nats_cluster.urls
    elsewhere = urls[(member + 1) % len(urls)]

    async def run() -> tuple[list[str], list[str]]:
        errors: list[str] = []
        refusals: asyncio.Queue = asyncio.Queue()

        async def on_error(exc):
            errors.append(str(exc))
            refusals.put_nowait(str(exc))
        chef = await _connect(urls[member], users, CHEF, error_cb=on_error)
        md = await _connect(elsewhere, users, MAJORDOMO)
        try:
            runs = await md.subscribe("cp.chef.*.run")
            status = await md.subscribe("cp.chefs.status")
            await md.flush()
            await chef.subscribe(">")
            await chef.subscribe("cp.build.*.events")
            await chef.publish("cp.chef.victim.run", json.dumps(forged_run("victim", "x")).encode())
            # An allowed message sent after it on the same path arrives, so
            # the run had every chance to arrive first.
            await _until_heard(chef, "cp.chefs.status", status)
            for _ in range(3):                    # the server's -ERR line for each refusal
                await asyncio.wait_for(refusals.get(), DELIVERY_S)
            got = []
            while True:
                try:
                    got.append((await runs.next_msg(timeout=0)).subject)
                except nats.errors.TimeoutError:
                    break
            return errors, got
        finally:
            await chef.close()
            await md.close()
    errors, runs_heard = asyncio.run(run())
    assert runs_heard == []
    text = " ".join(errors).lower()
    assert 'publish to "cp.chef.victim.run"' in text
    assert 'subscription to ">"' in text and 'subscription to "cp.build.*.events"' in text


GATED = {
    "computepods.toml": """
        [project]
        default = ["out/all.txt"]

        [[rule]]
        name = "up"
        inputs = ["src/%.txt"]
        outputs = ["build/%.txt"]
        command = "tr a-z A-Z < {in} > {out}"

        [[rule]]
        name = "all"
        inputs = ["build/a.txt", "build/b.txt"]
        outputs = ["out/all.txt"]
        command = "cat {in} > {out}"
    """,
    "src/a.txt": "red\n", "src/b.txt": "green\n",
}


def test_a_pod_joins_the_cluster_and_builds_what_another_member_was_asked(
        tmp_path, nats_cluster):
    """The pod's own nats-server joins by routes (as `cpod up --nats-routes`
    does); its only chef logs in to member 2, the build is asked on member 3."""
    root = write(tmp_path / "p", GATED)
    users = nats_cluster.users
    pod = Pod(root, PodOptions(chefs=0, nats_join=nats_cluster.join())).start()
    bridges, chef = [], None
    try:
        assert pod.server is not None and pod.server.join is not None
        nats_cluster.wait_clustered(members=len(nats_cluster.servers))
        chef_bridge = NatsBridge(nats_cluster.urls[1], name="chef:far",
                                 credentials=users.credentials(CHEF)).start()
        asker = NatsBridge(nats_cluster.urls[2], name="asker",
                           credentials=users.credentials(MAJORDOMO)).start()
        bridges += [chef_bridge, asker]
        chef = Chef("far", chef_bridge, root, 2, pod="far")
        chef.start()
        assert request_build(asker, [], root) == 0
        assert (root / "out/all.txt").read_text() == "RED\nGREEN\n"
        # The pod's own server is a member too, reachable by routes only
        # from the others: its client port is its own (no_advertise).
        assert all(not u.endswith(f":{pod.server.port}")
                   for u in (nats_cluster.servers[0].info() or {}).get("connect_urls", []))
        # Killed, it is restarted by the pod's keeper and joins again.
        pod.server._proc.kill()
        wait_for(lambda: pod.keeper.restarts >= 1 and pod.server.is_running(),
                 what="the pod's server to be restarted")
        wait_for(lambda: _answers(asker), timeout=DELIVERY_S,
                 what="the MajorDomo to be heard across the routes again")
        (root / "src/b.txt").write_text("blue\n")
        assert request_build(asker, [], root) == 0
        assert (root / "out/all.txt").read_text() == "RED\nBLUE\n"
    finally:
        if chef is not None:
            chef.stop()
        for bridge in bridges:
            bridge.stop()
        pod.stop()


def _answers(asker: NatsBridge) -> bool:
    """Whether a MajorDomo answers on the asker's server (an empty results
    message, which it takes and ignores)."""
    from computepods.errors import BusError
    try:
        return asker.request_sync(m.STEP_RESULTS, {"chef": "probe", "results": []},
                                  timeout=RESEND_S * 10, attempts=1).get("ok") is True
    except BusError:
        return False


def test_a_leaf_node_joins_a_hub_and_requests_cross_it(tmp_path, nats_hub):
    """A chef on a leaf server (its own users) answers a run the hub's
    majordomo asks; a leaf with a wrong password is refused by the hub."""
    leaf_users = BusUsers.generate()
    leaf = NatsServer(store_dir=tmp_path / "leaf", users=leaf_users, join=nats_hub.join())
    wrong = NatsServer(store_dir=tmp_path / "wrong", users=leaf_users,
                       join=nats_hub.join(Login(nats_hub.leaf_login.user, "guess")))
    try:
        leaf.start()
        wrong.start()

        async def run() -> bytes:
            chef = await _connect(leaf.url, leaf_users, CHEF)
            md = await _connect(nats_hub.url, nats_hub.users, MAJORDOMO)
            try:
                async def accept(msg):
                    await msg.respond(b'{"accepted": ["s"]}')
                await chef.subscribe("cp.chef.leafy.run", cb=accept)
                await chef.flush()
                deadline = time.monotonic() + DELIVERY_S
                while time.monotonic() < deadline:     # until the leaf's interest reached the hub
                    try:
                        return (await md.request("cp.chef.leafy.run", b"{}", timeout=RESEND_S)).data
                    except (nats.errors.TimeoutError, nats.errors.NoRespondersError):
                        continue
                raise AssertionError("no answer across the leaf connection")
            finally:
                await chef.close()
                await md.close()
        assert asyncio.run(run()) == b'{"accepted": ["s"]}'
        wait_for(lambda: "Leafnode Error 'Authorization Violation'" in wrong.log_tail(20000),
                 what="the hub to refuse the leaf with a wrong password")
        assert 'authentication error - User "leaf"' in nats_hub.server.log_tail(20000)
        assert "Authorization Violation" not in leaf.log_tail(20000)
    finally:
        for server in (leaf, wrong):
            server.close()


def test_a_route_without_the_routes_password_is_refused(tmp_path, nats_cluster):
    stranger_join = nats_cluster.join()
    stranger = NatsServer(store_dir=tmp_path / "stranger", users=nats_cluster.users,
                          join=stranger_join.__class__(
                              routes=stranger_join.routes, cluster=stranger_join.cluster,
                              route_login=Login(ROUTE_USER, "guess")))
    try:
        stranger.start()
        wait_for(lambda: "Route Error 'Authorization Violation'" in stranger.log_tail(20000),
                 what="the members to refuse the route with a wrong password")
        assert any('authentication error - User "route"' in s.log_tail(20000)
                   for s in nats_cluster.servers)
        assert not (stranger.info() or {}).get("connect_urls")      # it knows no member
        for member in nats_cluster.servers:
            assert all(not u.endswith(f":{stranger.port}")
                       for u in (member.info() or {}).get("connect_urls", []))
    finally:
        stranger.close()


def test_a_killed_members_clients_reconnect_to_another_member(nats_cluster):
    """The bridge was given one member's URL; it learnt the others from the
    cluster, and when that member is SIGKILLed it goes on with another."""
    users, first = nats_cluster.users, nats_cluster.servers[0]
    listener = NatsBridge(first.url, name="listener", credentials=users.credentials(MAJORDOMO))
    talker = NatsBridge(nats_cluster.urls[2], name="talker", credentials=users.credentials(CHEF))
    heard: "queue.Queue[m.Message]" = queue.Queue()
    try:
        listener.start()
        talker.start()
        listener.listen(m.CHEF_STATUS, heard)
        status = chefwire.chef_status("c-far", "far", 1)

        def crossed() -> bool:
            talker.publish(m.CHEF_STATUS, status)
            try:
                return heard.get(timeout=RESEND_S).data.get("chef") == "c-far"
            except queue.Empty:
                return False
        wait_for(crossed, timeout=DELIVERY_S, what="a status to cross before the kill")
        first._proc.kill()                       # SIGKILL: no goodbye to its clients
        first._proc.wait()
        wait_for(lambda: listener.stats.reconnects >= 1, timeout=DELIVERY_S,
                 what="the listener to reconnect to another member")
        assert listener._nc.connected_url.port != first.port
        while not heard.empty():
            heard.get_nowait()
        wait_for(crossed, timeout=DELIVERY_S, what="a status to cross after the kill")
    finally:
        listener.stop()
        talker.stop()


def test_cpod_chef_joins_a_hub_that_nats_config_wrote_as_a_leaf(tmp_path, monkeypatch):
    """The user's way: `cpod nats-config DIR --leaf-port`, `nats-server -c
    DIR/nats.conf`; on the chef's machine `cpod chef --nats-leaf HUB` with
    DIR/leaf.env; a pod on the hub then builds with that chef alone."""
    from computepods.bus.natsd import free_port
    from computepods.cli.cpod import main
    from cpodrun import CPOD
    from federation import ConfiguredServer, env_file
    import subprocess

    conf = tmp_path / "conf"
    leaf_port = free_port()
    assert main(["nats-config", str(conf), "--leaf-port", f"127.0.0.1:{leaf_port}"]) == 0
    hub = ConfiguredServer(conf / "nats.conf", tmp_path / "hub.log")
    root = write(tmp_path / "p", GATED)
    chef_env = {k: v for k, v in os.environ.items() if not k.startswith("CP_NATS")}
    chef_env.update(env_file(conf / "chef.env"))
    chef_env.update(env_file(conf / "leaf.env"))
    chef = subprocess.Popen([*CPOD, "-C", str(root), "chef", "--name", "leafy", "-j", "2",
                             "--nats-leaf", f"127.0.0.1:{leaf_port}"], env=chef_env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    for name, value in env_file(conf / "majordomo.env").items():
        monkeypatch.setenv(name, value)
    pod = None
    try:
        pod = Pod(root, PodOptions(nats_url=hub.url, chefs=0)).start()
        heard: "queue.Queue[m.Message]" = queue.Queue()
        pod.bridge.listen(m.CHEF_STATUS, heard)
        wait_for(lambda: chef.poll() is not None or any(
            msg.data.get("chef") == "leafy" for msg in _drain(heard)), timeout=30,
            what="the leaf's chef to be heard on the hub")
        assert chef.poll() is None, chef.communicate()
        assert request_build(pod.bridge, [], root) == 0
        assert (root / "out/all.txt").read_text() == "RED\nGREEN\n"
    finally:
        if pod is not None:
            pod.stop()
        chef.terminate()
        try:
            out, err = chef.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            chef.kill()
            chef.communicate()
            pytest.fail("cpod chef ignored SIGTERM")
        stopped = hub.stop()
    assert chef.returncode == 0, err
    assert stopped, hub.log.read_text()


def _drain(q: "queue.Queue[m.Message]") -> list[m.Message]:
    out = []
    while not q.empty():
        out.append(q.get_nowait())
    return out


def test_a_route_port_that_is_taken_fails_the_start_naming_it(tmp_path):
    """nats-server answers clients before it binds its route port, then
    dies: start() waits for every port it listens on, so it says so."""
    import socket
    from computepods.bus.natscluster import Listen, NatsJoin
    from computepods.errors import NatsServerError

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = NatsServer(store_dir=tmp_path / "n", join=NatsJoin(
            cluster=Listen("127.0.0.1", port), route_login=Login(ROUTE_USER, "pw")))
        try:
            with pytest.raises(NatsServerError, match=f"routes port {port} on 127.0.0.1 is in use"):
                server.start()
            assert not server.is_running()
        finally:
            server.close()


def test_cpod_up_with_nats_routes_joins_the_cluster_and_takes_a_members_request(
        tmp_path, nats_cluster, up, monkeypatch):
    from computepods.bus.natscluster import ROUTE_PASSWORD_VAR, ROUTE_USER_VAR
    login = nats_cluster.route_login
    monkeypatch.setenv(ROUTE_USER_VAR, login.user)
    monkeypatch.setenv(ROUTE_PASSWORD_VAR, login.password)
    monkeypatch.delenv("CP_NATS_URL", raising=False)
    root = write(tmp_path / "p", GATED)
    pod = up(root, "--nats-routes", ",".join(nats_cluster.route_urls),
             "--nats-cluster-port", "127.0.0.1:0")
    wait_for(lambda: pod.builds_done() >= 1, timeout=60, what="the pod's first build")
    assert (root / "out/all.txt").read_text() == "RED\nGREEN\n"
    asker = NatsBridge(nats_cluster.urls[2], name="asker",
                       credentials=nats_cluster.users.credentials(MAJORDOMO)).start()
    try:           # the only MajorDomo is the pod's: the request crossed the routes
        assert request_build(asker, [], root) == 0
    finally:
        asker.stop()
