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

import errno
import json
import logging
import os
import shutil
import stat
from pathlib import Path
from typing import Callable, Sequence

from computepods.errors import ComputePodsError, PathEscapesWorkspace
from computepods.chef.scratch import SCRATCH_DIR, check_relative
from computepods.paths import PROJECT_FILE, STATE_DIR, atomic_write, in_state_dir, writing
from computepods.state.hashing import sha256_file

log = logging.getLogger(__name__)

JOURNAL = "COMMIT.json"
JOURNAL_FORMAT = 1
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
MAX_LINK_HOPS = 8            # symlinked dirs inside the project followed per output


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
    outputs = ", ".join(dest for _, dest in planned)
    _write_journal(scratch_s, {"format": JOURNAL_FORMAT,
                               "moves": [list(m) for m in planned], "record": record},
                   f"the commit journal of outputs {outputs} (none was committed)")
    with writing(root_s, f"the commit of outputs {outputs} (its journal finishes"
                         " it at the next start)"):
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
    full = os.path.join(root, project_dest(dest))
    real_root = os.path.realpath(root)
    real_parent = os.path.realpath(os.path.dirname(full))
    if real_parent != real_root and not real_parent.startswith(real_root + os.sep):
        raise PathEscapesWorkspace(
            f"output {dest!r} would be written outside the project (to {real_parent})")
    return full


def project_dest(dest: str) -> str:
    """``dest`` normalised, if it is a project path outputs may take (checked
    lexically; :func:`place` checks the tree)."""
    rel = check_relative(dest)
    if in_state_dir(rel):               # outputs may never land in the state directory
        raise PathEscapesWorkspace(
            f"output {dest!r} is inside {STATE_DIR}/, which belongs to computepods")
    if rel == PROJECT_FILE:             # a pattern's stem may make it, past the load check
        raise PathEscapesWorkspace(f"output {dest!r} would overwrite the project file")
    return rel


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
        if os.path.lexists(parent) and not os.path.isdir(parent):   # (made meanwhile: fine)
            raise ComputePodsError(
                f"cannot commit output {dest!r}: {os.path.relpath(parent, root)!r} is a"
                " file in the project, not a directory")
        parent = os.path.dirname(parent)


def _write_journal(scratch: str, journal: dict, what: str) -> None:
    """Write the journal so that it is either absent or complete, even after a
    power cut: temp file, fsync, rename."""
    data = json.dumps(journal, separators=(",", ":")).encode()
    atomic_write(os.path.join(scratch, JOURNAL), data, durable=True, what=what)


def _apply(scratch: str, root: str, moves: Sequence[Sequence[str]]) -> None:
    """Move each source that is still in scratch (a roll-forward skips those
    already moved) to its place in the tree, through :func:`place`."""
    root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for src, dest in moves:
            source = os.path.join(scratch, src)
            if os.path.lexists(source):
                place(root_fd, root, source, dest)
    finally:
        os.close(root_fd)


def place(root_fd: int, root: str, source: str, dest: str) -> None:
    """Rename ``source`` to project-relative ``dest``, never outside the project.

    The check is the rename's own path: dest's parent is opened one
    component at a time from ``root_fd`` without following symlinks (made
    where missing), and the rename goes into that open directory.  A
    directory swapped for a symlink at any moment cannot redirect it: the
    symlink is refused, or (when it points inside the project) resolved and
    walked again the same way.
    """
    parent_fd, name = _open_parent(root_fd, root, dest)
    try:
        os.replace(source, name, dst_dir_fd=parent_fd)
    finally:
        os.close(parent_fd)


def _open_parent(root_fd: int, root: str, dest: str) -> tuple[int, str]:
    """An fd of dest's parent directory, inside the project, and dest's name."""
    rel = check_relative(dest)
    for _ in range(MAX_LINK_HOPS):
        parts = rel.split("/")
        fd = os.dup(root_fd)
        try:
            for i, part in enumerate(parts[:-1]):
                fd = _open_dir(fd, part)
        except _Symlink:
            rel = _through_link(root, dest, "/".join(parts[:i + 1]), parts[i + 1:])
            continue
        return fd, parts[-1]
    raise PathEscapesWorkspace(f"output {dest!r}: more than {MAX_LINK_HOPS} symlinked "
                               "directories on its path")


class _Symlink(Exception):
    """A component of an output's path is a symlink (not followed)."""


def _open_dir(fd: int, part: str) -> int:
    """Open (making it if missing) directory ``part`` in ``fd``; ``fd`` is closed."""
    try:
        try:
            return os.open(part, DIR_FLAGS, dir_fd=fd)
        except FileNotFoundError:
            try:
                os.mkdir(part, dir_fd=fd)
            except FileExistsError:
                pass                   # made meanwhile: open it as it is now
            return os.open(part, DIR_FLAGS, dir_fd=fd)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR) and _is_link(fd, part):
                raise _Symlink() from None
            raise
    finally:
        os.close(fd)


def _is_link(fd: int, part: str) -> bool:
    try:
        return stat.S_ISLNK(os.stat(part, dir_fd=fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


def _through_link(root: str, dest: str, link: str, rest: list[str]) -> str:
    """The project-relative path of ``dest`` once symlink ``link`` (a
    directory on its path) is resolved; refused if it leaves the project."""
    real_root = os.path.realpath(root)
    target = os.path.realpath(os.path.join(root, link))
    if target != real_root and not target.startswith(real_root + os.sep):
        raise PathEscapesWorkspace(
            f"output {dest!r} would be written outside the project: {link!r} is a "
            f"symlink to {target}")
    rel = check_relative(os.path.join(os.path.relpath(target, real_root), *rest))
    if in_state_dir(rel):
        raise PathEscapesWorkspace(f"output {dest!r} would be written inside {STATE_DIR}/: "
                                   f"{link!r} is a symlink to {target}")
    return rel


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
