"""The history of builds, kept in the state database.

One row per build, newest last: what it was asked to make, who asked
(cli, rest, watcher, cron), when it started and ended, and how each of its
steps ended (ran, up to date, failed, not run, cancelled).  The MajorDomo
folds a build's events into a :class:`BuildEntry`
(:mod:`computepods.coordinator.history`) and the Store writes it, once when
the build starts (state ``running``) and once when it ends.  A finished
build's entry carries its timeline (:mod:`computepods.coordinator.timeline`),
stored zlib-compressed.

Bounded: the ``MAX_BUILDS`` most recent builds are kept, and the timelines
of the ``MAX_PROFILES`` most recent.  A build still ``running`` when a pod
opens the database was its pod's, which has stopped: the Store marks it
``interrupted`` (only one pod holds a project at a time: the project lock).

These are plain functions over an open connection; :class:`StateDB` wraps
them in its transactions and reads (and turns SQLite's errors into ours).
"""
from __future__ import annotations

import json
import sqlite3
import zlib
from dataclasses import dataclass, field, fields

MAX_BUILDS = 1000          # builds kept in the history, newest
MAX_PROFILES = 100         # of those, the newest whose timelines are kept
MAX_FAILED_KEPT = 100      # failed step ids an entry names at most
PAGE_MAX = 1000            # entries in one page at most

RUNNING, DONE, FAILED, CANCELLED, INTERRUPTED = (
    "running", "done", "failed", "cancelled", "interrupted")
STATES = (RUNNING, DONE, FAILED, CANCELLED, INTERRUPTED)

SCHEMA = """
CREATE TABLE IF NOT EXISTS build_history (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,
    state TEXT NOT NULL, entry TEXT NOT NULL, profile BLOB
);
"""


@dataclass
class BuildEntry:
    """One build in the history.  Counts are of steps: ``not_run`` holds
    those blocked by a failure and those a stop or cancel left unstarted;
    ``cancelled`` those a cancel killed while they ran."""
    id: str
    targets: list[str]
    started_by: str
    state: str = RUNNING
    started_ns: int = 0
    ended_ns: int | None = None
    code: int | None = None
    steps: int = 0
    ran: int = 0
    up_to_date: int = 0
    failed: int = 0
    not_run: int = 0
    cancelled: int = 0
    error: str | None = None
    failed_steps: list[str] = field(default_factory=list)
    profile: dict | None = field(default=None, repr=False, compare=False)

    @property
    def finished(self) -> bool:
        return self.state != RUNNING

    @property
    def duration_s(self) -> float | None:
        return None if self.ended_ns is None else round((self.ended_ns - self.started_ns) / 1e9, 3)

    def to_dict(self) -> dict:
        """Every field but the timeline, as JSON-able values (not ``asdict``,
        which deep-copies the timeline too: 0.1 s for a build of 1,000 steps)."""
        return {name: list(value) if isinstance(value, list) else value
                for name, value in ((f, getattr(self, f)) for f in _ENTRY_FIELDS)}

    @classmethod
    def from_dict(cls, d: dict) -> "BuildEntry":
        known = {f.name for f in fields(cls)} - {"profile"}
        return cls(**{k: v for k, v in d.items() if k in known})


_ENTRY_FIELDS = tuple(f.name for f in fields(BuildEntry) if f.name != "profile")


# -- writes (inside the caller's transaction) ------------------------------------------

def write(conn: sqlite3.Connection, entries: list[BuildEntry]) -> None:
    """Insert or update these entries (a build keeps its place), then trim
    the history to ``MAX_BUILDS`` and its timelines to ``MAX_PROFILES``."""
    rows = [(e.id, e.state, json.dumps(e.to_dict(), separators=(",", ":")),
             _pack(e.profile)) for e in entries]
    conn.executemany(
        "INSERT INTO build_history (id, state, entry, profile) VALUES (?, ?, ?, ?)"
        " ON CONFLICT(id) DO UPDATE SET state = excluded.state, entry = excluded.entry,"
        " profile = coalesce(excluded.profile, profile)", rows)
    conn.execute("DELETE FROM build_history WHERE seq <= (SELECT seq FROM build_history"
                 " ORDER BY seq DESC LIMIT 1 OFFSET ?)", (MAX_BUILDS,))
    conn.execute("UPDATE build_history SET profile = NULL WHERE profile IS NOT NULL AND seq <="
                 " (SELECT seq FROM build_history ORDER BY seq DESC LIMIT 1 OFFSET ?)",
                 (MAX_PROFILES,))


def interrupt_running(conn: sqlite3.Connection) -> int:
    """Mark the builds still ``running`` as ``interrupted``; how many there were."""
    cur = conn.execute(
        "UPDATE build_history SET state = ?, entry = json_set(entry, '$.state', ?)"
        " WHERE state = ?", (INTERRUPTED, INTERRUPTED, RUNNING))
    return cur.rowcount


# -- reads -----------------------------------------------------------------------------

def page(conn: sqlite3.Connection, limit: int, before: str | None = None
         ) -> tuple[list[BuildEntry], str | None]:
    """Up to ``limit`` entries, newest first, older than the build ``before``
    (None: from the newest); and the id to ask ``before`` for the next page
    (None when there is none)."""
    limit = max(1, min(limit, PAGE_MAX))
    if before is None:
        rows = _rows(conn, "SELECT entry FROM build_history ORDER BY seq DESC LIMIT ?",
                     (limit + 1,))
    else:
        rows = _rows(conn, "SELECT entry FROM build_history WHERE seq < (SELECT seq FROM"
                     " build_history WHERE id = ?) ORDER BY seq DESC LIMIT ?", (before, limit + 1))
    entries = [BuildEntry.from_dict(json.loads(r[0])) for r in rows]
    more = len(entries) > limit
    entries = entries[:limit]
    return entries, entries[-1].id if more else None


def get(conn: sqlite3.Connection, build_id: str, with_profile: bool = False
        ) -> BuildEntry | None:
    rows = _rows(conn, "SELECT entry, profile FROM build_history WHERE id = ?", (build_id,))
    if not rows:
        return None
    row = rows[0]
    entry = BuildEntry.from_dict(json.loads(row[0]))
    if with_profile and row[1] is not None:
        entry.profile = json.loads(zlib.decompress(row[1]))
    return entry


def _rows(conn: sqlite3.Connection, sql: str, args: tuple) -> list[tuple]:
    """The rows, or none from a file whose writer had no history yet (an
    older computepods; the next writer creates the table)."""
    try:
        return conn.execute(sql, args).fetchall()
    except sqlite3.OperationalError as e:
        if "no such table" not in str(e):
            raise
        return []


def _pack(profile: dict | None) -> bytes | None:
    if profile is None:
        return None
    return zlib.compress(json.dumps(profile, separators=(",", ":")).encode(), 6)
