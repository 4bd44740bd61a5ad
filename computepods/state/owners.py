"""Which pods hold which content, and which tools each step was built with.

The user's MajorDomo is the authority for its project's federation state
(docs/architecture.md §6): the *ownership map* says which pods' content
stores hold a sha256 (a remote chef's outputs, the inputs sent to it once
a step succeeded there), so placement can count the bytes a pod lacks; the
*built-with* table keeps the tool fingerprints a step was last built with,
for a tool the user's pod does not have itself.

Both live in the project's state database (schema 3, :mod:`computepods.state.db`
creates and migrates the tables), in tables the Store never writes: these
classes keep their own connection, and SQLite's lock serialises the two
writers (WAL: readers never wait).  Both are used from one thread, the
MajorDomo's; each write is one short transaction.
"""
from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Iterable, Mapping

from computepods.state.db import BUSY_TIMEOUT_S, StateDB
from computepods.state.dberrors import db_error, is_database_trouble


class _Tables:
    """One connection to the state database's federation tables (None: memory only)."""

    def __init__(self, db_path: Path | None):
        self.path = Path(db_path) if db_path is not None else None
        self._conn: sqlite3.Connection | None = None
        if self.path is not None:
            StateDB(self.path).close()          # creates or migrates the schema
            try:
                self._conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S,
                                             isolation_level=None, check_same_thread=False)
            except sqlite3.Error as e:
                raise db_error(self.path, e, "the ownership map (opening it)") from e

    def rows(self, sql: str) -> list[tuple]:
        if self._conn is None:
            return []
        try:
            return self._conn.execute(sql).fetchall()
        except sqlite3.Error as e:
            if not is_database_trouble(e):
                raise
            raise db_error(self.path, e, "the ownership map", writing=False) from e

    def write(self, what: str, sql: str, rows: list[tuple]) -> None:
        """`sql` for each row, in one transaction (nothing without rows)."""
        if self._conn is None or not rows:
            return
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(sql, rows)
            conn.execute("COMMIT")
        except sqlite3.Error as e:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if not is_database_trouble(e):
                raise
            raise db_error(self.path, e, what) from e

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class OwnerMap:
    """sha256 -> the pods whose stores hold it, with its size; persisted when
    given the state database's path."""

    def __init__(self, db_path: Path | None = None):
        self._db = _Tables(db_path)
        self._pods: dict[str, set[str]] = {}
        self._sizes: dict[str, int] = {}
        for sha, pod, size in self._db.rows("SELECT sha256, pod, size FROM owners"):
            self._pods.setdefault(sha, set()).add(pod)
            self._sizes[sha] = size

    def holds(self, pod: str, sha: str) -> bool:
        return pod in self._pods.get(sha, ())

    def add(self, pod: str, contents: Mapping[str, int]) -> None:
        """`pod` holds these (sha256 -> bytes) now."""
        new = [(sha, pod, int(size)) for sha, size in contents.items()
               if not self.holds(pod, sha)]
        self._db.write(f"the ownership map (what pod {pod} holds)",
                       "INSERT OR REPLACE INTO owners VALUES (?, ?, ?)", new)
        for sha, _, size in new:
            self._pods.setdefault(sha, set()).add(pod)
            self._sizes[sha] = size

    def forget_pod(self, pod: str) -> None:
        """`pod` holds nothing we know of (its store was emptied)."""
        self._db.write(f"the ownership map (forgetting pod {pod})",
                       "DELETE FROM owners WHERE pod = ?", [(pod,)])
        for pods in self._pods.values():
            pods.discard(pod)

    def pods_holding(self, shas: Iterable[str]) -> set[str]:
        """The pods holding at least one of these."""
        return {pod for sha in shas for pod in self._pods.get(sha, ())}

    def lacking_bytes(self, pod: str, contents: Mapping[str, int]) -> int:
        """Of these (sha256 -> bytes), the bytes `pod` does not hold."""
        return sum(size for sha, size in contents.items() if not self.holds(pod, sha))

    def by_pod(self) -> dict[str, tuple[int, int]]:
        """pod -> (files, bytes) it holds, for ``cpod status``."""
        out: dict[str, tuple[int, int]] = {}
        # snapshots: `cpod status` asks on another thread than the MajorDomo's, which adds
        for sha, pods in list(self._pods.items()):
            for pod in tuple(pods):
                n, size = out.get(pod, (0, 0))
                out[pod] = (n + 1, size + self._sizes.get(sha, 0))
        return dict(sorted(out.items()))

    def close(self) -> None:
        self._db.close()


class BuiltWith:
    """step id -> {tool: fingerprint} it was last built with (successfully)."""

    def __init__(self, db_path: Path | None = None):
        self._db = _Tables(db_path)
        self._prints: dict[str, dict[str, str]] = {}
        for sid, tool, fp in self._db.rows("SELECT step_id, tool, fingerprint FROM built_with"):
            self._prints.setdefault(sid, {})[tool] = fp

    def of(self, step_id: str) -> dict[str, str]:
        return dict(self._prints.get(step_id, {}))

    def built(self, steps: Iterable[tuple[str, Mapping[str, str]]]) -> None:
        """These steps were just built with these tool fingerprints."""
        rows = [(sid, tool, fp) for sid, prints in steps for tool, fp in prints.items()
                if self._prints.get(sid, {}).get(tool) != fp]
        self._db.write("the tool fingerprints steps were built with",
                       "INSERT OR REPLACE INTO built_with VALUES (?, ?, ?)", rows)
        for sid, tool, fp in rows:
            self._prints.setdefault(sid, {})[tool] = fp

    def close(self) -> None:
        self._db.close()
