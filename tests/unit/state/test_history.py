"""The history of builds in a real state database: kept in order, bounded,
timelines compressed and trimmed, and never a reason to drop a verdict."""
from __future__ import annotations

import pytest

from computepods.state import history
from computepods.state.db import StateDB, StepRecord
from computepods.state.history import BuildEntry


@pytest.fixture
def db(tmp_path):
    with StateDB(tmp_path / ".computepods" / "state.db") as db:
        yield db


def entry(n: int, state: str = history.DONE, **kw) -> BuildEntry:
    return BuildEntry(f"b{n}", [f"out/{n}"], "cli", state, started_ns=n * 10**9,
                      ended_ns=None if state == history.RUNNING else n * 10**9 + 5 * 10**8, **kw)


def test_a_build_is_written_running_then_finished_in_its_place(db):
    db.write(builds=[entry(1)])
    db.write(builds=[entry(2, history.RUNNING, steps=7)])
    db.write(builds=[entry(3)])
    done = entry(2, ran=5, up_to_date=1, failed=1, failed_steps=["cc:a.o"],
                 profile={"spans": [["cc:a.o", "chef-0", 0, 0.1, 0.2, "failed", None, None]]})
    db.write(builds=[done])
    builds, more = db.builds(10)
    assert [b.id for b in builds] == ["b3", "b2", "b1"] and more is None
    got = db.build("b2", with_profile=True)
    assert got == done and got.duration_s == 0.5
    assert got.profile == done.profile
    assert db.build("b2").profile is None              # only when asked


def test_pages_go_from_newest_to_oldest(db):
    db.write(builds=[entry(n) for n in range(1, 8)])
    first, after = db.builds(3)
    second, after2 = db.builds(3, before=after)
    third, end = db.builds(3, before=after2)
    assert [b.id for b in first + second + third] == [f"b{n}" for n in range(7, 0, -1)]
    assert end is None


def test_the_history_is_bounded_and_old_timelines_go_first(db, monkeypatch):
    monkeypatch.setattr(history, "MAX_BUILDS", 5)
    monkeypatch.setattr(history, "MAX_PROFILES", 2)
    for n in range(1, 9):
        db.write(builds=[entry(n, profile={"spans": [], "marks": [], "duration_s": n})])
    builds, _ = db.builds(100)
    assert [b.id for b in builds] == ["b8", "b7", "b6", "b5", "b4"]
    kept = [b.id for b in builds if db.build(b.id, with_profile=True).profile is not None]
    assert kept == ["b8", "b7"]


def test_running_builds_of_a_stopped_pod_become_interrupted(db):
    db.write(builds=[entry(1), entry(2, history.RUNNING)])
    assert db.interrupt_running_builds() == 1
    assert db.build("b2").state == history.INTERRUPTED
    assert db.build("b1").state == history.DONE


def test_a_history_write_keeps_the_verdicts_a_write_of_records_drops(db):
    db.write(verdict=("k", b"all up to date"))
    db.write(builds=[entry(1)])
    assert db.verdict("k") == b"all up to date"
    db.write(steps=[StepRecord("s", "r", "true", {}, {})], builds=[entry(2)])
    assert db.verdict("k") is None and db.build("b2") is not None


def test_a_reader_of_a_file_without_the_table_sees_no_builds(tmp_path):
    path = tmp_path / "state.db"
    StateDB(path).close()
    import sqlite3
    conn = sqlite3.connect(path)
    conn.execute("DROP TABLE build_history")          # as an older computepods left it
    conn.commit()
    conn.close()
    with StateDB(path, readonly=True) as reader:
        assert reader.builds(10) == ([], None) and reader.build("b1") is None
