"""Commit moves outputs atomically; a crash mid-way is rolled forward."""
from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import pytest

from computepods.chef import commit as commit_mod
from computepods.chef.commit import JOURNAL, commit, digest_in_tree, roll_forward
from computepods.errors import ComputePodsError, PathEscapesWorkspace
from computepods.chef.scratch import SCRATCH_DIR, make_scratch, scratch_out_path

RECORD = {"step_id": "compile:build/a.o", "rule": "compile", "outputs": {"build/a.o": "ab"}}


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.fixture
def root(tmp_path):
    root = tmp_path / "proj"
    write(root / "src" / "a.c", "int a;")
    write(root / "build" / "a.o", "old object")
    return root


def scratch_with_outputs(root: Path, step_id: str, outputs: dict[str, str]) -> Path:
    scratch = make_scratch(root, step_id)
    for output, text in outputs.items():
        scratch_out_path(scratch, output).write_text(text)
    return scratch


def test_commit_moves_outputs_into_the_tree_and_cleans_up(root):
    scratch = scratch_with_outputs(root, "compile:build/a.o",
                                   {"build/a.o": "new object", "build/deps/a.d": "a.o: a.c"})
    write(scratch / "out" / "junk.tmp", "not an output")
    commit(scratch, root, [("out/build/a.o", "build/a.o"),
                           ("out/build/deps/a.d", "build/deps/a.d")], RECORD)
    assert (root / "build" / "a.o").read_text() == "new object"
    assert (root / "build" / "deps" / "a.d").read_text() == "a.o: a.c"
    assert not scratch.exists()
    assert not (root / "junk.tmp").exists()
    assert roll_forward(root) == []


def test_a_crash_between_two_renames_is_rolled_forward(root, monkeypatch):
    scratch = scratch_with_outputs(root, "compile:build/a.o",
                                   {"build/a.o": "new object", "build/a.d": "deps"})
    real_replace = os.replace
    calls = []

    def crash_on_second_output(src, dst, **dir_fds):
        calls.append(dst)
        if len(calls) == 3:           # 1: the journal, 2: first output, 3: crash
            raise KeyboardInterrupt("simulated crash")
        real_replace(src, dst, **dir_fds)

    monkeypatch.setattr(os, "replace", crash_on_second_output)
    with pytest.raises(KeyboardInterrupt):
        commit(scratch, root, [("out/build/a.o", "build/a.o"),
                               ("out/build/a.d", "build/a.d")], RECORD)
    monkeypatch.setattr(os, "replace", real_replace)

    assert (root / "build" / "a.o").read_text() == "new object"
    assert not (root / "build" / "a.d").exists()
    assert (scratch / JOURNAL).exists()

    assert roll_forward(root) == [RECORD]
    assert (root / "build" / "a.o").read_text() == "new object"
    assert (root / "build" / "a.d").read_text() == "deps"
    assert not scratch.exists()
    assert roll_forward(root) == []


def test_a_crash_after_all_renames_still_returns_the_record(root, monkeypatch):
    scratch = scratch_with_outputs(root, "s", {"build/a.o": "new"})

    def crash(path):
        raise KeyboardInterrupt("simulated crash before the journal is removed")

    monkeypatch.setattr(os, "unlink", crash)
    with pytest.raises(KeyboardInterrupt):
        commit(scratch, root, [("out/build/a.o", "build/a.o")], RECORD)
    monkeypatch.undo()
    assert roll_forward(root) == [RECORD]
    assert (root / "build" / "a.o").read_text() == "new"
    assert not scratch.exists()


def test_scratch_dirs_without_a_journal_are_discarded(root):
    crashed = scratch_with_outputs(root, "compile:build/a.o", {"build/a.o": "half-written"})
    half_journal = scratch_with_outputs(root, "link:bin/app", {"bin/app": "elf"})
    write(half_journal / (JOURNAL + ".tmp"), '{"format": 1, "mo')
    write(root / SCRATCH_DIR / "stray-file", "x")

    assert roll_forward(root) == []
    assert (root / "build" / "a.o").read_text() == "old object"
    assert not (root / "bin").exists()
    assert not crashed.exists() and not half_journal.exists()
    assert list((root / SCRATCH_DIR).iterdir()) == []


