"""The chef's work, without the chart: run one step, commit its outputs.

A chef gets steps in run messages; :func:`job_from_message` rebuilds each
step from its rule and stem (checking every path stays in the workspace),
:func:`execute` runs it in scratch space and moves its outputs into the tree
only if it succeeded.  :class:`WorkerPool` holds one long-lived thread per
slot, each with a reusable :class:`Slot` of scratch space: on a disk where
creating a file or directory costs a millisecond, per-step scratch dirs and
journals cost more than the step itself (a thread per step, or asyncio
subprocesses, also cost measurably more).
"""
from __future__ import annotations

import functools
import json
import os
import posixpath
import queue
import shutil
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from . import commit as commit_mod
from . import runner, scratch
from .errors import ComputePodsError, MalformedMessage
from .hashing import sha256_and_stat, sha256_file
from .project import STATE_DIR, Rule
from .rules import Step, bind
from .state import StepRecord

LOGS_DIR = f"{STATE_DIR}/logs"
COMMIT_LOG = "commits.log"      # per slot: records written ahead of their commits
RUNNING_DIR = f"{STATE_DIR}/running"


# --- the wire form of rules and steps -----------------------------------------

@functools.lru_cache(maxsize=4096)
def rule_to_dict(rule: Rule) -> dict:
    """The wire form of a rule (cached: rules are frozen; callers must not
    mutate the result)."""
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
    known_outputs: tuple[str, ...] = ()
    copy_in: dict[str, str] = field(default_factory=dict)   # own outputs given to it, pre-run

    @property
    def key(self) -> tuple[str, str, int]:
        """What makes a run request a repeat: a long-lived chef serves many
        builds, and each build numbers its attempts from 1."""
        return (self.build, self.step.id, self.attempt)


def step_to_message(step: Step, attempt: int, inputs: dict[str, str | None],
                    record=None, copy_in: dict[str, str] | None = None) -> dict:
    """A step on the wire.  `known_outputs` are the files earlier runs were
    seen to write (a .toc): a view must not link them into the tree;
    `copy_in` are its own outputs it gets to read, with their hashes (the
    previous pass's .aux and .toc)."""
    known = sorted(set(record.outputs) - set(step.outputs)) if record else []
    msg = {"id": step.id, "attempt": attempt, "rule": step.rule.name, "stem": step.stem,
           "inputs": inputs}
    if known:
        msg["known_outputs"] = known
    if copy_in:
        msg["copy_in"] = copy_in
    return msg


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
    known = tuple(item.get("known_outputs") or ())
    copy_in = item.get("copy_in") or {}
    if not isinstance(copy_in, dict):
        raise MalformedMessage("chef.run", f"step {item['id']!r}: copy_in must be an object")
    for path in (*step.inputs, *step.outputs, *item["inputs"], *known, *copy_in):
        scratch.check_relative(path)
    return StepJob(build, step, item["attempt"], dict(item["inputs"]), known, dict(copy_in))


# --- steps left running by a crash --------------------------------------------

def kill_leftover_steps(root: Path) -> list[int]:
    """Kill the process groups of steps a crashed run left running here.

    Every step runs with ``CP_PROJECT=<root>`` (and the runner's own mark) in
    its environment, so they are found in /proc without writing a marker
    file per step (creating a file costs ~1 ms on slow disks; this scan
    costs a few ms once per start).
    """
    mark = f"CP_PROJECT={os.path.abspath(root)}".encode()
    groups = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as f:
                if mark not in f.read().split(b"\0"):
                    continue
            groups.append(os.getpgid(int(name)))
        except (OSError, ProcessLookupError):
            continue
    return runner.kill_leftover_groups(groups) if groups else []


# --- scratch space of a slot ---------------------------------------------------

