"""computepods.planning.hot: a watching pod judges only what changed.

Each test builds a small project once with a real ``cpod build`` (in this
process, on a real nats-server), then plans requests with :class:`HotPlans`
as a watching pod would, telling it the changes a watcher would report, and
checks which steps its Scheduler judges and which it runs.
"""
from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from cpodrun import cpod_here
from computepods import errors
from computepods.planning.hot import RESCAN, HotPlans, watched_by

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
inputs = ["build/a.txt", "build/b.txt", "build/c.txt"]
outputs = ["out/all.txt"]
command = "cat {in} > {out}"
"""


@pytest.fixture
def root(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("CP_CHEF_PROCESS", "0")
    monkeypatch.setenv("CP_POD", "0")
    root = tmp_path / "p"
    (root / "src").mkdir(parents=True)
    (root / "computepods.toml").write_text(textwrap.dedent(PROJECT))
    for name in "abc":
        (root / f"src/{name}.txt").write_text(f"{name}\n")
    run = cpod_here(root, "build")
    assert run.code == 0, run.err
    return root


REQUEST = {"targets": [], "cwd": None}


def request(root: Path, **extra) -> dict:
    return {**REQUEST, "cwd": str(root), **extra}


def judged(hot: HotPlans, root: Path, **extra) -> tuple[list[str], list[str], object]:
    """Plan a request: (steps judged, steps that would run, the scheduler)."""
    bp = hot.plan(request(root, **extra), tidy=None)
    scheduler = bp.scheduler
    steps = list(bp.graph.plan.steps)
    jobs = [job.step.id for job in scheduler.next_jobs(limit=100)]
    return steps, jobs, scheduler


def report(root: Path, path: str, kind: str = "changed") -> dict:
    st = os.stat(root / path) if kind != "deleted" else None
    return {"root": str(root), "path": path, "kind": kind,
            "size": st and st.st_size, "mtime_ns": st and st.st_mtime_ns}


def settle(hot: HotPlans, scheduler) -> None:
    """The build ends with nothing run (every judged step was up to date)."""
    assert scheduler.finished and scheduler.ok
    hot.finished(scheduler)


def test_a_no_op_judges_nothing_once_every_step_was_seen(root):
    hot = HotPlans(root, watched=lambda path: True)
    steps, jobs, scheduler = judged(hot, root)
    assert len(steps) == 4 and jobs == []          # the first build looks at everything
    settle(hot, scheduler)
    steps, jobs, scheduler = judged(hot, root)
    assert steps == [] and jobs == []
    assert scheduler.counts.total == 4 and scheduler.counts.skipped == 4
    settle(hot, scheduler)


def test_an_edit_reported_by_the_watcher_judges_its_step_and_what_is_downstream(root):
    hot = HotPlans(root, watched=lambda path: True)
    settle(hot, judged(hot, root)[2])
    (root / "src/b.txt").write_text("b, edited\n")
    assert hot.heard(report(root, "src/b.txt")) is True
    steps, jobs, scheduler = judged(hot, root)
    assert sorted(steps) == ["all:out/all.txt", "copy:build/b.txt"]
    assert jobs == ["copy:build/b.txt"]            # `all` waits for it
    assert scheduler.counts.total == 4 and scheduler.counts.skipped == 2


def test_an_edit_the_watcher_has_not_reported_yet_is_judged_when_the_request_names_it(root):
    hot = HotPlans(root, watched=lambda path: True)
    settle(hot, judged(hot, root)[2])
    (root / "src/a.txt").write_text("a, edited\n")
    steps, jobs, _ = judged(hot, root)
    assert jobs == []                              # nobody said: the pod did not look
    hot.finished(None)
    steps, jobs, _ = judged(hot, root, dirty=["src/a.txt"])
    assert jobs == ["copy:build/a.txt"]


def test_a_report_with_the_stat_already_judged_is_no_news(root):
    hot = HotPlans(root, watched=lambda path: True)
    (root / "src/c.txt").write_text("c, edited\n")
    a_while_ago = os.stat(root / "src/c.txt").st_mtime_ns - 1_000_000_000
    os.utime(root / "src/c.txt", ns=(a_while_ago, a_while_ago))   # not racily clean
    steps, jobs, scheduler = judged(hot, root, dirty=["src/c.txt"])
    assert jobs == ["copy:build/c.txt"]
    hot.finished(None)
    # The watcher's report of that same edit arrives after the build judged it.
    assert hot.heard(report(root, "src/c.txt")) is False


def test_a_path_the_watcher_cannot_see_is_looked_at_on_every_build(root):
    hot = HotPlans(root, watched=lambda path: path != "src/c.txt")
    settle(hot, judged(hot, root)[2])
    steps, _, scheduler = judged(hot, root)
    assert sorted(steps) == ["all:out/all.txt", "copy:build/c.txt"]   # c is not watched
    settle(hot, scheduler)
    (root / "src/c.txt").write_text("c, changed unseen\n")
    _, jobs, _ = judged(hot, root)
    assert jobs == ["copy:build/c.txt"]


@pytest.mark.parametrize("linked", ["src/b.txt", "src"])
def test_a_file_reached_through_a_symbolic_link_is_looked_at_on_every_build(root, tmp_path,
                                                                              linked):
    # The watcher does not follow links: a change behind one is never reported.
    elsewhere = tmp_path / "elsewhere"
    (root / linked).rename(elsewhere)
    (root / linked).symlink_to(elsewhere)          # a file, or a directory, that is a link
    assert cpod_here(root, "build").code == 0
    behind = ["copy:build/b.txt"] if linked == "src/b.txt" else [
        "copy:build/a.txt", "copy:build/b.txt", "copy:build/c.txt"]
    hot = HotPlans(root, watched=lambda path: True)
    settle(hot, judged(hot, root)[2])
    steps, _, scheduler = judged(hot, root)
    assert sorted(steps) == ["all:out/all.txt", *behind]       # and what is downstream
    settle(hot, scheduler)
    b = elsewhere / "b.txt" if linked == "src" else elsewhere
    b.write_text("b, changed where no watcher looks\n")
    _, jobs, _ = judged(hot, root)
    assert jobs == ["copy:build/b.txt"]


def test_a_deleted_source_plans_again_and_says_what_is_missing(root):
    hot = HotPlans(root, watched=lambda path: True)
    settle(hot, judged(hot, root)[2])
    (root / "src/a.txt").unlink()
    hot.heard(report(root, "src/a.txt", "deleted"))
    forgotten: list = []
    with pytest.raises(errors.ComputePodsError, match="src/a.txt"):
        hot.plan(request(root), tidy=lambda steps, files: forgotten.append((steps, files)))
    # As a cold build does: build/a.txt, which no rule can make now, went first.
    assert forgotten == [(["copy:build/a.txt"], ["build/a.txt"])]
    assert not (root / "build/a.txt").exists()


def test_a_changed_project_file_is_read_again(root):
    hot = HotPlans(root, watched=lambda path: True)
    settle(hot, judged(hot, root)[2])
    text = (root / "computepods.toml").read_text()
    (root / "computepods.toml").write_text(text.replace("cp {in} {out}", "cat {in} > {out}"))
    hot.heard(report(root, "computepods.toml"))
    _, jobs, _ = judged(hot, root)
    assert sorted(jobs) == ["copy:build/a.txt", "copy:build/b.txt", "copy:build/c.txt"]


def test_a_lost_queue_forgets_everything_it_knew(root):
    hot = HotPlans(root, watched=lambda path: True)
    settle(hot, judged(hot, root)[2])
    steps, _, scheduler = judged(hot, root, dirty=[RESCAN])
    assert len(steps) == 4


def test_what_a_watcher_ignores_is_not_watched():
    ignored = {("logs", True), ("notes.tmp", False)}
    watched = watched_by(lambda rel, is_dir: (rel, is_dir) in ignored)
    assert watched("src/a.txt")
    assert not watched("logs/today.txt")           # under an ignored directory
    assert not watched("notes.tmp")
    assert not watched("/usr/include/stdio.h") and not watched("../up.txt")


def test_a_file_changed_while_a_build_ran_is_not_trusted_from_that_builds_records(root):
    hot = HotPlans(root, watched=lambda path: True)
    a_while_ago = os.stat(root / "src/b.txt").st_mtime_ns - 1_000_000_000
    os.utime(root / "src/b.txt", ns=(a_while_ago, a_while_ago))   # touched: a new stat
    _, jobs, scheduler = judged(hot, root)         # hashes src/b.txt again: the same
    assert jobs == []
    (root / "src/b.txt").write_text("b, edited again while it builds\n")
    hot.heard(report(root, "src/b.txt"))
    # The build's last records carry the hash taken before the edit.
    assert "src/b.txt" in {f.path for f in scheduler.updated_files()}
    hot.recorded(files=scheduler.updated_files())
    hot.finished(None)
    _, jobs, _ = judged(hot, root)
    assert jobs == ["copy:build/b.txt"]


GLOBBED = PROJECT.replace('inputs = ["build/a.txt", "build/b.txt", "build/c.txt"]',
                          'inputs = [{glob = "src/*.txt", as = "build/%.txt"}]')


def test_a_clean_step_whose_glob_lost_an_input_is_judged_again(root):
    """The glob's files are the step's inputs: one gone, the step planned
    anew reads fewer, and is stale, however clean it was ("input
    build/c.txt is no longer an input"), though no file it reads changed."""
    (root / "computepods.toml").write_text(textwrap.dedent(GLOBBED))
    assert cpod_here(root, "build").code == 0
    hot = HotPlans(root, watched=lambda path: True)
    settle(hot, judged(hot, root)[2])
    assert judged(hot, root)[0] == []                     # all clean
    (root / "src/c.txt").unlink()
    hot.heard(report(root, "src/c.txt", "deleted"))
    steps, jobs, _ = judged(hot, root)
    assert jobs == ["all:out/all.txt"], steps
