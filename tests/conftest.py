"""Fixtures shared by every test.  Keep each one small; add yours below."""
from __future__ import annotations

import pytest

from computepods.bus.natsd import NatsServer
from helpers import wait_for as _wait_for


@pytest.fixture(scope="session")
def wait_for():
    """The helpers.wait_for function, for tests that prefer a fixture."""
    return _wait_for


@pytest.fixture
def nats_server(tmp_path):
    """A real nats-server on a free loopback port, stopped after the test.

    The test fails if the server ignored SIGTERM and had to be killed.
    """
    server = NatsServer(store_dir=tmp_path / "nats")
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
