"""The graph in groups and pages, and a build's events laid over it."""
from __future__ import annotations

import json

import pytest

from computepods.api.graphindex import MAX_RULE_GROUPS, GraphIndex, Overlay
from computepods.api.outcomes import StepOutcomes
from computepods.errors import NotFound
from graphs import wide


def layers(width: int, depth: int) -> dict:
    """A rule per step past layer 0, as bench/gen.py's layers writes them."""
    nodes = [{"id": f"copy:build/l0/s{j}.txt", "rule": "copy", "inputs": [f"src/s{j}.txt"],
              "outputs": [f"build/l0/s{j}.txt"], "state": "up_to_date", "cycle": None}
             for j in range(width)]
    edges = []
    for k in range(1, depth):
        for j in range(width):
            sid = f"l{k}_s{j}:build/l{k}/s{j}.txt"
            nodes.append({"id": sid, "rule": f"l{k}_s{j}", "inputs": [f"build/l{k - 1}/s{j}.txt"],
                          "outputs": [f"build/l{k}/s{j}.txt"], "state": "stale", "cycle": None})
            prev = nodes[(k - 1) * width + j]["id"]
            edges.append([prev, sid])
    return {"targets": [], "nodes": nodes, "edges": edges, "cycles": []}


def test_one_pattern_rule_folds_into_one_group_with_its_counts():
    g = wide(2000)
    g["nodes"][3]["state"] = "failed"
    index = GraphIndex(g)
    answer = index.groups()
    assert [(r["name"], r["kind"], r["steps"]) for r in answer["groups"]] == [
        ("copy", "rule", 2000), ("sum", "rule", 1)]
    assert answer["groups"][0]["counts"] == {"stale": 1999, "failed": 1}
    assert answer["counts"] == {"stale": 2000, "failed": 1} and answer["steps"] == 2001
    # small, whatever the graph's size: no step, no path, no edge in it
    assert len(json.dumps(answer)) < 1000


def test_many_one_step_rules_fold_by_the_directory_of_their_output():
    index = GraphIndex(layers(30, 4))
    assert len({n["rule"] for n in index.nodes.values()}) > MAX_RULE_GROUPS
    rows = index.groups()["groups"]
    assert [(r["name"], r["kind"], r["steps"]) for r in rows] == [
        ("copy", "rule", 30), ("build/l1/", "dir", 30), ("build/l2/", "dir", 30),
        ("build/l3/", "dir", 30)]
    page = index.steps(group="build/l2/", limit=5, offset=10)
    assert page["total"] == 30 and len(page["steps"]) == 5
    assert page["steps"][0]["id"] == sorted(index.members["build/l2/"])[10]


def test_a_few_rules_keep_their_own_groups():
    g = layers(3, 3)         # 1 + 6 rules: under the limit
    assert [r["name"] for r in GraphIndex(g).groups()["groups"]] == [
        "copy", "l1_s0", "l1_s1", "l1_s2", "l2_s0", "l2_s1", "l2_s2"]


def test_search_finds_a_step_by_id_by_output_and_by_what_it_reads():
    index = GraphIndex(wide(50))
    assert index.steps(q="copy:build/f00007.txt")["steps"][0]["id"] == "copy:build/f00007.txt"
    assert index.steps(q="BUILD/F00007.TXT")["steps"][0]["id"] == "copy:build/f00007.txt"
    # a source is read, not made: the step that reads it
    assert [s["id"] for s in index.steps(q="src/f00012.txt")["steps"]] == ["copy:build/f00012.txt"]
    # an exact output comes before the steps that merely read it
    found = [s["id"] for s in index.steps(q="build/f00012.txt")["steps"]]
    assert found == ["copy:build/f00012.txt", "sum:out/all.txt"]
    assert index.steps(q="f0004")["total"] == 10 + 1         # f00040..49, and sum reads them
    assert index.steps(q="nothing-like-it")["total"] == 0


