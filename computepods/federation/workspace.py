"""A chef pod's workspace: one tree per origin pod, materialised by hash.

A chef pod holds no project.  The steps another pod (the *origin*) sends it
are built in a tree of their own under the workspace, one per origin,
holding the files those steps read, put there by sha256 from the pod's
content store (:meth:`Workspace.materialise`); the outputs they commit land
there too.  The workspace also holds the pod's content store and its keys::

    <root>/lock              flock'd: one chef pod per workspace (holder's pid)
    <root>/trees/<origin>/   a tree per origin pod (name sanitised, hashed)
    <root>/store/            the pod's content store (transfer/store.py)
    <root>/keys/             its SFTP host and client keys (transfer/keys.py)

A file in a tree that no step lists any more is left where it is: a tree is
a cache, and a remote step never sees it, since each runs in a view holding
only the files its run message lists (chef/scratch.py: make_sparse_view).
So a stale file is never read as an undeclared input.  Two steps that list
one path with different contents (an old build's step still starting while
the next build's runs) each see their own: a view is taken under the tree's
lock (:meth:`Workspace.holding`), right after its files were checked, and a
hard link keeps the inode it was taken with.
"""
from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import re
import shutil
import stat
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

from computepods.chef.commit import place
from computepods.chef.scratch import check_relative
from computepods.errors import ComputePodsError, PathEscapesWorkspace, WorkspaceBusy
from computepods.paths import SCRATCH_DIR, STATE_DIR, in_state_dir, writing
from computepods.state.hashing import sha256_file

CACHE_NAME = "computepods"         # under $XDG_CACHE_HOME (default ~/.cache)
WORKSPACE_NAME = "workspace"
LOCK_NAME = "lock"
TREES_DIR = "trees"
STORE_DIR = "store"
KEYS_DIR = "keys"
INCOMING_DIR = f"{STATE_DIR}/incoming"   # in a tree: files on their way in
MAX_ORIGIN_CHARS = 64              # of the readable part of a tree's name
READ_ONLY = 0o444                  # a materialised file is the store's, never written
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_SHA = re.compile(r"[0-9a-f]{64}")

Fetch = Callable[[str, str], Path]     # fetch(pod, sha) -> a local file holding that content


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/computepods``; ``~/.cache`` when it is unset or
    relative (the XDG spec says to ignore a relative one)."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(base):
        base = os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base, CACHE_NAME)


def default_workspace() -> Path:
    return cache_dir() / WORKSPACE_NAME


def tree_name(origin: str) -> str:
    """A directory name for an origin pod's tree: readable, and distinct for
    distinct pod ids (a bus string may hold '/', '..' or NUL: never a path)."""
    if not origin:
        raise ValueError("a tree needs an origin pod id")
    readable = _UNSAFE.sub("_", origin)[:MAX_ORIGIN_CHARS].lstrip(".") or "pod"
    return f"{readable}-{hashlib.sha256(origin.encode()).hexdigest()[:12]}"


def check_sha(sha: str) -> str:
    if not isinstance(sha, str) or not _SHA.fullmatch(sha):
        raise ValueError(f"{sha!r} is not a sha256 (64 lower-case hex digits)")
    return sha


@dataclass
class Materialised:
    """What :meth:`Workspace.materialise` did for one step."""
    placed: int = 0            # files fetched and put at their paths
    placed_bytes: int = 0
    kept: int = 0              # files already there with their sha, left alone


