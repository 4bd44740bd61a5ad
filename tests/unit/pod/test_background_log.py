"""A background pod's log (.computepods/pod.log) does not grow without end:
a pod about to start turns a log past its limit into pod.log.1."""
from __future__ import annotations

from computepods.pod.background import rotate_log


def test_a_log_past_its_limit_becomes_dot_1_and_a_small_one_stays(tmp_path):
    log = tmp_path / "pod.log"
    log.write_bytes(b"x" * 100)
    rotate_log(log, keep_bytes=100)
    assert log.read_bytes() == b"x" * 100 and not (tmp_path / "pod.log.1").exists()

    log.write_bytes(b"first pod\n" * 20)
    rotate_log(log, keep_bytes=100)
    assert not log.exists() and (tmp_path / "pod.log.1").read_bytes() == b"first pod\n" * 20

    log.write_bytes(b"second pod\n" * 20)
    rotate_log(log, keep_bytes=100)           # the one before goes: two pods' worth at most
    assert (tmp_path / "pod.log.1").read_bytes() == b"second pod\n" * 20


def test_no_log_yet_is_nothing_to_do(tmp_path):
    rotate_log(tmp_path / "pod.log")
    assert list(tmp_path.iterdir()) == []
