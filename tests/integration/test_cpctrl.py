"""`cpctrl` run as a user runs it, against a live pod's REST app under gunicorn."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from computepods.bus.auth import MAJORDOMO
from computepods.bus.natsd import NatsServer, free_port
from helpers import wait_for
from restlive import gated_project, live_pod

TOKEN = "cpctrl-token"


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cpctrl")
    server = NatsServer(store_dir=tmp / "nats")
    server.start()
    root = gated_project(tmp / "p")
    (root / "gate").write_text("open\n")
    try:
        with pytest.MonkeyPatch.context() as env:     # the pod logs in as the majordomo
            for name, value in server.users.env(MAJORDOMO).items():
                env.setenv(name, value)
            with live_pod(root, server.url, token=TOKEN) as live:
                yield live
    finally:
        server.stop()
        server.close()


def cpctrl(*args: str, url: str | None = None, token: str | None = TOKEN, timeout: float = 60):
    env = {k: v for k, v in os.environ.items() if k not in ("CP_URL", "CP_API_TOKEN")}
    if url:
        env["CP_URL"] = url
    if token:
        env["CP_API_TOKEN"] = token
    return subprocess.run([sys.executable, "-m", "computepods.cli.cpctrl", *args], env=env,
                          capture_output=True, text=True, timeout=timeout)


def one_line_error(p) -> str:
    assert "Traceback" not in p.stderr, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    assert lines[0].startswith("cpctrl: ")
    return lines[0]


def test_build_follow_exits_with_the_builds_code(live):
    ok = cpctrl("build", "--follow", url=live.url)
    assert ok.returncode == 0, ok.stderr
    assert "build ok" in ok.stderr
    failed = cpctrl("build", "broken", "--follow", url=live.url)
    assert failed.returncode == 1, failed.stderr
    assert "FAILED broken:out/broken.txt" in failed.stderr
    assert "error: no such thing" in failed.stderr          # the log tail, live
    assert "build FAILED" in failed.stderr


def test_json_for_scripts(live):
    events = cpctrl("--json", "build", "--follow", url=live.url)
    assert events.returncode == 0, events.stderr
    parsed = [json.loads(line) for line in events.stdout.splitlines()]
    assert parsed[0]["t"] == "queued" and parsed[-1]["t"] == "done"
    status = cpctrl("--json", "status", url=live.url)
    assert status.returncode == 0
    builds = json.loads(status.stdout)["builds"]
    assert builds and builds[0]["state"] in ("done", "failed")
    started = cpctrl("--json", "build", url=live.url)
    assert started.returncode == 0 and "id" in json.loads(started.stdout)
    assert builds[0]["started"].endswith("+00:00")           # ISO for scripts


def test_status_is_a_table_of_builds(live):
    assert cpctrl("build", "--follow", url=live.url).returncode == 0      # all built (or was)
    (live.root / "src/a.txt").write_text("a, edited for the status\n")   # a's chain runs again
    assert cpctrl("build", "--follow", url=live.url).returncode == 0
    table = cpctrl("status", "-n", "2", url=live.url)
    assert table.returncode == 0, table.stderr
    header, first, *rest = table.stdout.splitlines()
    assert header.startswith("id ")
    for column in ("started by", "targets", "state", "ran/up to date/failed", "duration"):
        assert column in header
    assert " rest " in first and (" done " in first or " running " in first)
    assert len([line for line in rest if not line.startswith("(")]) <= 1
    # one build, with its critical path once its timeline is written: all that ran
    critical: list[str] = []

    def written() -> bool:
        one = cpctrl("status", first.split()[0], url=live.url)
        assert one.returncode == 0, one.stderr
        critical[:] = [line for line in one.stdout.splitlines() if line.startswith("  critical ")]
        return bool(critical)
    wait_for(written, what="the build's critical path")
    assert critical[0].startswith("  critical  3 runs, "), critical
    assert critical[0].endswith(
        ": copy:build/a.txt -> gate:build/gated.txt -> all:out/all.txt"), critical


def test_reading_commands(live):
    assert cpctrl("build", "--follow", url=live.url).returncode == 0
    graph = cpctrl("graph", url=live.url)
    assert graph.returncode == 0, graph.stderr
    lines = graph.stdout.splitlines()
    assert lines[0] == "4 steps in 3 groups; targets: out/all.txt"
    assert lines[1].split()[:5] == ["group", "steps", "up", "to", "date"]   # then "ran", if any
    assert sorted(line.split()[:3] for line in lines[2:5]) == [
        ["all", "1", "1"], ["copy", "2", "2"], ["gate", "1", "1"]]
    step = cpctrl("graph", "--step", "all:out/all.txt", url=live.url)
    assert step.returncode == 0, step.stderr
    assert "inputs (2):" in step.stdout.splitlines()
    assert "  build/b.txt  <- copy:build/b.txt (up to date)" in step.stdout.splitlines()
    found = cpctrl("graph", "--search", "src/b.txt", url=live.url)
    assert found.stdout.splitlines() == ["up to date  copy:build/b.txt  (ran)"] or \
        found.stdout.splitlines() == ["up to date  copy:build/b.txt"], found.stdout
    dot = cpctrl("graph", "--dot", url=live.url)
    assert dot.stdout.startswith("digraph computepods {")
    arts = cpctrl("artefacts", "build/", url=live.url)
    assert [line.split()[0] for line in arts.stdout.splitlines()] == [
        "build/a.txt", "build/b.txt", "build/gated.txt"]
    cpctrl("build", "broken", "--follow", url=live.url)
    log = cpctrl("log", "broken:out/broken.txt", url=live.url)
    assert log.returncode == 0 and "exit code 3" in log.stdout
    assert "error: no such thing" in log.stdout
    explain = cpctrl("explain", "out/all.txt", url=live.url)
    assert explain.returncode == 0 and "all:out/all.txt" in explain.stdout
    pods = cpctrl("pods", url=live.url)
    assert pods.returncode == 0 and f"http {live.url}" in pods.stdout
    assert "2 slots" in pods.stdout


def test_failures_are_one_line_with_the_right_code(live):
    nobody = f"http://127.0.0.1:{free_port()}"
    unreachable = cpctrl("status", url=nobody)
    assert unreachable.returncode == 3
    assert nobody in one_line_error(unreachable)
    refused = cpctrl("build", "--follow", url=live.url, token="wrong")
    assert refused.returncode == 3 and "token refused" in one_line_error(refused)
    missing = cpctrl("build", url=live.url, token=None)
    assert missing.returncode == 3 and "needs a token" in one_line_error(missing)
    unknown = cpctrl("build", "nowhere.txt", "--follow", url=live.url)
    assert unknown.returncode == 2
    assert "'nowhere.txt' does not exist" in one_line_error(unknown)
    no_step = cpctrl("log", "copy:build/nothing.txt", url=live.url)
    assert no_step.returncode == 2 and "no step" in one_line_error(no_step)
    build_id = json.loads(cpctrl("--json", "build", url=live.url).stdout)["id"]
    assert cpctrl("build", "--follow", url=live.url).returncode == 0     # joined or after it
    late = cpctrl("cancel", build_id, url=live.url)
    assert late.returncode == 2 and "already finished" in one_line_error(late)
