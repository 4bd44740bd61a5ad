"""The plan cache (computepods.planning.plancache): a plan resolved once is reused,
and every change that could change it makes the next resolve start afresh.

Real files in a temporary project; resolving never starts anything.
"""
from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from computepods import errors
from computepods.planning import plan as planning
from computepods.planning import plancache
from computepods.planning.plan import resolve
from computepods.paths import prepare_state_dir
from computepods.state.db import StateDB

PROJECT = """
[project]
default = ["out/all.txt"]

[[rule]]
name = "copy"
inputs = ["src/%.txt"]
outputs = ["out/%.txt"]
command = "cp {in} {out}"

[[rule]]
name = "html"
inputs = ["%.md"]
outputs = ["%.html"]
command = "cp {in} {out}"

[[rule]]
name = "all"
inputs = ["out/a.txt", "out/b.txt"]
outputs = ["out/all.txt"]
command = "cat {in} > {out}"
"""


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


@pytest.fixture
def root(tmp_path) -> Path:
    root = tmp_path / "p"
    write(root, {"computepods.toml": PROJECT, "src/a.txt": "a\n", "src/b.txt": "b\n"})
    prepare_state_dir(root)
    return root


@pytest.fixture
def from_cache(monkeypatch):
    """Makes resolve say whether it used the cache: a fresh resolve loads
    the project file, a cached one does not."""
    loads = []
    real = planning.load_project

    def counting(*args, **kwargs):
        loads.append(args)
        return real(*args, **kwargs)
    monkeypatch.setattr(planning, "load_project", counting)

    def resolved(root: Path, names=(), cwd=None):
        before = len(loads)
        project, plan = resolve(root, list(names), cwd)
        return plan, len(loads) == before
    return resolved


def test_a_second_resolve_is_answered_from_the_cache(root, from_cache):
    plan, cached = from_cache(root)
    assert not cached and sorted(plan.steps) == ["all:out/all.txt", "copy:out/a.txt",
                                                 "copy:out/b.txt"]
    again, cached = from_cache(root)
    assert cached
    assert list(again.steps) == list(plan.steps)
    assert again.steps["copy:out/a.txt"].inputs == ("src/a.txt",)
    assert again.sources == plan.sources and again.producers == plan.producers


def test_no_state_directory_no_cache_written(tmp_path, from_cache):
    root = tmp_path / "fresh"
    write(root, {"computepods.toml": PROJECT, "src/a.txt": "a", "src/b.txt": "b"})
    from_cache(root)
    assert not (root / ".computepods").exists()   # the build creates it, with .gitignore


def test_a_first_build_stores_its_plan_once_the_state_directory_exists(tmp_path, from_cache):
    root = tmp_path / "fresh"
    write(root, {"computepods.toml": PROJECT, "src/a.txt": "a", "src/b.txt": "b"})
    project, plan = resolve(root, [])              # cpod build, before .computepods exists
    prepare_state_dir(root)
    plancache.store_plan(root, project, plan)      # as cpod build does then
    assert len(list((root / plancache.PLANS_DIR).iterdir())) == 1
    again, cached = from_cache(root)
    assert cached and list(again.steps) == list(plan.steps)
    (root / "src/b.txt").unlink()                  # its probes are checked
    with pytest.raises(errors.UnknownTarget):
        from_cache(root)


def test_editing_the_project_file_resolves_afresh(root, from_cache):
    from_cache(root)
    (root / "computepods.toml").write_text(PROJECT.replace("cat {in} > {out}",
                                                           "cat {in} {in} > {out}"))
    plan, cached = from_cache(root)
    assert not cached
    assert plan.steps["all:out/all.txt"].rule.command == "cat {in} {in} > {out}"


def test_adding_a_source_a_pattern_can_now_use_resolves_afresh(root, from_cache):
    (root / "docs").mkdir()
    (root / "docs/readme.html").write_text("by hand")
    plan, _ = from_cache(root, ["docs/readme.html"])
    assert plan.steps == {} and plan.sources == {"docs/readme.html"}   # no .md: a source
    plan, cached = from_cache(root, ["docs/readme.html"])
    assert cached and plan.steps == {}
    (root / "docs/readme.md").write_text("# readme")
    plan, cached = from_cache(root, ["docs/readme.html"])
    assert not cached and list(plan.steps) == ["html:docs/readme.html"]


def test_removing_a_source_resolves_afresh(root, from_cache):
    from_cache(root)
    (root / "src/b.txt").unlink()
    with pytest.raises(errors.UnknownTarget, match="src/b.txt"):
        from_cache(root)


