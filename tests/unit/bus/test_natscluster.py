"""The cluster and leaf blocks a pod's nats-server is given: what opens a
port to anyone is refused, every route and leaf logs in."""
from __future__ import annotations

import pytest

from computepods.bus.natscluster import (LEAF_PASSWORD_VAR, LEAF_USER_VAR, ROUTE_PASSWORD_VAR,
                                         ROUTE_USER_VAR, Listen, Login, NatsJoin, parse_urls,
                                         with_login)
from computepods.errors import ClusterConfigError, UsageError

ROUTE = Login("route", "r-secret")
LEAF = Login("leaf", "l-secret")


def test_listen_takes_a_port_or_a_host_and_port():
    assert Listen.parse("6222") == Listen("0.0.0.0", 6222)
    assert Listen.parse("127.0.0.1:0") == Listen("127.0.0.1", 0)
    assert Listen.parse("[::1]:7422") == Listen("::1", 7422)
    assert Listen("::1", 7422).text() == "[::1]:7422"
    for bad in ("", "x", "70000", "host:", "-1"):
        with pytest.raises(ClusterConfigError, match="PORT or HOST:PORT"):
            Listen.parse(bad, what="--nats-cluster-port")


def test_urls_are_a_comma_list_of_servers():
    assert parse_urls("a:6222, nats-route://b:6223,", "--nats-routes") == (
        "a:6222", "nats-route://b:6223")
    assert parse_urls(None, "--nats-routes") == ()
    with pytest.raises(ClusterConfigError, match="--nats-routes 'nats://nowhere'"):
        parse_urls("nats://nowhere", "--nats-routes")


def test_a_login_goes_into_the_url_unless_it_names_one():
    assert with_login("b:6222", "nats-route", ROUTE) == "nats-route://route:r-secret@b:6222"
    assert with_login("nats://b:6222", "nats-route", ROUTE) == "nats-route://route:r-secret@b:6222"
    assert with_login("nats-leaf://u:p@hub:7422", "nats-leaf", LEAF) == "nats-leaf://u:p@hub:7422"
    assert with_login("hub:7422", "nats-leaf", Login("le af", "p@ss:/")) == \
        "nats-leaf://le%20af:p%40ss%3A%2F@hub:7422"


def test_a_member_routes_to_the_others_and_takes_routes_only_with_the_login():
    join = NatsJoin(routes=("a:6222", "b:6222"), cluster=Listen("0.0.0.0", 6222), route_login=ROUTE)
    text = join.config()
    assert text.startswith("cluster {\n")
    assert 'name: "computepods"' in text and 'listen: "0.0.0.0:6222"' in text
    assert 'authorization {user: "route", password: "r-secret"' in text
    assert ('routes: ["nats-route://route:r-secret@a:6222", '
            '"nats-route://route:r-secret@b:6222"]') in text
    assert "no_advertise: true" in text           # a pod's client port stays its own
    assert "leafnodes" not in text
    assert join.route_url() == "nats-route://127.0.0.1:6222"
    assert join.route_url("a.example") == "nats-route://a.example:6222"


def test_a_leaf_joins_its_hubs_and_a_hub_takes_leaves_that_log_in():
    leaf = NatsJoin(leaf_remotes=("hub:7422", "nats-leaf://other:7422"), leaf_login=LEAF)
    assert leaf.config() == (
        "leafnodes {\n"
        '  remotes: [{urls: ["nats-leaf://leaf:l-secret@hub:7422", '
        '"nats-leaf://leaf:l-secret@other:7422"]}]\n'
        "}\n")
    hub = NatsJoin(leaf_listen=Listen("127.0.0.1", 7422), leaf_login=LEAF)
    text = hub.config()
    assert 'listen: "127.0.0.1:7422"' in text and 'user: "leaf", password: "l-secret"' in text
    assert "remotes" not in text and "cluster" not in text
    assert hub.leaf_url() == "nats-leaf://127.0.0.1:7422"


@pytest.mark.parametrize("join, fix", [
    (NatsJoin(cluster=Listen("0.0.0.0", 6222)), ROUTE_USER_VAR),
    (NatsJoin(routes=("a:1",), cluster=Listen("0.0.0.0", 6222)), ROUTE_PASSWORD_VAR),
    (NatsJoin(leaf_listen=Listen("0.0.0.0", 7422)), LEAF_USER_VAR),
    (NatsJoin(leaf_remotes=("hub:7422",)), LEAF_PASSWORD_VAR),
    (NatsJoin(routes=("a:1",), route_login=ROUTE), "--nats-cluster-port"),
    (NatsJoin(cluster=Listen("h", 1), route_login=ROUTE, name="a b"), "letters, digits"),
])
def test_a_join_that_would_open_a_port_to_anyone_is_refused_naming_the_fix(join, fix):
    with pytest.raises(ClusterConfigError, match=fix) as caught:
        join.config()
    assert isinstance(caught.value, UsageError)      # cpod exits 2, without a traceback


def test_a_leaf_url_with_its_own_login_needs_no_other():
    join = NatsJoin(leaf_remotes=("nats-leaf://leaf:pw@hub:7422",))
    assert "nats-leaf://leaf:pw@hub:7422" in join.config()


def test_free_ports_are_chosen_once_and_kept():
    join = NatsJoin(routes=("a:1",), cluster=Listen("127.0.0.1", 0), route_login=ROUTE,
                    leaf_listen=Listen("::1", 0), leaf_login=LEAF)
    picked = []

    def pick(host: str) -> int:
        picked.append(host)
        return 40000 + len(picked)
    fixed = join.with_ports(pick)
    assert (fixed.cluster, fixed.leaf_listen) == (Listen("127.0.0.1", 40001), Listen("::1", 40002))
    assert fixed.with_ports(pick) == fixed and len(picked) == 2
    assert not NatsJoin() and fixed


def test_logins_come_from_the_environment_and_never_show_in_a_repr():
    env = {ROUTE_USER_VAR: "route", ROUTE_PASSWORD_VAR: "pw"}
    login = Login.from_env(ROUTE_USER_VAR, ROUTE_PASSWORD_VAR, env)
    assert login == Login("route", "pw") and "pw" not in repr(login)
    assert Login.from_env(LEAF_USER_VAR, LEAF_PASSWORD_VAR, env) is None
    assert login.env(ROUTE_USER_VAR, ROUTE_PASSWORD_VAR) == env
    assert Login.generate("leaf").password != Login.generate("leaf").password


def test_the_ports_a_server_listens_on_are_dialled_on_this_machine():
    join = NatsJoin(routes=("a:1",), cluster=Listen("0.0.0.0", 6222), route_login=ROUTE,
                    leaf_listen=Listen("::1", 7422), leaf_login=LEAF)
    assert join.listens() == [("routes port", "127.0.0.1", 6222), ("leaves port", "::1", 7422)]
    assert NatsJoin(leaf_remotes=("hub:1",), leaf_login=LEAF).listens() == []