class _TreeIndex:
    """What a tree holds that this process put there or checked: path ->
    (sha, inode, size, mtime_ns).  A file whose stat changed since is hashed
    again before it is trusted."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.known: dict[str, tuple[str, int, int, int]] = {}

    def current(self, full: str, rel: str, sha: str) -> bool:
        try:
            st = os.lstat(full)
        except FileNotFoundError:
            return False
        if not stat.S_ISREG(st.st_mode):
            return False
        key = (st.st_ino, st.st_size, st.st_mtime_ns)
        entry = self.known.get(rel)
        if entry is None or entry[1:] != key:
            entry = (sha256_file(full), *key)        # once per file per process
            self.known[rel] = entry
        return entry[0] == sha

    def note(self, full: str, rel: str, sha: str) -> None:
        st = os.lstat(full)
        self.known[rel] = (sha, st.st_ino, st.st_size, st.st_mtime_ns)


class Workspace:
    """A chef pod's workspace at ``root``; :meth:`acquire` before use."""

    def __init__(self, root: Path):
        self.root = Path(root).absolute()
        self.store_dir = self.root / STORE_DIR
        self.keys_dir = self.root / KEYS_DIR
        self._fd: int | None = None
        self._indexes: dict[str, _TreeIndex] = {}
        self._lock = threading.Lock()

    # -- one chef pod per workspace ----------------------------------------------
    def acquire(self) -> "Workspace":
        """Take the workspace's flock (dropped by the kernel if we die);
        WorkspaceBusy naming the holder's pid if another process has it."""
        with writing(self.root, f"the chef workspace {self.root}"):
            self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(self.root / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise WorkspaceBusy(str(self.root), holder) from None
        os.ftruncate(fd, 0)
        try:
            os.pwrite(fd, json.dumps({"pid": os.getpid(), "command": " ".join(sys.argv),
                                      "since": time.time()}).encode(), 0)
        except OSError:
            pass                        # a full disk loses the note, not the lock
        self._fd = fd
        self._clear_scratch()
        return self

    def _clear_scratch(self) -> None:
        """Drop what an earlier holder left half-done in its trees (scratch,
        files on their way in): nothing there needs rolling forward, since
        the origin runs again a step whose result it never had."""
        trees = self.root / TREES_DIR
        for name in (os.listdir(trees) if trees.is_dir() else ()):
            for leftover in (SCRATCH_DIR, INCOMING_DIR):
                shutil.rmtree(trees / name / leftover, ignore_errors=True)

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "Workspace":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()

    # -- trees ------------------------------------------------------------------
    def tree(self, origin: str) -> Path:
        """The tree of steps from pod ``origin`` (made if missing)."""
        path = self.root / TREES_DIR / tree_name(origin)
        with writing(path, f"the tree of pod {origin} in the workspace"):
            path.mkdir(parents=True, exist_ok=True)
        return path

    def materialise(self, tree: Path, files: Mapping[str, str], fetch: Fetch,
                    origin: str) -> Materialised:
        """Put each file of ``files`` (path -> sha256) at its path in ``tree``.

        A file already there with that sha is left alone; any other is
        fetched from ``origin`` (``fetch(origin, sha)`` -> a local file) and
        hard-linked in (copied, read-only, across filesystems), replacing
        what was there by one rename.  A path that is absolute, climbs out
        with ``..``, lies in the tree's ``.computepods/`` or passes through a
        symlink is refused (PathEscapesWorkspace) before anything is
        fetched; a failed fetch raises what ``fetch`` raised (TransferError).
        """
        checked = {_tree_path(tree, path): check_sha(sha) for path, sha in files.items()}
        index = self._index(tree)
        done = Materialised()
        tree_s = os.path.abspath(tree)
        for rel, sha in sorted(checked.items()):
            full = os.path.join(tree_s, rel)
            with index.lock:
                if index.current(full, rel, sha):
                    done.kept += 1
                    continue
            source = fetch(origin, sha)        # outside the lock: slots fetch in parallel
            with index.lock:
                if index.current(full, rel, sha):
                    done.kept += 1
                    continue
                done.placed_bytes += _put(tree_s, Path(source), rel)
                index.note(full, rel, sha)
                done.placed += 1
        return done

    def holding(self, tree: Path) -> "threading.RLock":
        """The lock of ``tree``'s files: while it is held no materialise
        replaces one (a step takes its view under it, so the files it sees are
        those it listed, even if a step of another build lists other
        contents for one path)."""
        return self._index(tree).lock

    def _index(self, tree: Path) -> _TreeIndex:
        with self._lock:
            return self._indexes.setdefault(os.path.abspath(tree), _TreeIndex())


def _holder(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0) or b"{}")
        return f"process {info['pid']} ({info.get('command', '?')})"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"


def _tree_path(tree: Path, path: str) -> str:
    """``path`` normalised, if a step's file may be put there in ``tree``:
    relative, inside the tree, outside its ``.computepods/``, and with no
    symlink on the way (a tree holds only what we put there)."""
    rel = check_relative(path)
    if in_state_dir(rel):
        raise PathEscapesWorkspace(f"file {path!r} is inside {STATE_DIR}/, which belongs "
                                   "to computepods")
    parts = rel.split("/")
    here = os.path.abspath(tree)
    for i, part in enumerate(parts):
        here = os.path.join(here, part)
        try:
            st = os.lstat(here)
        except FileNotFoundError:
            break
        if stat.S_ISLNK(st.st_mode) and i < len(parts) - 1:
            raise PathEscapesWorkspace(f"file {path!r}: {'/'.join(parts[:i + 1])!r} is a "
                                       "symlink in the workspace tree; refused")
        if i < len(parts) - 1 and not stat.S_ISDIR(st.st_mode):
            raise ComputePodsError(f"file {path!r}: {'/'.join(parts[:i + 1])!r} is a file "
                                   "in the workspace tree, not a directory")
        if i == len(parts) - 1 and stat.S_ISDIR(st.st_mode):
            raise ComputePodsError(f"file {path!r} is a directory in the workspace tree")
    return rel


def _put(tree: str, source: Path, rel: str) -> int:
    """Link (or copy) ``source`` to ``rel`` in ``tree`` by one rename; its size."""
    incoming = os.path.join(tree, INCOMING_DIR)
    with writing(incoming, f"file {rel} of the workspace tree {tree}"):
        os.makedirs(incoming, exist_ok=True)
        temp = os.path.join(incoming, f"{os.getpid()}-{threading.get_ident()}")
        if os.path.lexists(temp):
            os.unlink(temp)
        try:
            os.link(source, temp)
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.EACCES):
                raise
            shutil.copyfile(source, temp)
            os.chmod(temp, READ_ONLY)
        size = os.stat(temp).st_size
        root_fd = os.open(tree, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            place(root_fd, tree, temp, rel)
        except BaseException:
            if os.path.lexists(temp):
                os.unlink(temp)
            raise
        finally:
            os.close(root_fd)
    return size
