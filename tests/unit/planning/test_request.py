"""computepods.planning.request: a build is planned once.

The last test runs a whole embedded ``cpod build`` in this process (its
chef in-process, on a real nats-server) and counts, with spies that call
the real functions, how often it resolves, judges, reads the state and
takes the project lock.
"""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from computepods import errors
from computepods.cli import cpod
from computepods.planning import plan as planning
from computepods.planning import request
from computepods.planning.request import HandedPlans, plan_request
from computepods.state.lock import ProjectLock

PROJECT = """
[project]
default = ["out/all.txt"]

[[rule]]
name = "copy"
inputs = ["src/%.txt"]
outputs = ["out/%.txt"]
command = "cp {in} {out}"

[[rule]]
name = "all"
inputs = ["out/a.txt", "out/b.txt"]
outputs = ["out/all.txt"]
command = "cat {in} > {out}"
"""


@pytest.fixture
def root(tmp_path) -> Path:
    root = tmp_path / "p"
    (root / "src").mkdir(parents=True)
    (root / "computepods.toml").write_text(textwrap.dedent(PROJECT))
    (root / "src/a.txt").write_text("a\n")
    (root / "src/b.txt").write_text("b\n")
    return root


def test_a_handed_plan_is_taken_once():
    handed = HandedPlans()
    bp = object()
    token = handed.hand(bp)
    assert len(handed) == 1
    assert handed.take("not-a-token") is None and handed.take(None) is None
    assert handed.take(token) is bp
    assert handed.take(token) is None and len(handed) == 0


def test_a_request_naming_a_handed_plan_is_not_planned_again(root, monkeypatch):
    handed = HandedPlans()
    bp = planning.make_plan(root, [])
    monkeypatch.setattr(request, "make_plan", lambda *a, **k: pytest.fail("planned twice"))
    taken, removed = plan_request(root, {"targets": [], request.PLAN_FIELD: handed.hand(bp)},
                                  handed=handed)
    assert taken is bp and removed == []


def test_a_request_from_elsewhere_is_planned(root):
    handed = HandedPlans()
    bp, removed = plan_request(root, {"targets": ["out/a.txt"], "cwd": str(root)},
                               handed=handed)
    assert list(bp.plan.steps) == ["copy:out/a.txt"] and removed == []
    bp, _ = plan_request(root, {"targets": [], request.PLAN_FIELD: "unknown"}, handed=handed)
    assert sorted(bp.plan.steps) == ["all:out/all.txt", "copy:out/a.txt", "copy:out/b.txt"]


@pytest.mark.parametrize("target, words", [
    ("out/a\0.txt", "NUL"),
    ("out/" + "x" * 5000 + ".txt", "at most 4095"),
    ("out/bad\udcff.txt", r"'out/bad\xff.txt' is not a UTF-8 file name"),
])
def test_a_request_for_a_target_no_file_can_be_is_a_usage_error(root, target, words):
    """A bus or REST request may carry what no command line can (a NUL):
    refused as the request is planned, not met in the MajorDomo as an
    "internal error" (issue 11, break 7)."""
    with pytest.raises(errors.UsageError) as info:
        plan_request(root, {"targets": [target], "cwd": str(root)})
    assert words in str(info.value) and "target" in str(info.value)


def spy(monkeypatch, owner, name: str, calls: dict[str, int]) -> None:
    real = getattr(owner, name)
    calls[name] = 0

    def counted(*args, **kwargs):
        calls[name] += 1
        return real(*args, **kwargs)
    monkeypatch.setattr(owner, name, counted)


def test_an_embedded_build_plans_once_reads_the_state_once_and_locks_once(root, monkeypatch,
                                                                           capsys):
    monkeypatch.setenv("CP_CHEF_PROCESS", "0")     # its chef in this process
    monkeypatch.delenv("CP_NATS_URL", raising=False)
    calls: dict[str, int] = {}
    for name in ("resolve", "judge", "load_state"):
        spy(monkeypatch, planning, name, calls)
    spy(monkeypatch, ProjectLock, "acquire", calls)

    def build() -> dict[str, int]:
        for name in calls:
            calls[name] = 0
        assert cpod.main(["-C", str(root), "build"]) == 0, capsys.readouterr().err
        return dict(calls)

    once = {"resolve": 1, "judge": 1, "load_state": 1, "acquire": 1}
    assert build() == once                          # the first build: no state yet
    assert (root / "out/all.txt").read_text() == "a\nb\n"
    (root / "src/b.txt").write_text("B\n")
    assert build() == once                          # a rebuild, with a state to read
    assert (root / "out/all.txt").read_text() == "a\nB\n"
    assert "nothing to do" not in capsys.readouterr().err
