"""Fetching the files of a chef pod's queued steps before a slot takes them.

When a chef pod accepts a run message from another pod, the steps queue
for its slots; each would fetch the files it reads only once a slot took
it, holding that slot through SFTP round trips.  :class:`Prefetcher` pulls
those files meanwhile, on a few threads of its own (``fetch(pod, sha)``,
the Puller's, which pulls each sha once however many ask and keeps it in
the store), so a slot that takes the step finds them in the store and only
links them into its tree.  A prefetch that fails is forgotten: the slot
fetches again and fails the step in the transfer's own words.  Its threads
start with the first files asked for and end in :meth:`Prefetcher.close`.
"""
from __future__ import annotations

import logging
import queue
import threading
from typing import Callable, Iterable

from computepods.errors import ComputePodsError

log = logging.getLogger("computepods.chef")

PREFETCH_THREADS = 2       # concurrent pulls ahead of the slots (the Puller has 4 channels)
MAX_WAITING = 4096         # shas waiting to be prefetched; more are left to the slots
CLOSE_S = 5.0              # seconds close() waits for each thread

Fetch = Callable[[str, str], object]     # fetch(pod, sha) -> a local path


class Prefetcher:
    """Pulls files by sha ahead of the steps that read them."""

    def __init__(self, fetch: Fetch, threads: int = PREFETCH_THREADS,
                 max_waiting: int = MAX_WAITING):
        self._fetch = fetch
        self._count = threads
        self._max = max_waiting
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._waiting: set[str] = set()          # asked for, not yet tried
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._closed = False

    def ask(self, pod: str, shas: Iterable[str]) -> int:
        """Queue each sha not queued yet to be fetched from ``pod``; how many
        were queued (none once closed, or past MAX_WAITING)."""
        queued = 0
        with self._lock:
            if self._closed:
                return 0
            for sha in shas:
                if sha in self._waiting:
                    continue
                if len(self._waiting) >= self._max:
                    break
                self._queue.put((pod, sha))
                self._waiting.add(sha)
                queued += 1
            if queued and not self._threads:
                self._threads = [threading.Thread(target=self._work, name=f"prefetch-{i}",
                                                  daemon=True) for i in range(self._count)]
                for t in self._threads:
                    t.start()
        return queued

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            pod, sha = item
            try:
                self._fetch(pod, sha)
            except (ComputePodsError, OSError, ValueError, EOFError) as exc:
                log.debug("prefetch of %s from pod %s failed (its step fetches again): %s",
                          sha, pod, exc)
            finally:
                with self._lock:
                    self._waiting.discard(sha)

    def close(self, timeout: float = CLOSE_S) -> None:
        """Drop what waits, end the threads (a pull under way ends first)."""
        with self._lock:
            self._closed = True
            threads, self._threads = self._threads, []
            while True:
                try:
                    self._queue.get_nowait()
                except queue.Empty:
                    break
            self._waiting.clear()
        for _ in threads:
            self._queue.put(None)
        for t in threads:
            t.join(timeout)