def test_a_step_with_its_inputs_makers_and_readers_for_navigation():
    index = GraphIndex(wide(5))
    node = index.step("copy:build/f00002.txt")
    assert node["inputs"] == [{"path": "src/f00002.txt", "step": None, "state": None}]
    assert node["dependants"] == [{"id": "sum:out/all.txt", "state": "stale"}]
    total = index.step("sum:out/all.txt", limit=2)
    assert total["inputs_total"] == 5 and len(total["inputs"]) == 2
    assert total["inputs"][0] == {"path": "build/f00000.txt", "step": "copy:build/f00000.txt",
                                  "state": "stale"}
    with pytest.raises(NotFound, match="no step 'copy:nope'"):
        index.step("copy:nope")
    with pytest.raises(NotFound, match="no group 'nope'"):
        index.steps(group="nope")


def fold(*events) -> StepOutcomes:
    outcomes = StepOutcomes()
    for ev in events:
        outcomes.fold(ev)
    return outcomes


def test_a_running_build_shows_running_ran_and_failed_steps():
    index = GraphIndex(wide(4))
    outcomes = fold({"t": "start", "step": "copy:build/f00000.txt"},
                    {"t": "ok", "step": "copy:build/f00000.txt"},
                    {"t": "ran", "step": "copy:build/f00001.txt"},
                    {"t": "fail", "step": "copy:build/f00002.txt", "reason": "exit 1"})
    live = Overlay(running=frozenset({"copy:build/f00003.txt"}), outcomes=outcomes, live=True)
    assert index.groups(live)["groups"][0]["counts"] == {"up_to_date": 2, "failed": 1,
                                                          "building": 1}
    assert [s["id"] for s in index.groups(live)["running"]] == ["copy:build/f00003.txt"]
    assert index.steps(live, ran=True)["total"] == 2
    assert index.steps(live, state="building")["steps"][0]["id"] == "copy:build/f00003.txt"
    # judged again after the build: the disk says what is up to date; "ran" stays a flag
    after = Overlay(outcomes=outcomes, live=False)
    row = index.row("copy:build/f00000.txt", after)
    assert (row["state"], row["ran"]) == ("stale", True)


def test_a_cancelled_build_shows_cancelled_and_not_run_never_failed():
    index = GraphIndex(wide(4))
    outcomes = fold({"t": "start", "step": "copy:build/f00000.txt"},
                    {"t": "fail", "step": "copy:build/f00000.txt", "reason": "cancelled"},
                    {"t": "fail", "step": "copy:build/f00001.txt", "reason": "cancelled"},
                    {"t": "ok", "step": "copy:build/f00002.txt"})
    over = Overlay(outcomes=outcomes, live=True, cancelled=True)
    states = {sid: index.state(sid, over) for sid in index.nodes}
    assert states == {"copy:build/f00000.txt": "cancelled", "copy:build/f00001.txt": "not_run",
                      "copy:build/f00002.txt": "up_to_date", "copy:build/f00003.txt": "not_run",
                      "sum:out/all.txt": "not_run"}
    assert "failed" not in index.groups(over)["counts"]


def test_a_step_that_fails_after_the_cancel_was_cancelled():
    outcomes = fold({"t": "start", "step": "a"}, {"t": "cancel", "dropped": 3},
                    {"t": "fail", "step": "a", "reason": "killed by signal 15"},
                    {"t": "fail", "step": "b", "reason": "exit 1"})
    assert (outcomes.of("a"), outcomes.of("b")) == ("cancelled", "not_run")
    assert fold({"t": "fail", "step": "a", "reason": "exit 1"}).of("a") == "failed"


def test_a_group_lists_running_and_failed_steps_first():
    g = wide(300)
    g["nodes"][250]["state"] = "failed"
    index = GraphIndex(g)
    over = Overlay(running=frozenset({"copy:build/f00200.txt"}))
    first = [s["id"] for s in index.steps(over, group="copy", limit=3)["steps"]]
    assert first == ["copy:build/f00200.txt", "copy:build/f00250.txt", "copy:build/f00000.txt"]
