"""A remote step's outputs, brought into our tree as a local commit is.

A chef on another pod reports its outputs by sha256; they are in its
pod's store, not in our tree.  Before the result is taken, each output is
fetched (``federation.fetch(pod, sha)``, which verifies what arrives),
copied into a scratch directory of our tree and committed by the chef's own
journaled commit (:func:`computepods.chef.commit.commit`: the commit log,
one atomic rename per file, rolled forward after a crash with the step's
record).  Only then does the MajorDomo take the result, with our own stat
of each file, and ask the Store for the record.

This runs on worker threads, never the chart's: each landing posts back
``LANDED`` (:class:`Arrival`) or ``LANDING_FAILED`` (:class:`LandingFailure`).
A result from a lost lease is never diverted here: the MajorDomo checks it
is current first, so it is ignored before any fetch.
"""
from __future__ import annotations

import itertools
import logging
import os
import posixpath
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from computepods.bus import messages as m
from computepods.chef import commit
from computepods.chef.scratch import SCRATCH_DIR
from computepods.bus.chefwire import StepResult
from computepods.errors import ComputePodsError, MalformedMessage
from computepods.federation.federation import Fetch

if TYPE_CHECKING:
    from computepods.coordinator.buildrun import BuildRun
    from computepods.planning.job import Job
    from computepods.planning.resolve import Plan

log = logging.getLogger("computepods.landing")

LANDING_WORKERS = 4            # remote results fetched and committed at once
EXEC_MODE = 0o755              # an output fetched with an executable bit set
PLAIN_MODE = 0o644

Post = Callable[[str, object], None]      # (signal, payload): to the MajorDomo


@dataclass(frozen=True)
class Arrival:
    """LANDED: the result item, its outputs now in our tree (``local``: our stat)."""
    chef: str
    pod: str
    item: dict


@dataclass(frozen=True)
class LandingFailure:
    """LANDING_FAILED: the outputs of (id, attempt) could not be brought in."""
    chef: str
    pod: str
    id: str
    attempt: int
    error: str
    fetching: bool = True          # the fetch failed (else: the commit in our tree)


def stray_outputs(job: "Job", outputs, plan: "Plan") -> list[str]:
    """Outputs a remote chef reported that are not the step's to write: not
    a declared output, nor (for a rule that discovers what it reads and
    writes, as TeX does) a file beside its first output that is neither a
    source nor another step's output.  Our tree takes none of them."""
    step = job.step
    if not step.rule.discover:
        return sorted(set(outputs) - set(step.outputs))
    here = posixpath.dirname(step.outputs[0])
    theirs = {p for s in plan.steps.values() if s.id != step.id for p in s.outputs}
    return sorted(p for p in outputs if p not in step.outputs and (
        posixpath.dirname(p) != here or p in plan.sources or p in theirs))


def land(root: Path, fetch: Fetch, pod: str, item: dict, record: dict) -> dict:
    """Fetch each output of `item` from `pod`, commit them into `root` under
    the commit log with `record`; the item with our own stat of each output."""
    outputs: dict = item.get("outputs") or {}
    scratch = Path(root, SCRATCH_DIR, f"land-{os.getpid()}-{next(_numbers)}")
    scratch.mkdir(parents=True)
    try:
        moves, checked = [], {}
        for i, (path, out) in enumerate(sorted(outputs.items())):
            source = Path(root, path)
            if commit.digest_in_tree(Path(root), path) != out["sha256"]:   # (equal: 0 bytes)
                try:
                    source = fetch(pod, out["sha256"])
                except (OSError, ComputePodsError) as exc:
                    raise _FetchFailed(f"output {path} ({out['sha256'][:12]}): {exc}") from exc
            checked[path] = time.time_ns()       # before the bytes land: racy-safe
            shutil.copyfile(source, scratch / f"out{i}")
            # a store's file has no mode of its own: the chef said if it was executable
            executable = out.get("x") is True or os.stat(source).st_mode & 0o111
            os.chmod(scratch / f"out{i}", EXEC_MODE if executable else PLAIN_MODE)
            moves.append((f"out{i}", path))
        commit.commit(scratch, root, moves, record)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    landed = {}
    for path, out in outputs.items():
        st = os.stat(os.path.join(root, path))
        landed[path] = {"sha256": out["sha256"], "size": out["size"],
                        "local": {"mtime_ns": st.st_mtime_ns, "ino": st.st_ino,
                                  "checked_ns": checked[path]}}
    return {**item, "outputs": landed}


_numbers = itertools.count(1)


class _FetchFailed(Exception):
    pass


class Landing:
    """The workers that land remote results, posting back to the MajorDomo."""

    def __init__(self, root: Path, fetch: Fetch, post: Post, workers: int = LANDING_WORKERS):
        self._root = Path(root)
        self._fetch = fetch
        self._post = post
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="landing")

    def divert(self, b: "BuildRun", chef: str, pod: str, results: list,
               settled: Callable[[str, str], None]) -> list:
        """Of a remote chef's results, start landing those that succeeded and
        are current (a late one, of a lost lease, is left to be ignored: it is
        never fetched); the rest are returned, to be taken as they are.
        `settled(chef, step)`: the step is ours to finish now, not the chef's."""
        rest = []
        for item in results:
            if not (isinstance(item, dict) and item.get("event") == "finished" and item.get("ok")
                    and b.is_current(item)) or not (job := b.job(item["id"])):
                rest.append(item)
                continue
            try:
                result = StepResult.from_dict(item)
            except MalformedMessage:
                rest.append(item)             # taken as it is: it fails, saying why
                continue
            if stray := stray_outputs(job, result.outputs, b.bp.plan):
                rest.append({**item, "ok": False, "outputs": {}, "reason": (
                    f"pod {pod} reported outputs the step does not make: "
                    f"{', '.join(stray[:5])}; none was taken")})
                continue
            outputs = {p: o.sha256 for p, o in result.outputs.items()}
            record = b.record(job, outputs, result.duration_s, time.time_ns(), result.discovered)
            settled(chef, job.step.id)
            self._pool.submit(self._run, chef, pod, item, record.to_dict())
        return rest

    def _run(self, chef: str, pod: str, item: dict, record: dict) -> None:
        try:
            landed = land(self._root, self._fetch, pod, item, record)
        except _FetchFailed as exc:
            self._failed(chef, pod, item, f"cannot fetch from pod {pod}: {exc}", True)
        except (OSError, ComputePodsError) as exc:
            self._failed(chef, pod, item, f"cannot commit its outputs from pod {pod}: {exc}",
                         False)
        except Exception as exc:          # a bug must still answer, or the build waits
            log.exception("landing %s from pod %s", item.get("id"), pod)
            self._failed(chef, pod, item, f"landing its outputs failed: {exc!r}", False)
        else:
            self._post(m.LANDED, Arrival(chef, pod, landed))

    def _failed(self, chef: str, pod: str, item: dict, error: str, fetching: bool) -> None:
        log.warning("step %s: %s", item.get("id"), error)
        self._post(m.LANDING_FAILED, LandingFailure(chef, pod, item["id"], item["attempt"],
                                                    error, fetching))

    def close(self) -> None:
        """Wait for the landings under way (each ends by posting)."""
        self._pool.shutdown(wait=True)
