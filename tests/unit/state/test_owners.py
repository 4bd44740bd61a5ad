"""The ownership map and the built-with table: real SQLite files, reopened."""
from __future__ import annotations

import sqlite3

from computepods.state.db import SCHEMA_VERSION, StateDB, StepRecord
from computepods.state.owners import BuiltWith, OwnerMap

A, B = "a" * 64, "b" * 64


def test_owners_persist_across_a_reopen_of_the_state_database(tmp_path):
    path = tmp_path / ".computepods" / "state.db"
    owners = OwnerMap(path)
    owners.add("pod-b", {A: 10, B: 2000})
    owners.add("pod-c", {A: 10})
    owners.close()

    again = OwnerMap(path)
    assert again.by_pod() == {"pod-b": (2, 2010), "pod-c": (1, 10)}
    assert again.holds("pod-c", A) and not again.holds("pod-c", B)
    assert again.lacking_bytes("pod-c", {A: 10, B: 2000}) == 2000
    again.forget_pod("pod-b")
    again.close()
    assert OwnerMap(path).by_pod() == {"pod-c": (1, 10)}


def test_the_store_keeps_its_records_beside_the_owners(tmp_path):
    path = tmp_path / "state.db"
    with StateDB(path) as db:
        db.write(steps=[StepRecord("s", "r", "true", {}, {})])
    owners = OwnerMap(path)
    owners.add("pod-b", {A: 1})
    with StateDB(path) as db:           # the Store's writes go on beside the map
        db.write(steps=[StepRecord("t", "r", "true", {}, {})])
        assert sorted(db.steps()) == ["s", "t"]
    owners.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT value FROM meta WHERE key='schema_version'"
                            ).fetchone()[0] == str(SCHEMA_VERSION) == "3"


def test_a_version_2_database_gains_the_tables_and_keeps_its_records(tmp_path):
    path = tmp_path / "state.db"
    with StateDB(path) as db:
        db.write(steps=[StepRecord("s", "r", "true", {}, {})])
    with sqlite3.connect(path) as conn:      # as computepods with schema 2 left it
        conn.execute("DROP TABLE owners")
        conn.execute("DROP TABLE built_with")
        conn.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    owners = OwnerMap(path)
    owners.add("pod-b", {A: 1})
    assert owners.by_pod() == {"pod-b": (1, 1)}
    owners.close()
    with StateDB(path) as db:
        assert list(db.steps()) == ["s"]


def test_built_with_remembers_the_last_fingerprints_of_each_step(tmp_path):
    path = tmp_path / "state.db"
    bw = BuiltWith(path)
    bw.built([("cc:app.o", {"cc": "SHA-1"}), ("tex:doc.pdf", {"pdflatex": "P"})])
    bw.built([("cc:app.o", {"cc": "SHA-2"})])
    bw.close()
    again = BuiltWith(path)
    assert again.of("cc:app.o") == {"cc": "SHA-2"}
    assert again.of("tex:doc.pdf") == {"pdflatex": "P"} and again.of("nope") == {}
    again.close()


def test_an_owner_map_without_a_file_lives_in_memory():
    owners = OwnerMap()
    owners.add("pod-b", {A: 5})
    assert owners.by_pod() == {"pod-b": (1, 5)} and owners.lacking_bytes("pod-x", {A: 5}) == 5
