"""What the MajorDomo makes of bad bus messages and of losing its only chef,
on the loopback bus and a SimClock (issue 11, breaks 7 and 8): a bad
message is answered naming its field and no chart crashes; a spoofed
status is not given steps; a dead chef's build says why its steps fail."""
from __future__ import annotations

import pytest

from computepods.bus import messages as m
from computepods.charts.chef import HEARTBEAT_S, LEASE_FACTOR
from computepods.errors import BusError
from projects import COPY
from helpers import wait_for
from loopbackpod import LoopbackPod, write_project

LEASE_S = LEASE_FACTOR * HEARTBEAT_S
WIDE = 40                  # steps: more than one chef slot's window (16), so some wait

def wide(n: int) -> dict[str, str]:
    files = {"computepods.toml": f"""
        [project]
        default = [{", ".join(f'"out/{i}.txt"' for i in range(n))}]

        [[rule]]
        name = "copy"
        inputs = ["src/%.txt"]
        outputs = ["out/%.txt"]
        command = "cp {{in}} {{out}}"
    """}
    files.update({f"src/{i}.txt": f"{i}\n" for i in range(n)})
    return files


@pytest.fixture
def pod(tmp_path):
    pod = LoopbackPod(tmp_path)
    yield pod.start()
    pod.stop()          # fails the test if a chart crashed


def test_a_build_request_with_targets_not_strings_is_answered_naming_the_field(tmp_path, pod):
    write_project(tmp_path, COPY)
    pod.add_chef("a")
    with pytest.raises(BusError, match=r"build.request: field 'targets'\[0\] must be str, got int"):
        pod.bus.request_sync(m.BUILD_REQUEST, {"targets": [5, None], "cwd": str(tmp_path)})
    deep: list = []
    for _ in range(m.MAX_DEPTH + 5):
        deep = [deep]
    with pytest.raises(BusError, match=f"nested more than {m.MAX_DEPTH} levels deep"):
        pod.bus.request_sync(m.BUILD_REQUEST, {"targets": deep, "cwd": str(tmp_path)})
    assert pod.majordomo.crashes == []
    done = pod.build().done()                 # and the next build goes through
    assert (done["ok"], done["ran"]) == (True, 1)
    assert (tmp_path / "out/a.txt").read_text() == "a\n"


def test_a_spoofed_status_with_a_negative_lease_is_refused_and_given_no_steps(tmp_path, pod):
    write_project(tmp_path, COPY)
    errors: list = []
    pod.bus.listen(m.BUS_ERROR, _Into(errors))
    pod.bus.publish(m.CHEF_STATUS, {"chef": "spoof", "pod": "evil", "slots": 64, "running": 0,
                                    "queued": 0, "lease_s": -5})
    assert [e.data["problem"] for e in errors] == [
        "chefs.status: field 'lease_s' must be over 0 and at most 3600, got -5"]
    pod.add_chef("a")
    build = pod.build()
    done = build.done()
    assert pod.majordomo.chefs.get("spoof") is None
    assert set(build.chef_of().values()) == {"a"}
    assert not any(s == pod.bus.subject(m.CHEF_RUN, chef="spoof") for s, _ in pod.bus.log)
    assert (done["ok"], done["ran"]) == (True, 1)


def test_when_the_only_chef_dies_every_step_fails_at_once_naming_it(tmp_path, pod):
    write_project(tmp_path, wide(WIDE))
    a = pod.add_chef("a", down_after_runs=1)      # takes its first window, then is silent
    build = pod.build()
    wait_for(lambda: a.down.is_set(), what="chef a to take its first steps")
    held = len(pod.majordomo.chefs.get("a").outstanding)
    assert 0 < held < WIDE

    pod.clock.advance(LEASE_S + 1)              # past its lease, and past the 10 s chef wait

    done = build.done()
    reasons = {ev["step"]: ev["reason"] for ev in build.of("fail")}
    assert len(reasons) == WIDE and (done["ok"], done["failed"]) == (False, WIDE)
    assert all(r.startswith("chef a stopped answering") and r.endswith("no other chef to run it")
               for r in reasons.values()), set(reasons.values())
    [lost] = build.of("chef_lost")
    assert len(lost["steps"]) == held and lost["rescheduled"] is False


class _Into:
    """A queue-like sink for listen(): appends to a list."""

    def __init__(self, into: list):
        self.put = into.append


@pytest.mark.parametrize("rule, problem", [
    ({"name": "r", "inputs": [], "outputs": [], "command": "true"}, "outputs must be a list of paths, at least one"),
    ({"name": "r", "outputs": ["a", 5], "command": "true"}, "outputs must be a list of paths"),
    ({"name": "r", "outputs": ["a"], "command": {"x": 1}}, "command must be a string"),
    ({"name": "r", "outputs": "a", "command": "true"}, "outputs must be list/tuple"),
])
def test_a_run_whose_rule_the_chef_cannot_rebuild_is_answered_not_a_crash(tmp_path, pod, rule,
                                                                           problem):
    write_project(tmp_path, COPY)
    pod.add_chef("a")
    run = {"build": "b", "chef": "a", "rules": {"r": rule},
           "steps": [{"id": "r:a", "attempt": 1, "rule": "r", "stem": None, "inputs": {}}]}
    with pytest.raises(BusError, match=f"bad rules: .*rule 'r': {problem}"):
        pod.bus.request_sync(m.CHEF_RUN, run, chef="a")
    assert pod.chefs["a"].crashes == []
