"""What a crashed run left behind: its steps still running, its commit logs.

A pod starting on a root first kills the steps an earlier run left running
there (:func:`kill_leftover_steps`), then reads that run's commit logs
(:func:`read_commit_logs`) before the scratch is cleared, and keeps the
records whose outputs did reach the tree (:func:`recovered_records`).
A pod that stops does the same with its own chefs' logs
(:func:`settle_commit_logs`): a stop, like a kill, may come between a
step's commit and its record reaching the state database.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Callable

from computepods.chef.groups import has_env_entry, kill_leftover_groups
from computepods.chef.commit import digest_in_tree
from computepods.chef.scratch import SCRATCH_DIR
from computepods.chef.slot import COMMIT_LOG
from computepods.state.db import StateDB, StepRecord


def kill_leftover_steps(root: Path) -> list[int]:
    """Kill the process groups of steps a crashed run left running here.

    Every step runs with ``CP_PROJECT=<root>`` (and the runner's own mark) in
    its environment, so they are found in /proc without writing a marker
    file per step (a file per step would be on the hot path that
    ``bench/run.py`` times; this scan runs once per start).
    """
    mark = f"CP_PROJECT={os.path.abspath(root)}".encode()
    groups = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid() or not has_env_entry(int(name), mark):
            continue
        try:
            groups.append(os.getpgid(int(name)))
        except (OSError, ProcessLookupError):
            continue
    return kill_leftover_groups(groups) if groups else []


def read_commit_logs(root: Path, keep: Callable[[str], bool] = lambda name: False
                     ) -> list[dict]:
    """The entries of every slot's commit log a killed run left behind (read
    before the scratch is cleared; verified by :func:`recovered_records`
    after interrupted journaled commits are rolled forward); slots that
    ``keep`` names are this run's own."""
    latest: dict[str, dict] = {}
    for log_file in sorted((root / SCRATCH_DIR).glob(f"*/{COMMIT_LOG}")):
        if keep(log_file.parent.name):
            continue
        text = log_file.read_bytes().rstrip(b"\0").decode(errors="replace")
        for line in text.splitlines():     # (its unused tail is zero bytes)
            try:
                entry = json.loads(line)
            except ValueError:
                continue                   # a line torn by the kill
            last = latest.get(entry["step_id"])
            if last is None or _finished(entry) >= _finished(last):
                latest[entry["step_id"]] = entry    # slots are read in no useful order
    return list(latest.values())


def _finished(entry: dict) -> int:
    finished = entry.get("finished_ns", 0)
    return finished if isinstance(finished, int) else 0


def recovered_records(root: Path, entries: list[dict],
                      stored: Callable[[str], StepRecord | None] = lambda step_id: None
                      ) -> list[StepRecord]:
    """Keep an entry only if its outputs in the tree have the hashes it
    wrote: otherwise the rename never happened (or someone edited the output
    since), and the step runs again.  An entry the state database already
    holds (``stored``: the step's record there), or holds a newer record
    for, is not written again."""
    return [StepRecord.from_dict(e) for e in entries
            if not _already_stored(e, stored(e["step_id"]))
            and all(digest_in_tree(root, p) == h for p, h in e["outputs"].items())]


def _already_stored(entry: dict, record: StepRecord | None) -> bool:
    if record is None:
        return False
    return (record.finished_ns >= _finished(entry)
            or (record.status == "ok" and record.rule == entry["rule"]
                and record.inputs == entry["inputs"] and record.outputs == entry["outputs"]))


def settle_commit_logs(root: Path, db_path: Path, ours: Callable[[str], bool]) -> int:
    """At a pod's stop, once its chefs have stopped: persist the records of
    the commits their logs hold and the state database does not (a stop
    during a build), then remove their scratch.  Returns how many records
    were written."""
    entries = read_commit_logs(root, keep=lambda name: not ours(name))
    written = 0
    if entries:
        with StateDB(db_path) as db:
            records = recovered_records(root, entries, db.step)
            if records:
                db.write(steps=records)
                written = len(records)
    scratch_root = root / SCRATCH_DIR
    for path in sorted(scratch_root.glob("*")) if scratch_root.is_dir() else ():
        if ours(path.name):
            shutil.rmtree(path, ignore_errors=True)
    return written
