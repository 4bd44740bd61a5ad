"""A `cpod up` process for tests: its stderr lines, and a bridge on its bus
as the pod's majordomo (shared by tests/integration/test_up.py and the
battery's path-escape row)."""
from __future__ import annotations

import json
import queue
import subprocess
import threading
from pathlib import Path

import pytest

from computepods.bus import messages as m
from computepods.bus.auth import MAJORDOMO, BusUsers, Credentials
from computepods.bus.bridge import NatsBridge
from computepods.paths import BUS_USERS
from cpodrun import CPOD, cpod
from helpers import wait_for

STOP_TIMEOUT_S = 30


class UpPod:
    """A `cpod up` process, its stderr lines, and a bridge on its bus."""

    def __init__(self, root: Path, *args: str):
        self.root = root
        args = args if any(a.startswith("--http") for a in args) else ("--no-http", *args)
        self.proc = subprocess.Popen([*CPOD, "-C", str(root), "up", *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        wait_for(lambda: self.info() or self.proc.poll() is not None, timeout=30,
                 what="pod.json of the pod")
        assert self.proc.poll() is None, self.text()
        # the test joins the pod's bus as its majordomo, from the pod's users file
        # (a pod on a given --nats has none: the environment's login is everyone's)
        users = root / BUS_USERS
        login = (BusUsers.load(users).credentials(MAJORDOMO) if users.exists()
                 else Credentials.from_env())
        self.bridge = NatsBridge(self.info()["nats"], name="test", credentials=login).start()
        self.events: "queue.Queue[m.Message]" = queue.Queue()
        self.bridge.listen(m.BUILD_EVENTS, self.events)
        self.plans: list[dict] = []
        self.done: list[dict] = []

    def _read(self) -> None:
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))

    def text(self) -> str:
        return "\n".join(self.lines)

    def info(self) -> dict | None:
        try:
            return json.loads((self.root / ".computepods" / "pod.json").read_text())
        except (OSError, ValueError):
            return None

    def drain(self) -> None:
        while True:
            try:
                msg = self.events.get_nowait()
            except queue.Empty:
                return
            for ev in msg.data["events"]:
                ev = {**ev, "build": msg.data["build"]}
                if ev["t"] == "plan":
                    self.plans.append(ev)
                elif ev["t"] == "done":
                    self.done.append(ev)

    def builds_done(self) -> int:
        self.drain()
        return len(self.done)

    def stop(self) -> None:
        self.bridge.stop()
        if self.proc.poll() is None:
            down = cpod(self.root, "down")
            assert down.code == 0, down.err
        try:
            code = self.proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            pytest.fail(f"cpod up did not stop after cpod down:\n{self.text()}")
        assert code == 0, self.text()


@pytest.fixture
def up():
    """A fixture (take it into a test module with `up = uppod.up`): starts
    pods, and stops each at the end of the test."""
    pods: list[UpPod] = []

    def start(root: Path, *args: str) -> UpPod:
        pod = UpPod(root, *args)
        pods.append(pod)
        return pod
    yield start
    for pod in pods:
        pod.stop()