class Slot:
    """A worker's reusable scratch: outputs named through {out} land in
    ``out/``, stdout and stderr in two files kept open and emptied each step.
    Reusing them saves creating a directory and two files per step."""

    def __init__(self, root: Path, name: str, logs: "LogDir | None" = None):
        self.root = root
        self.dir = root / scratch.SCRATCH_DIR / name
        shutil.rmtree(self.dir, ignore_errors=True)
        self.out = self.dir / scratch.OUT_DIR
        self.out.mkdir(parents=True)
        self._out_prefix = os.path.join(self.out, "")
        self.stdout = self.dir / "stdout"
        self.stderr = self.dir / "stderr"
        # O_APPEND: after an ftruncate to 0 the next write starts at 0 again.
        flags = os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC
        self.stdout_fd = os.open(self.stdout, flags, 0o644)
        self.stderr_fd = os.open(self.stderr, flags, 0o644)
        self.logs = logs if logs is not None else LogDir(root)
        self._dirs: set[str] = set()
        self.checked_dirs: set[str] = set()     # tree dirs known to be inside the root
        self.commits = os.open(self.dir / COMMIT_LOG, os.O_WRONLY | os.O_CREAT | os.O_APPEND,
                               0o644)

    def log_commit(self, record: dict) -> None:
        """Write-ahead: the record goes to the slot's commit log before the
        outputs move into the tree.  One write() in O_APPEND mode; a killed
        process loses nothing the kernel already has (no fsync: this guards
        against a crash of cpod, not of the machine)."""
        os.write(self.commits, (json.dumps(record, separators=(",", ":")) + "\n").encode())

    def fresh_logs(self) -> None:
        """Empty stdout and stderr for the next step."""
        os.ftruncate(self.stdout_fd, 0)
        os.ftruncate(self.stderr_fd, 0)

    def close(self) -> None:
        for fd in (self.commits, self.stdout_fd, self.stderr_fd):
            os.close(fd)

    def out_path_of(self, output: str) -> str:
        """Where :meth:`out_path` put ``output``."""
        return self._out_prefix + scratch.check_relative(output)

    def out_path(self, output: str) -> str:
        rel = scratch.check_relative(output)
        parent = os.path.dirname(rel)
        if parent not in self._dirs:
            os.makedirs(self.out / parent, exist_ok=True)
            self._dirs.add(parent)
        path = self._out_prefix + rel
        try:
            os.unlink(path)             # a failed step's leftover
        except FileNotFoundError:
            pass
        return path


class LogDir:
    """``.computepods/logs/``: a step's non-empty stdout/stderr, kept.

    Which files exist is read once (the chefs of a root share this object),
    so a step that printed nothing costs no look-up for a previous run's log.
    """

    def __init__(self, root: Path):
        self.root = root
        self.dir = root / LOGS_DIR
        try:
            self.names = set(os.listdir(self.dir))
        except FileNotFoundError:
            self.names = set()

    def keep(self, step_id: str, out_fd: int, err_fd: int, out_path: Path,
             err_path: Path) -> None:
        """Keep non-empty output; an empty one leaves no file (and removes the
        previous run's)."""
        name = None
        for fd, src, suffix in ((out_fd, out_path, ".out"), (err_fd, err_path, ".err")):
            if os.fstat(fd).st_size:
                name = name or scratch.scratch_name(step_id)
                self.dir.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, self.dir / (name + suffix))
                self.names.add(name + suffix)
            elif self.names:
                name = name or scratch.scratch_name(step_id)
                if name + suffix in self.names:
                    self.names.discard(name + suffix)
                    try:
                        os.unlink(self.dir / (name + suffix))
                    except FileNotFoundError:
                        pass


def log_paths(root: Path, step_id: str) -> tuple[Path, Path]:
    name = scratch.scratch_name(step_id)
    logs = root / LOGS_DIR
    return logs / f"{name}.out", logs / f"{name}.err"


def writes_through_out(rule: Rule) -> bool:
    """Does the command name its outputs through {out}?  Then its outputs can
    simply be redirected into scratch; otherwise it needs a view of the tree."""
    text = rule.command if isinstance(rule.command, str) else " ".join(rule.command)
    return "{out" in text


