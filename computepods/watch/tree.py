"""A recursive inotify watch of a tree, turned into per-file changes.

inotify watches one directory at a time, so :class:`InotifyTree` adds a
watch to every directory, and to each new one as it appears, *then* scans
it: files made in a new directory before its watch was in place are found
by the scan, and files made after it by their events (a file seen both ways
is one change: the debouncer keys by path).

:meth:`InotifyTree.apply` reads a batch of raw events and calls a sink (the
:class:`~computepods.watch.debounce.Debouncer`) with path-level changes:
``changed``, ``closed``, ``removed``, ``moved``, ``removed_tree`` and
``rescanned``.  A renamed directory is handled as the removal of the old
subtree and the arrival of a new one (its watches are dropped and the new
place is watched and scanned), so its files are reported as deleted and
created.  On ``IN_Q_OVERFLOW`` events were lost: the caller calls
:meth:`InotifyTree.rescan`, which watches every directory again and hands
the sink the whole tree to compare with what it knew.

``.git`` and ``.computepods`` (the state directory, where chefs' scratch
outputs are written before their commit) are never watched, nor anything
the project's ``ignore`` patterns match, nor a name that is not UTF-8
(a warning names it once).  No threads here: the FSWatcher's
reader thread reads the descriptor (:meth:`InotifyTree.read_events`).
"""
from __future__ import annotations

import array
import errno
import fcntl
import logging
import os
import termios
from pathlib import Path
from typing import Iterable

from inotify_simple import INotify, flags, parse_events

from computepods.watch.debounce import FileStat, lstat_file
from computepods.errors import WatchError
from computepods.paths import STATE_DIR
from computepods.project.checks import NOT_UTF8, shown, undecodable
from computepods.project.patterns import PathPatterns

log = logging.getLogger("computepods.watcher")

ALWAYS_IGNORED = frozenset({".git", STATE_DIR})      # names, at any depth
WATCH_MASK = (flags.CREATE | flags.MODIFY | flags.ATTRIB | flags.CLOSE_WRITE
              | flags.MOVED_FROM | flags.MOVED_TO | flags.DELETE | flags.DELETE_SELF
              | flags.ONLYDIR | flags.DONT_FOLLOW | flags.EXCL_UNLINK)
READ_MAX = 1 << 20            # bytes read from the descriptor at once
COOKIES_KEPT = 4096           # unpaired rename halves remembered across batches
WARNED_KEPT = 1024            # names not UTF-8 remembered, so each is told once

OVERFLOW = "overflow"         # what apply() returns when events were lost ...
GONE = "gone"                 # ... or when the watched root itself went away


