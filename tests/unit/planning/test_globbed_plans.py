"""Plans from rules with globs in their inputs: the steps they bind, what a
chef is sent, and every kept plan (the plan cache, a hot pod's) given up
when a file a glob would find appears or one it found goes.

Real files in a temporary project; nothing runs but the one build the hot
pod's test makes.
"""
from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from computepods import errors
from computepods.chef.step import rule_from_dict, rule_to_dict
from computepods.paths import PROJECT_FILE, prepare_state_dir
from computepods.planning import plan as planning
from computepods.planning.hot import HotPlans
from computepods.planning.plan import resolve
from computepods.planning.resolve import RuleSet, bind
from computepods.planning.staleness import rule_fingerprint
from computepods.project.load import load_project

PROJECT = """
[project]
default = ["lib/libx.a", "out/list.txt"]

[vars]
objs = { glob = "src/**/*.c", as = "build/%.o" }

[[rule]]
name = "compile"
inputs = ["src/%.c", "include/*.h"]
outputs = ["build/%.o"]
command = "cat {in} > {out}"

[[rule]]
name = "archive"
inputs = ["{objs}"]
outputs = ["lib/libx.a"]
command = "cat {in} > {out}"

[[rule]]
name = "list"
inputs = ["src/*.c"]
outputs = ["out/list.txt"]
command = "ls {in} > {out}"
"""


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


@pytest.fixture
def root(tmp_path) -> Path:
    return write(tmp_path / "p", {PROJECT_FILE: PROJECT, "src/a.c": "a", "src/sub/b.c": "b",
                                  "include/x.h": "x"})


def test_a_glob_binds_the_files_it_finds_and_a_mapped_glob_what_they_make(root):
    _, plan = resolve(root, [])
    assert plan.steps["list:out/list.txt"].inputs == ("src/a.c",)
    assert plan.steps["archive:lib/libx.a"].inputs == ("build/a.o", "build/sub/b.o")
    assert plan.steps["compile:build/sub/b.o"].inputs == ("src/sub/b.c", "include/x.h")
    assert plan.sources == {"src/a.c", "src/sub/b.c", "include/x.h"}
    assert plan.basis.globs == {"src/*.c": ("src/a.c",),
                                "src/**/*.c": ("src/a.c", "src/sub/b.c"),
                                "include/*.h": ("include/x.h",)}


def test_a_chef_rebuilds_the_same_step_from_the_rule_it_is_sent(root):
    _, plan = resolve(root, [])
    step = plan.steps["archive:lib/libx.a"]
    again = bind(rule_from_dict(rule_to_dict(step.rule)), step.stem)
    assert again == step and again.command().display == "cat build/a.o build/sub/b.o > lib/libx.a"


def test_a_file_a_glob_finds_is_a_new_input_not_a_changed_rule(root):
    _, before = resolve(root, [])
    (root / "src/c.c").write_text("c")
    _, after = resolve(root, [])
    old, new = before.steps["list:out/list.txt"], after.steps["list:out/list.txt"]
    assert new.inputs == ("src/a.c", "src/c.c")
    assert rule_fingerprint(old) == rule_fingerprint(new)


def test_a_pattern_rule_whose_glob_finds_nothing_is_passed_over_for_a_source(root):
    (root / "include/x.h").unlink()
    (root / "build").mkdir()
    (root / "build/kept.o").write_text("by hand")
    rules = RuleSet(load_project(root))
    exists = planning.file_exists(root)
    assert rules.match("build/kept.o", exists) is None
    with pytest.raises(errors.ProjectError, match="rule 'compile': key 'inputs': "
                                                  "glob 'include/\\*.h' matches no file"):
        rules.resolve(["build/a.o"], exists)


# --- the plan cache -----------------------------------------------------------------

@pytest.fixture
def cached(root, monkeypatch):
    """resolve(), and whether it was answered from the plan cache."""
    prepare_state_dir(root)
    loads = []
    real = planning.load_project
    monkeypatch.setattr(planning, "load_project", lambda *a: loads.append(a) or real(*a))

    def resolved():
        before = len(loads)
        _, plan = resolve(root, [])
        return plan, len(loads) == before
    return resolved


def test_the_cached_plan_holds_until_a_glob_finds_other_files(root, cached):
    cached()
    assert cached()[1]
    (root / "src/notes.txt").write_text("")          # matches no glob
    (root / "src/.c.swp").write_text("")             # a dot name: no glob's
    assert cached()[1]
    (root / "src/sub/deep").mkdir()
    (root / "src/sub/deep/c.c").write_text("c")
    plan, from_cache = cached()
    assert not from_cache and "compile:build/sub/deep/c.o" in plan.steps
    assert cached()[1]
    (root / "src/a.c").unlink()                      # the one file src/*.c found
    with pytest.raises(errors.ProjectError, match="glob 'src/\\*.c' matches no file"):
        cached()


# --- a hot pod ----------------------------------------------------------------------

def report(root: Path, path: str, kind: str = "created") -> dict:
    st = os.stat(root / path) if kind != "deleted" else None
    return {"root": str(root), "path": path, "kind": kind,
            "size": st and st.st_size, "mtime_ns": st and st.st_mtime_ns}


def test_a_hot_pod_plans_again_when_a_file_a_glob_would_find_appears_or_goes(root):
    hot = HotPlans(root, watched=lambda path: True)
    request = {"targets": [], "cwd": str(root)}
    first = hot.plan(request, tidy=None)
    hot.finished(None)
    assert hot.plan(request, tidy=None).plan is first.plan         # kept
    hot.finished(None)
    (root / "src/sub/other.h").write_text("")
    hot.heard(report(root, "src/sub/other.h"))
    assert hot.plan(request, tidy=None).plan is first.plan         # no glob finds it
    hot.finished(None)
    (root / "src/c.c").write_text("c")
    hot.heard(report(root, "src/c.c"))
    again = hot.plan(request, tidy=None)
    hot.finished(None)
    assert again.plan is not first.plan
    assert again.plan.steps["list:out/list.txt"].inputs == ("src/a.c", "src/c.c")
    (root / "include/x.h").unlink()
    hot.heard(report(root, "include/x.h", "deleted"))
    with pytest.raises(errors.ProjectError, match="glob 'include/\\*.h' matches no file"):
        hot.plan(request, tidy=None)
