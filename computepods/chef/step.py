"""The chef's work, without the chart: run one step, commit its outputs.

A chef gets steps in run messages; :func:`job_from_message` rebuilds each
step from its rule and stem (checking every path stays in the workspace),
:func:`execute` runs it in scratch space and moves its outputs into the tree
only if it succeeded (a simple step as :func:`launch`, then :func:`land`).
The slot a step runs in (its reusable scratch, streams and commit log) is
given by the caller, :mod:`computepods.chef.pool`; a step never calls the
pool.
"""
from __future__ import annotations

import functools
import os
import shutil
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from computepods.chef import commit as commit_mod
from computepods.chef import runner
from computepods.chef import scratch
from computepods.bus.chefwire import LocalStat, Output, RunStep, StepResult
from computepods.errors import ComputePodsError, MalformedMessage
from computepods.state.hashing import sha256_and_stat
from computepods.project.model import Rule
from computepods.planning.commands import Command
from computepods.planning.resolve import Step, bind
from computepods.planning.staleness import input_digest, record_inputs

if TYPE_CHECKING:
    from computepods.chef.slot import Slot, Streams


# --- the wire form of rules and steps -----------------------------------------

@functools.lru_cache(maxsize=4096)
def rule_to_dict(rule: Rule) -> dict:
    """The wire form of a rule (cached: rules are frozen; callers must not
    mutate the result)."""
    return {f.name: (list(v) if isinstance(v := getattr(rule, f.name), tuple) else v)
            for f in fields(rule)}


def rule_from_dict(d: dict) -> Rule:
    fields = dict(d)
    for key in ("inputs", "outputs", "added", "written"):
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
    rule_fp: str = ""                  # the rule fingerprint it was judged by
    origin: str = ""                   # another pod, whose files it builds from; "": our tree
    files: dict[str, str] = field(default_factory=dict)    # path -> sha256 (with origin)
    ahead: RunStep | None = None       # sent ahead: its terms (chef/ahead.py)

    @property
    def key(self) -> tuple[str, str, int]:
        """What makes a run request a repeat: a long-lived chef serves many
        builds (of several pods), and each build numbers its attempts from 1."""
        return (f"{self.origin}/{self.build}" if self.origin else self.build, self.step.id,
                self.attempt)


def step_to_message(step: Step, attempt: int, inputs: dict[str, str | None],
                    record=None, copy_in: dict[str, str] | None = None,
                    rule_fp: str = "") -> RunStep:
    """A step on the wire.  `known_outputs` are the files earlier runs were
    seen to write (a .toc): a view must not link them into the tree;
    `copy_in` are its own outputs it gets to read, with their hashes (the
    previous pass's .aux and .toc)."""
    known = tuple(sorted(set(record.outputs) - set(step.outputs))) if record else ()
    return RunStep(step.id, attempt, step.rule.name, step.stem, inputs, known,
                   dict(copy_in or {}), rule_fp)


def job_from_message(build: str, rules: dict[str, Rule], item: Any,
                     origin: str = "") -> StepJob:
    """Rebuild a step from a run message item; MalformedMessage if it is off.
    With ``origin`` (another pod) its ``files`` are what it is built from."""
    wire = RunStep.from_dict(item)
    rule = rules.get(wire.rule)
    if rule is None:
        raise MalformedMessage("chef.run", f"step {wire.id!r}: unknown rule {wire.rule!r}")
    step = bind(rule, wire.stem)     # raises PathEscapesWorkspace for a bad stem
    if step.id != wire.id:
        raise MalformedMessage("chef.run", f"step {wire.id!r} does not match its rule "
                                           f"and stem (they give {step.id!r})")
    for path in (*step.inputs, *step.outputs, *wire.inputs, *wire.known_outputs, *wire.copy_in,
                 *wire.files, *wire.was):
        scratch.check_relative(path)
    if origin:
        bad = [p for p, sha in wire.files.items() if not _is_sha256(sha)]
        if bad:
            raise MalformedMessage("chef.run", f"step {wire.id!r}: files {', '.join(bad[:3])}: "
                                               "not a sha256 (64 lower-case hex digits)")
    return StepJob(build, step, wire.attempt, dict(wire.inputs), wire.known_outputs,
                   dict(wire.copy_in), wire.rule_fp, origin,
                   dict(wire.files) if origin else {}, wire if wire.after else None)


def _is_sha256(sha: str) -> bool:
    return len(sha) == 64 and all(c in "0123456789abcdef" for c in sha)


# --- running a step in a slot --------------------------------------------------

def writes_through_out(rule: Rule) -> bool:
    """Does the command name its outputs through {out}?  Then its outputs can
    simply be redirected into scratch; otherwise it needs a view of the tree."""
    text = rule.command if isinstance(rule.command, str) else " ".join(rule.command)
    return "{out" in text


def step_env(root: Path, work: Path, step: Step) -> dict[str, str]:
    return {**_base_env(str(root)), "CP_SCRATCH": str(work), "CP_STEP": step.id}