class InotifyTree:
    """Watches of every directory under ``root``; see the module doc."""

    def __init__(self, root: Path, ignore: PathPatterns | Iterable[str] = ()):
        self.root = Path(root).resolve()
        if not self.root.is_dir():
            raise WatchError(f"cannot watch {root}: not a directory")
        self.ignore = ignore if isinstance(ignore, PathPatterns) else PathPatterns(ignore)
        self.inotify = INotify(nonblocking=True)
        self.dirs: dict[int, str] = {}        # watch descriptor -> directory ("" is the root)
        self.wds: dict[str, int] = {}         # directory -> watch descriptor
        self._moves: dict[int, str] = {}      # rename cookie -> the path renamed away
        self._warned: set[str] = set()        # names not UTF-8, each told once
        self.closed = False

    # -- the descriptor ----------------------------------------------------------------
    def fileno(self) -> int:
        return self.inotify.fileno()

    def unread(self) -> int:
        """Bytes of events the kernel holds for us (0 once closed)."""
        if self.closed:
            return 0
        buf = array.array("i", [0])
        try:
            fcntl.ioctl(self.fileno(), termios.FIONREAD, buf, True)
        except OSError:
            return 0
        return buf[0]

    def read_events(self) -> list:
        """What the kernel has queued, parsed; [] if nothing (never blocks)."""
        try:
            data = os.read(self.fileno(), READ_MAX)
        except BlockingIOError:
            return []
        return parse_events(data)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.inotify.close()

    # -- paths -------------------------------------------------------------------------
    def stat(self, rel: str) -> FileStat | None:
        return lstat_file(self.root / rel)

    def ignored(self, rel: str, is_dir: bool) -> bool:
        name = rel.rsplit("/", 1)[-1]
        return (name in ALWAYS_IGNORED or self.ignore.matches(rel, is_dir)
                or self._refused(rel))

    def _refused(self, rel: str) -> bool:
        """A name that is not UTF-8 is never reported (it could be neither
        recorded nor sent): the user is told once, naming it, to rename it
        (docs/architecture.md §3)."""
        if not undecodable(rel):
            return False
        if rel not in self._warned and len(self._warned) < WARNED_KEPT:
            self._warned.add(rel)
            log.warning("watcher: ignoring %s: it %s", shown(rel), NOT_UTF8)
        return True

    # -- watching and scanning ---------------------------------------------------------
    def watch_tree(self, top: str = "", watched: set[str] | None = None) -> dict[str, FileStat]:
        """Watch ``top`` and every directory below it, then list them: the
        files found (and, into ``watched``, the directories).

        Each directory's watch is added before it is listed, so a file made
        at any moment is either listed or seen by an event.
        """
        found: dict[str, FileStat] = {}
        stack = [top]
        while stack:
            rel = stack.pop()
            if not self._watch(rel):
                continue
            if watched is not None:
                watched.add(rel)
            try:
                entries = list(os.scandir(self.root / rel if rel else self.root))
            except (FileNotFoundError, NotADirectoryError):
                continue                     # gone again: its deletion event follows
            except PermissionError as exc:
                log.warning("watcher: cannot list %s: %s", self.root / rel, exc.strerror)
                continue
            for entry in entries:
                sub = f"{rel}/{entry.name}" if rel else entry.name
                try:
                    is_dir = entry.is_dir(follow_symlinks=False)
                except OSError:
                    continue
                if self.ignored(sub, is_dir):
                    continue
                if is_dir:
                    stack.append(sub)
                else:
                    st = lstat_file(entry.path)
                    if st is not None:
                        found[sub] = st
        return found

    def _watch(self, rel: str) -> bool:
        path = self.root / rel if rel else self.root
        try:
            wd = self.inotify.add_watch(path, WATCH_MASK)
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise WatchError(
                    f"cannot watch {path}: the inotify watch limit is reached "
                    f"({len(self.wds)} directories watched here); raise "
                    f"/proc/sys/fs/inotify/max_user_watches or add `ignore` patterns") from None
            if exc.errno in (errno.ENOENT, errno.ENOTDIR):
                return False                 # gone before we got to it
            if rel == "":
                raise WatchError(f"cannot watch {path}: {exc.strerror}") from None
            log.warning("watcher: cannot watch %s: %s", path, exc.strerror)
            return False
        old = self.dirs.get(wd)
        if old is not None and old != rel:
            self.wds.pop(old, None)
        self.dirs[wd] = rel
        self.wds[rel] = wd
        return True

    def unwatch_tree(self, top: str) -> None:
        """Forget the watches of ``top`` and below (renamed away or deleted)."""
        below = top + "/"
        for rel in [d for d in self.wds if d == top or d.startswith(below)]:
            wd = self.wds.pop(rel)
            self.dirs.pop(wd, None)
            try:
                self.inotify.rm_watch(wd)
            except OSError:
                pass                          # the kernel dropped it already (deleted)

    def rescan(self, sink, now: float) -> None:
        """After lost events: watch every directory again and let the sink
        compare the whole tree with what it knew."""
        watched: set[str] = set()
        found = self.watch_tree("", watched)
        # Directories gone or renamed while events were lost.
        for rel in sorted(set(self.wds) - watched):
            self.unwatch_tree(rel)
        sink.rescanned(found, "", now)

    # -- events ------------------------------------------------------------------------
    def apply(self, events: list, sink, now: float) -> str | None:
        """Tell the sink what a batch of raw events means; OVERFLOW or GONE
        when the caller must rescan or stop, else None."""
        for ev in events:
            mask = ev.mask
            if mask & flags.Q_OVERFLOW:
                return OVERFLOW           # a rescan covers the rest of the batch too
            d = self.dirs.get(ev.wd)
            if d is None:
                continue                  # a watch dropped a moment ago
            if mask & (flags.IGNORED | flags.DELETE_SELF):
                if d == "":
                    return GONE
                if mask & flags.IGNORED:          # the kernel dropped this watch
                    self.dirs.pop(ev.wd, None)
                    if self.wds.get(d) == ev.wd:
                        del self.wds[d]
                continue
            rel = f"{d}/{ev.name}" if d else ev.name
            is_dir = bool(mask & flags.ISDIR)
            if self.ignored(rel, is_dir):
                continue
            if is_dir:
                if mask & (flags.DELETE | flags.MOVED_FROM):
                    self.unwatch_tree(rel)
                    sink.removed_tree(rel, now)
                if mask & (flags.CREATE | flags.MOVED_TO):
                    sink.rescanned(self.watch_tree(rel), rel, now)
                continue
            if mask & flags.CREATE:
                # Made by open(O_CREAT): a close-write will follow.  Not so a
                # symlink (or a hard link: that one waits for the maximum delay).
                sink.changed(rel, now, writing=not os.path.islink(self.root / rel))
            if mask & flags.MODIFY:
                sink.changed(rel, now, writing=True)
            if mask & flags.ATTRIB:
                sink.changed(rel, now)
            if mask & flags.CLOSE_WRITE:
                sink.closed(rel, now)
            if mask & flags.DELETE:
                sink.removed(rel, now)
            if mask & flags.MOVED_FROM:
                self._moves[ev.cookie] = rel
                if len(self._moves) > COOKIES_KEPT:
                    self._moves.pop(next(iter(self._moves)))
                sink.removed(rel, now)
            if mask & flags.MOVED_TO:
                sink.moved(self._moves.pop(ev.cookie, None), rel, now)
        return None
