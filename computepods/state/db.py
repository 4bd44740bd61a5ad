"""The SQLite state database, ``.computepods/state.db``.

It holds what a restart needs so that nothing up to date is rebuilt: the
stat and hash of every known file, the record of every step that ran,
and a short history of builds.  Steps a crashed run left running are found
by the mark in their environment (:mod:`computepods.chef.recovery`), not
from a table: a mark costs no write per step and survives any crash.

One writer (the Store chart), any number of readers: WAL mode lets readers
work while the writer commits, and ``synchronous=NORMAL`` makes a commit
cost no fsync (a crash of the process loses nothing; a power cut may lose
the last transactions, which only means rebuilding them).  A ``StateDB``
object is not meant to be used by two threads at once; the caller
serialises access (the Store chart owns its own).

A step is stored as one JSON array (every field but its id, in field order;
adding a field means a new schema version), and all steps are loaded as one
JSON document, because a cold no-op build reads every record before it can
say "nothing to do".

A *verdict* (:mod:`computepods.planning.plancache`) says a plan was all up to date
given these records; every write of records deletes all verdicts in the
same transaction, so a verdict that is there still rests on the records it
was judged with.  Schema 2 added them (version 1 is migrated in place: an
older computepods, which would not delete them, refuses the file); schema 3
the federation's ``owners`` and ``built_with`` (:mod:`computepods.state.owners`).
"""
from __future__ import annotations

import contextlib
import gc
import itertools
import json
import logging
import os
import sqlite3
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Iterator

from computepods.errors import ComputePodsError
from computepods.state import history
from computepods.state.dberrors import corrupt, db_error, is_database_trouble
from computepods.words import counted

if TYPE_CHECKING:                  # hashing imports hashlib: not for a cold no-op
    from computepods.state.hashing import FileRecord

log = logging.getLogger(__name__)

