"""The files a step placed on another pod reads, by hash (issue 12, item 5).

A remote chef has no copy of the project: it builds in a tree materialised
from content stores.  Its run message carries ``files`` (path -> sha256):
the step's declared inputs, the inputs earlier runs discovered (a depfile's
headers, a ``.fls``), the outputs of the steps it depends on (they are its
inputs, with the hashes their producers just reported), and its own earlier
outputs it is given (``copy_in``).  The hashes come from the Scheduler (the
Store's records, or this build's results); a missing optional input is left
out.

A step whose rule discovers its inputs (``depfile``, ``discover``) and has
none recorded yet cannot say which headers it will read: such a first run
goes to one of our own chefs when there is one (:func:`inputs_unknown`), or
else it is sent the project's source files (:func:`tree_files`), once: the
chef's pod keeps them, so the next build moves only what changed.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from computepods.paths import STATE_DIR
from computepods.planning.job import Job
from computepods.planning.staleness import UNKNOWN, input_paths
from computepods.state.db import StepRecord

MAX_TREE_FILES = 20_000         # files a first run without a local chef is sent at most

Digest = Callable[[str], "str | None"]      # project path -> sha256 of the file, None if none


@dataclass(frozen=True)
class Manifest:
    """What a remote step reads: path -> sha256, and the size of each content."""
    files: dict[str, str] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)

    @property
    def bytes(self) -> int:
        return sum(self.sizes.values())


def inputs_unknown(job: Job, record: StepRecord | None) -> bool:
    """A first run whose inputs are discovered: nobody knows yet what it reads."""
    rule = job.step.rule
    discovers = bool(job.step.depfile or rule.depfile or rule.discover)
    return discovers and (record is None or record.status != "ok")


def step_manifest(root: Path, job: Job, record: StepRecord | None, digest: Digest,
                  extra: dict[str, str] | None = None) -> Manifest:
    """The files `job` reads, by hash: inputs as recorded and judged, copy_in,
    and `extra` (path -> sha256: the tree's files for a first run)."""
    files: dict[str, str] = dict(extra or {})
    for path in input_paths(job.step, record):
        sha = digest(path)
        if sha is not None and sha != UNKNOWN:
            files[path] = sha
    files.update((p, h) for p, h in job.copied.items() if h and h != UNKNOWN)
    for out in job.step.outputs:          # a step never reads its output from an old run
        if out not in job.copied:         # (unless given it: a TeX pass)
            files.pop(out, None)
    prefix = os.path.join(root, "")
    sizes: dict[str, int] = {}
    for path, sha in files.items():
        try:
            sizes[sha] = os.stat(prefix + path).st_size
        except OSError:
            sizes.setdefault(sha, 0)
    return Manifest(files, sizes)


def tree_files(root: Path, skip: set[str], digest: Digest,
               limit: int = MAX_TREE_FILES) -> dict[str, str]:
    """The project's files (not the state directory, hidden ones, or `skip`:
    outputs), by hash: what a first run without a local chef is sent."""
    found: dict[str, str] = {}
    root_s = os.path.abspath(root)
    for dirpath, dirnames, filenames in os.walk(root_s):
        rel_dir = os.path.relpath(dirpath, root_s)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".")
                             and not (rel_dir == "." and d == STATE_DIR))
        for name in sorted(filenames):
            rel = name if rel_dir == "." else f"{rel_dir}/{name}"
            if name.startswith(".") or rel in skip or os.path.islink(os.path.join(dirpath, name)):
                continue
            sha = digest(rel)
            if sha is not None and sha != UNKNOWN:
                found[rel] = sha
            if len(found) >= limit:
                return found
    return found
