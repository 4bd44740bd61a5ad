"""A slot's memory-mapped commit log, read back as a crashed run's would be."""
from __future__ import annotations

import subprocess
import sys
import textwrap

from computepods.chef.recovery import read_commit_logs
from computepods.chef.scratch import SCRATCH_DIR
from computepods.chef.slot import COMMIT_LOG


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
