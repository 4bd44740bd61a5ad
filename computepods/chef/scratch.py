"""Scratch space for a step: where its command writes, away from the tree.

A step's outputs land in its own directory under ``.computepods/scratch/``
(same filesystem as the tree, so committing them is a rename), and only a
successful step's outputs move into the tree (``commit.py``).

Two ways for a command to write there:

* it names its outputs through ``{out}``: they expand to
  ``scratch/out/<output>`` (``scratch_out_path``) and the command runs in
  the project root — no extra cost;
* it writes next to its inputs (``pdflatex paper.tex`` writes ``paper.aux``
  in its working directory): it runs in a *view*, ``scratch/view``, a
  directory that looks like the project — symlinks to the tree's entries —
  except that every directory on the path to an output is a real directory
  and outputs are never links, so a write lands in the view, not the tree.
  A TeX run may write beside any file it reads (an ``\\include``d chapter's
  ``.aux``, before any record names it), so below its working directory
  every directory is real (``real_below``).

docs/architecture.md §10 mentions an overlay mount in a user namespace as the faster
view where namespaces are allowed; this module does the portable symlink
view only.
"""
from __future__ import annotations

import fnmatch
import functools
import hashlib
import os
import re
import shutil
from pathlib import Path
from typing import Iterable, Sequence

from computepods.errors import PathEscapesWorkspace
from computepods.paths import SCRATCH_DIR, STATE_DIR, writing

OUT_DIR = "out"            # scratch/out/<output>: outputs named through {out}
VIEW_DIR = "view"          # scratch/view: the symlink view of the project
MAX_NAME_CHARS = 80        # of the readable part of a scratch dir's name
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@functools.lru_cache(maxsize=1 << 16)
def check_relative(path: str) -> str:
    """``path`` normalised, if it is a relative path that stays below its base.

    Raises PathEscapesWorkspace for absolute paths, ``..`` that leaves the
    base, empty paths and NUL bytes: a rule or a message must not make us
    write outside the project.  Cached: a step's paths are checked several
    times on their way (message, scratch, commit).
    """
    norm = os.path.normpath(path) if path else ""
    if (not path or "\0" in path or os.path.isabs(path) or norm == "."
            or norm == ".." or norm.startswith("../")):
        raise PathEscapesWorkspace(f"path {path!r} is not inside the project")
    return norm


def scratch_name(step_id: str) -> str:
    """A directory name for a step: readable, unique and the same every run."""
    readable = _UNSAFE.sub("_", step_id)[:MAX_NAME_CHARS]
    return f"{readable}-{hashlib.sha1(step_id.encode()).hexdigest()[:8]}"


def make_scratch(root: Path, step_id: str) -> Path:
    """A fresh, empty scratch directory for ``step_id`` (an old one is removed).

    Call it only after ``commit.roll_forward`` ran at startup: an old
    directory that still holds a commit journal is discarded here.
    """
    path = Path(root, SCRATCH_DIR, scratch_name(step_id))
    shutil.rmtree(path, ignore_errors=True)
    with writing(path, f"the scratch directory of step {step_id}"):
        path.mkdir(parents=True)
    return path


def scratch_out_path(scratch: Path, output: str) -> Path:
    """Where a command writes ``output`` when it names it through ``{out}``.

    The parent directory is created, so the command can simply write there.
    """
    path = scratch / OUT_DIR / check_relative(output)
    with writing(path.parent, f"the scratch directory of output {output}"):
        path.parent.mkdir(parents=True, exist_ok=True)
    return path


def out_moves(scratch: Path, outputs: Iterable[str]) -> list[tuple[str, str]]:
    """What to commit from ``scratch/out``: (relative to scratch, project dest)
    for each output the command wrote."""
    moves = []
    for output in outputs:
        rel = os.path.join(OUT_DIR, check_relative(output))
        if os.path.lexists(scratch / rel):
            moves.append((rel, output))
    return moves


def _parent_dirs(paths: Iterable[str]) -> set[str]:
    """Every directory on the way to each path, "" being the top."""
    dirs = {""}
    for path in paths:
        parent = os.path.dirname(path)
        while parent and parent not in dirs:
            dirs.add(parent)
            parent = os.path.dirname(parent)
    return dirs


def _ignored(rel: str, ignore: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(rel, pattern) for pattern in ignore)


def make_view(root: Path, scratch: Path, outputs: Sequence[str], copy_in: Sequence[str] = (),
              ignore: Sequence[str] = (STATE_DIR, ".git"), real_below: str | None = None) -> Path:
    """Build ``scratch/view``: the project, as symlinks, with room for outputs.

    Every directory on the path to an output (or a ``copy_in`` file) is a
    real directory whose other entries are symlinks to the tree; outputs
    themselves are left absent, so the command creates them as real files
    in the view and never writes through a link into the tree.  ``copy_in``
    files (the previous pass's ``.aux`` in a cycle) are copied in as real
    files when they exist in the tree.  With ``real_below`` (a project
    directory, "" the root), so is every directory below it: a command that
    writes files no one can name yet (TeX: its working directory and below,
    as ``openout_any = p`` allows) creates them in the view.  ``ignore``
    holds fnmatch patterns of project paths left out of the view.  Returns
    the view's root.
    """
    root_s = os.path.abspath(root)
    view = scratch / VIEW_DIR
    shutil.rmtree(view, ignore_errors=True)
    outputs = [check_relative(o) for o in outputs]
    copy_in = [check_relative(c) for c in copy_in]
    real_dirs = _parent_dirs(outputs + copy_in)
    if real_below is not None:
        real_dirs |= _tree_dirs(root_s, real_below, ignore)
    not_linked = real_dirs | set(outputs) | set(copy_in)
    with writing(view, "the step's view of the project (in its scratch directory)"):
        for rel_dir in sorted(real_dirs):          # a parent sorts before its children
            _fill_real_dir(root_s, os.path.join(view, rel_dir), rel_dir, not_linked, ignore)
        for rel in copy_in:
            src = os.path.join(root_s, rel)
            if os.path.isfile(src):
                shutil.copy2(src, view / rel)
    return view