@functools.lru_cache(maxsize=16)
def _base_env(root: str) -> dict[str, str]:
    # Copying os.environ decodes every entry: once per pod, not once per step.
    return dict(os.environ, CP_PROJECT=os.path.abspath(root))


def execute(root: Path, job: StepJob, slot: Slot,
            on_started: Callable[[int], None] | None = None,
            lapsed: Callable[[], str | None] = lambda: None,
            work: Path | None = None) -> StepResult:
    """Run a step in scratch space; commit its outputs only if it succeeded.

    Returns the result item of a steps.results message.  A step with one
    output named through {out} uses the slot's scratch and one atomic
    rename (:func:`launch`, then :func:`land`); others get a scratch dir (and
    view) of their own and a journaled commit, since a crash between two
    renames must be rolled forward.  A step from another pod (``origin``)
    always takes the second way, in the scratch dir ``work`` its caller made
    with a view of only the files it lists
    (:mod:`computepods.federation.remotesteps`).
    """
    if is_simple(job.step) and not job.origin:
        return land(root, launch(root, job, slot, on_started), slot, lapsed)
    step = job.step
    started = time.monotonic()
    work = work or scratch.make_scratch(root, step.id)
    through_out = writes_through_out(step.rule)
    if job.origin:
        cwd_root = work / scratch.VIEW_DIR
        command = (step.command(out_path=lambda p: str(scratch.scratch_out_path(work, p)),
                                scratch=str(work)) if through_out
                   else step.command(scratch=str(work)))
    elif through_out:
        cwd_root = root
        command = step.command(out_path=lambda p: str(scratch.scratch_out_path(work, p)),
                               scratch=str(work))
    else:
        cwd_root = scratch.make_view(root, work, (*step.outputs, *job.known_outputs),
                                     copy_in=list(job.copy_in),
                                     real_below=step.cwd if step.rule.discover == "fls" else None)
        command = step.command(scratch=str(work))
    streams = slot.streams()
    result = runner.run_to(command.argv, cwd_root / step.cwd if step.cwd else cwd_root,
                           step_env(root, work, step), streams.out_fd, streams.err_fd,
                           step.timeout, on_started, tails=None, started=started,
                           stdout_to=command.stdout)
    slot.keep_logs(step.id, streams)
    try:
        if not result.ok:
            return _result(job, streams, command, result, started, False, result.reason())
        discovered = discover(root, step, work, cwd_root, through_out)
        written = (*step.outputs, *(p for p in discovered.outputs if p not in step.outputs))
        if through_out:
            moves = scratch.out_moves(work, written)
        else:
            moves = scratch.view_outputs(cwd_root, written)
        missing = sorted(set(step.outputs) - {dest for _, dest in moves})
        if missing:
            return _result(job, streams, command, result, started, False,
                           "it did not write " + ", ".join(missing))
        outputs = {dest: _output_entry(str(work / rel)) for rel, dest in moves}
        if (why := lapsed()) is not None:
            return _result(job, streams, command, result, started, False, why)
        slot.log_commit(step_record(job, root, command.display, outputs, discovered.inputs,
                                    round(time.monotonic() - started, 6)))
        commit_mod.commit(work, root, moves, {"step": step.id, "outputs": {
            p: o.to_dict() for p, o in outputs.items()}})
        return _result(job, streams, command, result, started, True, outputs=outputs,
                       discovered=discovered.inputs)
    except (OSError, ComputePodsError) as exc:
        return _result(job, streams, command, result, started, False,
                       f"could not commit its outputs: {exc}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def is_simple(step: Step) -> bool:
    """The common step: one output named through {out}, nothing to discover.
    It runs in the slot's reusable scratch and commits with one rename; a
    build of many small steps spends its time on this path."""
    return (len(step.outputs) == 1 and not step.rule.discover and not step.depfile
            and writes_through_out(step.rule))


@dataclass
class Launched:
    """A simple step whose command :func:`launch` started."""
    job: StepJob
    command: Command
    streams: Streams
    started: float
    proc: runner.Started


def launch(root: Path, job: StepJob, slot: Slot,
           on_started: Callable[[int], None] | None = None) -> Launched:
    """Start a simple step's command (see :func:`is_simple`)."""
    step = job.step
    started = time.monotonic()
    command = step.command(out_path=slot.out_path, scratch=str(slot.dir))
    streams = slot.streams()
    proc = runner.start(command.argv, os.path.join(root, step.cwd) if step.cwd else root,
                        step_env(root, slot.dir, step), streams.out_fd, streams.err_fd,
                        step.timeout, on_started, started=started, stdout_to=command.stdout)
    return Launched(job, command, streams, started, proc)


def land(root: Path, launched: Launched, slot: Slot,
         lapsed: Callable[[], str | None] = lambda: None) -> StepResult:
    """Wait for a launched step's command, then commit its output if it
    succeeded: write-ahead record, then one rename.  ``lapsed`` says why the
    step is no longer the chef's to commit (see :mod:`computepods.chef.lease`),
    or None."""
    job, command, streams, started = (launched.job, launched.command, launched.streams,
                                      launched.started)
    result = launched.proc.wait(tails=None)
    slot.keep_logs(job.step.id, streams)
    dest = job.step.outputs[0]
    src = slot.out_path_of(dest)
    slot.mark_written(src)             # until it is committed
    if not result.ok:
        return _result(job, streams, command, result, started, False, result.reason())
    try:
        try:
            outputs = {dest: _output_entry(src)}
        except FileNotFoundError:
            return _result(job, streams, command, result, started, False,
                           "it did not write " + dest)
        if (why := lapsed()) is not None:
            return _result(job, streams, command, result, started, False, why)
        slot.log_commit(step_record(job, root, command.display, outputs, [],
                                    round(time.monotonic() - started, 6)))
        slot.commit_output(src, dest)
    except (OSError, ComputePodsError) as exc:
        return _result(job, streams, command, result, started, False,
                       f"could not commit its outputs: {exc}")
    slot.mark_committed(src)
    return _result(job, streams, command, result, started, True, outputs=outputs,
                   discovered=[])


def _output_entry(path: str) -> Output:
    """A file a step wrote: its content, and apart the chef's own stat, of
    the very inode hashed."""
    checked_ns = time.time_ns()
    digest, st = sha256_and_stat(path)
    return Output(digest, st.st_size, LocalStat(st.st_mtime_ns, st.st_ino, checked_ns),
                  executable=bool(st.st_mode & 0o111))


def _result(job: StepJob, streams: Streams, command, result: runner.RunResult,
            started: float, ok: bool, reason: str = "", outputs: dict[str, Output] | None = None,
            discovered: list[str] | None = None) -> StepResult:
    """A steps.results item; the output tails go only with a failure (read
    now if the command itself succeeded)."""
    tails = ("", "")
    if not ok:
        read = not result.ok
        tails = ((result.stdout_tail, result.stderr_tail) if read else
                 (runner.tail_fd(streams.out_fd), runner.tail_fd(streams.err_fd)))
    return StepResult(job.step.id, job.attempt, ok, command.display, result.exit_code, reason,
                      round(time.monotonic() - started, 6), dict(outputs or {}),
                      list(discovered or ()), *tails)


def step_record(job: StepJob, root: Path, command: str, outputs: dict[str, Output],
                discovered: list[str], duration_s: float) -> dict:
    """The chef's write-ahead entry for a successful run, rolled forward
    from the commit log if cpod dies before the MajorDomo stores the record
    it builds from the result.  The rule fingerprint is the one the step
    was judged by (from the run message)."""
    inputs = record_inputs(job.inputs, job.copy_in, discovered, {*outputs, *job.step.outputs},
                           lambda p: _hash_or_none(job.step, root, p))
    # The dict StepRecord.from_dict reads, built directly: asdict() deep-
    # copies and costs more than the rest of this per step.
    return {"step_id": job.step.id, "rule": job.rule_fp, "command": command,
            "inputs": inputs, "outputs": {p: o.sha256 for p, o in outputs.items()},
            "discovered": list(discovered), "status": "ok", "exit_code": 0,
            "reason": "recovered after a crash", "duration_s": duration_s,
            "finished_ns": time.time_ns()}


def _hash_or_none(step: Step, root: Path, path: str) -> str | None:
    return input_digest(step, path, lambda p: _digest_file(root, p), root)


# The sha256 of a file in the tree, or None (the name _hash_or_none uses).
_digest_file = commit_mod.digest_in_tree


def discover(root: Path, step: Step, work: Path, cwd_root: Path, through_out: bool = False):
    """What the step says it read and wrote: its depfile, TeX's .fls and log,
    or the .blg of bibtex or biber (beside its first input: each names it
    after the .aux or .bcf it was given)."""
    from computepods.chef.discover import (Discovered, discover_blg, discover_depfile,
                                           discover_fls)
    found = Discovered([], [])
    view = cwd_root if cwd_root != root else None
    if step.depfile:
        where = (cwd_root / step.depfile if view and not through_out else
                 scratch.scratch_out_path(work, step.depfile))
        if where.exists():
            # a depfile that is an output lands in the tree: rewritten there
            # to project paths first (one that is not is read in scratch only)
            found = discover_depfile(where, root, step.cwd, view, work / scratch.OUT_DIR,
                                     rewrite=step.depfile in step.outputs)
    if step.rule.discover == "fls" and view is not None:
        fls = sorted((view / step.cwd).glob("*.fls")) if step.cwd else sorted(view.glob("*.fls"))
        for path in fls:
            more = discover_fls(path, root, step.cwd, view)
            found.inputs += [p for p in more.inputs if p not in found.inputs]
            found.outputs += [p for p in more.outputs if p not in found.outputs]
    if step.rule.discover == "blg" and step.inputs:
        blg = os.path.splitext(step.inputs[0])[0] + ".blg"
        more = discover_blg(cwd_root / blg, root, step.cwd, view)
        found.inputs += [p for p in more.inputs if p not in found.inputs]
    found.inputs = [p for p in found.inputs if p not in step.inputs]
    return found


def failed_item(job_id: str, attempt: int, reason: str) -> StepResult:
    return StepResult(job_id, attempt, False, "", None, reason, 0.0)
