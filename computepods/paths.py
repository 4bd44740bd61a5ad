"""Where a project is: its file, its root, and every path in its state directory.

Every file computepods keeps in a project lives under ``.computepods/`` and
is named here once, relative to the project root; :func:`atomic_write` is
the one way such a file is replaced whole.  Kept apart from the project
loader so that the thin client finds a running pod importing nothing more.
"""
from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path
from typing import Iterator

import computepods.errors as errors

PROJECT_FILE = "computepods.toml"
STATE_DIR = ".computepods"
STATE_DB = f"{STATE_DIR}/state.db"          # records of files and steps (state/db.py)
PLANS_DIR = f"{STATE_DIR}/plans"            # cached plans (planning/plancache.py)
LOGS_DIR = f"{STATE_DIR}/logs"              # steps' kept stdout/stderr (chef/slot.py)
SCRATCH_DIR = f"{STATE_DIR}/scratch"        # each slot's scratch space (chef/scratch.py)
LOCK_FILE = f"{STATE_DIR}/lock"             # one build at a time (state/lock.py)
POD_FILE = f"{STATE_DIR}/pod.json"          # a running pod's pid and socket (pod/handoff.py)
POD_ADDRESS = f"{STATE_DIR}/pod.addr"       # the same, as lines, for the thin client (cli/quick.py)
POD_LOG = f"{STATE_DIR}/pod.log"            # a background pod's output (pod/background.py)
POD_STARTING = f"{STATE_DIR}/pod.start"     # the client starting a background pod (its pid)
CRON_FILE = f"{STATE_DIR}/cron.json"        # when each schedule was last checked
NATS_DIR = f"{STATE_DIR}/nats"              # the embedded nats-server's config and store
BUS_USERS = f"{NATS_DIR}/users.json"        # its users' passwords, 0600 (bus/auth.py)
HTTP_LOG = f"{STATE_DIR}/http.log"          # gunicorn's log under cpod up


def in_state_dir(rel: str) -> bool:
    """True for a project path inside the state directory (never an output
    or a dependency: it is computepods' own)."""
    return rel == STATE_DIR or rel.startswith(STATE_DIR + "/")


def mount_of(path: str | os.PathLike) -> str:
    """The mount point of the filesystem holding ``path`` (or its nearest
    existing parent): the disk a full-disk message names."""
    here = os.path.realpath(path)
    while not os.path.exists(here) and os.path.dirname(here) != here:
        here = os.path.dirname(here)
    mounts = _mount_points()
    if mounts:
        return max((m for m in mounts if here == m or here.startswith(m.rstrip("/") + "/")),
                   key=len, default="/")
    try:
        dev = os.stat(here).st_dev
        while os.path.dirname(here) != here and os.stat(os.path.dirname(here)).st_dev == dev:
            here = os.path.dirname(here)
    except OSError:
        pass
    return here


def _mount_points() -> list[str]:
    """Linux's list of mount points (a bind mount shares its parent's
    st_dev, so only this list names it); empty where there is none."""
    try:
        with open("/proc/self/mounts", "rb") as f:
            lines = f.read().decode("utf-8", "surrogateescape").splitlines()
    except OSError:
        return []
    import re
    # Spaces, tabs and backslashes in a mount point are octal escapes.
    return [re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[1])
            for fields in map(str.split, lines) if len(fields) > 1]


def disk_full(path: str | os.PathLike, what: str, err: int = errno.ENOSPC) -> errors.DiskFull:
    """The error for a write to ``path`` that found no space: it names the
    disk (its mount point and what is free) and ``what`` was not written
    (a noun: "the commit journal of outputs a.o, b.o")."""
    path = os.path.abspath(path)
    mount = mount_of(path)
    try:
        st = os.statvfs(mount)
        free = f", {st.f_bavail * st.f_frsize} bytes free"
    except OSError:
        free = ""
    cause = "over its quota" if err == errno.EDQUOT else "full"
    return errors.DiskFull(f"the disk holding {path} is {cause} (the filesystem mounted at "
                           f"{mount}{free}); not written: {what}; free some space and "
                           "try again", err)


def not_writable(path: str | os.PathLike, what: str, exc: OSError) -> errors.NotWritable:
    """The error for a write to ``path`` that the filesystem refused: a
    permission or read-only problem, never a corrupt file."""
    where = exc.filename or path
    if exc.errno == errno.EROFS:
        why, fix = "is on a read-only filesystem", f"{mount_of(path)} is mounted read-only"
    else:
        why = "cannot be written by this user"
        fix = f"check the permissions of {os.path.dirname(os.path.abspath(path))}"
    return errors.NotWritable(f"{where} {why} ({exc.strerror}); not written: {what};"
                              f" a permission problem: {fix}", exc.errno or errno.EACCES)


def write_error(exc: OSError, path: str | os.PathLike, what: str) -> OSError:
    """``exc`` as the error a user can act on: a full disk, a path not
    writable, or ``exc`` itself."""
    if isinstance(exc, (errors.DiskFull, errors.NotWritable)):
        return exc
    if exc.errno in errors.DISK_FULL_ERRNOS:
        return disk_full(path, what, exc.errno)
    if exc.errno in errors.NOT_WRITABLE_ERRNOS:
        return not_writable(path, what, exc)
    return exc


@contextlib.contextmanager
def writing(path: str | os.PathLike, what: str) -> Iterator[None]:
    """Turn a full disk or a refused write in the body into a clear error
    naming ``path``'s disk and ``what`` was not written."""
    try:
        yield
    except OSError as exc:
        clear = write_error(exc, path, what)
        if clear is exc:
            raise
        raise clear from exc


def atomic_write(path: str | os.PathLike, data: bytes, *, durable: bool = False,
                 mode: int = 0o644, what: str | None = None) -> None:
    """Replace ``path`` with ``data`` so that a reader (or a crash) sees the
    old file or the new one, whole: a temp file in the same directory, then
    one rename.  ``durable`` adds an fsync before the rename, for a file that
    must survive a power cut (the commit journal); the temp file is removed
    if anything fails; a full disk is a :class:`~computepods.errors.DiskFull`
    naming ``what`` (by default the file) was not written."""
    path = os.fspath(path)
    with writing(path, what or path):
        _atomic_write(path, data, durable, mode)


def _atomic_write(path: str, data: bytes, durable: bool, mode: int) -> None:
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
    with writing(state, f"computepods' state directory {STATE_DIR}/"):
        state.mkdir(exist_ok=True)
        ignore = state / ".gitignore"
        if not ignore.exists():
            ignore.write_text("*\n")
    return state
