"""How the REST server is started: its address, its command line, a taken port."""
from __future__ import annotations

import socket

import pytest

from computepods.errors import HttpServerError
from computepods.api.serve import (RESERVED_THREADS, accepted_hosts, check_free,
                                  gunicorn_argv, max_streams, split_bind, start_http)


def test_addresses():
    assert split_bind("127.0.0.1:8765") == ("127.0.0.1", 8765)
    assert split_bind("[::1]:9000") == ("::1", 9000)
    assert split_bind(":9000") == ("127.0.0.1", 9000)
    for bad in ("8765", "localhost:http", "127.0.0.1:"):
        with pytest.raises(HttpServerError, match="expected ADDR:PORT"):
            split_bind(bad)


def test_gunicorn_runs_the_arrival_worker_without_a_control_socket():
    argv = gunicorn_argv("127.0.0.1:1", 2, 64, "computepods.api.wsgi:app")
    assert argv[argv.index("--worker-class") + 1] == "computepods.api.worker.ArrivalWorker"
    assert argv[argv.index("--threads") + 1] == "64"
    assert "--no-control-socket" in argv        # gunicorn 25.1+ would open one
    assert argv[-1] == "computepods.api.wsgi:app"


def test_event_streams_leave_threads_for_other_requests():
    assert max_streams(128) == 128 - RESERVED_THREADS
    assert max_streams(8) == 4 and max_streams(1) == 1


def test_a_taken_port_is_named_before_gunicorn_starts(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(HttpServerError, match=f"127.0.0.1:{port} is in use"):
            check_free("127.0.0.1", port)
        with pytest.raises(HttpServerError, match=f"127.0.0.1:{port} is in use"):
            start_http(tmp_path, "nats://127.0.0.1:1", "cp", bind=f"127.0.0.1:{port}")
    assert not (tmp_path / ".computepods").exists(), "nothing was started"


def test_another_machines_address_without_a_token_is_refused(tmp_path, monkeypatch):
    monkeypatch.delenv("CP_API_TOKEN", raising=False)
    for bind in ("0.0.0.0:1", "[::]:1", "build.lan:1"):
        with pytest.raises(HttpServerError, match="no token is set; set CP_API_TOKEN"):
            start_http(tmp_path, "nats://127.0.0.1:1", "cp", bind=bind)
    assert not (tmp_path / ".computepods").exists(), "nothing was started"


def test_the_host_names_served():
    assert accepted_hosts("127.0.0.1") == ["127.0.0.1", "localhost"]
    assert accepted_hosts("0.0.0.0", ["build.lan", " ", "localhost"]) == [
        "0.0.0.0", "localhost", "build.lan"]
