"""The FSWatcher's reader thread: it blocks on the inotify descriptor and
hands every batch of raw events to the chart.

It does nothing else (the chart decides what events mean), so it never
falls behind for long: the kernel's queue (``max_queued_events``) fills
only when the chart is swamped, and then the chart rescans.  It polls a
wake-up pipe beside the descriptor, so :meth:`EventReader.stop` ends it at
once without closing a descriptor under a blocked ``poll``.

:meth:`EventReader.pause` parks it before its next read (tests use it to let
the kernel's queue overflow); :meth:`EventReader.resume` lets it go on.
"""
from __future__ import annotations

import logging
import os
import select
import threading
from typing import Callable

from computepods.watch.tree import InotifyTree

log = logging.getLogger("computepods.watcher")

STOP_TIMEOUT_S = 5.0        # seconds stop() waits for the thread
GATHER_MS = 2               # milliseconds a wake-up waits for more events before reading


class EventReader:
    """``before_read()`` is called before each read, ``deliver(events)`` after it."""

    def __init__(self, tree: InotifyTree, deliver: Callable[[list], None],
                 before_read: Callable[[], None] = lambda: None, name: str = "inotify-reader"):
        self.tree = tree
        self.deliver = deliver
        self.before_read = before_read
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._cond = threading.Condition()
        self._paused = False
        self._reading = False
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        if not self._thread.is_alive() and not self._stopping:
            self._thread.start()

    def stop(self) -> None:
        """End the thread (it may be blocked in poll or paused) and wait for it."""
        with self._cond:
            if self._stopping:
                return
            self._stopping = True
            self._cond.notify_all()
        self._wake()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(STOP_TIMEOUT_S)
            if self._thread.is_alive():
                log.error("watcher: the inotify reader did not stop within %.0f s", STOP_TIMEOUT_S)
                return                    # leave its pipe open rather than pull it from under it
        os.close(self._wake_r)
        os.close(self._wake_w)

    def pause(self) -> None:
        """Stop reading before the next read; returns once no read is under way."""
        with self._cond:
            self._paused = True
            self._cond.wait_for(lambda: not self._reading)

    def resume(self) -> None:
        with self._cond:
            self._paused = False
            self._cond.notify_all()

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"x")
        except BlockingIOError:
            pass                          # already awake

    def _run(self) -> None:
        poller = select.poll()
        poller.register(self.tree.fileno(), select.POLLIN)
        poller.register(self._wake_r, select.POLLIN)
        waker = select.poll()              # the wake-up pipe alone: a short wait for more events
        waker.register(self._wake_r, select.POLLIN)
        while True:
            poller.poll()
            # Events come in streams (a build commits an output every half
            # millisecond): read them a few at a time, not one by one, since
            # each read costs the chart a dispatch.  A wake-up or a stop ends it.
            waker.poll(GATHER_MS)
            with self._cond:
                self._cond.wait_for(lambda: self._stopping or not self._paused)
                if self._stopping:
                    return
                try:
                    os.read(self._wake_r, 64)
                except BlockingIOError:
                    pass
                self._reading = True
            try:
                self.before_read()
                try:
                    events = self.tree.read_events()
                except OSError as exc:            # the descriptor is unusable: say so, stop
                    log.error("watcher: cannot read inotify events of %s: %s",
                              self.tree.root, exc)
                    events = None
                self.deliver(events or [])
            finally:
                with self._cond:
                    self._reading = False
                    self._cond.notify_all()
            if events is None:
                return
