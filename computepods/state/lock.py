"""One build per project at a time: an flock on `.computepods/lock`.

flock, not a check-then-create file: the kernel drops the lock when its
holder dies, even by SIGKILL, so a crashed build never leaves the project
locked.  The holder writes its pid and command into the file so a waiting
build can say who it is waiting for.
"""
from __future__ import annotations

import fcntl
import json
import os
import sys
import time
from pathlib import Path
from typing import Callable

from computepods.paths import LOCK_FILE, writing

LOCK_WHAT = "the project lock (one build at a time)"


class ProjectLock:
    def __init__(self, root: Path):
        self.path = Path(root) / LOCK_FILE
        self.fd: int | None = None

    def holder(self) -> str:
        try:
            info = json.loads(self.path.read_text() or "{}")
        except (OSError, ValueError):
            return "another process"
        return f"process {info.get('pid')} ({info.get('command', '?')})"

    def acquire(self, on_wait: Callable[[str], None] = lambda who: None) -> None:
        """Take the lock, waiting (and saying for whom once) if it is held."""
        fd = self._open()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            on_wait(self.holder())
            fcntl.flock(fd, fcntl.LOCK_EX)
        self._claim(fd)

    def try_acquire(self) -> bool:
        """Take the lock if it is free; False (and nothing held) if not."""
        fd = self._open()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._claim(fd)
        return True

    def _open(self) -> int:
        """The lock file, open (a read-only or full ``.computepods/`` says so)."""
        with writing(self.path, LOCK_WHAT):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            return os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)

    def _claim(self, fd: int) -> None:
        """Write who holds the lock; a full disk only loses that note (the
        flock is what keeps builds apart)."""
        os.ftruncate(fd, 0)
        try:
            os.pwrite(fd, json.dumps({"pid": os.getpid(), "command": " ".join(sys.argv),
                                      "since": time.time()}).encode(), 0)
        except OSError:
            pass
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            os.ftruncate(self.fd, 0)
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> "ProjectLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
