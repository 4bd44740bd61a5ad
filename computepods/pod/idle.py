"""When a background pod stops by itself: idle too long, or its project gone.

Idle is no request on the control socket (a build or a status) for
``idle_s``, a build in progress counting as busy.  The project directory and
its ``.computepods/`` are checked every :data:`CHECK_S`: a pod whose tree was
removed has nothing left to serve.
"""
from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

from computepods.paths import STATE_DIR

CHECK_S = 2.0                  # how often the project's presence and idleness are checked


class IdleGuard:
    """Calls ``stop`` once, from its own thread, when the pod should go."""

    def __init__(self, root: Path, idle_s: float, stop: Callable[[], None],
                 say: Callable[[str], None], clock: Callable[[], float] = time.monotonic):
        self.root = Path(root)
        self.idle_s = idle_s
        self._stop_pod, self._say, self._clock = stop, say, clock
        self._last = clock()
        self._busy = 0
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pod:idle", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._done.set()

    def touch(self) -> None:
        with self._lock:
            self._last = self._clock()

    @contextlib.contextmanager
    def busy(self) -> Iterator[None]:
        with self._lock:
            self._busy += 1
        try:
            yield
        finally:
            with self._lock:
                self._busy -= 1
                self._last = self._clock()

    def why_stop(self) -> str | None:
        """Why the pod should stop now, or None."""
        if not (self.root / STATE_DIR).is_dir():
            return f"{self.root / STATE_DIR} is gone"
        with self._lock:
            idle = 0.0 if self._busy else self._clock() - self._last
        if idle >= self.idle_s:
            return f"no request for {idle:.0f} s (pod_idle {self.idle_s:g} s)"
        return None

    def _run(self) -> None:
        while not self._done.wait(min(CHECK_S, max(self.idle_s / 4, 0.05))):
            why = self.why_stop()
            if why:
                self._say(f"stopping: {why}")
                self._stop_pod()
                return
