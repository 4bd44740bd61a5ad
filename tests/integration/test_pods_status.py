"""`cpod status` and `cpctrl pods` show the federation, as a user runs them:
a federated `cpod up --nats URL` (with a chef of its own and its REST app)
and one chef pod (`cpod chef` in an empty directory) on a real nats-server.
The project's `shout` rule needs a program only the chef pod has on its
PATH, so its steps run there: their inputs go out of our store over SFTP
and their outputs come back, and both ends count the bytes."""
from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys

from computepods.bus.natsd import free_port
from computepods.cli.podtable import HEADERS
from chefpods import ChefPod
from cpodrun import cpod, write
from helpers import wait_for
import uppod

up = uppod.up       # the fixture

UP_S = 60.0                 # seconds the pods get to hear each other and build
SOURCES = {f"src/{n}.txt": f"{n} says {n * 40}\n" for n in "abcd"}
PROJECT = {
    "computepods.toml": """
        [project]
        default = ["out/all.txt"]

        [[rule]]
        name = "shout"
        inputs = ["src/%.txt"]
        outputs = ["out/%.txt"]
        command = "shout < {in} > {out}"

        [[rule]]
        name = "all"
        inputs = ["out/a.txt", "out/b.txt", "out/c.txt", "out/d.txt"]
        outputs = ["out/all.txt"]
        command = "cat {in} > {out}"
    """,
    **SOURCES,
}


def cpctrl(url: str, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("CP_URL", "CP_API_TOKEN")}
    return subprocess.run([sys.executable, "-m", "computepods.cli.cpctrl", "--url", url, *args],
                          env=env, capture_output=True, text=True, timeout=60)


def pods_of(url: str) -> dict:
    run = cpctrl(url, "pods", "--json")
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


def row(table: str, pod: str) -> list[str]:
    """The cells of `pod`'s row in a printed table (split on runs of 2+ spaces)."""
    for line in table.splitlines():
        cells = re.split(r"\s{2,}", line.strip())
        if cells[0].rstrip("*") == pod and len(cells) == len(HEADERS):
            return cells
    raise AssertionError(f"no row for pod {pod!r} in:\n{table}")


def test_status_and_cpctrl_pods_list_both_pods_with_chefs_slots_and_bytes(
        tmp_path, nats_server, up):
    bin_dir = write(tmp_path / "bin", {"shout": "#!/bin/sh\nexec tr a-z A-Z\n"})
    (bin_dir / "shout").chmod(0o755)
    b = ChefPod(tmp_path / "podB", nats_server.url, nats_server.users, "podB", slots=3,
                extra_path=bin_dir)
    try:
        root = write(tmp_path / "a", PROJECT)
        pod = up(root, "--nats", nats_server.url, "--http", f"127.0.0.1:{free_port()}",
                 "--sftp", "127.0.0.1", "-j", "2")
        url = pod.info()["http"]

        wait_for(lambda: "podB" in [p["pod"] for p in pods_of(url)["pods"]], timeout=UP_S,
                 what="the pod to hear podB: " + b.output()[-600:])
        # the pod's first build may have come before podB's hello (and found
        # no chef with shout): the user's build now hands off to the pod
        built = cpod(root, "build")
        assert built.code == 0, built.err + pod.text() + b.output()
        assert (root / "out/all.txt").read_text() == "".join(
            SOURCES[f"src/{n}.txt"].upper() for n in "abcd")
        view = pods_of(url)
        assert view["federated"] is True
        ours, podb = view["pods"][0], next(p for p in view["pods"] if p["pod"] == "podB")
        assert ours["ours"] and ours["role"] == "majordomo" and ours["http"] == url
        assert ours["slots"] == 2 and len(ours["chef_names"]) == 1
        assert [c["slots"] for c in ours["chefs"]] == [2]
        assert podb["role"] == "chef" and podb["chef_names"] == ["podB-chef"]
        assert podb["slots"] == 3 and [c["chef"] for c in podb["chefs"]] == ["podB-chef"]
        assert podb["pid"] is None and podb["root"] is None
        # the four shout steps ran on podB: their sources went out of our
        # store, their outputs came home; podB holds both, by our map
        sent = sum(len(v) for v in SOURCES.values())
        wait_for(lambda: pods_of(url)["pods"][0]["moved"]["out"] >= sent,
                 what="our hello to count the bytes served")
        view = pods_of(url)
        ours, podb = view["pods"][0], next(p for p in view["pods"] if p["pod"] == "podB")
        # in: the four outputs, and all.txt too if podB made it
        assert ours["moved"]["out"] == sent and sent <= ours["moved"]["in"] <= 2 * sent, ours
        assert podb["held"]["files"] >= 4 and podb["held"]["bytes"] >= sent
        wait_for(lambda: next(p for p in pods_of(url)["pods"] if p["pod"] == "podB")
                 ["moved"]["in"] >= sent, what="podB's hello to say what it pulled")

        table = cpctrl(url, "pods")
        assert table.returncode == 0, table.stderr
        assert f"http {url}" in table.stdout
        cells = row(table.stdout, "podB")
        assert cells[1:5] == ["chef", socket.gethostname(), "podB-chef", "3"]
        assert "chef podB-chef (pod podB): 3 slots" in table.stdout
        assert row(table.stdout, ours["pod"])[1] == "majordomo"

        status = cpod(root, "status")
        assert status.code == 0, status.err
        assert "federation:" in status.out and "not federated" not in status.out
        assert re.search(r"^last +build \S+ ok,", status.out, re.M), status.out
        ours_cells = row(status.out, ours["pod"])
        assert ours_cells[1:3] == ["majordomo", ours["host"]]
        assert ours_cells[3] == ours["chef_names"][0] and ours_cells[4] == "2"
        assert ours_cells[7] == f"{ours['moved']['in']} B/{sent} B"
        podb_cells = row(status.out, "podB")
        assert podb_cells[3:5] == ["podB-chef", "3"]
        assert podb_cells[8].startswith(f"{podb['held']['files']} files, ")
    finally:
        b.stop()
    assert not b.killed, "the chef pod ignored SIGTERM"


def test_status_of_a_pod_alone_says_not_federated(tmp_path, up):
    root = write(tmp_path / "alone", {"computepods.toml": "[project]\n"})
    up(root, "-j", "1")
    # The pod's chef is a child process: it is listed once its first status is heard.
    wait_for(lambda: row(cpod(root, "status").out, "local")[4] == "1", what="the chef's status")
    status = cpod(root, "status")
    assert status.code == 0, status.err
    assert "federation:\n  not federated" in status.out
    cells = row(status.out, "local")
    assert cells[1] == "majordomo" and cells[4] == "1" and cells[7] == "0 B/0 B"
