"""Fixtures shared by every test.  Keep each one small; add yours below."""
from __future__ import annotations

import pytest

import os
from pathlib import Path

import leftovers
from battery import Battery
from computepods.bus.auth import MAJORDOMO, BusUsers
from computepods.bus.natsd import NatsServer
from helpers import wait_for as _wait_for


# `cpod build` starts a background pod unless told not to: the suite's builds
# stay one-shot, and the tests of the background pod set CP_POD=1 themselves.
os.environ["CP_POD"] = "0"


def pytest_configure(config):
    config.stash[_RUN_MARK] = leftovers.mark_this_run()


def pytest_terminal_summary(terminalreporter):
    """Print the battery's RELIABILITY table, and write it to CP_CHAOS_REPORT."""
    battery = terminalreporter.config.stash.get(_BATTERY, None)
    if battery is None or not battery.rows:
        return
    table = battery.table()
    terminalreporter.write_sep("=", "reliability battery")
    terminalreporter.write_line(table)
    report = os.environ.get("CP_CHAOS_REPORT")
    if report:
        Path(report).parent.mkdir(parents=True, exist_ok=True)
        Path(report).write_text(table + "\n")


def pytest_sessionfinish(session, exitstatus):
    """Fail the run if any process a test started outlived the suite."""
    left = leftovers.leftovers(session.config.stash[_RUN_MARK])
    if left:
        lines = "\n".join(f"  pid {pid}: {cmd[:200]}" for pid, cmd in sorted(left.items()))
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter:
            reporter.write_line("")
        message = (f"{len(left)} processes started by the tests outlived the suite"
                   f" (killed now):\n{lines}")
        if reporter:
            reporter.write_line(message, red=True)
        else:
            print(message)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


_RUN_MARK = pytest.StashKey[str]()
_BATTERY = pytest.StashKey[Battery]()
NAMESPACES = ("cp", "one", "two", "mine")     # the subject namespaces tests use


@pytest.fixture(scope="session")
def wait_for():
    """The helpers.wait_for function, for tests that prefer a fixture."""
    return _wait_for


@pytest.fixture(scope="session")
def chaos(request) -> Battery:
    """The reliability battery's tally (tests/battery.py), one per run."""
    battery = request.config.stash.get(_BATTERY, None)
    if battery is None:
        battery = request.config.stash[_BATTERY] = Battery()
    return battery


@pytest.fixture
def golden(request):
    """A test's golden trace file entry (tests/golden.py; CP_GOLDEN=write remakes it)."""
    from golden import Golden
    return Golden(Path(request.node.fspath).stem.removeprefix("test_golden_"), request.node.name)


@pytest.fixture(autouse=True)
def own_cache_dir(tmp_path_factory, monkeypatch):
    """Each test its own $XDG_CACHE_HOME: a pod's keys, a chef pod's
    workspace and the discovery cache never leak from one test into another
    (nor into the user's ~/.cache)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg-cache")))


@pytest.fixture
def nats_server(tmp_path, monkeypatch):
    """A real nats-server on a free loopback port, stopped after the test.

    It has the bus's users (computepods.bus.auth), and the test logs in as
    the majordomo: the environment holds that login, for the bridges the
    test makes and the cpod processes it starts (`server.users` has the
    other roles').  The test fails if the server ignored SIGTERM and had
    to be killed.
    """
    server = NatsServer(store_dir=tmp_path / "nats", users=BusUsers.generate(*NAMESPACES))
    for name, value in server.users.env(MAJORDOMO).items():
        monkeypatch.setenv(name, value)
    server.start()
    yield server
    server.stop()
    tail = server.log_tail()
    server.close()
    if server.was_killed:
        pytest.fail(f"nats-server did not stop on SIGTERM:\n{tail}")


@pytest.fixture
def nats_url(nats_server) -> str:
    return nats_server.url


# --- cluster (federation) ---
@pytest.fixture
def nats_cluster(tmp_path):
    """Three clustered real nats-servers on free loopback ports, with the bus
    users of NAMESPACES on each (tests/federation.py), stopped after the test."""
    from federation import NatsCluster
    cluster = NatsCluster(tmp_path / "cluster", 3, BusUsers.generate(*NAMESPACES)).start()
    yield cluster
    killed = cluster.stop()
    if killed:
        pytest.fail("nats-server did not stop on SIGTERM: " + "\n".join(killed))


@pytest.fixture
def nats_hub(tmp_path):
    """A real nats-server that takes leaf nodes (tests/federation.py: LeafHub)."""
    from federation import LeafHub
    hub = LeafHub(tmp_path / "leafhub", BusUsers.generate(*NAMESPACES)).start()
    yield hub
    killed = hub.stop()
    if killed:
        pytest.fail("nats-server did not stop on SIGTERM: " + "\n".join(killed))
# --- end cluster ---
