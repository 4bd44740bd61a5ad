"""When a background pod stops by itself, on a simulated clock (no threads)."""
from __future__ import annotations

import shutil

from computepods.pod.idle import IdleGuard


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def guard(root, clock) -> IdleGuard:
    (root / ".computepods").mkdir(exist_ok=True)
    return IdleGuard(root, 60.0, stop=lambda: None, say=lambda text: None, clock=clock)


def test_idle_counts_from_the_last_request_and_a_running_build_is_not_idle(tmp_path):
    clock = Clock()
    g = guard(tmp_path, clock)
    clock.now += 59
    assert g.why_stop() is None
    g.touch()                                   # a `cpod status`
    clock.now += 59
    assert g.why_stop() is None
    with g.busy():                              # a build longer than pod_idle
        clock.now += 600
        assert g.why_stop() is None
    clock.now += 59
    assert g.why_stop() is None
    clock.now += 1
    assert "no request for 60 s" in g.why_stop()


def test_a_removed_state_directory_stops_the_pod(tmp_path):
    g = guard(tmp_path, Clock())
    shutil.rmtree(tmp_path / ".computepods")
    assert ".computepods is gone" in g.why_stop()
