"""A federated MajorDomo gives no step to a chef of a pod whose key is in
dispute (the Roster refused a hello under its name), however idle it is."""
from __future__ import annotations

from federatedpod import Federated
from loopbackpod import write_project

PROJECT = {
    "computepods.toml": """
        [project]
        name = "upper"
        default = ["out/a.up", "out/b.up"]

        [[rule]]
        name = "up"
        inputs = ["src/%.txt"]
        outputs = ["out/%.up"]
        command = "tr a-z A-Z < {in} > {out}"
    """,
    "src/a.txt": "alpha\n",
    "src/b.txt": "beta\n",
}
TR = {"tr": "OURS"}


def test_a_chef_of_a_disputed_pod_gets_no_step_and_the_build_goes_to_the_others(tmp_path):
    root = tmp_path / "project"
    write_project(root, PROJECT)
    f = Federated(root)
    try:
        f.disputed.add("pod-b")
        idle = f.chef("b1", "pod-b", prints=TR, slots=8)
        busy = f.chef("c1", "pod-c", prints=TR, queued=20)
        assert f.pod.build().done()["ok"]
        assert idle.steps_run() == []
        assert sorted(busy.steps_run()) == ["up:out/a.up", "up:out/b.up"]

        f.disputed.clear()                     # forgotten: trusted again
        (root / "src/a.txt").write_text("alpha again\n")
        assert f.pod.build().done()["ok"]
        assert idle.steps_run() == ["up:out/a.up"]
    finally:
        f.stop()
