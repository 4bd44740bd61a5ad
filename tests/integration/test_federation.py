"""Three pods, as the issue's user runs them: A holds the project, B and C
are chef pods (`cpod chef` in empty directories, no project); each talks to
its own member of one 3-server NATS cluster and serves its own store over
SFTP on 127.0.0.1.  No directory is shared between them: every byte a step
reads or makes moves by hash over SFTP."""
from __future__ import annotations


import pytest

from computepods.bus.auth import MAJORDOMO
from computepods.bus.client import request_build
from computepods.charts.majordomo import MajorDomo
from computepods.pod.pod import Pod, PodOptions
from chefpods import PROJECT, ChefPod, one_machine_build, tree
from cpodrun import write
from helpers import wait_for

UP_S = 30.0                # seconds the pods get to hear each other


@pytest.fixture
def pods(tmp_path, nats_cluster, monkeypatch):
    """(A, B, C): A a Pod with no chef of its own, B and C chef pods."""
    for name, value in nats_cluster.users.env(MAJORDOMO).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "a-cache"))
    chefs = [ChefPod(tmp_path / pod, url, nats_cluster.users, pod)
             for pod, url in (("podB", nats_cluster.urls[1]), ("podC", nats_cluster.urls[2]))]
    a = None
    try:
        root = write(tmp_path / "a", PROJECT)
        a = Pod(root, PodOptions(nats_url=nats_cluster.urls[0], federate=True, chefs=0,
                                 slots=2, sftp_listen="127.0.0.1")).start()
        md = next(c for c in a.charts if isinstance(c, MajorDomo))
        wait_for(lambda: {c.name for c in md.chefs} == {"podB-chef", "podC-chef"}
                 and all(a.member.roster.is_live(c.pod) for c in chefs), timeout=UP_S,
                 what="pod A to hear both chef pods: " + " | ".join(c.output()[-400:]
                                                                  for c in chefs))
        yield a, *chefs
    finally:
        if a is not None:
            a.stop()
        for chef in chefs:
            chef.stop()
        assert not any(c.killed for c in chefs), "a chef pod ignored SIGTERM"


def moved(a: Pod) -> tuple[int, int]:
    return a.member.moved_in(), a.member.moved_out()


def test_a_build_on_chef_pods_leaves_the_tree_a_one_machine_build_would(pods, tmp_path):
    a, b, c = pods
    expected = one_machine_build(tmp_path / "alone", PROJECT)
    assert request_build(a.bridge, [], a.root) == 0, b.output() + c.output()
    assert tree(a.root) == expected
    held = {pod: n for pod, (n, _) in a.federation.owners.by_pod().items()}
    assert set(held) >= {"podB", "podC"}, held          # both did some of the work

    before = moved(a)
    assert request_build(a.bridge, [], a.root) == 0
    assert moved(a) == before                            # nothing to do: 0 bytes

    (a.root / "src/c.txt").write_text("c changed\n")
    assert request_build(a.bridge, [], a.root) == 0
    got_in, got_out = (x - y for x, y in zip(moved(a), before))
    assert (a.root / "out/c.txt").read_text() == "C CHANGED\n"
    # out: the edited source, and the other upper-cased files for `all`
    # only where its chef lacks them; in: the two outputs that changed
    assert got_in == len("C CHANGED\n") + len((a.root / "out/all.txt").read_bytes())
    assert got_out <= len("c changed\n") + sum(len(v) for k, v in expected.items()
                                               if k.startswith("out/") and k != "out/all.txt")
