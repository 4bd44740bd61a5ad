"""Atomic, journaled commit of a step's outputs from its scratch dir into the tree.

Only a successful step's outputs may reach the tree, and a crash must never
leave a step half-committed in a way the next run cannot finish.  So:

1. the journal ``COMMIT.json`` — the moves, and the step's record as an
   opaque dict — is written into the scratch dir atomically (temp file,
   fsync, rename);
2. each output is moved into the tree by ``os.replace`` (atomic per file;
   scratch is on the same filesystem);
3. the journal is removed, then the scratch dir.

A crash during 2 leaves a journal: ``roll_forward`` (run at startup, after
leftover step processes are killed and before any step runs) redoes the
moves whose source is still there, and returns the records so the caller
can persist them.  A scratch dir without a journal is a step that never
reached 1: everything in it is discarded.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Callable, Sequence

from computepods.errors import ComputePodsError, PathEscapesWorkspace
from computepods.chef.scratch import SCRATCH_DIR, check_relative
from computepods.paths import STATE_DIR, atomic_write, in_state_dir
from computepods.state.hashing import sha256_file

log = logging.getLogger(__name__)

JOURNAL = "COMMIT.json"
JOURNAL_FORMAT = 1


def commit(scratch_dir: Path, root: Path, moves: Sequence[tuple[str, str]],
           record: dict) -> None:
    """Move a successful step's outputs into the tree, all or (after a crash,
    by ``roll_forward``) eventually all.

    ``moves`` are (path relative to ``scratch_dir``, project-relative dest).
    Everything that can be checked is checked before the journal is written,
    so a refused commit changes nothing in the tree.
    """
    root_s = os.path.abspath(root)
    scratch_s = os.path.abspath(scratch_dir)
    planned = _plan(root_s, moves)
    for src, dest in planned:
        _check_placeable(scratch_s, root_s, src, dest)
    _write_journal(scratch_s, {"format": JOURNAL_FORMAT,
                               "moves": [list(m) for m in planned], "record": record})
    _apply(scratch_s, root_s, planned)
    os.unlink(os.path.join(scratch_s, JOURNAL))
    shutil.rmtree(scratch_s, ignore_errors=True)


def roll_forward(root: Path, keep: Callable[[str], bool] = lambda name: False) -> list[dict]:
    """Finish every interrupted commit under ``root/.computepods/scratch`` and
    discard every other scratch dir but those ``keep`` names (a chef launched
    for this run already made its own); returns the records of the finished
    commits."""
    root_s = os.path.abspath(root)
    scratch_root = os.path.join(root_s, SCRATCH_DIR)
    try:
        names = sorted(os.listdir(scratch_root))
    except FileNotFoundError:
        return []
    records = []
    for name in names:
        if keep(name):
            continue
        path = os.path.join(scratch_root, name)
        if os.path.islink(path) or not os.path.isdir(path):
            os.unlink(path)
            continue
        journal = _read_journal(path, root_s)
        if journal is not None:
            _apply(path, root_s, journal["moves"])
            records.append(journal["record"])
            log.info("rolled forward the interrupted commit in %s", path)
        shutil.rmtree(path, ignore_errors=True)
    return records


def digest_in_tree(root: Path, path: str) -> str | None:
    """The sha256 of ``path`` in the tree, or None if no file is there."""
    try:
        return sha256_file(root / path)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None


def dest_path(root: str, dest: str) -> str:
    """The absolute path of project-relative ``dest``, if it stays in the project.

    Checks the path lexically and through symlinked directories: an output
    ``build/x`` must not land in ``/etc`` because ``build`` links there.
    """
    rel = check_relative(dest)
    if in_state_dir(rel):               # outputs may never land in the state directory
        raise PathEscapesWorkspace(
            f"output {dest!r} is inside {STATE_DIR}/, which belongs to computepods")
    full = os.path.join(root, rel)
    real_root = os.path.realpath(root)
    real_parent = os.path.realpath(os.path.dirname(full))
    if real_parent != real_root and not real_parent.startswith(real_root + os.sep):
        raise PathEscapesWorkspace(
            f"output {dest!r} would be written outside the project (to {real_parent})")
    return full


def _plan(root: str, moves: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """Normalised moves, each source below the scratch dir and each dest inside root."""
    planned = []
    for src, dest in moves:
        dest_path(root, dest)
        planned.append((check_relative(src), check_relative(dest)))
    return planned


def _check_placeable(scratch: str, root: str, src: str, dest: str) -> None:
    """Refuse, before anything moves, a commit that would fail half-way."""
    if not os.path.lexists(os.path.join(scratch, src)):
        raise ComputePodsError(f"cannot commit output {dest!r}: the step did not write it"
                               f" ({os.path.join(scratch, src)} is missing)")
    full = os.path.join(root, dest)
    if os.path.isdir(full) and not os.path.islink(full):
        raise ComputePodsError(f"cannot commit output {dest!r}: it is a directory in"
                               " the project; remove it or rename the output")
    parent = os.path.dirname(full)
    while not os.path.isdir(parent):
        if os.path.lexists(parent):
            raise ComputePodsError(
                f"cannot commit output {dest!r}: {os.path.relpath(parent, root)!r} is a"
                " file in the project, not a directory")
        parent = os.path.dirname(parent)


def _write_journal(scratch: str, journal: dict) -> None:
    """Write the journal so that it is either absent or complete, even after a
    power cut: temp file, fsync, rename."""
    data = json.dumps(journal, separators=(",", ":")).encode()
    atomic_write(os.path.join(scratch, JOURNAL), data, durable=True)


def _apply(scratch: str, root: str, moves: Sequence[Sequence[str]]) -> None:
    """Move each source that is still in scratch (a roll-forward skips those
    already moved) to its place in the tree."""
    for src, dest in moves:
        source = os.path.join(scratch, src)
        if not os.path.lexists(source):
            continue
        target = os.path.join(root, dest)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        os.replace(source, target)


def _read_journal(scratch: str, root: str) -> dict | None:
    """The journal of an interrupted commit, or None if there is none (or it
    cannot be trusted: then the step's outputs are discarded, never half-applied
    from a guess, and the step runs again)."""
    path = os.path.join(scratch, JOURNAL)
    try:
        with open(path, "rb") as f:
            journal = json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        log.warning("%s: unreadable commit journal (%s); discarding the step's outputs",
                    path, e)
        return None
    try:
        if journal.get("format") != JOURNAL_FORMAT or not isinstance(journal["record"], dict):
            raise ValueError(f"unknown journal format {journal.get('format')!r}")
        journal["moves"] = _plan(root, [(src, dest) for src, dest in journal["moves"]])
    except (AttributeError, KeyError, TypeError, ValueError, ComputePodsError) as e:
        log.warning("%s: invalid commit journal (%s); discarding the step's outputs", path, e)
        return None
    return journal
