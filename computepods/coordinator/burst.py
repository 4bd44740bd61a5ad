"""A watching pod's follow-up build waits out a burst of changes.

A ``git checkout`` between branches that differ in 1,000 files writes them
over a few hundred milliseconds.  The watcher reports each file once it has
been quiet for its own quiet period, so the first reports arrive while git
still writes the rest: a build started on the first one runs 15 steps, a
follow-up 600, another 390, and the final step three times.

Each ``cp.fs.changed`` says how many files of the tree were still in their
quiet period when it was sent (``settling``).  A report with at least
``BURST_FILES`` of them, or one heard while a checkout holds its lock (see
below: its first files may come slowly), starts a *burst*, and the
follow-up build waits:

- while the version-control lock of the repository the project is in
  exists (git's ``index.lock``, Mercurial's ``wlock``: held while a checkout
  writes the tree, as watchman's ``defer_vcs`` knows);
- otherwise until a report says no file is left settling, or no report
  came for ``GAP_S`` (the last files were temporaries, never reported);
- and at most ``MAX_HOLD_S`` after the burst began (a tree that never stops
  changing still gets its builds).

An edit in an editor touches a file or three (the file, a swap file, vim's
``4913`` probe): below the threshold, nothing waits, and a save is built
within the quiet period, as before.

Plain logic on a :class:`~computepods.clock.Clock`; the MajorDomo asks it
from its own thread.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from computepods.clock import Clock

BURST_FILES = 8        # files still settling that make a report part of a burst
GAP_S = 0.5            # seconds without a report that end a burst
MAX_HOLD_S = 10.0      # seconds a burst holds a build at most
LOCK_POLL_S = 0.05     # seconds between looks at a version-control lock while it is held


def vcs_locks(root: Path) -> list[str]:
    """The lock file a checkout holds while it writes the tree, for the
    repository `root` is in (git or Mercurial); none outside one."""
    for d in (root, *root.parents):
        if (d / ".git").is_dir():
            return [str(d / ".git" / "index.lock")]
        if (d / ".hg").is_dir():
            return [str(d / ".hg" / "wlock")]
    return []


class BurstHold:
    def __init__(self, clock: Clock, *, locks: Sequence[str] = (),
                 burst_files: int = BURST_FILES, gap_s: float = GAP_S,
                 max_hold_s: float = MAX_HOLD_S):
        self.clock = clock
        self.locks = list(locks)
        self.burst_files = burst_files
        self.gap_s = gap_s
        self.max_hold_s = max_hold_s
        self.since: float | None = None      # when the burst began (monotonic), None: none
        self.last = 0.0                      # the latest report of the burst
        self.none_left = False               # the latest report said no file is settling
        self.bursts = 0                      # bursts seen (for the log and the tests)

    def heard(self, settling) -> None:
        """One report, with its ``settling`` count (None: a watcher that does not say)."""
        if not isinstance(settling, int) or isinstance(settling, bool):
            return
        now = self.clock.monotonic()
        if self.since is None:
            if settling < self.burst_files and not self.locked():
                return
            self.since = now
            self.bursts += 1
        self.last = now
        self.none_left = settling <= 0       # the last file of the burst, unless a lock is held

    def holding(self) -> bool:
        """A burst is still arriving: the follow-up build waits."""
        if self.since is None:
            return False
        now = self.clock.monotonic()
        if now - self.since >= self.max_hold_s:
            self.since = None
            return False
        if self.locked():
            return True
        if self.none_left or now - self.last >= self.gap_s:
            self.since = None
            return False
        return True

    def locked(self) -> bool:
        return any(os.path.exists(lock) for lock in self.locks)

    def recheck_at(self) -> float | None:
        """When :meth:`holding` may next turn false on its own (monotonic), or None."""
        if self.since is None:
            return None
        limit = self.since + self.max_hold_s
        if self.locked():
            return min(self.clock.monotonic() + LOCK_POLL_S, limit)
        return min(self.last + self.gap_s, limit)
