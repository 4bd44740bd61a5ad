"""A federated MajorDomo and a real Chef of another pod, on the loopback bus:
the chef builds in its own workspace from the files the run message names by
hash (served from our tree through the OfferIndex, as our StoreServer would),
keeps its outputs in its store, and the MajorDomo lands them in our tree.
Only the SFTP between the two is faked (a copy by hash)."""
from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from computepods.charts.chef import Chef
from computepods.errors import TransferError
from computepods.federation.workspace import Workspace
from federatedpod import Federated
from helpers import wait_for
from loopbackpod import write_project

TWO_STEPS = {
    "computepods.toml": """
        [project]
        name = "two-steps"
        default = ["out/all.txt"]

        [[rule]]
        name = "up"
        inputs = ["src/%.txt"]
        outputs = ["build/%.up"]
        command = "tr a-z A-Z < {in} > {out}"

        [[rule]]
        name = "join"
        inputs = ["build/a.up", "build/b.up"]
        outputs = ["out/all.txt"]
        command = "cat {in} > {out}"
    """,
    "src/a.txt": "alpha\n",
    "src/b.txt": "beta\n",
}


class Wire:
    """The two pods' stores, joined by a copy by hash instead of SFTP."""

    def __init__(self, into: Path, fed: Federated):
        self.into, self.fed = into, fed
        self.kept: dict[str, Path] = {}        # the chef pod's store
        self.pulled: list[str] = []            # what the chef pod pulled from ours
        into.mkdir(parents=True)

    def chef_fetch(self, pod: str, sha: str) -> Path:   # the chef pod pulls from ours
        if sha in self.kept:
            return self.kept[sha]
        found = self.fed.offers.lookup(sha)
        if pod != "pod-a" or found is None:
            raise TransferError(f"pod {pod}: {sha[:12]} is not offered")
        self.pulled.append(sha)
        copy = self.into / sha
        shutil.copyfile(found, copy)
        return copy

    def keep(self, path: Path) -> str:                  # the chef pod's store keeps it
        data = path.read_bytes()
        sha = hashlib.sha256(data).hexdigest()
        self.kept[sha] = self.into / f"kept-{sha}"
        self.kept[sha].write_bytes(data)
        self.fed.stores.put("pod-b", data)             # what our fetch pulls back
        return sha


@pytest.fixture
def pods(tmp_path):
    root = tmp_path / "project"
    write_project(root, TWO_STEPS)
    fed = Federated(root)
    wire = Wire(tmp_path / "wire", fed)
    space = Workspace(tmp_path / "ws-b").acquire()
    p = fed.pod
    chef = Chef("b1", p.bus, None, 2, pod="pod-b", clock=p.clock, workspace=space,
                fetch=wire.chef_fetch, keep=wire.keep,
                fingerprints=lambda tools: {t: "OURS" for t in tools}).start()
    wait_for(lambda: p.majordomo.chefs.get("b1"), what="the MajorDomo to know b1")
    yield fed, wire, root
    chef.stop()
    space.release()
    fed.stop()


def test_a_build_on_another_pods_chef_leaves_our_tree_as_a_local_build(pods, tmp_path):
    fed, wire, root = pods
    done = fed.pod.build().done()
    assert (done["ok"], done["ran"]) == (True, 3), done
    assert (root / "out/all.txt").read_text() == "ALPHA\nBETA\n"
    assert (root / "build/a.up").read_text() == "ALPHA\n"
    assert fed.stores.pods_fetched() == {"pod-b"}               # its outputs came back by hash
    assert list((tmp_path / "ws-b").rglob("all.txt"))          # built in its own workspace
    records = fed.pod.records()
    assert records["join:out/all.txt"].inputs == {
        "build/a.up": hashlib.sha256(b"ALPHA\n").hexdigest(),
        "build/b.up": hashlib.sha256(b"BETA\n").hexdigest()}
    # the join's inputs were pulled back by us and are held by pod-b already: not sent again
    assert sorted(wire.pulled) == sorted(hashlib.sha256(t).hexdigest()
                                         for t in (b"alpha\n", b"beta\n"))
    assert fed.pod.build().done()["ran"] == 0                 # a second build: nothing moves


def test_an_edit_moves_only_the_changed_file(pods):
    fed, wire, root = pods
    assert fed.pod.build().done()["ok"]
    wire.pulled.clear()
    (root / "src/a.txt").write_text("alpha, edited\n")
    done = fed.pod.build().done()
    assert done["ok"] and (root / "out/all.txt").read_text() == "ALPHA, EDITED\nBETA\n"
    assert wire.pulled == [hashlib.sha256(b"alpha, edited\n").hexdigest()]
