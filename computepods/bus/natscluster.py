"""A pod's nats-server as a member of a NATS cluster, a leaf of a hub, or a hub.

The bus spans machines on NATS' own clustering (docs/scaling.md), nothing
home-made.  This module writes the ``cluster { ... }`` and ``leafnodes
{ ... }`` blocks of a server's config; :class:`computepods.bus.natsd.NatsServer`
appends them to the users' block (``bus/auth.py``).

Who is trusted with what:

* every server enforces the roles' permissions on the clients that log in
  to *it* (its own ``authorization`` block);
* a route or a leaf connection is another server, and carries everything:
  it must log in (``route``/``leaf`` users, their passwords from
  ``cpod nats-config DIR``: ``DIR/route.env``, ``DIR/leaf.env``), so no
  route or leaf port is open to whoever reaches it;
* a pod's own server advertises no client URLs to the cluster
  (``no_advertise``): its client port stays on loopback for its own
  clients, and a client elsewhere is never told to reconnect there.

Standard library only: ``cpod`` writes a server config before its heavy
imports, as ``bus/auth.py`` does.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace
from typing import Callable, Mapping
from urllib.parse import quote, urlsplit

from computepods.errors import ClusterConfigError

CLUSTER_NAME = "computepods"         # one name for every member: routes refuse another
ROUTE_USER, LEAF_USER = "route", "leaf"
ROUTE_USER_VAR, ROUTE_PASSWORD_VAR = "CP_NATS_ROUTE_USER", "CP_NATS_ROUTE_PASSWORD"
LEAF_USER_VAR, LEAF_PASSWORD_VAR = "CP_NATS_LEAF_USER", "CP_NATS_LEAF_PASSWORD"
ROUTE_SCHEME, LEAF_SCHEME = "nats-route", "nats-leaf"
DEFAULT_CLUSTER_PORT = 6222          # nats-server's usual route port
DEFAULT_LEAF_PORT = 7422             # nats-server's usual leaf node port
ANY_HOST = "0.0.0.0"                 # a route port listens for other machines
AUTH_TIMEOUT_S = 2                   # seconds a route or leaf has to log in
PASSWORD_BYTES = 24                  # randomness of a generated route/leaf password
ENV_HELP = ("`cpod nats-config DIR` writes them to DIR/route.env and DIR/leaf.env; "
            "load the file into the environment (set -a; . DIR/route.env; set +a)")


@dataclass(frozen=True)
class Login:
    """How one server logs in to another (a route or a leaf connection)."""
    user: str
    password: str = field(repr=False)

    @classmethod
    def generate(cls, user: str) -> "Login":
        import secrets                    # not on every cpod start: only nats-config needs it
        return cls(user, secrets.token_urlsafe(PASSWORD_BYTES))

    @classmethod
    def from_env(cls, user_var: str, password_var: str,
                 env: Mapping[str, str] = os.environ) -> "Login | None":
        user, password = env.get(user_var), env.get(password_var)
        return cls(user, password) if user and password else None

    def env(self, user_var: str, password_var: str) -> dict[str, str]:
        return {user_var: self.user, password_var: self.password}


@dataclass(frozen=True)
class Listen:
    """Where a server listens for routes or leaf nodes; port 0: a free one at start."""
    host: str
    port: int

    @classmethod
    def parse(cls, text: str | int, default_host: str = ANY_HOST, what: str = "port") -> "Listen":
        """``PORT`` or ``HOST:PORT`` (``[::1]:PORT`` for IPv6)."""
        text = str(text).strip()
        host, sep, port = text.rpartition(":")
        if not sep:
            host = default_host
        host = host.strip("[]") or default_host
        if not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ClusterConfigError(f"{what} {text!r}: give PORT or HOST:PORT, "
                                     "with a port from 0 (any free one) to 65535")
        return cls(host, int(port))

    def text(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_urls(text: str | None, what: str) -> tuple[str, ...]:
    """A comma-separated list of server URLs (``host:port`` is taken as one)."""
    urls = tuple(u.strip() for u in (text or "").split(",") if u.strip())
    for url in urls:
        parts = urlsplit(url if "://" in url else f"nats://{url}")
        try:
            port = parts.port
        except ValueError:
            port = None
        if not parts.hostname or port is None:
            raise ClusterConfigError(f"{what} {url!r}: not a server URL "
                                     "(give HOST:PORT or nats://HOST:PORT, comma-separated)")
    return urls


def with_login(url: str, scheme: str, login: Login | None) -> str:
    """``url`` with ``scheme`` and, unless it names a user already, ``login``."""
    parts = urlsplit(url if "://" in url else f"{scheme}://{url}")
    netloc = parts.netloc
    if "@" not in netloc and login is not None:
        netloc = f"{quote(login.user, safe='')}:{quote(login.password, safe='')}@{netloc}"
    return f"{scheme}://{netloc}"


def has_login(url: str) -> bool:
    return "@" in urlsplit(url if "://" in url else f"nats://{url}").netloc


@dataclass(frozen=True)
class NatsJoin:
    """How one nats-server joins others: as a cluster member (``routes``,
    ``cluster``), as a leaf of hubs (``leaf_remotes``), or as a hub for
    leaves (``leaf_listen``).  Any mix; the empty join is a lone server."""
    routes: tuple[str, ...] = ()          # other members' route URLs (self-routes are ignored)
    cluster: Listen | None = None         # where this member takes routes
    route_login: Login | None = None      # the routes' user, both ways
    leaf_remotes: tuple[str, ...] = ()    # hubs this server joins as a leaf
    leaf_listen: Listen | None = None     # where this hub takes leaf nodes
    leaf_login: Login | None = None       # the leaves' user, both ways
    name: str = CLUSTER_NAME
    advertise: bool = False               # gossip client URLs (True: clients fail over)

    def __bool__(self) -> bool:
        return bool(self.routes or self.cluster or self.leaf_remotes or self.leaf_listen)

    def check(self) -> "NatsJoin":
        """Raise ClusterConfigError for a join that would open a port to
        anyone, or solicit a connection it cannot log in with."""
        if self.routes and self.cluster is None:
            raise ClusterConfigError("routes need a route port of this server's own "
                                     "(--nats-cluster-port): the cluster's members connect back")
        if self.cluster is not None and self.route_login is None:
            raise ClusterConfigError(
                f"a cluster port needs the routes' login ({ROUTE_USER_VAR}, {ROUTE_PASSWORD_VAR}), "
                f"so that only the cluster's members can join it: {ENV_HELP}")
        if self.leaf_listen is not None and self.leaf_login is None:
            raise ClusterConfigError(
                f"a leaf node port needs the leaves' login ({LEAF_USER_VAR}, {LEAF_PASSWORD_VAR}), "
                f"so that only the federation's servers can join it: {ENV_HELP}")
        bare = [u for u in self.leaf_remotes if not has_login(u)]
        if bare and self.leaf_login is None:
            raise ClusterConfigError(
                f"--nats-leaf {bare[0]}: a hub takes only leaves that log in "
                f"({LEAF_USER_VAR}, {LEAF_PASSWORD_VAR}): {ENV_HELP}")
        if not self.name.replace("-", "").replace("_", "").isalnum():
            raise ClusterConfigError(f"cluster name {self.name!r}: letters, digits, '-', '_'")
        return self

    def with_ports(self, pick: Callable[[str], int]) -> "NatsJoin":
        """The same join with each port 0 replaced by ``pick(host)``."""
        def fixed(listen: Listen | None) -> Listen | None:
            if listen is None or listen.port:
                return listen
            return Listen(listen.host, pick(listen.host))
        return replace(self, cluster=fixed(self.cluster), leaf_listen=fixed(self.leaf_listen))

    def listens(self) -> list[tuple[str, str, int]]:
        """(what, host to dial on this machine, port) of each port it takes connections on."""
        return [(what, dial_host(listen.host), listen.port)
                for what, listen in (("routes port", self.cluster), ("leaves port", self.leaf_listen))
                if listen is not None]

    def route_url(self, host: str | None = None) -> str:
        """Where the other members route to this one (no login in it)."""
        if self.cluster is None:
            raise ClusterConfigError("this server takes no routes (no cluster port)")
        target = Listen(host or dial_host(self.cluster.host), self.cluster.port)
        return f"{ROUTE_SCHEME}://{target.text()}"

    def leaf_url(self, host: str | None = None) -> str:
        """Where leaves connect to this hub (no login in it)."""
        if self.leaf_listen is None:
            raise ClusterConfigError("this server takes no leaf nodes (no leaf port)")
        target = Listen(host or dial_host(self.leaf_listen.host), self.leaf_listen.port)
        return f"{LEAF_SCHEME}://{target.text()}"

    def config(self) -> str:
        """The ``cluster`` and ``leafnodes`` blocks of nats.conf ('' for none).
        It holds passwords: the caller writes it 0600, as the users' block."""
        self.check()
        out = []
        if self.cluster is not None:
            lines = [f"name: {_q(self.name)}", f"listen: {_q(self.cluster.text())}",
                     f"no_advertise: {'false' if self.advertise else 'true'}",
                     _authorization(self.route_login)]
            if self.routes:
                lines.append("routes: " + _list(with_login(u, ROUTE_SCHEME, self.route_login)
                                                for u in self.routes))
            out.append(_block("cluster", lines))
        if self.leaf_listen is not None or self.leaf_remotes:
            lines = []
            if self.leaf_listen is not None:
                lines += [f"listen: {_q(self.leaf_listen.text())}",
                          f"no_advertise: {'false' if self.advertise else 'true'}",
                          _authorization(self.leaf_login)]
            if self.leaf_remotes:
                urls = _list(with_login(u, LEAF_SCHEME, self.leaf_login)
                             for u in self.leaf_remotes)
                lines.append(f"remotes: [{{urls: {urls}}}]")
            out.append(_block("leafnodes", lines))
        return "".join(out)


def dial_host(host: str) -> str:
    """A host another server on this machine can dial for a listen address."""
    return "127.0.0.1" if host in (ANY_HOST, "") else "::1" if host == "::" else host


def _authorization(login: Login | None) -> str:
    assert login is not None               # check() made sure
    return (f"authorization {{user: {_q(login.user)}, password: {_q(login.password)}, "
            f"timeout: {AUTH_TIMEOUT_S}}}")


def _block(name: str, lines: list[str]) -> str:
    return f"{name} {{\n" + "".join(f"  {line}\n" for line in lines) + "}\n"


def _q(text: str) -> str:
    return json.dumps(text)                 # a quoted string nats.conf parses


def _list(items) -> str:
    return "[" + ", ".join(_q(i) for i in items) + "]"
