"""The chef's work, without the chart: run one step, commit its outputs.

A chef gets steps in run messages; :func:`job_from_message` rebuilds each
step from its rule and stem (checking every path stays in the workspace),
:func:`execute` runs it in its own scratch space and moves its outputs into
the tree only if it succeeded.  :class:`WorkerPool` holds one long-lived
thread per slot (a thread per step, or asyncio subprocesses, cost measurably
more), and :class:`RunningGroups` keeps a marker per running process group
so a later run can kill what a crashed one left behind.
"""
from __future__ import annotations

import json
import os
import queue
import shutil
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

from . import commit as commit_mod
from . import runner, scratch
from .errors import ComputePodsError, MalformedMessage, PathEscapesWorkspace
from .hashing import sha256_file
from .project import STATE_DIR, Rule
from .rules import Step, bind

LOGS_DIR = f"{STATE_DIR}/logs"
RUNNING_DIR = f"{STATE_DIR}/running"


# --- the wire form of rules and steps -----------------------------------------

def rule_to_dict(rule: Rule) -> dict:
    d = asdict(rule)
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items()}


def rule_from_dict(d: dict) -> Rule:
    fields = dict(d)
    for key in ("inputs", "outputs"):
        fields[key] = tuple(fields.get(key) or ())
    if isinstance(fields.get("command"), list):
        fields["command"] = tuple(fields["command"])
    try:
        return Rule(**fields)
    except TypeError as exc:
        raise MalformedMessage("chef.run", f"rule {d.get('name')!r}: {exc}") from None


@dataclass
class StepJob:
    build: str
    step: Step
    attempt: int
    inputs: dict[str, str | None]      # the hashes the MajorDomo judged it by

    @property
    def key(self) -> tuple[str, int]:
        return (self.step.id, self.attempt)


def step_to_message(step: Step, attempt: int, inputs: dict[str, str | None]) -> dict:
    return {"id": step.id, "attempt": attempt, "rule": step.rule.name, "stem": step.stem,
            "inputs": inputs}


def job_from_message(build: str, rules: dict[str, Rule], item: Any) -> StepJob:
    """Rebuild a step from a run message item; MalformedMessage if it is off."""
    if not isinstance(item, dict):
        raise MalformedMessage("chef.run", f"step must be an object, got {type(item).__name__}")
    for key, types in (("id", str), ("attempt", int), ("rule", str), ("inputs", dict)):
        if not isinstance(item.get(key), types):
            raise MalformedMessage("chef.run", f"step {item.get('id')!r}: field {key!r} "
                                               f"missing or not {types.__name__}")
    rule = rules.get(item["rule"])
    if rule is None:
        raise MalformedMessage("chef.run", f"step {item['id']!r}: unknown rule {item['rule']!r}")
    step = bind(rule, item.get("stem"))     # raises PathEscapesWorkspace for a bad stem
    if step.id != item["id"]:
        raise MalformedMessage("chef.run", f"step {item['id']!r} does not match its rule "
                                           f"and stem (they give {step.id!r})")
    for path in (*step.inputs, *step.outputs):
        scratch.check_relative(path)
    return StepJob(build, step, item["attempt"], dict(item["inputs"]))


# --- running groups left behind by a crash ------------------------------------

def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _start_time(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]    # field 22: start time in ticks


class RunningGroups:
    """One marker file per running process group, named by its pgid.

    A marker holds the boot id and the leader's start time, so a pgid that
    was reused after a reboot or a wrap-around is never killed by mistake.
    Files, not database rows: creating and removing one costs ~20 µs, and
    the kernel makes each atomic.
    """

    def __init__(self, root: Path):
        self.dir = root / RUNNING_DIR
        self.dir.mkdir(parents=True, exist_ok=True)
        self.boot = _boot_id()

    def add(self, pgid: int, step_id: str) -> None:
        marker = {"boot": self.boot, "start": _start_time(pgid), "step": step_id}
        (self.dir / str(pgid)).write_text(json.dumps(marker))

    def remove(self, pgid: int) -> None:
        try:
            (self.dir / str(pgid)).unlink()
        except FileNotFoundError:
            pass

    def kill_leftovers(self) -> list[str]:
        """Kill the groups a crashed run left running; return their steps."""
        killed = []
        for marker in list(self.dir.iterdir()):
            try:
                pgid = int(marker.name)
                info = json.loads(marker.read_text())
            except (ValueError, OSError):
                marker.unlink(missing_ok=True)
                continue
            if info.get("boot") == self.boot and info.get("start") is not None \
                    and _start_time(pgid) == info["start"] \
                    and runner.kill_leftover_groups([pgid]):
                killed.append(f"{info.get('step')} (process group {pgid})")
            marker.unlink(missing_ok=True)
        return killed


# --- one step -----------------------------------------------------------------

def log_paths(root: Path, step_id: str) -> tuple[Path, Path]:
    name = scratch.scratch_name(step_id)
    logs = root / LOGS_DIR
    logs.mkdir(parents=True, exist_ok=True)
    return logs / f"{name}.out", logs / f"{name}.err"


