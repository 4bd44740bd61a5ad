"""What a crashed run left behind: its steps still running, its commit logs."""
from __future__ import annotations

import hashlib
import json
import os
import select
import signal
import subprocess

from computepods.chef.groups import STEP_MARK, has_env_entry
from computepods.chef.recovery import kill_leftover_steps, read_commit_logs, recovered_records
from computepods.chef.scratch import SCRATCH_DIR
from computepods.chef.slot import COMMIT_LOG, CommitLog
from tests.helpers import wait_for

WAIT_S = 10.0     # generous limit for a process to disappear


def record(step_id: str, outputs: dict[str, str]) -> dict:
    return {"step_id": step_id, "rule": "r", "command": f"make {step_id}", "inputs": {},
            "outputs": outputs, "discovered": [], "status": "ok", "exit_code": 0,
            "reason": "recovered after a crash", "duration_s": 0.1, "finished_ns": 1}


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_a_torn_last_record_and_the_zero_tail_are_skipped(tmp_path):
    slot = tmp_path / SCRATCH_DIR / "chef-2-0"
    slot.mkdir(parents=True)
    log = CommitLog(slot / COMMIT_LOG, size=4096)
    log.append(b'{"step_id": "a", "n": 1}\n')
    log.append(b'{"step_id": "b", "n"')            # the kill came mid-record
    log.close()
    assert os.path.getsize(slot / COMMIT_LOG) == 4096
    assert read_commit_logs(tmp_path) == [json.loads('{"step_id": "a", "n": 1}')]


def test_the_last_entry_of_a_step_wins_and_this_runs_own_slots_are_kept(tmp_path):
    for name, lines in (("old-1-0", ['{"step_id": "a", "n": 1}', '{"step_id": "a", "n": 2}']),
                        ("ours-2-0", ['{"step_id": "b", "n": 3}'])):
        slot = tmp_path / SCRATCH_DIR / name
        slot.mkdir(parents=True)
        (slot / COMMIT_LOG).write_text("\n".join(lines) + "\n")
    entries = read_commit_logs(tmp_path, keep=lambda name: name.startswith("ours-"))
    assert entries == [{"step_id": "a", "n": 2}]


def test_no_scratch_means_nothing_to_recover(tmp_path):
    assert read_commit_logs(tmp_path) == []
    assert recovered_records(tmp_path, []) == []


def test_only_records_whose_outputs_reached_the_tree_are_recovered(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "a.o").write_text("A")
    (tmp_path / "out" / "b.o").write_text("edited since")
    entries = [record("cc:a", {"out/a.o": sha("A")}),
               record("cc:b", {"out/b.o": sha("B")}),        # someone edited it since
               record("cc:c", {"out/c.o": sha("C")})]        # the rename never happened
    recovered = recovered_records(tmp_path, entries)
    assert [r.step_id for r in recovered] == ["cc:a"]
    assert recovered[0].outputs == {"out/a.o": sha("A")}


def assert_process_gone(pid: int) -> None:
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        assert poller.poll(WAIT_S * 1000), f"process {pid} is still running"
    finally:
        os.close(pidfd)


def test_leftover_steps_of_this_root_are_killed_and_others_left_alone(tmp_path):
    path = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    mine = {**path, "CP_PROJECT": os.path.abspath(tmp_path), STEP_MARK: "1"}
    other = {**path, "CP_PROJECT": os.path.abspath(tmp_path / "elsewhere"), STEP_MARK: "1"}
    left = subprocess.Popen(["sleep", "300"], env=mine, process_group=0)
    stranger = subprocess.Popen(["sleep", "300"], env=other, process_group=0)
    try:
        # (Popen returns before the kernel has set up the new program's environment.)
        wait_for(lambda: has_env_entry(left.pid, f"{STEP_MARK}=1".encode()), what="the exec")
        wait_for(lambda: has_env_entry(stranger.pid, f"{STEP_MARK}=1".encode()), what="the exec")
        assert kill_leftover_steps(tmp_path) == [left.pid]
        assert left.wait(timeout=WAIT_S) == -signal.SIGTERM
        assert stranger.poll() is None
    finally:
        for proc in (left, stranger):
            proc.kill()
            proc.wait(timeout=WAIT_S)


def test_a_stopping_pod_stores_what_its_chefs_logged_and_the_db_lacks(tmp_path):
    from computepods.chef.recovery import settle_commit_logs
    from computepods.state.db import StateDB, StepRecord
    (tmp_path / "out").mkdir()
    for name in ("a", "b"):
        (tmp_path / "out" / f"{name}.o").write_text(name.upper())
    db_path = tmp_path / ".computepods" / "state.db"
    db_path.parent.mkdir()
    stored = StepRecord.from_dict({**record("cc:a", {"out/a.o": sha("A")}), "finished_ns": 5})
    with StateDB(db_path) as db:
        db.write(steps=[stored])
    for name, entry in (("ours-1-0", record("cc:a", {"out/a.o": sha("A")})),
                        ("ours-1-1", record("cc:b", {"out/b.o": sha("B")})),
                        ("other-2-0", record("cc:c", {"out/c.o": sha("C")}))):
        slot = tmp_path / SCRATCH_DIR / name
        slot.mkdir(parents=True)
        (slot / COMMIT_LOG).write_text(json.dumps(entry) + "\n")
    written = settle_commit_logs(tmp_path, db_path, lambda name: name.startswith("ours-"))
    assert written == 1                          # cc:a was stored already, and newer
    with StateDB(db_path) as db:
        assert db.step("cc:b").outputs == {"out/b.o": sha("B")}
        assert db.step("cc:a").finished_ns == 5
    assert sorted(p.name for p in (tmp_path / SCRATCH_DIR).iterdir()) == ["other-2-0"]


def test_the_newest_entry_of_a_step_wins_across_slots(tmp_path):
    for name, n in (("b-1-0", 1), ("a-1-1", 2)):
        slot = tmp_path / SCRATCH_DIR / name
        slot.mkdir(parents=True)
        (slot / COMMIT_LOG).write_text(json.dumps({"step_id": "s", "finished_ns": n}) + "\n")
    assert read_commit_logs(tmp_path) == [{"step_id": "s", "finished_ns": 2}]
