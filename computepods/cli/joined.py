"""The command line of a pod whose own nats-server joins others.

``cpod up`` and ``cpod chef`` take ``--nats-routes URL,…`` (join a cluster,
taking routes on ``--nats-cluster-port``) and ``--nats-leaf URL,…`` (join a
hub as a leaf node), instead of ``--nats URL`` (connect to a server that
exists).  ``cpod nats-config DIR`` writes the routes' and leaves' logins
beside the roles' when asked (``--cluster-port``, ``--routes``:
``DIR/route.env``; ``--leaf-port``: ``DIR/leaf.env``), with the blocks of a
server the user runs.

Only the standard library at import: every cpod start builds the parser,
a cold no-op too (docs/architecture.md §10), so the cluster module is
imported once an option asks for it.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING, Mapping

from computepods.errors import UsageError

if TYPE_CHECKING:
    from computepods.bus.natscluster import NatsJoin
    from computepods.bus.natsd import NatsServer

ROUTE_ENV, LEAF_ENV = "route.env", "leaf.env"     # what `cpod nats-config DIR` adds


def add_join_arguments(parser: argparse.ArgumentParser) -> None:
    """--nats-routes, --nats-cluster-port, --nats-leaf on a pod's subcommand."""
    g = parser.add_argument_group(
        "a NATS server of the pod's own, joined to others (instead of --nats URL)")
    g.add_argument("--nats-routes", metavar="URL,…",
                   help="join a NATS cluster: its members' route URLs (HOST:PORT, "
                        "comma-separated), logging in as the environment says (`cpod "
                        f"nats-config DIR` writes DIR/{ROUTE_ENV})")
    g.add_argument("--nats-cluster-port", metavar="[HOST:]PORT",
                   help="where the pod's server takes routes from the other members "
                        "(default: every interface, port 6222, with --nats-routes)")
    g.add_argument("--nats-leaf", metavar="URL,…",
                   help="join a hub as a leaf node: its leaf URLs (HOST:PORT), logging in "
                        f"as the environment says (DIR/{LEAF_ENV})")


def join_from_args(args: argparse.Namespace,
                   env: Mapping[str, str] = os.environ) -> "NatsJoin | None":
    """The join the options ask for, checked; None for none (a lone server,
    or ``--nats URL``)."""
    from computepods.bus.natscluster import (ANY_HOST, DEFAULT_CLUSTER_PORT, LEAF_PASSWORD_VAR,
                                             LEAF_USER_VAR, ROUTE_PASSWORD_VAR, ROUTE_USER_VAR,
                                             Listen, Login, NatsJoin, parse_urls)
    routes = parse_urls(getattr(args, "nats_routes", None), "--nats-routes")
    leaves = parse_urls(getattr(args, "nats_leaf", None), "--nats-leaf")
    port = getattr(args, "nats_cluster_port", None)
    cluster = (Listen.parse(port, what="--nats-cluster-port") if port is not None
               else Listen(ANY_HOST, DEFAULT_CLUSTER_PORT) if routes else None)
    if not (routes or leaves or cluster):
        return None
    if getattr(args, "nats", None):
        raise UsageError(f"--nats {args.nats} (or CP_NATS_URL) connects to a server that runs; "
                         "--nats-routes/--nats-leaf/--nats-cluster-port start the pod's own "
                         "and join it to others: give one or the other")
    return NatsJoin(routes=routes, cluster=cluster,
                    route_login=Login.from_env(ROUTE_USER_VAR, ROUTE_PASSWORD_VAR, env),
                    leaf_remotes=leaves,
                    leaf_login=Login.from_env(LEAF_USER_VAR, LEAF_PASSWORD_VAR, env)).check()


def start_own_server(args: argparse.Namespace, *namespaces: str) -> "NatsServer | None":
    """For a `cpod chef` given --nats-routes/--nats-leaf: start its own
    nats-server (its own users, on loopback) joined as asked, point
    ``args.nats`` at it and log this process in as its chef.  None when the
    options ask for no join.  The caller closes the server."""
    join = join_from_args(args)
    if join is None:
        return None
    from computepods.bus.auth import CHEF, BusUsers
    from computepods.bus.natsd import NatsServer

    server = NatsServer(users=BusUsers.generate(*namespaces), join=join)
    try:
        args.nats = server.start()
    except BaseException:
        server.close()
        raise
    os.environ.update(server.users.env(CHEF))     # the bridge reads its login there
    return server


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """`cpod nats-config`'s options for a clustered server or a hub."""
    parser.add_argument("--cluster-port", metavar="[HOST:]PORT",
                        help="the server takes routes here, from members logging in as "
                             f"DIR/{ROUTE_ENV} says")
    parser.add_argument("--routes", metavar="URL,…",
                        help="the other members' route URLs (HOST:PORT, comma-separated)")
    parser.add_argument("--leaf-port", metavar="[HOST:]PORT",
                        help=f"the server takes leaf nodes here (pods run with --nats-leaf), "
                             f"logging in as DIR/{LEAF_ENV} says")


def config_join(args: argparse.Namespace) -> "NatsJoin":
    """What `cpod nats-config`'s options ask of the server, with new route
    and leaf logins; checked, so that nothing is written for a bad option."""
    from computepods.bus.natscluster import (LEAF_USER, ROUTE_USER, Listen, Login, NatsJoin,
                                             parse_urls)
    routes = parse_urls(getattr(args, "routes", None), "--routes")
    port, leaf_port = getattr(args, "cluster_port", None), getattr(args, "leaf_port", None)
    if routes and port is None:
        raise UsageError("--routes: give --cluster-port too (the members connect back there)")
    join = NatsJoin(routes=routes, route_login=Login.generate(ROUTE_USER),
                    leaf_login=Login.generate(LEAF_USER), advertise=True,
                    cluster=Listen.parse(port, what="--cluster-port") if port else None,
                    leaf_listen=Listen.parse(leaf_port, what="--leaf-port") if leaf_port else None)
    return join.check()


def write_join_files(directory: Path, join: "NatsJoin") -> list[Path]:
    """DIR/route.env with a cluster port, DIR/leaf.env with a leaf port
    (0600), and their blocks appended to DIR/nats.conf (written already);
    the paths written.  Every member of a cluster takes the same files: run
    it once, and copy DIR to each (a pod started with --nats-routes loads
    DIR/route.env, one with --nats-leaf DIR/leaf.env)."""
    from computepods.bus.auth import CONFIG_NAME, SECRET_MODE
    from computepods.bus.natscluster import (LEAF_PASSWORD_VAR, LEAF_USER_VAR, ROUTE_PASSWORD_VAR,
                                             ROUTE_USER_VAR)
    from computepods.paths import atomic_write

    directory = Path(directory)
    written = []
    for name, login, names, wanted in (
            (ROUTE_ENV, join.route_login, (ROUTE_USER_VAR, ROUTE_PASSWORD_VAR), join.cluster),
            (LEAF_ENV, join.leaf_login, (LEAF_USER_VAR, LEAF_PASSWORD_VAR), join.leaf_listen)):
        if login is None or wanted is None:
            continue
        path = directory / name
        atomic_write(path, "".join(f"{k}={v}\n" for k, v in login.env(*names).items()).encode(),
                     mode=SECRET_MODE)
        written.append(path)
    if join:
        conf = directory / CONFIG_NAME
        atomic_write(conf, conf.read_bytes() + join.config().encode(), mode=SECRET_MODE)
    return written
