"""examples/custom_pod as its README runs it, on a real nats-server: the
renderer (a pod process of the user's own, logged in as a chef) and a
normal `cpod up --nats URL` pod whose machine has no Graphviz.  The pod
learns from the renderer's hello that it offers the graphviz pack's `dot`,
sends it the project's .dot step, and the SVG lands in the project."""
from __future__ import annotations

import os
import queue
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from computepods.bus import messages as m
from computepods.bus.auth import CHEF
from computepods.bus.bridge import NatsBridge
from helpers import wait_for
import uppod

up = uppod.up       # the fixture
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "custom_pod"
UP_S = 30.0                # seconds the pods get to hear each other and build
STOP_S = 15.0              # seconds the renderer gets to stop on SIGTERM


class Renderer:
    """examples/custom_pod/renderer.py as a process, with its own output."""

    def __init__(self, home: Path, url: str, env: dict[str, str], *args: str):
        self.log_path = home / "renderer.log"
        home.mkdir(parents=True, exist_ok=True)
        self.log = self.log_path.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, str(EXAMPLE / "renderer.py"), "--nats", url, "--pod", "renderer",
             "--sftp", "127.0.0.1", "--workspace", str(home / "workspace"), "-j", "1", *args],
            env=env, stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT)
        wait_for(lambda: "renderer: pod" in self.output() or self.proc.poll() is not None,
                 timeout=UP_S, what="the renderer to start")
        assert self.proc.poll() is None, self.output()

    def output(self) -> str:
        if not self.log.closed:
            self.log.flush()
        return self.log_path.read_text()

    def stop(self) -> int:
        """SIGTERM, as Ctrl-C; its exit code (fails the test if it had to be killed)."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(STOP_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"the renderer ignored SIGTERM:\n{self.output()}")
        finally:
            self.log.close()


def events_until_done(events: "queue.Queue", timeout: float) -> list[dict]:
    """A pod's build events, up to and including the first `done`."""
    got: list[dict] = []
    wait_for(lambda: _drain(events, got), timeout=timeout, what="a build to end")
    return got


def _hello_of(hellos: "queue.Queue[m.Message]", pod: str) -> dict | None:
    while True:
        try:
            msg = hellos.get_nowait()
        except queue.Empty:
            return None
        if msg.data.get("pod") == pod:
            return msg.data


def _drain(events: "queue.Queue", got: list[dict]) -> bool:
    while True:
        try:
            msg = events.get_nowait()
        except queue.Empty:
            return any(e["t"] == "done" for e in got)
        got += msg.data["events"]


def test_a_cpod_up_pod_renders_its_dot_file_on_the_renderer_pod(tmp_path, nats_server, up,
                                                                 monkeypatch):
    root = tmp_path / "project"
    shutil.copytree(EXAMPLE / "project", root,
                    ignore=shutil.ignore_patterns(".computepods", "*.svg"))
    renderer_env = {**os.environ, **nats_server.users.child_env(CHEF)}
    renderer = Renderer(tmp_path / "renderer", nats_server.url, renderer_env,
                        "--watch", str(root))
    try:
        # What the pod will learn it from: the renderer's hello offers `dot`
        # (its rules.announce lists the pack too, but no pod reads that).
        hellos: "queue.Queue[m.Message]" = queue.Queue()
        bridge = NatsBridge(nats_server.url, name="test").start()
        try:
            bridge.listen(m.PODS_HELLO, hellos)
            hello = wait_for(lambda: _hello_of(hellos, "renderer"), timeout=UP_S,
                             what="the renderer's hello")
        finally:
            bridge.stop()
        assert "dot" in hello["tools"], hello
        # The project's machine has no Graphviz: its own chef cannot draw.
        no_dot = tmp_path / "bin-without-dot"
        no_dot.mkdir()
        monkeypatch.setenv("PATH", str(no_dot))
        monkeypatch.setenv("CP_PACKS", str(EXAMPLE / "packs"))
        pod = up(root, "--nats", nats_server.url)
        events = events_until_done(pod.events, UP_S)
        done = events[-1]
        assert done["ok"] and done["ran"] == 1, (events, pod.text(), renderer.output())
        ran = [e for e in events if e["t"] in ("start", "ran")]
        assert [(e["step"], e["chef"]) for e in ran] == [
            ("graphviz.svg:pictures/flow.svg", "renderer-chef")], events
        svg = (root / "pictures/flow.svg").read_text()
        assert svg.lstrip().startswith("<?xml") and "<svg" in svg and "majordomo" in svg
        # the renderer's own watcher saw the picture land in the tree it watches
        wait_for(lambda: "changed: pictures/flow.svg" in renderer.output(), timeout=UP_S,
                 what="the renderer's watcher to see the SVG")
    finally:
        code = renderer.stop()
    assert code == 0 and "renderer: stopped" in renderer.output(), renderer.output()