def step_env(root: Path, work: Path, step: Step) -> dict[str, str]:
    return {**_base_env(str(root)), "CP_SCRATCH": str(work), "CP_STEP": step.id}


@functools.lru_cache(maxsize=16)
def _base_env(root: str) -> dict[str, str]:
    # Copying os.environ costs ~0.1 ms (it decodes every entry): once per pod.
    return dict(os.environ, CP_PROJECT=os.path.abspath(root))


def execute(root: Path, job: StepJob, slot: Slot,
            on_started: Callable[[int], None] | None = None) -> dict:
    """Run a step in scratch space; commit its outputs only if it succeeded.

    Returns the result item of a steps.results message.  A step with one
    output named through {out} uses the slot's scratch and one atomic
    rename; others get a scratch dir (and view) of their own and a journaled
    commit, since a crash between two renames must be rolled forward.
    """
    step = job.step
    started = time.monotonic()
    if (len(step.outputs) == 1 and not step.rule.discover and not step.depfile
            and writes_through_out(step.rule)):
        return _execute_one(root, job, slot, on_started, started)
    work = scratch.make_scratch(root, step.id)
    if writes_through_out(step.rule):
        cwd_root = root
        command = step.command(out_path=lambda p: str(scratch.scratch_out_path(work, p)),
                               scratch=str(work))
    else:
        cwd_root = scratch.make_view(root, work, (*step.outputs, *job.known_outputs),
                                     copy_in=list(job.copy_in))
        command = step.command(scratch=str(work))
    slot.fresh_logs()
    result = runner.run_to(command.argv, cwd_root / step.cwd if step.cwd else cwd_root,
                           step_env(root, work, step), slot.stdout_fd, slot.stderr_fd,
                           step.timeout, on_started, tails=None, started=started)
    slot.logs.keep(step.id, slot.stdout_fd, slot.stderr_fd, slot.stdout, slot.stderr)
    try:
        if not result.ok:
            return _result(job, slot, command, result, started, False, result.reason())
        discovered = discover(root, step, work, cwd_root)
        written = (*step.outputs, *(p for p in discovered.outputs if p not in step.outputs))
        if cwd_root == root:
            moves = scratch.out_moves(work, written)
        else:
            moves = scratch.view_outputs(cwd_root, written)
        missing = sorted(set(step.outputs) - {dest for _, dest in moves})
        if missing:
            return _result(job, slot, command, result, started, False,
                           "it did not write " + ", ".join(missing))
        outputs = {dest: _output_entry(str(work / rel)) for rel, dest in moves}
        slot.log_commit(step_record(job, root, command.display, outputs, discovered.inputs,
                                    round(time.monotonic() - started, 6)))
        commit_mod.commit(work, root, moves, {"step": step.id, "outputs": outputs})
        return _result(job, slot, command, result, started, True, outputs=outputs,
                       discovered=discovered.inputs)
    except (OSError, ComputePodsError) as exc:
        return _result(job, slot, command, result, started, False,
                       f"could not commit its outputs: {exc}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _execute_one(root: Path, job: StepJob, slot: Slot, on_started, started: float) -> dict:
    """The common step: one output named through {out}, nothing to discover.
    It runs in the slot's reusable scratch and commits with one rename; this
    path is what a build of many small steps spends its time in."""
    step = job.step
    command = step.command(out_path=slot.out_path, scratch=str(slot.dir))
    slot.fresh_logs()
    result = runner.run_to(command.argv, os.path.join(root, step.cwd) if step.cwd else root,
                           step_env(root, slot.dir, step), slot.stdout_fd, slot.stderr_fd,
                           step.timeout, on_started, tails=None, started=started)
    slot.logs.keep(step.id, slot.stdout_fd, slot.stderr_fd, slot.stdout, slot.stderr)
    if not result.ok:
        return _result(job, slot, command, result, started, False, result.reason())
    dest = step.outputs[0]
    src = slot.out_path_of(dest)
    try:
        try:
            outputs = {dest: _output_entry(src)}
        except FileNotFoundError:
            return _result(job, slot, command, result, started, False, "it did not write " + dest)
        slot.log_commit(step_record(job, root, command.display, outputs, [],
                                    round(time.monotonic() - started, 6)))
        commit_one(root, src, dest, slot.checked_dirs)
    except (OSError, ComputePodsError) as exc:
        return _result(job, slot, command, result, started, False,
                       f"could not commit its outputs: {exc}")
    return _result(job, slot, command, result, started, True, outputs=outputs, discovered=[])


def _output_entry(path: str) -> list:
    """[sha256, size, mtime_ns, inode, checked_ns] of a file a step wrote,
    the stat taken of the very inode hashed."""
    checked_ns = time.time_ns()
    digest, st = sha256_and_stat(path)
    return [digest, st.st_size, st.st_mtime_ns, st.st_ino, checked_ns]


def _result(job: StepJob, slot: Slot, command, result: runner.RunResult, started: float,
            ok: bool, reason: str = "", **more) -> dict:
    """A steps.results item; the output tails go only with a failure (read
    now if the command itself succeeded)."""
    item = {"id": job.step.id, "attempt": job.attempt, "command": command.display,
            "exit_code": result.exit_code, "ok": ok, "reason": reason,
            "duration_s": round(time.monotonic() - started, 6), **more}
    if not ok:
        read = not result.ok
        item["stdout_tail"] = result.stdout_tail if read else runner.tail_fd(slot.stdout_fd)
        item["stderr_tail"] = result.stderr_tail if read else runner.tail_fd(slot.stderr_fd)
    return item


def step_record(job: StepJob, root: Path, command: str, outputs: dict[str, list],
                discovered: list[str], duration_s: float) -> dict:
    """The StepRecord of a successful run, as the MajorDomo would write it;
    rolled forward from the commit log if cpod dies before it is stored."""
    from .schedule import record_inputs, rule_fingerprint
    inputs = record_inputs(job.inputs, job.copy_in, discovered, {*outputs, *job.step.outputs},
                           lambda p: _hash_or_none(job.step, root, p))
    # The dict StepRecord.from_dict reads, built directly: asdict() deep-
    # copies and costs more than the rest of this per step.
    return {"step_id": job.step.id, "rule": rule_fingerprint(job.step), "command": command,
            "inputs": inputs, "outputs": {p: v[0] for p, v in outputs.items()},
            "discovered": list(discovered), "status": "ok", "exit_code": 0,
            "reason": "recovered after a crash", "duration_s": duration_s,
            "finished_ns": time.time_ns()}


def _hash_or_none(step: Step, root: Path, path: str) -> str | None:
    from .schedule import input_digest
    return input_digest(step, path, lambda p: _digest_file(root, p), root)


def read_commit_logs(root: Path) -> list[dict]:
    """The entries of every slot's commit log a killed run left behind (read
    before the scratch is cleared; verified by :func:`recovered_records`
    after interrupted journaled commits are rolled forward)."""
    latest: dict[str, dict] = {}
    for log_file in sorted((root / scratch.SCRATCH_DIR).glob(f"*/{COMMIT_LOG}")):
        for line in log_file.read_text(errors="replace").splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue                   # a line torn by the kill
            latest[entry["step_id"]] = entry
    return list(latest.values())


def recovered_records(root: Path, entries: list[dict]) -> list[StepRecord]:
    """Keep an entry only if its outputs in the tree have the hashes it
    wrote: otherwise the rename never happened (or someone edited the output
    since), and the step runs again."""
    return [StepRecord.from_dict(e) for e in entries
            if all(_digest_file(root, p) == h for p, h in e["outputs"].items())]


def _digest_file(root: Path, path: str) -> str | None:
    try:
        return sha256_file(root / path)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None


def discover(root: Path, step: Step, work: Path, cwd_root: Path):
    """What the step says it read and wrote: its depfile, or TeX's .fls."""
    from .discover import Discovered, discover_depfile, discover_fls
    found = Discovered([], [])
    view = cwd_root if cwd_root != root else None
    if step.depfile:
        where = (cwd_root / step.depfile if view else
                 scratch.scratch_out_path(work, step.depfile))
        if where.exists():
            found = discover_depfile(where, root, step.cwd)
    if step.rule.discover == "fls" and view is not None:
        fls = sorted((view / step.cwd).glob("*.fls")) if step.cwd else sorted(view.glob("*.fls"))
        for path in fls:
            more = discover_fls(path, root, step.cwd, view)
            found.inputs += [p for p in more.inputs if p not in found.inputs]
            found.outputs += [p for p in more.outputs if p not in found.outputs]
    found.inputs = [p for p in found.inputs if p not in step.inputs]
    return found


def commit_one(root: Path, src: Path, dest: str, checked_dirs: set[str]) -> None:
    """One output: a single rename is already atomic, no journal needed.

    The full containment check (realpath through symlinks) runs once per
    destination directory per slot; the directory is made then too.
    """
    rel_dir = posixpath.dirname(scratch.check_relative(dest))
    if rel_dir not in checked_dirs:
        full = commit_mod.dest_path(str(root), dest)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        checked_dirs.add(rel_dir)
    os.replace(src, os.path.join(root, dest))


def failed_item(job_id: str, attempt: int, reason: str) -> dict:
    return {"id": job_id, "attempt": attempt, "ok": False, "exit_code": None,
            "reason": reason, "command": "", "duration_s": 0.0,
            "stdout_tail": "", "stderr_tail": ""}


# --- the slots ----------------------------------------------------------------

class WorkerPool:
    """`slots` threads, each running one step at a time from a shared queue."""

    def __init__(self, root: Path, slots: int, on_started: Callable[[StepJob], None],
                 on_done: Callable[[StepJob, dict], None], name: str = "chef"):
        self.root = root
        self.slots = slots
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._on_started = on_started
        self._on_done = on_done
        self._running: dict[int, tuple[int, str]] = {}   # slot index -> (pgid, build)
        self._cancelled: deque[str] = deque(maxlen=64)   # builds whose steps are dropped
        self._lock = threading.Lock()
        self.queued = 0
        logs = LogDir(root)
        self._slots = [Slot(root, f"{scratch.scratch_name(name)}-{os.getpid()}-{i}", logs)
                       for i in range(slots)]
        self._threads = [threading.Thread(target=self._work, args=(i,), name=f"slot-{i}",
                                          daemon=True) for i in range(slots)]
        for t in self._threads:
            t.start()

    def submit(self, job: StepJob) -> None:
        with self._lock:
            self.queued += 1
        self._jobs.put(job)

    def _work(self, index: int) -> None:
        slot = self._slots[index]
        while True:
            job = self._jobs.get()
            if job is None:
                return
            with self._lock:
                self.queued -= 1
            if job.build in self._cancelled:
                self._on_done(job, failed_item(job.step.id, job.attempt, "cancelled"))
                continue
            self._on_started(job)
            try:
                item = execute(self.root, job, slot, on_started=lambda pgid: self._running
                               .__setitem__(index, (pgid, job.build)))
            except (OSError, ComputePodsError) as exc:
                item = failed_item(job.step.id, job.attempt, f"the chef could not run it: {exc}")
            finally:
                self._running.pop(index, None)
            self._on_done(job, item)

    def cancel_running(self) -> None:
        """Kill every running step's process group (their scratch is discarded)."""
        for pgid, _ in list(self._running.values()):
            runner.kill_group(pgid, grace_s=0.5)

    def cancel_build(self, build: str) -> None:
        """Steps of `build` still queued fail as cancelled; running ones are killed."""
        self._cancelled.append(build)
        for pgid, of in list(self._running.values()):
            if of == build:
                runner.kill_group(pgid, grace_s=0.5)

    def stop(self, timeout: float = 5.0) -> None:
        for _ in self._threads:
            self._jobs.put(None)
        for t in self._threads:
            t.join(timeout)
        for slot in self._slots:
            slot.close()
            shutil.rmtree(slot.dir, ignore_errors=True)