def writes_through_out(rule: Rule) -> bool:
    """Does the command name its outputs through {out}?  Then its outputs can
    simply be redirected into scratch; otherwise it needs a view of the tree."""
    text = rule.command if isinstance(rule.command, str) else " ".join(rule.command)
    return "{out" in text


def execute(root: Path, job: StepJob, groups: RunningGroups | None = None,
            on_started: Callable[[int], None] | None = None) -> dict:
    """Run a step in scratch space; commit its outputs only if it succeeded.

    Returns the result item of a steps.results message.
    """
    step = job.step
    started = time.monotonic()
    work = scratch.make_scratch(root, step.id)
    if writes_through_out(step.rule):
        cwd_root = root
        command = step.command(out_path=lambda p: str(scratch.scratch_out_path(work, p)),
                               scratch=str(work))
    else:
        cwd_root = scratch.make_view(root, work, step.outputs)
        command = step.command(scratch=str(work))
    stdout, stderr = log_paths(root, step.id)
    env = dict(os.environ, CP_SCRATCH=str(work), CP_STEP=step.id)

    pgids: list[int] = []

    def started_cb(pgid: int) -> None:
        pgids.append(pgid)
        if groups:
            groups.add(pgid, step.id)
        if on_started:
            on_started(pgid)

    result = runner.run(command.argv, cwd=cwd_root / step.cwd if step.cwd else cwd_root,
                        env=env, stdout_path=stdout, stderr_path=stderr,
                        timeout=step.timeout, on_started=started_cb)
    if groups and pgids:
        groups.remove(pgids[0])
    item = {"id": step.id, "attempt": job.attempt, "command": command.display,
            "exit_code": result.exit_code, "duration_s": round(time.monotonic() - started, 6),
            "stdout_tail": result.stdout_tail, "stderr_tail": result.stderr_tail}
    if not result.ok:
        shutil.rmtree(work, ignore_errors=True)
        return {**item, "ok": False, "reason": result.reason()}
    moves = (scratch.out_moves(work, step.outputs) if cwd_root == root
             else scratch.view_outputs(cwd_root, step.outputs))
    missing = sorted(set(step.outputs) - {dest for _, dest in moves})
    if missing:
        shutil.rmtree(work, ignore_errors=True)
        return {**item, "ok": False, "exit_code": result.exit_code,
                "reason": "it did not write " + ", ".join(missing)}
    outputs = {}
    for rel, dest in moves:
        src = work / rel
        st = os.stat(src)
        outputs[dest] = [sha256_file(src), st.st_size, st.st_mtime_ns, st.st_ino,
                         time.time_ns()]
    try:
        commit_mod.commit(work, root, moves, {"step": step.id, "outputs": outputs})
    except (OSError, ComputePodsError) as exc:
        shutil.rmtree(work, ignore_errors=True)
        return {**item, "ok": False, "reason": f"could not commit its outputs: {exc}"}
    return {**item, "ok": True, "reason": "", "outputs": outputs}


def failed_item(job_id: str, attempt: int, reason: str) -> dict:
    return {"id": job_id, "attempt": attempt, "ok": False, "exit_code": None,
            "reason": reason, "command": "", "duration_s": 0.0,
            "stdout_tail": "", "stderr_tail": ""}


# --- the slots ----------------------------------------------------------------

class WorkerPool:
    """`slots` threads, each running one step at a time from a shared queue."""

    def __init__(self, root: Path, slots: int, on_started: Callable[[StepJob], None],
                 on_done: Callable[[StepJob, dict], None]):
        self.root = root
        self.slots = slots
        self.groups = RunningGroups(root)
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._on_started = on_started
        self._on_done = on_done
        self._running: dict[int, int] = {}          # thread ident -> pgid
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._work, name=f"slot-{i}", daemon=True)
                         for i in range(slots)]
        self.queued = 0
        for t in self._threads:
            t.start()

    def submit(self, job: StepJob) -> None:
        with self._lock:
            self.queued += 1
        self._jobs.put(job)

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            with self._lock:
                self.queued -= 1
            self._on_started(job)
            try:
                item = execute(self.root, job, self.groups,
                               on_started=lambda pgid: self._running.__setitem__(
                                   threading.get_ident(), pgid))
            except (OSError, ComputePodsError) as exc:
                item = failed_item(job.step.id, job.attempt, f"the chef could not run it: {exc}")
            finally:
                self._running.pop(threading.get_ident(), None)
            self._on_done(job, item)

    def cancel_running(self) -> None:
        """Kill every running step's process group (their scratch is discarded)."""
        for pgid in list(self._running.values()):
            runner.kill_group(pgid, grace_s=0.5)

    def stop(self, timeout: float = 5.0) -> None:
        for _ in self._threads:
            self._jobs.put(None)
        for t in self._threads:
            t.join(timeout)