def test_a_source_replaced_by_a_directory_resolves_afresh(root, from_cache):
    from_cache(root)
    (root / "src/b.txt").unlink()
    (root / "src/b.txt").mkdir()
    with pytest.raises(errors.UnknownTarget, match="src/b.txt"):
        from_cache(root)


def test_targets_and_working_directory_are_part_of_the_key(root, from_cache):
    all_plan, _ = from_cache(root)
    one, cached = from_cache(root, ["out/a.txt"])
    assert not cached and list(one.steps) == ["copy:out/a.txt"]
    (root / "out").mkdir()
    here, cached = from_cache(root, ["a.txt"], root / "out")
    assert not cached and list(here.steps) == ["copy:out/a.txt"]
    again, cached = from_cache(root)                # each request keeps its own plan
    assert cached and list(again.steps) == list(all_plan.steps)


def test_a_damaged_cache_file_is_a_miss_not_an_error(root, from_cache):
    from_cache(root)
    [path] = (root / plancache.PLANS_DIR).iterdir()
    path.write_bytes(path.read_bytes()[:100])
    plan, cached = from_cache(root)
    assert not cached and len(plan.steps) == 3
    plan, cached = from_cache(root)
    assert cached


def test_old_plans_are_pruned(root, from_cache):
    for n in range(plancache.KEEP_PLANS + 3):
        from_cache(root, ["out/a.txt"] * (n + 1))
    assert len(list((root / plancache.PLANS_DIR).iterdir())) == plancache.KEEP_PLANS


def test_the_orphan_check_adds_its_probes_to_the_plan(root):
    project, plan = resolve(root, ["out/a.txt"], root)
    with StateDB(root / planning.STATE_DB) as db:
        from computepods.state.db import StepRecord
        db.write(steps=[StepRecord("html:gone.html", "html#x", "cp gone.md gone.html",
                                   {"gone.md": "0" * 64}, {"gone.html": "1" * 64})])
    removed, kept = planning.remove_orphans(root, project, plan)
    assert (removed, kept) == ([], [])
    assert plan.basis.probes["gone.md"] is False      # the verdict rests on it too


def test_verdicts_go_with_any_write_of_records(tmp_path):
    with StateDB(tmp_path / "state.db") as db:
        db.write(verdict=("k", b"blob"))
        assert db.verdict("k") == b"blob"
        db.write(verdict=("other", b"x"))
        assert db.verdict("k") is None and db.verdict("other") == b"x"
        db.write()
        assert db.verdict("other") is None


def test_stats_hold_only_while_every_file_keeps_its_stat(tmp_path):
    (tmp_path / "a").write_text("a")
    st = os.stat(tmp_path / "a")
    stats = {"a": (st.st_size, st.st_mtime_ns, st.st_ino), "missing": None}
    assert plancache.stats_hold(tmp_path, stats)
    (tmp_path / "missing").mkdir()                 # a directory is still no file
    assert plancache.stats_hold(tmp_path, stats)
    os.utime(tmp_path / "a", ns=(st.st_atime_ns, st.st_mtime_ns + 1))
    assert not plancache.stats_hold(tmp_path, stats)
    os.utime(tmp_path / "a", ns=(st.st_atime_ns, st.st_mtime_ns))
    assert plancache.stats_hold(tmp_path, stats)
    (tmp_path / "missing").rmdir()
    (tmp_path / "missing").write_text("")
    assert not plancache.stats_hold(tmp_path, stats)


def test_an_output_is_deleted_as_an_orphan_only_on_a_fresh_look(root):
    """Issue 13: a burst of deletes and re-creates left the plan's probes
    saying a source was missing after it came back, and its wanted output
    was deleted.  The probes are the plan's; the tree has the source."""
    write(root, {"out/b.txt": "b\n"})
    project, plan = resolve(root, ["out/a.txt"], root)
    from computepods.state.db import StepRecord
    from computepods.state.hashing import sha256_file
    with StateDB(root / planning.STATE_DB) as db:
        db.write(steps=[StepRecord("copy:out/b.txt", "copy#x", "cp src/b.txt out/b.txt",
                                   {"src/b.txt": "0" * 64},
                                   {"out/b.txt": sha256_file(root / "out/b.txt")})])
    plan.basis.probes["src/b.txt"] = False       # seen while it was gone
    assert planning.remove_orphans(root, project, plan) == ([], [])
    assert (root / "out/b.txt").read_text() == "b\n"

    (root / "src/b.txt").unlink()                # gone for real: deleted, on proof
    assert planning.remove_orphans(root, project, plan) == (["out/b.txt"], [])
    assert not (root / "out/b.txt").exists()
