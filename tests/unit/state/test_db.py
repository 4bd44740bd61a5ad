"""The state database: real SQLite files, round trips, schema versions, readers."""
from __future__ import annotations

import logging
import sqlite3

import pytest

from computepods.errors import ComputePodsError, StateCorrupt
from computepods.state.hashing import FileRecord
from computepods.state.db import SCHEMA_VERSION, StateDB, StepRecord


def frec(path: str, n: int = 1) -> FileRecord:
    return FileRecord(path, n, 1_700_000_000_000_000_000 + n, 1000 + n, f"{n:064x}",
                      1_700_000_000_100_000_000 + n)


def srec(step_id: str, n: int = 1, **kw) -> StepRecord:
    return StepRecord(step_id, "compile", f"cc -c src/{n}.c -o build/{n}.o",
                      inputs={f"src/{n}.c": f"{n:064x}", "opt.h": None},
                      outputs={f"build/{n}.o": f"{n + 1:064x}"}, **kw)


@pytest.fixture
def db_path(tmp_path):
    return tmp_path / ".computepods" / "state.db"


@pytest.fixture
def db(db_path):
    with StateDB(db_path) as db:
        yield db


def test_new_database_is_wal_with_a_schema_version(db, db_path):
    assert db_path.exists()
    conn = sqlite3.connect(db_path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT value FROM meta WHERE key='schema_version'"
                            ).fetchone()[0] == str(SCHEMA_VERSION)
    finally:
        conn.close()


def test_write_and_read_round_trip_survives_reopening(db_path):
    unicode_step = StepRecord("latex:docs/pä per.pdf", "latex", "pdflatex 'pä per.tex'",
                              inputs={"docs/pä per.tex": "a" * 64, "docs/pä per.bbl": None},
                              outputs={"docs/pä per.pdf": "b" * 64},
                              discovered=["/usr/share/texmf/article.cls"], status="failed",
                              exit_code=None, reason="timed out after 600 s",
                              duration_s=600.25, finished_ns=123)
    steps = [srec(f"compile:build/{i}.o", i) for i in range(50)] + [unicode_step]
    files = [frec(f"src/{i}.c", i) for i in range(50)]
    with StateDB(db_path) as db:
        db.write(steps=steps, files=files)
    with StateDB(db_path) as db:
        assert db.files() == {f.path: f for f in files}
        assert db.steps() == {s.step_id: s for s in steps}
        assert db.step("latex:docs/pä per.pdf") == unicode_step
        assert db.step("nope") is None


def test_write_replaces_and_drops_in_one_call(db):
    db.write(steps=[srec("a", 1), srec("b", 2)], files=[frec("x", 1), frec("y", 2)])
    db.write(steps=[srec("a", 7)], files=[frec("x", 9)], drop_files=["y"], drop_steps=["b"])
    assert db.files() == {"x": frec("x", 9)}
    assert db.steps() == {"a": srec("a", 7)}


def test_a_failing_write_changes_nothing(db):
    db.write(files=[frec("x", 1)])
    no_hash = FileRecord("y", 1, 1, 1, None, 1)      # violates NOT NULL mid-transaction
    with pytest.raises(sqlite3.IntegrityError):
        db.write(steps=[srec("a")], files=[frec("z"), no_hash], drop_files=["x"])
    assert db.files() == {"x": frec("x", 1)}
    assert db.steps() == {}
    db.write(files=[frec("z")])                      # and the connection is usable


def test_empty_database_answers_empty(db):
    assert db.files() == {} and db.steps() == {}
    assert db.builds(10) == ([], None) and db.build("abc") is None


def test_reader_sees_the_writers_commits_while_both_are_open(db, db_path):
    with StateDB(db_path, readonly=True) as reader:
        assert reader.files() == {}
        db.write(files=[frec("x", 1)], steps=[srec("a")])
        assert reader.files() == {"x": frec("x", 1)}
        assert reader.step("a") == srec("a")


