"""A slot's resources: its commit log (read back as a crashed run's would be),
its out/ paths, streams and kept logs, and its one-rename commit."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from computepods.chef.recovery import read_commit_logs
from computepods.chef.scratch import SCRATCH_DIR
from computepods.chef.slot import COMMIT_LOG, CommitLog, LogDir, Slot, log_paths
from computepods.errors import ComputePodsError, PathEscapesWorkspace


def test_records_survive_a_killed_writer_and_the_log_grows_past_its_size(tmp_path):
    # The writer is SIGKILLed right after its last append (no close, no
    # flush): what it appended is read back; the growth kept every record.
    slot = tmp_path / SCRATCH_DIR / "chef-1-0"
    slot.mkdir(parents=True)
    code = textwrap.dedent(f"""
        import json, os, signal, sys
        from pathlib import Path
        from computepods.chef.slot import CommitLog
        log = CommitLog(Path({str(slot / COMMIT_LOG)!r}), size=64)
        for i in range(50):
            log.append((json.dumps({{"step_id": f"s{{i}}", "n": i}}) + "\\n").encode())
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == -9, run.stderr
    entries = read_commit_logs(tmp_path)
    assert sorted(e["n"] for e in entries) == list(range(50))


@pytest.fixture
def slot(tmp_path):
    slot = Slot(tmp_path, "chef-3-0")
    yield slot
    slot.close()


def test_the_commit_log_is_allocated_on_disk_before_it_is_written(tmp_path):
    # A sparse map on a full disk kills the writer with SIGBUS at the first
    # store into an unallocated page; allocated blocks cannot run out.
    log = CommitLog(tmp_path / COMMIT_LOG, size=64 << 10)
    try:
        assert os.stat(tmp_path / COMMIT_LOG).st_blocks * 512 >= 64 << 10
        log.append(b"x" * (100 << 10))              # grows: allocated again first
        st = os.stat(tmp_path / COMMIT_LOG)
        assert st.st_size >= 128 << 10 and st.st_blocks * 512 >= st.st_size
    finally:
        log.close()


def test_out_path_makes_its_directory_and_clears_what_a_failed_step_left(slot):
    path = slot.out_path("build/sub/a.o")
    assert path == slot.out_path_of("build/sub/a.o") and os.path.isdir(os.path.dirname(path))
    Path(path).write_text("partial")
    slot.mark_written(path)                   # a step wrote it, then failed
    assert slot.out_path("build/sub/a.o") == path and not os.path.exists(path)
    Path(path).write_text("committed elsewhere")
    slot.mark_written(path)
    slot.mark_committed(path)
    slot.out_path("build/sub/a.o")
    assert Path(path).read_text() == "committed elsewhere"


def test_each_step_gets_the_other_pair_of_streams_emptied(slot):
    first = slot.streams()
    os.write(first.out_fd, b"first step\n")
    slot.keep_logs("s1", first)
    second = slot.streams()
    assert second is not first
    os.write(second.err_fd, b"second step\n")
    slot.keep_logs("s2", second)
    again = slot.streams()
    assert again is first and os.fstat(again.out_fd).st_size == 0
    os.write(again.out_fd, b"x")
    assert os.pread(again.out_fd, 10, 0) == b"x"           # written from the start


def test_logs_keep_what_a_step_printed_and_drop_a_stale_log(tmp_path, slot):
    out, err = log_paths(tmp_path, "cc:a.o")
    streams = slot.streams()
    os.write(streams.out_fd, b"warning\n")
    slot.keep_logs("cc:a.o", streams)
    assert out.read_bytes() == b"warning\n" and not err.exists()
    streams = slot.streams()
    slot.keep_logs("cc:a.o", streams)                         # printed nothing this time
    assert not out.exists()
    # A log a previous run left is seen when the pod starts, and dropped.
    err.write_text("old")
    later = Slot(tmp_path, "chef-3-1", LogDir(tmp_path))
    try:
        later.keep_logs("cc:a.o", later.streams())
        assert not err.exists()
    finally:
        later.close()


def test_commit_output_renames_into_the_tree_and_refuses_escapes(tmp_path, slot):
    src = slot.out_path("deep/dir/a.o")
    Path(src).write_text("A")
    slot.commit_output(src, "deep/dir/a.o")
    assert (tmp_path / "deep/dir/a.o").read_text() == "A" and not os.path.exists(src)
    with pytest.raises(PathEscapesWorkspace):
        slot.commit_output(src, "../outside.o")
    with pytest.raises(ComputePodsError):
        slot.commit_output(src, ".computepods/state.db")
    with pytest.raises(PathEscapesWorkspace, match="project file"):
        slot.commit_output(src, "computepods.toml")       # a pattern's stem made it


def test_a_directory_swapped_for_a_symlink_after_a_commit_is_refused(tmp_path, slot):
    # What `cpod up` does: the same slot commits into out/ again after the
    # user replaced out/ with a link to a directory outside the project.
    outside = tmp_path.parent / (tmp_path.name + "-outside")
    outside.mkdir()
    src = slot.out_path("out/a.txt")
    Path(src).write_text("1")
    slot.commit_output(src, "out/a.txt")
    (tmp_path / "out/a.txt").unlink()
    (tmp_path / "out").rmdir()
    (tmp_path / "out").symlink_to(outside)
    Path(src).write_text("2")
    with pytest.raises(PathEscapesWorkspace, match="outside the project.*'out' is a symlink"):
        slot.commit_output(src, "out/a.txt")
    assert list(outside.iterdir()) == []


def test_a_symlinked_directory_inside_the_project_is_followed(tmp_path, slot):
    (tmp_path / "real").mkdir()
    (tmp_path / "build").symlink_to("real")
    src = slot.out_path("build/sub/a.o")
    Path(src).write_text("A")
    slot.commit_output(src, "build/sub/a.o")
    assert (tmp_path / "real/sub/a.o").read_text() == "A"
    (tmp_path / "state").symlink_to(".computepods")
    Path(src).write_text("B")
    with pytest.raises(PathEscapesWorkspace, match="inside .computepods/"):
        slot.commit_output(src, "state/x")
