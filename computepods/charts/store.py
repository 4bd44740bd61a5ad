"""The Store chart: the only writer of the state database.

::

    store_open          RECORD queues a write, and writes at once when no
                        other event waits (else FLUSH, behind them, writes
                        every queued one in one transaction); a write
                        publishes RECORDED with its records' tokens

A Record may also carry entries of the history of builds
(:mod:`computepods.state.history`), written in the same transaction; a build
the history still says is running when the Store opens is marked
interrupted (its pod stopped).

Persist before proceeding: the MajorDomo marks a step done (and starts its
dependants) only when RECORDED says its record is on disk.  Records that
arrive while a transaction is being written are batched into the next one,
so a burst of results costs one commit, not one per step.

A write that fails (a full disk, a read-only file) loses nothing: the batch
stays queued, the failure is logged and published as RECORD_FAILED (with
the tokens it holds back and the problem), and the Store tries again on its
clock, backing off from ``RETRY_FIRST_S`` to ``RETRY_MAX_S``.
"""
from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from miros import return_status, spy_on

from computepods.bus import messages as m
from computepods.charts.base import STOP_TIMEOUT_S, Chart
from computepods.clock import Alarm, Clock, SystemClock
from computepods.errors import ComputePodsError, DiskFull, NotWritable
from computepods.state.db import StateDB, StepRecord
from computepods.state.history import BuildEntry
from computepods.state.dberrors import db_error
from computepods.state.hashing import FileRecord

log = logging.getLogger("computepods.store")

RETRY_FIRST_S = 1.0      # seconds before a failed write is tried again
RETRY_MAX_S = 30.0       # seconds between tries at most while it keeps failing


@dataclass
class Record:
    """A write request (signal RECORD) and, echoed back, its token."""
    token: Any
    steps: list[StepRecord] = field(default_factory=list)
    files: list[FileRecord] = field(default_factory=list)
    drop_files: list[str] = field(default_factory=list)
    drop_steps: list[str] = field(default_factory=list)
    builds: list[BuildEntry] = field(default_factory=list)


@dataclass(frozen=True)
class WriteFailed:
    """Payload of RECORD_FAILED: records held back, and why (``error``: the
    write's own error, which names the disk if it is full).  ``lasting``: a
    full disk or a refused write, which waiting a second will not mend."""
    tokens: list[Any]
    problem: str
    retry_s: float
    error: str = ""
    lasting: bool = False


@spy_on
def store_open(store: "Store", e):
    sig = e.signal_name
    if sig == m.RECORD:
        store.pending.append(e.payload)
        if store.retrying or store.flush_pending:
            return return_status.HANDLED
        if store.alone():
            store.write_pending()        # a step's dependants wait on this write
        else:
            store.flush_pending = True
            store.post(m.FLUSH)          # behind the records already queued: one write
        return return_status.HANDLED
    if sig == m.FLUSH:
        store.write_pending()
        return return_status.HANDLED
    store.temp.fun = store.top
    return return_status.SUPER


class Store(Chart):
    """Writes the records the MajorDomo asks it to (RECORD) to the state
    database, and says so (RECORDED), or keeps them while it cannot."""
    initial_state = store_open
    subscriptions = (m.RECORD,)

    def __init__(self, db_path: Path, *, clock: Clock | None = None,
                 db: StateDB | None = None, **kw):
        """``db``: an open StateDB to write to (a test's seam); by default
        the one at ``db_path``."""
        super().__init__("store", **kw)
        self.db = db if db is not None else StateDB(db_path)
        self.clock = clock or SystemClock()
        self.pending: list[Record] = []
        self.flush_pending = False
        self.transactions = 0
        self.failures = 0                       # failed writes in a row
        self.problem = ""                       # the last failure, "" once written
        self._retry: Alarm | None = None
        self._interrupt_running()

    def _interrupt_running(self) -> None:
        try:
            if n := self.db.interrupt_running_builds():
                log.info("%s: %d builds of a pod that stopped marked interrupted", self.db.path, n)
        except (sqlite3.Error, ComputePodsError) as exc:      # the next write says it too
            log.warning("%s: the history of builds: %s", self.db.path, exc)

    @property
    def retrying(self) -> bool:
        return self.failures > 0

    def alone(self) -> bool:
        """Guard: no other event waits, so no record would join this write."""
        return self.events_waiting() == 0

    def write_pending(self) -> None:
        self.flush_pending = False
        batch, self.pending = self.pending, []
        if not batch:
            return
        try:
            self._write(batch)
        except (sqlite3.Error, OSError, ComputePodsError) as exc:
            self.pending = batch + self.pending          # nothing is lost
            self._failed(batch, exc)
            return
        if self.failures:
            log.warning("state database %s written again after %d failed tries",
                        self.db.path, self.failures)
        self.failures, self.problem = 0, ""
        self.transactions += 1
        self.emit(m.RECORDED, [r.token for r in batch])

    def _write(self, batch: list[Record]) -> None:
        self.db.write(steps=[s for r in batch for s in r.steps],
                      files=[f for r in batch for f in r.files],
                      drop_files=[p for r in batch for p in r.drop_files],
                      drop_steps=[s for r in batch for s in r.drop_steps],
                      builds=[b for r in batch for b in r.builds])

    def _failed(self, batch: list[Record], exc: Exception) -> None:
        retry_s = min(RETRY_FIRST_S * 2 ** self.failures, RETRY_MAX_S)
        self.failures += 1
        records = sum(len(r.steps) + len(r.files) + len(r.builds) for r in batch)
        self.problem = (f"cannot write the state database {self.db.path}: {exc}; "
                        f"{records} records kept, trying again in {retry_s:.0f} s")
        log.error("%s", self.problem)
        if self._retry is None:
            self._retry = self.clock.alarm(lambda: self.post(m.FLUSH), name="store:retry")
        self._retry.set(self.clock.monotonic() + retry_s)
        lasting = isinstance(exc, (DiskFull, NotWritable)) or isinstance(
            db_error(self.db.path, exc, "records"), (DiskFull, NotWritable))
        self.emit(m.RECORD_FAILED, WriteFailed([r.token for r in batch], self.problem, retry_s,
                                               str(exc), lasting))

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        if self._retry is not None:
            self._retry.close()
        super().stop(timeout)
        if self.pending and not self.retrying:    # posted as it stopped: its FLUSH came after
            try:
                self._write(self.pending)
                self.pending = []
            except (sqlite3.Error, OSError, ComputePodsError) as exc:
                self.problem = str(exc)
        if self.pending:
            log.error("state database %s: %d writes not done at stop: %s", self.db.path,
                      len(self.pending), self.problem or "the Store stopped first")
        self.db.close()
