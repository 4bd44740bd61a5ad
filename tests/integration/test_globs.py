"""Globs in inputs end to end: the real `cpod` on a real tree.

A glob is found when the rule is planned, so a C file created or deleted
changes the next build, whether that build is planned cold (its plan cache
and no-op verdict must notice), by a background pod that keeps its plans in
memory, or by a `cpod up` pod that hears the new file and builds by itself.
"""
from __future__ import annotations

from pathlib import Path

import pytest

import uppod
from cpodrun import cpod, write
from helpers import wait_for

up = uppod.up       # the fixture

PROJECT = """
[project]
default = ["lib/all.txt"]

[vars]
objs = { glob = "src/**/*.c", as = "build/%.o" }

[[rule]]
name = "compile"
inputs = ["src/%.c"]
outputs = ["build/%.o"]
command = "tr a-z A-Z < {in} > {out}"

[[rule]]
name = "archive"
inputs = ["{objs}"]
outputs = ["lib/all.txt"]
command = "cat {in} > {out}"
"""
COLD = {"CP_POD": "0"}
HOT = {"CP_POD": "1", "CI": ""}        # a background pod stays up between builds


def project(root: Path) -> Path:
    return write(root, {"computepods.toml": PROJECT, "src/a.c": "a\n", "src/sub/b.c": "b\n"})


def build(root: Path, env: dict, what: str):
    run = cpod(root, "build", env=env)
    assert run.code == 0, f"{what} failed (exit {run.code}):\n{run.err}{run.out}"
    return run


@pytest.mark.parametrize("env", [COLD, HOT], ids=["cold", "background-pod"])
def test_a_created_or_deleted_file_changes_the_next_build(tmp_path, env):
    root = project(tmp_path / "p")
    try:
        first = build(root, env, "the first build")
        assert sorted(first.ran) == ["archive:lib/all.txt", "compile:build/a.o",
                                     "compile:build/sub/b.o"]
        assert build(root, env, "a no-op").ran == []

        (root / "src/sub/c.c").write_text("c\n")
        added = build(root, env, "the build after a new file")
        assert sorted(added.ran) == ["archive:lib/all.txt", "compile:build/sub/c.o"]
        assert (root / "lib/all.txt").read_text() == "A\nB\nC\n"
        assert build(root, env, "a no-op after it").ran == []

        (root / "src/a.c").unlink()
        removed = build(root, env, "the build after a deleted file")
        assert removed.ran == ["archive:lib/all.txt"]
        assert (root / "lib/all.txt").read_text() == "B\nC\n"
        assert not (root / "build/a.o").exists()         # no rule makes it any more
    finally:
        if env is HOT:
            cpod(root, "down")


def test_a_glob_that_finds_nothing_is_one_line_naming_the_rule(tmp_path):
    root = write(tmp_path / "p", {"computepods.toml": PROJECT, "src/readme.txt": ""})
    run = cpod(root, "build", env=COLD)
    assert run.code == 2
    assert run.err.strip() == (f"cpod: {root / 'computepods.toml'}: rule 'archive': key "
                               "'inputs': glob 'src/**/*.c' matches no file")


def test_under_cpod_up_a_new_file_a_glob_finds_is_built(tmp_path, up):
    root = project(tmp_path / "p")
    pod = up(root)
    out = root / "lib/all.txt"
    wait_for(lambda: out.exists() and out.read_text() == "A\nB\n", what="the first build")
    wait_for(lambda: pod.builds_done() >= 1, what="the first build to finish")
    (root / "src/new").mkdir()
    (root / "src/new/d.c").write_text("d\n")            # no build names it yet
    wait_for(lambda: out.read_text() == "A\nD\nB\n", timeout=20,
             what="the build the new file makes (the pod planned again)")
    assert (root / "build/new/d.o").read_text() == "D\n"
    (root / "src/a.c").unlink()
    wait_for(lambda: out.read_text() == "D\nB\n", timeout=20, what="the build after a deletion")
