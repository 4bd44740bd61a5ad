"""`cpod up`/`cpod chef` --nats-routes/--nats-leaf/--nats-cluster-port, and
what `cpod nats-config` adds for clusters and hubs."""
from __future__ import annotations

import stat

import pytest

from computepods.bus.natscluster import Listen, Login
from computepods.cli.cpod import build_parser, main
from computepods.cli.joined import join_from_args
from computepods.errors import UsageError

ENV = {"CP_NATS_ROUTE_USER": "route", "CP_NATS_ROUTE_PASSWORD": "rpw",
       "CP_NATS_LEAF_USER": "leaf", "CP_NATS_LEAF_PASSWORD": "lpw"}


def parse(*argv: str):
    return build_parser().parse_args(list(argv))


@pytest.fixture(autouse=True)
def no_nats_url(monkeypatch):
    monkeypatch.delenv("CP_NATS_URL", raising=False)


@pytest.mark.parametrize("command", ["up", "chef"])
def test_routes_join_a_cluster_with_a_route_port_of_the_pods_own(command):
    join = join_from_args(parse(command, "--nats-routes", "a:6222,b:6222"), ENV)
    assert join.routes == ("a:6222", "b:6222")
    assert join.cluster == Listen("0.0.0.0", 6222)
    assert join.route_login == Login("route", "rpw")
    assert not join.advertise                 # the pod's client port is its own
    join = join_from_args(parse(command, "--nats-routes", "a:1", "--nats-cluster-port",
                                "127.0.0.1:0"), ENV)
    assert join.cluster == Listen("127.0.0.1", 0)


def test_a_leaf_joins_its_hub_with_the_leaves_login():
    join = join_from_args(parse("chef", "--nats-leaf", "hub:7422"), ENV)
    assert join.leaf_remotes == ("hub:7422",) and join.cluster is None
    assert "nats-leaf://leaf:lpw@hub:7422" in join.config()


def test_no_option_is_no_join():
    assert join_from_args(parse("up"), ENV) is None
    assert join_from_args(parse("chef", "--nats", "nats://x:7001"), ENV) is None


def test_a_join_without_its_login_or_beside_nats_is_a_usage_error():
    with pytest.raises(UsageError, match="CP_NATS_ROUTE_USER.*route.env"):
        join_from_args(parse("up", "--nats-routes", "a:6222"), {})
    with pytest.raises(UsageError, match="CP_NATS_LEAF_USER"):
        join_from_args(parse("chef", "--nats-leaf", "hub:7422"), {})
    with pytest.raises(UsageError, match="give one or the other"):
        join_from_args(parse("up", "--nats", "nats://x:7001", "--nats-leaf", "h:1"), ENV)
    with pytest.raises(UsageError, match="--nats-cluster-port 'nope'"):
        join_from_args(parse("up", "--nats-cluster-port", "nope"), ENV)


def test_a_bad_join_ends_cpod_with_exit_2_and_a_message(tmp_path, capsys):
    (tmp_path / "computepods.toml").write_text('[[rule]]\nname="x"\noutputs=["x"]\ncommand="true"\n')
    assert main(["-C", str(tmp_path), "up", "--nats-routes", "a:6222"]) == 2
    assert "CP_NATS_ROUTE_PASSWORD" in capsys.readouterr().err


def test_nats_config_writes_the_routes_and_leaves_logins_and_the_blocks(tmp_path):
    out = tmp_path / "conf"
    assert main(["nats-config", str(out), "--cluster-port", "127.0.0.1:6222",
                 "--routes", "b:6222,c:6222", "--leaf-port", "7422"]) == 0
    route = dict(line.split("=", 1) for line in (out / "route.env").read_text().split())
    leaf = dict(line.split("=", 1) for line in (out / "leaf.env").read_text().split())
    assert route["CP_NATS_ROUTE_USER"] == "route" and leaf["CP_NATS_LEAF_USER"] == "leaf"
    assert route["CP_NATS_ROUTE_PASSWORD"] != leaf["CP_NATS_LEAF_PASSWORD"]
    conf = (out / "nats.conf").read_text()
    assert conf.startswith("max_payload:") and "authorization {" in conf
    assert f'"nats-route://route:{route["CP_NATS_ROUTE_PASSWORD"]}@b:6222"' in conf
    assert 'listen: "127.0.0.1:6222"' in conf and 'listen: "0.0.0.0:7422"' in conf
    assert f'password: "{leaf["CP_NATS_LEAF_PASSWORD"]}"' in conf
    assert "no_advertise: false" in conf      # a server the user runs: clients fail over
    for name in ("nats.conf", "route.env", "leaf.env"):
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o600


def test_nats_config_without_cluster_options_writes_no_blocks_and_a_bad_one_nothing(tmp_path):
    assert main(["nats-config", str(tmp_path / "plain")]) == 0
    assert "cluster" not in (tmp_path / "plain/nats.conf").read_text()
    assert not (tmp_path / "plain/route.env").exists()
    assert main(["nats-config", str(tmp_path / "routes"), "--cluster-port", "6222"]) == 0
    assert (tmp_path / "routes/route.env").is_file()
    assert not (tmp_path / "routes/leaf.env").exists()
    assert main(["nats-config", str(tmp_path / "bad"), "--routes", "b:6222"]) == 2
    assert not (tmp_path / "bad").exists()
