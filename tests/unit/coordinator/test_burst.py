"""A watching pod's follow-up build waits out a burst of changes (a git
checkout), and never an editor's save (computepods.coordinator.burst)."""
from __future__ import annotations

from computepods.clock import SimClock
from computepods.coordinator.burst import (BURST_FILES, GAP_S, LOCK_POLL_S, MAX_HOLD_S, BurstHold,
                                           vcs_locks)


def hold() -> tuple[BurstHold, SimClock]:
    clock = SimClock(start=0.0)
    return BurstHold(clock), clock


def test_an_editors_save_never_waits():
    h, clock = hold()
    for settling in (2, 1, 0):          # the file, its swap file, vim's 4913 probe
        h.heard(settling)
        assert not h.holding()
    assert h.bursts == 0 and h.recheck_at() is None


def test_a_checkout_holds_the_build_until_its_last_file_is_reported():
    h, clock = hold()
    for left in range(400, 0, -1):      # 400 files, reported as each one settles
        h.heard(left)
        assert h.holding()
        clock.advance(0.001)
    h.heard(0)
    assert not h.holding()
    assert h.bursts == 1


def test_a_burst_that_ends_in_temporaries_is_over_after_the_gap():
    h, clock = hold()
    h.heard(BURST_FILES)                # then the rest are temporaries: never reported
    assert h.holding()
    assert h.recheck_at() == GAP_S
    clock.advance(GAP_S)
    assert not h.holding()


def test_a_tree_that_never_stops_changing_still_gets_its_build():
    h, clock = hold()
    h.heard(BURST_FILES * 10)
    while clock.monotonic() < MAX_HOLD_S - GAP_S:
        clock.advance(GAP_S / 2)
        h.heard(BURST_FILES * 10)
        assert h.holding()
    clock.advance(GAP_S)
    h.heard(BURST_FILES * 10)
    assert not h.holding()


def test_a_watcher_that_does_not_say_how_many_are_settling_is_not_held():
    h, clock = hold()
    for settling in (None, "9", True, -1):      # an older watcher, or a forged message
        h.heard(settling)
        assert not h.holding()


def test_a_checkout_holds_the_build_while_git_holds_its_index_lock(tmp_path):
    (tmp_path / ".git").mkdir()
    project = tmp_path / "sub" / "project"       # a project inside the repository
    project.mkdir(parents=True)
    locks = vcs_locks(project)
    assert locks == [str(tmp_path / ".git" / "index.lock")]
    clock = SimClock(start=0.0)
    h = BurstHold(clock, locks=locks)
    lock = tmp_path / ".git" / "index.lock"
    lock.write_text("")
    h.heard(1)                          # git's first file: it may start slowly
    assert h.holding()
    h.heard(0)                          # git paused: nothing settling, but it is not done
    assert h.holding()
    assert h.recheck_at() == LOCK_POLL_S
    clock.advance(GAP_S * 2)            # a long pause (a loaded machine) splits nothing
    assert h.holding()
    lock.unlink()                       # git wrote its index: the checkout is over
    assert not h.holding()
