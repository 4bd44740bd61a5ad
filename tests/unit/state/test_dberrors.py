"""A state database that cannot be used says why, and gives only the right advice."""
from __future__ import annotations

import errno
import sqlite3

import pytest

from computepods.errors import ComputePodsError, DiskFull, StateCorrupt
from computepods.state.db import StateDB, StepRecord
from computepods.state.dberrors import db_error


@pytest.fixture
def db_path(tmp_path):
    path = tmp_path / ".computepods" / "state.db"
    with StateDB(path) as db:
        db.write(steps=[StepRecord("copy:a", "fp", "cp a b", {"a": "1" * 64}, {"b": "2" * 64})])
    return path


def poke(path, sql: str, *args) -> None:
    conn = sqlite3.connect(path)
    conn.execute(sql, args)
    conn.commit()
    conn.close()


def test_a_blob_where_a_step_id_belongs_is_corruption_not_a_traceback(db_path):
    # What bad middle pages did: "JSON cannot hold BLOB values" out of steps().
    poke(db_path, "INSERT INTO steps VALUES (?, ?)", b"\xff\x00blob", "[]")
    for readonly in (True, False):
        with StateDB(db_path, readonly=readonly) as db:
            with pytest.raises(StateCorrupt, match=r"state\.db: the state database is corrupt"
                               r".*deleting it loses only the record of what was built"):
                db.steps()


def test_a_record_that_is_not_a_step_is_corruption(db_path):
    poke(db_path, "UPDATE steps SET record = ?", "[1, 2")
    with StateDB(db_path, readonly=True) as db, pytest.raises(StateCorrupt):
        db.steps()
    poke(db_path, "UPDATE steps SET record = ?", '{"not": "a list"}')
    with StateDB(db_path, readonly=True) as db, pytest.raises(StateCorrupt):
        db.step("copy:a")


def test_a_schema_version_that_is_not_a_number_is_corruption(db_path):
    poke(db_path, "UPDATE meta SET value = 'x' WHERE key = 'schema_version'")
    with pytest.raises(StateCorrupt, match="corrupt"):
        StateDB(db_path, readonly=True)


def test_a_full_disk_is_never_called_corrupt(db_path):
    full = sqlite3.OperationalError("database or disk is full")
    full.sqlite_errorcode = 13
    err = db_error(db_path, full, "the records of 3 steps and 0 files")
    assert isinstance(err, DiskFull) and err.errno == errno.ENOSPC
    assert f"the disk holding {db_path} is full" in str(err)
    assert "the filesystem mounted at /" in str(err)
    assert "not written: the records of 3 steps and 0 files" in str(err)
    assert "corrupt" not in str(err) and "delete" not in str(err)


def test_a_locked_database_is_not_called_corrupt(db_path):
    busy = sqlite3.OperationalError("database is locked")
    busy.sqlite_errorcode = 5
    err = db_error(db_path, busy, "the records of 1 step and 0 files")
    assert not isinstance(err, StateCorrupt) and "locked" in str(err)
    assert "delete" not in str(err)


def test_a_broken_constraint_stays_a_bug_not_a_disk_problem(db_path):
    with StateDB(db_path) as db, pytest.raises(sqlite3.IntegrityError):
        from computepods.state.hashing import FileRecord
        db.write(files=[FileRecord("y", 1, 1, 1, None, 1)])


def test_errors_are_computepods_errors_with_exit_2(db_path):
    for cls in (DiskFull, StateCorrupt):
        assert issubclass(cls, ComputePodsError) and cls("x").exit_code == 2

