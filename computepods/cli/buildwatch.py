"""What `cpod build` watches in its build's events besides showing them.

Two things a one-shot build must not wait out or leave unsaid:

- the Store cannot write the records of finished steps (a full disk, a
  read-only ``.computepods/``): retrying suits a pod under ``cpod up``,
  which can wait for space; ``cpod build`` stops at once, with the Store's
  error (:class:`~computepods.errors.RecordsNotWritten`, exit 2);
- steps failed and the disk is full: a command that hit ENOSPC often
  cannot even write its message (its stderr is on the same disk), so the
  build says which disk is full after the failures.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from computepods.errors import RecordsNotWritten
from computepods.paths import disk_full

LOW_SPACE_BYTES = 64 * 1024   # less free than this after failures: the disk is full
NO_SPACE_WORDS = ("No space left on device", "Disk quota exceeded")


class BuildWatch:
    """Feed it every build event (:meth:`on_event`); it hands them on."""

    def __init__(self, root: Path, handle: Callable[[dict], None]):
        self.root = root
        self.handle = handle
        self.failed: list[str] = []
        self.said_no_space = False

    def on_event(self, ev: dict) -> None:
        t = ev.get("t")
        if t == "store_retry":
            raise RecordsNotWritten(f"{ev.get('error') or ev.get('problem')}; the build stops"
                                    " (its steps whose records were not written run again"
                                    " at the next build)")
        if t == "fail":
            self.failed.append(str(ev.get("step")))
            tails = f"{ev.get('stdout_tail') or ''}{ev.get('stderr_tail') or ''}" \
                    f"{ev.get('reason') or ''}"
            self.said_no_space |= any(words in tails for words in NO_SPACE_WORDS)
        self.handle(ev)

    def disk_note(self) -> str | None:
        """After a failed build: which disk is full, if one is (else None)."""
        if not self.failed:
            return None
        try:
            st = os.statvfs(self.root)
            low = st.f_bavail * st.f_frsize < LOW_SPACE_BYTES
        except OSError:
            low = False
        if not (low or self.said_no_space):
            return None
        steps = ", ".join(self.failed[:5]) + (" …" if len(self.failed) > 5 else "")
        return str(disk_full(self.root, f"the outputs of {len(self.failed)} failed steps"
                                        f" ({steps}), which may have failed for want of space"))