SCHEMA_VERSION = 3
MIGRATABLE_VERSION = 1    # the oldest version migrated in place (2 added verdicts)
BUSY_TIMEOUT_S = 10.0       # seconds a reader/writer waits for a lock
STATUS_OK = "ok"
STATUS_FAILED = "failed"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
    ino INTEGER NOT NULL, sha256 TEXT NOT NULL, checked_ns INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS steps (
    step_id TEXT PRIMARY KEY, record TEXT NOT NULL
) WITHOUT ROWID;
DROP TABLE IF EXISTS running;
CREATE TABLE IF NOT EXISTS verdicts (key TEXT PRIMARY KEY, blob BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS owners (sha256 TEXT NOT NULL, pod TEXT NOT NULL,
    size INTEGER NOT NULL, PRIMARY KEY (sha256, pod)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS built_with (step_id TEXT NOT NULL, tool TEXT NOT NULL,
    fingerprint TEXT NOT NULL, PRIMARY KEY (step_id, tool)) WITHOUT ROWID;
DROP TABLE IF EXISTS builds;
""" + history.SCHEMA
_TABLES = ("meta", "files", "steps", "build_history", "verdicts", "owners", "built_with")


@dataclass
class StepRecord:
    """What a step did the last time it ran: enough to decide whether it is stale
    and to explain why it ran."""
    step_id: str
    rule: str
    command: str                          # the display command (project paths)
    inputs: dict[str, str | None]         # path -> sha256 when it ran (None: missing optional input)
    outputs: dict[str, str]               # path -> sha256 after commit
    discovered: list[str] = field(default_factory=list)   # depfile / .fls inputs
    status: str = STATUS_OK               # "ok" | "failed"
    exit_code: int | None = 0
    reason: str = ""
    duration_s: float = 0.0
    finished_ns: int = 0

    def to_dict(self) -> dict:
        """A JSON-able dict (the commit journal carries steps this way)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "StepRecord":
        return cls(**d)


class StateDB:
    """The state database of one project; see the module docstring."""

    def __init__(self, path: Path, readonly: bool = False):
        self.path = Path(path)
        self.readonly = readonly
        self._conn: sqlite3.Connection | None = None
        if readonly:
            self._open_readonly()
        else:
            self._open_writable()

    # --- opening -------------------------------------------------------------

    def _connect(self, uri: str) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_S,
                                   isolation_level=None, check_same_thread=False)
        except sqlite3.Error as e:
            raise db_error(self.path, e, "the state database (opening it)", writing=False) from e
        return conn

    def _open_readonly(self) -> None:
        """A reader never creates the file: with no database, every answer is empty."""
        if not self.path.exists():
            return
        conn = self._connect(f"file:{_uri_path(self.path)}?mode=ro")
        version = self._read_version(conn)
        if version is None or version < MIGRATABLE_VERSION:
            # Only the writer migrates; until then there is nothing usable.
            log.info("%s: schema version %s is older than %s; reading it as empty",
                     self.path, version, SCHEMA_VERSION)
            conn.close()
            return
        self._conn = conn

    def _open_writable(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = self._connect(f"file:{_uri_path(self.path)}")
        version = self._read_version(conn)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            if version is not None and version < MIGRATABLE_VERSION:
                self._recreate(conn, version)
            conn.executescript(_SCHEMA)     # creates what an older version lacks
            conn.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)",
                         (str(SCHEMA_VERSION),))
        except sqlite3.Error as e:
            conn.close()
            if not is_database_trouble(e):
                raise
            raise db_error(self.path, e, "its schema (preparing it for writing)") from e
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    def _read_version(self, conn: sqlite3.Connection) -> int | None:
        """The file's schema version (None for an empty file); refuse newer ones."""
        try:
            has_meta = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'").fetchone()
            row = has_meta and conn.execute(
                "SELECT value FROM meta WHERE key='schema_version'").fetchone()
        except sqlite3.Error as e:
            conn.close()
            raise db_error(self.path, e, "its schema version", writing=False) from e
        if not row:
            tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
            return 0 if tables else None
        try:
            version = int(row[0])
        except (TypeError, ValueError) as e:
            conn.close()
            raise corrupt(self.path, e) from e
        if version > SCHEMA_VERSION:
            conn.close()
            raise ComputePodsError(
                f"{self.path}: state database has schema version {version}, but this"
                f" computepods understands version {SCHEMA_VERSION} at most: upgrade"
                " computepods, or delete the file to start afresh (the next build"
                " rebuilds everything)")
        return version

    def _recreate(self, conn: sqlite3.Connection, version: int) -> None:
        """No migration exists from older versions yet: start afresh, and say so."""
        log.warning("%s: schema version %s is older than %s; recreating the state"
                    " database (the next build rebuilds everything)",
                    self.path, version, SCHEMA_VERSION)
        conn.execute("BEGIN IMMEDIATE")
        for table in _TABLES:
            conn.execute(f"DROP TABLE IF EXISTS {table}")
        conn.execute("COMMIT")

    # --- reads ---------------------------------------------------------------

    def files(self) -> dict[str, FileRecord]:
        """Every recorded file, by project path."""
        if self._conn is None:
            return {}
        from computepods.state.hashing import FileRecord
        with _gc_paused(), self._reading():
            rows = self._conn.execute(
                "SELECT path, size, mtime_ns, ino, sha256, checked_ns FROM files").fetchall()
            return dict(zip([r[0] for r in rows], itertools.starmap(FileRecord, rows)))

    def step(self, step_id: str) -> StepRecord | None:
        """The record of one step, if it ever ran."""
        if self._conn is None:
            return None
        with self._reading():
            row = self._conn.execute(
                "SELECT record FROM steps WHERE step_id = ?", (step_id,)).fetchone()
            return StepRecord(step_id, *json.loads(row[0])) if row else None

    def steps(self) -> dict[str, StepRecord]:
        """Every step record, by step id."""
        if self._conn is None:
            return {}
        # One JSON document for all steps: one json.loads, not one per row
        # (the cold no-op of ``bench/rebuild.py noop`` reads every record).
        with _gc_paused(), self._reading():
            doc = self._conn.execute(
                "SELECT '[' || group_concat(json_quote(step_id) || ',' || record) || ']'"
                " FROM steps").fetchone()[0]
            flat = json.loads(doc) if doc else []
            return {flat[i]: StepRecord(flat[i], *flat[i + 1])
                    for i in range(0, len(flat), 2)}

    def verdict(self, key: str) -> bytes | None:
        """The verdict stored under ``key`` since the last write of records."""
        if self._conn is None:
            return None
        with self._reading():
            try:
                row = self._conn.execute("SELECT blob FROM verdicts WHERE key = ?",
                                         (key,)).fetchone()
            except sqlite3.OperationalError as e:
                if "no such table" not in str(e):
                    raise
                return None                   # a version-1 file, not migrated yet
            return row[0] if row else None

    def builds(self, limit: int, before: str | None = None
               ) -> tuple[list[history.BuildEntry], str | None]:
        """A page of the history of builds, newest first (:func:`history.page`)."""
        if self._conn is None:
            return [], None
        with self._reading():
            return history.page(self._conn, limit, before)

    def build(self, build_id: str, with_profile: bool = False) -> history.BuildEntry | None:
        """One build of the history, with its timeline if asked and kept."""
        if self._conn is None:
            return None
        with self._reading():
            return history.get(self._conn, build_id, with_profile)

    # --- writes --------------------------------------------------------------

    def write(self, steps: Iterable[StepRecord] = (), files: Iterable[FileRecord] = (),
              drop_files: Iterable[str] = (), drop_steps: Iterable[str] = (),
              verdict: tuple[str, bytes] | None = None,
              builds: Iterable[history.BuildEntry] = ()) -> None:
        """Persist steps and files and drop others, all in ONE transaction, so a
        crash never leaves a step recorded without the hashes of its outputs.
        Drops happen first: a path both dropped and written ends up written.
        A write of records deletes every stored verdict; ``verdict`` (key,
        blob) is then the only one.  ``builds``: entries of the history."""
        step_rows = [(s.step_id, _step_json(s)) for s in steps]
        file_rows = [(f.path, f.size, f.mtime_ns, f.ino, f.sha256, f.checked_ns)
                     for f in files]
        drop_files, drop_steps, builds = list(drop_files), list(drop_steps), list(builds)
        what = (f"the records of {counted(len(step_rows), 'step')} and"
                f" {counted(len(file_rows), 'file')}")
        history_only = builds and not (step_rows or file_rows or drop_files or drop_steps
                                       or verdict is not None)
        with self._transaction("the history of builds" if history_only else what) as conn:
            if builds:
                history.write(conn, builds)
            if history_only:
                return                 # no records written: the verdicts still stand
            conn.execute("DELETE FROM verdicts")
            if verdict is not None:
                conn.execute("INSERT INTO verdicts VALUES (?, ?)", verdict)
            conn.executemany("DELETE FROM files WHERE path = ?", ((p,) for p in drop_files))
            conn.executemany("DELETE FROM steps WHERE step_id = ?",
                             ((s,) for s in drop_steps))
            conn.executemany("INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?, ?)",
                             file_rows)
            conn.executemany("INSERT OR REPLACE INTO steps VALUES (?, ?)", step_rows)

    def interrupt_running_builds(self) -> int:
        """Builds the history says are running, of a pod that has stopped."""
        with self._transaction("the history of builds") as conn:
            return history.interrupt_running(conn)

    def _transaction(self, what: str) -> "_Transaction":
        if self.readonly or self._conn is None:
            raise ComputePodsError(f"{self.path}: state database is open read-only")
        return _Transaction(self._conn, self.path, what)

    @contextlib.contextmanager
    def _reading(self) -> Iterator[None]:
        """A read that fails, or finds what no computepods wrote (a record
        that is not JSON, a BLOB where text belongs), says the file is
        corrupt, or why else it cannot be read; never a traceback."""
        try:
            yield
        except (sqlite3.Error, ValueError, TypeError, IndexError, KeyError) as e:
            if isinstance(e, sqlite3.Error) and not is_database_trouble(e):
                raise
            raise db_error(self.path, e, "the records", writing=False) from e

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> "StateDB":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK if the body (or the COMMIT)
    raised.  A failed SQLite call becomes the error :func:`db_error` makes
    of it, saying ``what`` was not written (a full disk is never "corrupt")."""

    def __init__(self, conn: sqlite3.Connection, path: Path, what: str):
        self.conn, self.path, self.what = conn, path, what

    def __enter__(self) -> sqlite3.Connection:
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as e:
            raise db_error(self.path, e, self.what) from e
        return self.conn

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            try:
                self.conn.execute("COMMIT")
                return
            except sqlite3.Error as e:
                self._rollback()
                raise db_error(self.path, e, self.what) from e
        self._rollback()
        if is_database_trouble(exc):
            raise db_error(self.path, exc, self.what) from exc

    def _rollback(self) -> None:
        """SQLite may have rolled back already (a full disk can do that):
        then there is nothing left to roll back, and that is no error."""
        if self.conn.in_transaction:
            try:
                self.conn.execute("ROLLBACK")
            except sqlite3.Error as e:
                log.warning("%s: rollback failed: %s", self.path, e)


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while loading many records.

    Creating tens of thousands of containers triggers collections that scan
    every live object again and again; the records hold no cycles, so a
    pause frees nothing less (``bench/rebuild.py noop`` times the load).
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _uri_path(path: Path) -> str:
    """A filesystem path quoted for an SQLite ``file:`` URI: '%' starts an
    escape, '?' the query and '#' the fragment (not urllib.parse: one more
    import in every cold no-op)."""
    return (os.path.abspath(path).replace("%", "%25").replace("?", "%3F")
            .replace("#", "%23"))


def _step_json(s: StepRecord) -> str:
    """Every field but the step id, as a compact JSON array in field order."""
    return json.dumps([s.rule, s.command, s.inputs, s.outputs, s.discovered, s.status,
                       s.exit_code, s.reason, s.duration_s, s.finished_ns],
                      separators=(",", ":"))
