"""Where a project is: its file, its root, and every path in its state directory.

Every file computepods keeps in a project lives under ``.computepods/`` and
is named here once, relative to the project root; :func:`atomic_write` is
the one way such a file is replaced whole.  Kept apart from the project
loader so that the thin client finds a running pod importing nothing more.
"""
from __future__ import annotations

import os
from pathlib import Path

from computepods import errors

PROJECT_FILE = "computepods.toml"
STATE_DIR = ".computepods"
STATE_DB = f"{STATE_DIR}/state.db"          # records of files and steps (state/db.py)
PLANS_DIR = f"{STATE_DIR}/plans"            # cached plans (planning/plancache.py)
LOGS_DIR = f"{STATE_DIR}/logs"              # steps' kept stdout/stderr (chef/slot.py)
SCRATCH_DIR = f"{STATE_DIR}/scratch"        # each slot's scratch space (chef/scratch.py)
LOCK_FILE = f"{STATE_DIR}/lock"             # one build at a time (state/lock.py)
POD_FILE = f"{STATE_DIR}/pod.json"          # a running pod's pid and socket (pod/handoff.py)
CRON_FILE = f"{STATE_DIR}/cron.json"        # when each schedule was last checked
NATS_DIR = f"{STATE_DIR}/nats"              # the embedded nats-server's config and store
BUS_USERS = f"{NATS_DIR}/users.json"        # its users' passwords, 0600 (bus/auth.py)
HTTP_LOG = f"{STATE_DIR}/http.log"          # gunicorn's log under cpod up


def in_state_dir(rel: str) -> bool:
    """True for a project path inside the state directory (never an output
    or a dependency: it is computepods' own)."""
    return rel == STATE_DIR or rel.startswith(STATE_DIR + "/")


def atomic_write(path: str | os.PathLike, data: bytes, *, durable: bool = False,
                 mode: int = 0o644) -> None:
    """Replace ``path`` with ``data`` so that a reader (or a crash) sees the
    old file or the new one, whole: a temp file in the same directory, then
    one rename.  ``durable`` adds an fsync before the rename, for a file that
    must survive a power cut (the commit journal); the temp file is removed
    if anything fails."""
    path = os.fspath(path)
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def find_project_root(start: Path) -> Path:
    """The nearest directory at or above ``start`` that holds the project file.

    Like git finding its repository, so cpod works from any subdirectory.
    """
    here = Path(start).resolve()
    if not here.is_dir():
        here = here.parent
    for folder in (here, *here.parents):
        if (folder / PROJECT_FILE).is_file():
            return folder
    raise errors.ProjectNotFound(
        f"no {PROJECT_FILE} found in {start} or any directory above it")


def prepare_state_dir(root: Path) -> Path:
    """`.computepods/` with a .gitignore of `*`, as docs/architecture.md §2 says."""
    state = root / STATE_DIR
    state.mkdir(exist_ok=True)
    ignore = state / ".gitignore"
    if not ignore.exists():
        ignore.write_text("*\n")
    return state
