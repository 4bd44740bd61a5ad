"""The Desk's graph answers on a project on disk: judged once, judged again
when a file changes, and a build's events laid over it."""
from __future__ import annotations

import os
import time

import pytest

from computepods.api.graphanswers import GraphAnswers
from computepods.api.registry import BuildRegistry
from computepods.errors import NotFound, UsageError
from cpodrun import cpod_here, write

PROJECT = """
    [project]
    default = ["out/all.txt"]

    [[rule]]
    name = "copy"
    inputs = ["src/%.txt"]
    outputs = ["build/%.txt"]
    command = "cp {in} {out}"

    [[rule]]
    name = "all"
    inputs = ["build/a.txt", "build/b.txt"]
    outputs = ["out/all.txt"]
    command = "cat {in} > {out}"
"""
STEPS = ["all:out/all.txt", "copy:build/a.txt", "copy:build/b.txt"]


def built(tmp_path, monkeypatch):
    """The project, built by cpod (in this process, its chef too)."""
    monkeypatch.setenv("CP_CHEF_PROCESS", "0")
    root = write(tmp_path / "p", {"computepods.toml": PROJECT, "src/a.txt": "a\n",
                                  "src/b.txt": "b\n"})
    run = cpod_here(root, "build")
    assert run.code == 0, run.err
    return root


@pytest.fixture
def project(tmp_path):
    """Not built; its files an hour old, so their stats are trusted at once."""
    root = write(tmp_path / "p", {"computepods.toml": PROJECT, "src/a.txt": "a\n",
                                  "src/b.txt": "b\n"})
    hour_ago = time.time() - 3600
    for path in root.rglob("*"):
        os.utime(path, (hour_ago, hour_ago))
    return root


def states(answers: GraphAnswers) -> dict:
    page = answers.steps({"limit": 100})
    return {s["id"]: s["state"] for s in page["steps"]}


def test_judged_once_while_nothing_changes_and_again_when_a_file_does(project):
    answers = GraphAnswers(project, BuildRegistry())
    first = answers.graph({})
    assert first["groups"] == [
        {"name": "copy", "kind": "rule", "steps": 2, "counts": {"stale": 2}, "ran": 0,
         "cycle": False},
        {"name": "all", "kind": "rule", "steps": 1, "counts": {"stale": 1}, "ran": 0,
         "cycle": False}]
    answers.steps({"group": "copy"})
    answers.step({"id": "all:out/all.txt"})
    answers.steps({"q": "src/a.txt"})
    answers.graph({})
    assert answers.cache.judgings == 1
    # a new rule: judged again at once
    text = PROJECT.replace('default = ["out/all.txt"]', 'default = ["out/all.txt", "out/x.txt"]')
    (project / "computepods.toml").write_text(text + """
    [[rule]]
    name = "extra"
    inputs = ["src/a.txt"]
    outputs = ["out/x.txt"]
    command = "cp {in} {out}"
""".replace("\n    ", "\n"))
    assert {g["name"] for g in answers.graph({})["groups"]} == {"copy", "all", "extra"}
    assert answers.cache.judgings == 2


def test_an_edited_source_shows_stale_at_once(tmp_path, monkeypatch):
    root = built(tmp_path, monkeypatch)
    answers = GraphAnswers(root, BuildRegistry())
    assert set(states(answers).values()) == {"up_to_date"}, states(answers)
    assert set(states(answers).values()) == {"up_to_date"}
    made = answers.cache.judgings
    (root / "src/b.txt").write_text("b, edited\n")
    assert states(answers) == {"all:out/all.txt": "stale", "copy:build/a.txt": "up_to_date",
                               "copy:build/b.txt": "stale"}
    assert answers.cache.judgings == made + 1


def test_the_latest_build_laid_over_the_disk(project):
    registry = BuildRegistry()
    answers = GraphAnswers(project, registry)
    answers.graph({})
    targets = answers.graph({})["targets"]

    def hear(build, seq, events):
        registry.take(build, seq, events)
        answers.heard(events)

    hear("b1", 0, [{"t": "queued", "targets": []},
                   {"t": "plan", "steps": 3, "targets": targets},
                   {"t": "start", "step": "copy:build/a.txt"},
                   {"t": "start", "step": "copy:build/b.txt"},
                   {"t": "ok", "step": "copy:build/a.txt"}])
    g = answers.graph({})
    assert g["build"] == {"id": "b1", "state": "running"}
    assert [r["id"] for r in g["running"]] == ["copy:build/b.txt"]
    assert g["counts"] == {"up_to_date": 1, "building": 1, "stale": 1} and g["ran"] == 1
    assert answers.steps({"ran": True})["steps"][0]["id"] == "copy:build/a.txt"
    hear("b1", 5, [{"t": "cancel", "dropped": 1},
                   {"t": "fail", "step": "copy:build/b.txt", "reason": "cancelled"},
                   {"t": "done", "ok": False, "code": 130, "cancelled": True}])
    assert states(answers) == {"copy:build/a.txt": "stale",     # no real build wrote it
                               "copy:build/b.txt": "cancelled", "all:out/all.txt": "not_run"}
    whole = answers.graph({"format": "json"})
    assert {n["id"]: (n["state"], n["ran"]) for n in whole["nodes"]} == {
        "copy:build/a.txt": ("stale", True), "copy:build/b.txt": ("cancelled", False),
        "all:out/all.txt": ("not_run", False)}
    assert ["copy:build/a.txt", "all:out/all.txt"] in whole["edges"]
    assert '"all:out/all.txt" [fillcolor="#e4e4e4"' in answers.graph({"format": "dot"})["dot"]


def test_bad_questions_are_usage_errors(project):
    answers = GraphAnswers(project, BuildRegistry())
    with pytest.raises(UsageError, match="format 'png'"):
        answers.graph({"format": "png"})
    with pytest.raises(UsageError, match="state 'sleepy'"):
        answers.steps({"state": "sleepy"})
    with pytest.raises(UsageError, match="'offset' must be int"):
        answers.steps({"offset": "3"})
    with pytest.raises(NotFound):
        answers.step({"id": "copy:nowhere"})
