"""The Store chart: the only writer of the state database.

::

    store_open          RECORD queues a write; FLUSH writes every queued one
                        in one transaction, then publishes RECORDED with
                        their tokens

Persist before proceeding: the MajorDomo marks a step done (and starts its
dependants) only when RECORDED says its record is on disk.  Records that
arrive while a transaction is being written are batched into the next one,
so a burst of results costs one commit, not one per step.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from miros import return_status, spy_on

from computepods.bus import messages as m
from computepods.state.hashing import FileRecord
from computepods.state.db import StateDB, StepRecord
from computepods.charts.base import Chart


@dataclass
class Record:
    """A write request (signal RECORD) and, echoed back, its token."""
    token: Any
    steps: list[StepRecord] = field(default_factory=list)
    files: list[FileRecord] = field(default_factory=list)
    drop_files: list[str] = field(default_factory=list)
    drop_steps: list[str] = field(default_factory=list)


@spy_on
def store_open(store: "Store", e):
    sig = e.signal_name
    if sig == m.RECORD:
        store.pending.append(e.payload)
        if not store.flush_pending:
            store.flush_pending = True
            store.post(m.FLUSH)
        return return_status.HANDLED
    if sig == m.FLUSH:
        store.write_pending()
        return return_status.HANDLED
    store.temp.fun = store.top
    return return_status.SUPER


class Store(Chart):
    initial_state = store_open
    subscriptions = (m.RECORD,)

    def __init__(self, db_path: Path, **kw):
        super().__init__("store", **kw)
        self.db = StateDB(db_path)
        self.pending: list[Record] = []
        self.flush_pending = False
        self.transactions = 0

    def write_pending(self) -> None:
        self.flush_pending = False
        batch, self.pending = self.pending, []
        if not batch:
            return
        self.db.write(steps=[s for r in batch for s in r.steps],
                      files=[f for r in batch for f in r.files],
                      drop_files=[p for r in batch for p in r.drop_files],
                      drop_steps=[s for r in batch for s in r.drop_steps])
        self.transactions += 1
        self.emit(m.RECORDED, [r.token for r in batch])

    def stop(self, timeout: float = 10.0) -> None:
        super().stop(timeout)
        self.db.close()
