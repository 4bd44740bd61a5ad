"""A chef's worker threads against real commands: steps run, commit, fail, cancel."""
from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import pytest

from computepods.chef.pool import WorkerPool
from computepods.chef.recovery import read_commit_logs
from computepods.chef.step import StepJob
from computepods.planning.resolve import bind
from computepods.project.model import Rule
from tests.helpers import wait_for

COPY = Rule(name="copy", inputs=("src/%.txt",), outputs=("out/%.o",),
            command=("/bin/cp", "{in}", "{out}"))
FAIL = Rule(name="fail", inputs=("src/%.txt",), outputs=("out/%.o",),
            command=("/bin/sh", "-c", 'echo oops >&2; echo partial > "$0"; exit 3', "{out}"))
TWO = Rule(name="two", inputs=("src/%.txt",), outputs=("out/%.a", "out/%.b"),
           command=("/bin/sh", "-c", 'cp "$1" "$2" && cp "$1" "$3"', "sh", "{in}", "{out}"))
SLEEP = Rule(name="sleep", inputs=(), outputs=("out/%.z",),
             command=("/bin/sh", "-c", 'sleep 300; touch "$0"', "{out}"))


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Chef:
    """What the Chef chart does with a pool: submit jobs, collect results."""

    def __init__(self, root: Path, slots: int):
        self.root = root
        self.started: list[str] = []
        self.results: dict[str, dict] = {}
        self.lock = threading.Lock()
        self.pool = WorkerPool(root, slots, on_started=self.on_started, on_done=self.on_done,
                               name="test")

    def on_started(self, job: StepJob) -> None:
        with self.lock:
            self.started.append(job.step.id)

    def on_done(self, job: StepJob, item: dict) -> None:
        with self.lock:
            self.results[job.step.id] = item

    def submit(self, rule: Rule, stem: str, build: str = "b1", attempt: int = 1) -> str:
        step = bind(rule, stem)
        inputs = {p: sha((self.root / p).read_bytes()) for p in step.inputs}
        self.pool.submit(StepJob(build, step, attempt, inputs))
        return step.id

    def wait(self, *ids: str) -> list[dict]:
        wait_for(lambda: all(i in self.results for i in ids), what=f"results of {ids}")
        return [self.results[i] for i in ids]


@pytest.fixture
def chef(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("a", "b", "c"):
        (src / f"{name}.txt").write_text(f"text of {name}\n")
    chef = Chef(tmp_path, slots=2)
    yield chef
    chef.pool.cancel_running()
    chef.pool.stop()


def test_steps_run_and_their_outputs_land_in_the_tree(chef):
    ids = [chef.submit(COPY, stem) for stem in ("a", "b", "c")]
    results = chef.wait(*ids)
    assert [r.ok for r in results] == [True, True, True]
    for stem, result in zip(("a", "b", "c"), results):
        data = (chef.root / f"out/{stem}.o").read_bytes()
        assert data == f"text of {stem}\n".encode()
        assert result.outputs[f"out/{stem}.o"].sha256 == sha(data)
        assert result.command == f"/bin/cp src/{stem}.txt out/{stem}.o"
    # Each commit was logged ahead of its rename, as a record of the step.
    logged = {e["step_id"]: e for e in read_commit_logs(chef.root)}
    assert sorted(logged) == sorted(ids)
    assert logged["copy:out/a.o"]["outputs"] == {"out/a.o": sha(b"text of a\n")}
    assert sorted(chef.started) == sorted(ids)


def test_a_failed_step_leaves_the_tree_alone_and_says_why(chef):
    failed, = chef.wait(chef.submit(FAIL, "a"))
    assert not failed.ok and failed.reason == "exit 3" and failed.exit_code == 3
    assert failed.stderr_tail == "oops\n"
    assert not (chef.root / "out/a.o").exists()
    assert (chef.root / ".computepods/logs").is_dir()     # its stderr is kept
    # The same output made again by a step that works: only its own text lands.
    done, = chef.wait(chef.submit(COPY, "a", attempt=2))
    assert done.ok and (chef.root / "out/a.o").read_text() == "text of a\n"


def test_a_step_with_two_outputs_commits_both(chef):
    result, = chef.wait(chef.submit(TWO, "b"))
    assert result.ok, result
    assert sorted(result.outputs) == ["out/b.a", "out/b.b"]
    assert (chef.root / "out/b.a").read_text() == (chef.root / "out/b.b").read_text() \
        == "text of b\n"


def test_a_cancelled_build_kills_its_running_steps_and_drops_its_queued_ones(tmp_path):
    chef = Chef(tmp_path, slots=1)
    try:
        running = chef.submit(SLEEP, "x")
        wait_for(lambda: chef.pool.runs("b1"), what="the first step to run")
        queued = chef.submit(SLEEP, "y")
        chef.pool.cancel_build("b1")
        killed, dropped = chef.wait(running, queued)
        assert not killed.ok and killed.reason == "killed by SIGTERM"
        assert not dropped.ok and dropped.reason == "cancelled"
        assert chef.started == [running]
        assert not (tmp_path / "out").exists()
    finally:
        chef.pool.stop()


class CancelledAsItStarts(Chef):
    """The build is cancelled as each step starts: after the slot took it,
    before its process group is known."""

    def on_started(self, job: StepJob) -> None:
        super().on_started(job)
        self.pool.cancel_build(job.build)


def test_a_step_whose_build_is_cancelled_as_it_starts_is_killed_too(tmp_path):
    chef = CancelledAsItStarts(tmp_path, slots=1)
    try:
        killed, = chef.wait(chef.submit(SLEEP, "x"))
        assert not killed.ok and killed.reason == "killed by SIGTERM"
        assert not (tmp_path / "out").exists()
    finally:
        chef.pool.stop()


def test_stop_removes_the_slots_scratch(tmp_path):
    chef = Chef(tmp_path, slots=2)
    chef.wait()
    assert len(list((tmp_path / ".computepods/scratch").iterdir())) == 2
    chef.pool.stop()
    assert list((tmp_path / ".computepods/scratch").iterdir()) == []


def test_a_stopping_pool_starts_none_of_its_queued_steps_and_keeps_its_log(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.txt").write_text("a\n")
    chef = Chef(tmp_path, slots=1)
    done = chef.submit(COPY, "a")
    chef.wait(done)
    sleeping = chef.submit(SLEEP, "s")
    wait_for(lambda: chef.pool.runs("b1"), what="the sleeping step to run")
    queued = [chef.submit(SLEEP, f"q{i}") for i in range(3)]
    chef.pool.stop()
    assert chef.started == [done, sleeping]             # none of the queued ones started
    assert not chef.results[sleeping].ok and not set(queued) & set(chef.results)
    # the commit log of `done` stays for the pod to settle (recovery.settle_commit_logs)
    assert [e["step_id"] for e in read_commit_logs(tmp_path)] == [done]
