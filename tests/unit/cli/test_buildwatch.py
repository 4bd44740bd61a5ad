"""cpod build stops when the Store cannot write, and names a full disk after failures."""
from __future__ import annotations

import pytest

from computepods.cli.buildwatch import BuildWatch
from computepods.errors import RecordsNotWritten


def test_a_store_that_cannot_write_stops_a_one_shot_build(tmp_path):
    seen = []
    watch = BuildWatch(tmp_path, seen.append)
    watch.on_event({"t": "run", "step": "a"})
    error = f"the disk holding {tmp_path}/state.db is full (...); not written: the records"
    with pytest.raises(RecordsNotWritten) as caught:
        watch.on_event({"t": "store_retry", "problem": "cannot write ...; trying again in 1 s",
                        "retry_s": 1.0, "error": error})
    assert str(caught.value).startswith(error) and "the build stops" in str(caught.value)
    assert caught.value.exit_code == 2
    assert seen == [{"t": "run", "step": "a"}]


def test_no_disk_note_for_failures_on_a_disk_with_room(tmp_path):
    watch = BuildWatch(tmp_path, lambda ev: None)
    assert watch.disk_note() is None
    watch.on_event({"t": "fail", "step": "a", "reason": "exit 1", "stderr_tail": "boom"})
    assert watch.disk_note() is None


def test_a_step_that_said_no_space_names_the_disk(tmp_path):
    watch = BuildWatch(tmp_path, lambda ev: None)
    watch.on_event({"t": "fail", "step": "big:out/big", "reason": "exit 1",
                    "stderr_tail": "head: error writing 'x': No space left on device\n"})
    note = watch.disk_note()
    assert note and f"the disk holding {tmp_path} is full" in note
    assert "the outputs of 1 failed steps (big:out/big)" in note