def test_invalid_journals_are_discarded_with_a_warning(root, caplog):
    garbled = scratch_with_outputs(root, "a", {"x": "1"})
    write(garbled / JOURNAL, "{not json")
    escaping = scratch_with_outputs(root, "b", {"y": "2"})
    write(escaping / JOURNAL, json.dumps({"format": 1, "moves": [["out/y", "../../y"]],
                                          "record": {}}))
    with caplog.at_level(logging.WARNING, logger="computepods.chef.commit"):
        assert roll_forward(root) == []
    assert "unreadable commit journal" in caplog.text
    assert "invalid commit journal" in caplog.text
    assert not (root / "x").exists() and not (root.parent.parent / "y").exists()
    assert not garbled.exists() and not escaping.exists()


def test_roll_forward_without_scratch_space_does_nothing(tmp_path):
    assert roll_forward(tmp_path) == []


@pytest.mark.parametrize("dest", ["../outside", "/etc/passwd", "build/../../x",
                                  ".computepods/state.db"])
def test_dest_outside_the_project_is_refused_before_anything_moves(root, dest):
    scratch = scratch_with_outputs(root, "s", {"a": "1", "b": "2"})
    with pytest.raises(PathEscapesWorkspace):
        commit(scratch, root, [("out/a", "ok"), ("out/b", dest)], RECORD)
    assert not (root / "ok").exists() and not (scratch / JOURNAL).exists()


def test_dest_through_a_symlink_leaving_the_project_is_refused(root, tmp_path):
    (tmp_path / "elsewhere").mkdir()
    (root / "linked").symlink_to(tmp_path / "elsewhere")
    scratch = scratch_with_outputs(root, "s", {"a": "1"})
    with pytest.raises(PathEscapesWorkspace, match="outside the project"):
        commit(scratch, root, [("out/a", "linked/a")], RECORD)
    assert list((tmp_path / "elsewhere").iterdir()) == []


def test_sources_outside_scratch_are_refused(root):
    scratch = scratch_with_outputs(root, "s", {"a": "1"})
    with pytest.raises(PathEscapesWorkspace):
        commit(scratch, root, [("../../../src/a.c", "stolen")], RECORD)


def test_missing_output_or_blocked_dest_changes_nothing(root):
    scratch = scratch_with_outputs(root, "s", {"a": "1"})
    with pytest.raises(ComputePodsError, match="did not write it"):
        commit(scratch, root, [("out/a", "a"), ("out/missing", "m")], RECORD)
    with pytest.raises(ComputePodsError, match="is a directory"):
        commit(scratch, root, [("out/a", "a"), ("out/a", "build")], RECORD)
    with pytest.raises(ComputePodsError, match="'src/a.c' is a file"):
        commit(scratch, root, [("out/a", "a"), ("out/a", "src/a.c/x")], RECORD)
    assert not (root / "a").exists() and not (scratch / JOURNAL).exists()


def test_record_must_be_json(root):
    scratch = scratch_with_outputs(root, "s", {"a": "1"})
    with pytest.raises(TypeError):
        commit(scratch, root, [("out/a", "a")], {"not json": object()})
    assert not (root / "a").exists()


def test_journal_is_written_atomically_and_complete(root, monkeypatch):
    scratch = scratch_with_outputs(root, "s", {"a": "1"})
    seen = {}

    def inspect_then_stop(src, dst):
        if dst.endswith(JOURNAL):
            os.rename(src, dst)
            seen.update(json.loads(Path(dst).read_text()))
            raise KeyboardInterrupt("stop after the journal")

    monkeypatch.setattr(commit_mod.os, "replace", inspect_then_stop)
    with pytest.raises(KeyboardInterrupt):
        commit(scratch, root, [("out/a", "a")], RECORD)
    assert seen == {"format": 1, "moves": [["out/a", "a"]], "record": RECORD}


def test_roll_forward_keeps_the_scratch_of_this_runs_own_chef(root):
    # cpod build launches its chef before the pod starts: the chef's slots
    # are this run's, not a crashed run's leftovers.
    scratch = root / SCRATCH_DIR
    for name in ("ours-1234-0", "old-999-0"):
        write(scratch / name / "commits.log", "")
    assert roll_forward(root, keep=lambda name: name.startswith("ours-")) == []
    assert sorted(p.name for p in scratch.iterdir()) == ["ours-1234-0"]


def test_digest_in_tree_is_none_where_no_file_is(root):
    write(root / "src" / "a.txt", "A")
    assert digest_in_tree(root, "src/a.txt") == hashlib.sha256(b"A").hexdigest()
    assert digest_in_tree(root, "src/missing.txt") is None
    assert digest_in_tree(root, "src") is None                # a directory
    assert digest_in_tree(root, "src/a.txt/below") is None    # under a file
