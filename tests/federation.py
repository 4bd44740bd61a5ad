"""Real nats-servers joined as NATS joins them: a cluster of N members on
free loopback ports, and a hub that takes leaf nodes.  Used through the
``nats_cluster`` and ``nats_hub`` fixtures (tests/conftest.py); each stops
every server it started, and fails the test if one had to be killed.

Every member of a :class:`NatsCluster` has the same bus users (the four
roles of bus/auth.py) and advertises its client URL, so a client of one
member learns the others and fails over to them; a route logs in with
the cluster's own route user, never anonymously."""
from __future__ import annotations

from pathlib import Path

from computepods.bus.auth import BusUsers
from computepods.bus.natscluster import Listen, Login, NatsJoin, ROUTE_USER, LEAF_USER
from computepods.bus.natsd import NatsServer, free_port
from helpers import wait_for

HOST = "127.0.0.1"
CLUSTER_UP_S = 20.0        # seconds the members get to find each other


class NatsCluster:
    """``size`` clustered nats-servers, each routed to all the others."""

    def __init__(self, root: Path, size: int = 3, users: BusUsers | None = None):
        self.users = users or BusUsers.generate()
        self.route_login = Login.generate(ROUTE_USER)
        ports = [free_port(HOST) for _ in range(size)]
        self.route_urls = [f"nats-route://{HOST}:{p}" for p in ports]
        self.servers = [
            NatsServer(store_dir=Path(root) / f"n{i}", host=HOST, users=self.users,
                       join=self.join(Listen(HOST, port), advertise=True))
            for i, port in enumerate(ports)]

    def join(self, listen: Listen | None = None, advertise: bool = False) -> NatsJoin:
        """How another server joins this cluster (its route port free by default)."""
        return NatsJoin(routes=tuple(self.route_urls), cluster=listen or Listen(HOST, 0),
                        route_login=self.route_login, advertise=advertise)

    @property
    def urls(self) -> list[str]:
        return [s.url for s in self.servers]

    def start(self) -> "NatsCluster":
        for server in self.servers:
            server.start()
        self.wait_clustered()
        return self

    def wait_clustered(self, members: int | None = None) -> None:
        """Until each running member tells its clients of ``members`` - 1 others."""
        want = (members or sum(s.is_running() for s in self.servers)) - 1

        def clustered() -> bool:
            for server in self.servers:
                if server.is_running():
                    info = server.info() or {}
                    others = [u for u in info.get("connect_urls", []) if not u.endswith(
                        f":{server.port}")]
                    if len(others) < want:
                        return False
            return True
        wait_for(clustered, timeout=CLUSTER_UP_S, what=f"{len(self.servers)} servers to cluster")

    def stop(self) -> list[str]:
        """Stop every member; the names of those that had to be killed."""
        killed = []
        for server in self.servers:
            server.stop()
            if server.was_killed:
                killed.append(f"{server.name}:\n{server.log_tail()}")
            server.close()
        return killed


class LeafHub:
    """A nats-server with the bus users that takes leaf nodes logging in as ``leaf``."""

    def __init__(self, root: Path, users: BusUsers | None = None):
        self.users = users or BusUsers.generate()
        self.leaf_login = Login.generate(LEAF_USER)
        self.server = NatsServer(store_dir=Path(root) / "hub", host=HOST, users=self.users,
                                 join=NatsJoin(leaf_listen=Listen(HOST, 0),
                                               leaf_login=self.leaf_login))

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def leaf_url(self) -> str:
        assert self.server.join is not None
        return self.server.join.leaf_url()

    def join(self, login: Login | None = None) -> NatsJoin:
        """How a server joins this hub as a leaf (with another ``login``: a wrong one)."""
        return NatsJoin(leaf_remotes=(self.leaf_url,), leaf_login=login or self.leaf_login)

    def start(self) -> "LeafHub":
        self.server.start()
        return self

    def stop(self) -> list[str]:
        self.server.stop()
        killed = [f"{self.server.name}:\n{self.server.log_tail()}"] if self.server.was_killed else []
        self.server.close()
        return killed


class ConfiguredServer:
    """``nats-server -c CONF`` as a user runs it from what `cpod nats-config`
    wrote: its client port on loopback, stopped with SIGTERM."""

    def __init__(self, conf: Path, log: Path):
        import subprocess
        from computepods.bus.natsd import nats_server_binary
        self.port = free_port(HOST)
        self.url = f"nats://{HOST}:{self.port}"
        self.log = log
        with open(log, "wb") as out:
            self.proc = subprocess.Popen([nats_server_binary(), "-c", str(conf), "-a", HOST,
                                          "-p", str(self.port)],
                                         stdout=out, stderr=out, stdin=subprocess.DEVNULL)
        wait_for(lambda: self.proc.poll() is not None or "Server is ready" in log.read_text(),
                 what="nats-server -c to start")
        assert self.proc.poll() is None, log.read_text()

    def stop(self) -> bool:
        """Stop it; False if it had to be killed."""
        import subprocess
        self.proc.terminate()
        try:
            self.proc.wait(10)
            return True
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return False


def env_file(path: Path) -> dict[str, str]:
    """The variables of a `cpod nats-config` .env file."""
    return dict(line.split("=", 1) for line in path.read_text().split())
