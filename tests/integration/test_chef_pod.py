"""`cpod chef` as a chef pod: a process in an empty directory, on the real
nats-server, logged in as the chef role, building another pod's steps in
its workspace under $XDG_CACHE_HOME.

The files a step lists are fetched by hash.  Pulling them over SFTP is the
Puller's job (computepods/transfer/pull.py, not wired into `cpod chef` on
this branch), so the chef is given ``--fetch-dir``: a directory in the
content store's layout (sha256/<2 hex>/<sha256>) that the test fills, as a
store on a shared disk would be.  Everything else is the real thing: the
process, the bus, its permissions, the workspace's flock."""
from __future__ import annotations

import hashlib
import queue
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from computepods.bus import messages as m
from computepods.bus.auth import CHEF
from computepods.bus.bridge import NatsBridge
from computepods.bus.chefwire import RunStep
from computepods.charts.chef import NO_PROJECT_TREE
from computepods.chef.step import rule_to_dict
from computepods.federation.toolprints import fingerprint
from computepods.project.model import Rule
from helpers import wait_for

STOP_S = 15                  # seconds a chef pod gets to stop on SIGTERM
UP = Rule("up", ("src/%.txt",), ("build/%.up",), "tr a-z A-Z < {in} > {out}")


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def offer(store, data: bytes) -> str:
    digest = sha(data)
    path = store / "sha256" / digest[:2] / digest
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return digest


def chef_pod(nats_server, cwd, cache, store, name: str) -> subprocess.Popen:
    env = nats_server.users.child_env(CHEF)
    env["XDG_CACHE_HOME"] = str(cache)
    return subprocess.Popen(
        [sys.executable, "-m", "computepods.cli", "chef", "--nats", nats_server.url,
         "--name", name, "-j", "2", "--fetch-dir", str(store)],
        cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)


def stop(proc: subprocess.Popen) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(STOP_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        pytest.fail("the chef pod did not stop on SIGTERM")


class Answering:
    """steps.results as a MajorDomo hears them: each answered, the finished kept."""

    def __init__(self, bridge: NatsBridge):
        self.bridge, self.finished = bridge, queue.Queue()

    def put(self, msg: m.Message) -> None:
        for item in msg.data["results"]:
            if item["event"] == "finished":
                self.finished.put(item)
        self.bridge.respond(msg, {"ok": True})


def test_a_chef_pod_in_an_empty_directory_builds_another_pods_step(tmp_path, nats_server):
    anywhere, cache, store = tmp_path / "empty", tmp_path / "cache", tmp_path / "offered"
    anywhere.mkdir()
    alpha = offer(store, b"alpha\n")
    bridge = NatsBridge(nats_server.url, name="test-majordomo").start()
    statuses: "queue.Queue[m.Message]" = queue.Queue()
    bridge.listen(m.CHEF_STATUS, statuses)
    results = Answering(bridge)
    bridge.listen(m.STEP_RESULTS, results)
    proc = chef_pod(nats_server, anywhere, cache, store, "far")
    try:
        status = wait_for(lambda: _status_of(statuses, "far"), timeout=30,
                          what="the chef pod's first status")
        assert status["pod"] != "local" and status["pod"].endswith(
            "-" + hashlib.sha256(str((cache / "computepods/workspace").resolve()).encode())
            .hexdigest()[:8])
        cc = shutil.which("cc")
        if cc:                                           # a pack's tool, fingerprinted at start
            assert status["fingerprints"]["cc"] == fingerprint(Path(cc))

        step = RunStep("up:build/a.up", 1, "up", "a", {"src/a.txt": alpha},
                       files={"src/a.txt": alpha})
        run = {"build": "b1", "chef": "far", "rules": {"up": rule_to_dict(UP)},
               "steps": [step.to_dict()], "origin": "pod-A"}
        answer = bridge.request_sync(m.CHEF_RUN, run, chef="far", timeout=10)
        assert answer["accepted"] == ["up:build/a.up"], answer
        result = results.finished.get(timeout=30)
        assert result["ok"], result
        assert result["outputs"]["build/a.up"]["sha256"] == sha(b"ALPHA\n")
        [built] = (cache / "computepods/workspace/trees").glob("pod-A-*/build/a.up")
        assert built.read_bytes() == b"ALPHA\n"
        assert list(anywhere.iterdir()) == []            # nothing written where it runs

        run = {**run, "build": "b2"}
        del run["origin"]                                # no origin: the chef pod's own tree
        answer = bridge.request_sync(m.CHEF_RUN, run, chef="far", timeout=10)
        assert answer["rejected"] == [{"id": "up:build/a.up", "reason": NO_PROJECT_TREE}]

        # A second chef pod on the same workspace is refused, naming the first.
        second = chef_pod(nats_server, anywhere, cache, store, "twin")
        _, err = second.communicate(timeout=60)
        assert second.returncode == 2
        assert f"is in use by process {proc.pid} " in err and "--workspace DIR" in err
    finally:
        code = stop(proc)
        bridge.stop()
    assert code == 0, proc.stderr.read()


def _status_of(statuses: "queue.Queue[m.Message]", chef: str) -> dict | None:
    while not statuses.empty():
        data = statuses.get().data
        if data["chef"] == chef:
            return data
    return None