def test_readonly_without_a_file_gives_empty_answers_and_creates_nothing(tmp_path):
    path = tmp_path / "none" / "state.db"
    with StateDB(path, readonly=True) as reader:
        assert reader.files() == {} and reader.steps() == {}
        assert reader.step("a") is None
        assert reader.build("a") is None and reader.builds(5) == ([], None)
        with pytest.raises(ComputePodsError, match="read-only"):
            reader.write(files=[frec("x")])
    assert not path.parent.exists()


def set_version(path, version: int) -> None:
    conn = sqlite3.connect(path)
    try:
        conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(version),))
        conn.commit()
    finally:
        conn.close()


def test_newer_schema_version_is_refused_with_what_to_do(db_path):
    with StateDB(db_path) as db:
        db.write(files=[frec("x")])
    set_version(db_path, SCHEMA_VERSION + 1)
    for readonly in (False, True):
        with pytest.raises(ComputePodsError) as info:
            StateDB(db_path, readonly=readonly)
        text = str(info.value)
        assert f"version {SCHEMA_VERSION + 1}" in text and str(db_path) in text
        assert "upgrade computepods" in text and "delete" in text
    set_version(db_path, SCHEMA_VERSION)
    with StateDB(db_path, readonly=True) as db:
        assert db.files() == {"x": frec("x")}      # refusing did not damage it


def test_older_schema_version_is_recreated_with_a_message(db_path, caplog):
    with StateDB(db_path) as db:
        db.write(files=[frec("x")], steps=[srec("a")])
    set_version(db_path, 0)
    with StateDB(db_path, readonly=True) as reader:
        assert reader.files() == {}               # readers never migrate
    with caplog.at_level(logging.WARNING, logger="computepods.state.db"):
        with StateDB(db_path) as db:
            assert db.files() == {} and db.steps() == {}
            db.write(files=[frec("y")])
    assert "recreating" in caplog.text and "version 0" in caplog.text
    with StateDB(db_path, readonly=True) as reader:
        assert reader.files() == {"y": frec("y")}


def test_a_file_that_is_not_a_database_is_a_clear_error(db_path):
    db_path.parent.mkdir(parents=True)
    db_path.write_bytes(b"this is not sqlite" * 100)
    for readonly in (False, True):
        with pytest.raises(StateCorrupt, match="corrupt.*deleting it loses only the record"):
            StateDB(db_path, readonly=readonly)


def test_ten_thousand_records_load_correctly(db):
    files = [frec(f"src/d{i % 50}/f{i}.c", i) for i in range(10_000)]
    steps = [srec(f"compile:build/{i}.o", i, discovered=[f"inc/{i}.h"])
             for i in range(10_000)]
    db.write(steps=steps, files=files)
    loaded_files, loaded_steps = db.files(), db.steps()
    assert len(loaded_files) == 10_000 and len(loaded_steps) == 10_000
    assert loaded_files["src/d7/f9957.c"] == frec("src/d7/f9957.c", 9957)
    assert loaded_steps["compile:build/9999.o"] == steps[-1]


def test_step_record_dict_round_trip():
    s = srec("a", 3, status="failed", exit_code=2, reason="exit 2")
    assert StepRecord.from_dict(s.to_dict()) == s


def test_version_1_is_migrated_in_place_keeping_its_records(db_path):
    with StateDB(db_path) as db:
        db.write(files=[frec("x")], steps=[srec("a")])
    conn = sqlite3.connect(db_path)
    conn.execute("DROP TABLE verdicts")
    conn.commit()
    conn.close()
    set_version(db_path, 1)
    with StateDB(db_path, readonly=True) as reader:    # readable before the writer migrates
        assert reader.files() == {"x": frec("x")} and reader.verdict("k") is None
    with StateDB(db_path) as db:
        assert db.steps() == {"a": srec("a")}
        db.write(verdict=("k", b"v"))
    with StateDB(db_path, readonly=True) as reader:
        assert reader.verdict("k") == b"v" and reader.files() == {"x": frec("x")}
    conn = sqlite3.connect(db_path)
    assert conn.execute("SELECT value FROM meta WHERE key='schema_version'"
                        ).fetchone()[0] == str(SCHEMA_VERSION)
    conn.close()