def _tree_dirs(root: str, top: str, ignore: Sequence[str]) -> set[str]:
    """``top`` and every real directory below it in the tree (not links, nor
    ignored ones), with the directories on the way to ``top``."""
    top = check_relative(top) if top else ""
    found = _parent_dirs([os.path.join(top, "x")])
    todo = [top]
    while todo:
        rel_dir = todo.pop()
        try:
            entries = list(os.scandir(os.path.join(root, rel_dir)))
        except (FileNotFoundError, NotADirectoryError):
            continue
        for entry in entries:
            rel = os.path.join(rel_dir, entry.name) if rel_dir else entry.name
            if entry.is_dir(follow_symlinks=False) and not _ignored(rel, ignore):
                found.add(rel)
                todo.append(rel)
    return found


def _fill_real_dir(root: str, target: str, rel_dir: str, not_linked: set[str],
                   ignore: Sequence[str]) -> None:
    """Make ``target`` a real directory holding links to the tree's ``rel_dir``."""
    os.makedirs(target, exist_ok=True)
    source = os.path.join(root, rel_dir)
    try:
        names = os.listdir(source)
    except (FileNotFoundError, NotADirectoryError):
        return                                 # an output directory not made yet
    for name in names:
        rel = os.path.join(rel_dir, name) if rel_dir else name
        if rel not in not_linked and not _ignored(rel, ignore):
            os.symlink(os.path.join(source, name), os.path.join(target, name))


def view_outputs(view: Path, outputs: Iterable[str]) -> list[tuple[str, str]]:
    """What to commit from a view: (relative to scratch, project dest) for each
    output that exists in the view.

    A discovered output that is still a link was a file in the tree that no
    record named (a ``paper.log`` left by a run by hand), and the command
    wrote through the link into it: it is copied into the view, so the
    commit moves a file over the tree's, never a link to itself."""
    moves = []
    for output in outputs:
        rel = check_relative(output)
        path = view / rel
        if os.path.islink(path):
            target = os.path.realpath(path)
            os.unlink(path)
            if not os.path.isfile(target):
                continue
            shutil.copy2(target, path)
        if os.path.lexists(path):
            moves.append((os.path.join(view.name, rel), output))
    return moves


def new_files_in_view(view: Path) -> list[str]:
    """Real files in the view (not links into the tree), as project paths, sorted.

    These are what the command wrote (plus the ``copy_in`` files, which the
    caller knows): the candidates for discovered outputs (a ``.toc``).
    """
    found: list[str] = []
    _collect_real_files(os.fspath(view), "", found)
    return sorted(found)


def _collect_real_files(directory: str, rel_dir: str, found: list[str]) -> None:
    with os.scandir(directory) as entries:
        for entry in entries:
            rel = os.path.join(rel_dir, entry.name) if rel_dir else entry.name
            if entry.is_dir(follow_symlinks=False):
                _collect_real_files(entry.path, rel, found)
            elif entry.is_file(follow_symlinks=False):
                found.append(rel)


def make_sparse_view(root: Path, scratch: Path, visible: Iterable[str], outputs: Sequence[str],
                     copy_in: Sequence[str] = (), cwd: str = "") -> Path:
    """Build ``scratch/view`` holding only the ``visible`` files of the tree.

    For a step from another pod (federation): whatever else its tree holds
    (files earlier steps listed) stays out of sight, so the step reads only
    what its run message declared.  Files are hard links to the tree's (a
    snapshot: a later materialise that replaces one does not change it under
    the running step); ``copy_in`` files are copies it may rewrite; outputs
    are absent, their directories real.  A visible file not in the tree
    (made inside a cycle, missing on its first pass) is left out.
    """
    root_s = os.path.abspath(root)
    view = scratch / VIEW_DIR
    shutil.rmtree(view, ignore_errors=True)
    outputs = {check_relative(o) for o in outputs}
    copies = {check_relative(c) for c in copy_in}
    with writing(view, "the step's view of its files (in its scratch directory)"):
        for rel_dir in sorted(_parent_dirs(outputs)):
            os.makedirs(os.path.join(view, rel_dir), exist_ok=True)
        if cwd:
            os.makedirs(os.path.join(view, check_relative(cwd)), exist_ok=True)
        for rel in sorted({check_relative(v) for v in visible} | copies):
            src = os.path.join(root_s, rel)
            if rel in outputs or not os.path.isfile(src):
                continue
            dest = os.path.join(view, rel)
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            if rel in copies:
                shutil.copy2(src, dest)
                continue
            try:
                os.link(src, dest, follow_symlinks=False)
            except OSError:
                shutil.copy2(src, dest)
    return view
