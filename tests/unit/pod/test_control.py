"""The control socket and the thin client, over a real Unix socket."""
from __future__ import annotations

import os
import stat
import threading

import pytest

from computepods.pod import handoff
from computepods.pod.control import ControlServer
from computepods.errors import UsageError


class Target:
    def __init__(self):
        self.stopped = threading.Event()

    def status(self) -> dict:
        return {"pid": os.getpid(), "builds": 3}

    def build(self, request, emit) -> int:
        if request["targets"] == ["bad"]:
            raise UsageError("no rule builds 'bad'")
        emit({"t": "plan", "steps": 2})
        emit({"t": "done", "ok": False, "code": 1})
        return 1

    def request_stop(self) -> None:
        self.stopped.set()


@pytest.fixture
def served(tmp_path):
    target = Target()
    server = ControlServer(str(tmp_path / "pod.sock"), target).start()
    yield target, {"pid": os.getpid(), "socket": server.path}
    server.stop()
    assert not os.path.exists(server.path)


def test_the_socket_is_private_to_its_user(served):
    _, info = served
    assert stat.S_IMODE(os.stat(info["socket"]).st_mode) == 0o600


def test_status_and_down(served):
    target, info = served
    assert handoff.call(info, "GET", "/status")["builds"] == 3
    handoff.call(info, "POST", "/down")
    assert target.stopped.wait(5)


def test_a_build_streams_its_events_and_its_exit_code(served):
    _, info = served
    seen = []
    assert handoff.stream_build(info, {"targets": []}, seen.append) == 1
    assert [e["t"] for e in seen] == ["plan", "done"]


def test_an_error_before_the_build_reaches_the_client_with_its_code(served):
    _, info = served
    seen = []
    assert handoff.stream_build(info, {"targets": ["bad"]}, seen.append) == 2
    assert seen[-1]["error"] == "no rule builds 'bad'"


def test_a_dead_socket_is_named(tmp_path):
    info = {"pid": 1, "socket": str(tmp_path / "gone.sock")}
    with pytest.raises(handoff.PodUnreachable, match="gone.sock"):
        handoff.call(info, "GET", "/status")


def test_a_deep_project_gets_its_socket_in_the_runtime_dir(tmp_path):
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    path = handoff.socket_path(deep)
    assert len(path) <= handoff.MAX_SOCKET_PATH and path.endswith(".sock")
    assert handoff.socket_path(tmp_path).startswith(str(tmp_path))
