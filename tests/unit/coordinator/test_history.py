"""Each build's entry in the history, folded from its events on a simulated clock."""
from __future__ import annotations


from computepods.bus import messages as m
from computepods.clock import SimClock
from computepods.coordinator.history import BuildHistory, plan_failed_event, started_by
from computepods.errors import UnknownTarget


def history():
    clock, records = SimClock(), []
    return clock, records, BuildHistory(clock, lambda sig, rec: records.append((sig, rec)))


def entries(records):
    assert all(sig == m.RECORD for sig, _ in records)
    return [rec.builds[0] for _, rec in records]


def test_a_build_is_kept_when_it_starts_and_when_it_ends():
    clock, records, h = history()
    h.heard("b1", {"t": "queued", "targets": [], "by": "rest"})
    clock.advance(0.5)
    h.heard("b1", {"t": "plan", "steps": 3, "targets": ["out/all.txt"], "by": "rest"})
    [running] = entries(records)
    assert (running.state, running.started_by, running.targets, running.steps) == (
        "running", "rest", ["out/all.txt"], 3)
    h.heard("b1", {"t": "start", "step": "s1", "chef": "c0"})
    clock.advance(1.0)
    h.heard("b1", {"t": "fail", "step": "s1", "duration_s": 1.0})
    h.heard("b1", {"t": "done", "ok": False, "code": 1, "ran": 1, "skipped": 1, "failed": 1,
                   "blocked": 1, "not_run": 0, "cancelled_steps": 0})
    _, done = entries(records)
    assert (done.state, done.code, done.ran, done.up_to_date, done.failed, done.not_run) == (
        "failed", 1, 1, 1, 1, 1)
    assert done.failed_steps == ["s1"] and done.duration_s == 1.0
    assert [row[0] for row in done.profile["spans"]] == ["s1"]


def test_a_cancelled_build_says_so_and_counts_what_it_killed():
    clock, records, h = history()
    h.heard("b1", {"t": "plan", "steps": 9, "targets": ["x"], "by": "cli"})
    h.heard("b1", {"t": "done", "ok": False, "code": 130, "cancelled": True, "ran": 2,
                   "skipped": 0, "failed": 0, "blocked": 3, "not_run": 3, "cancelled_steps": 1})
    done = entries(records)[-1]
    assert (done.state, done.ran, done.failed, done.not_run, done.cancelled) == (
        "cancelled", 2, 0, 6, 1)


def test_a_build_that_fails_at_planning_is_kept_once_with_its_error():
    clock, records, h = history()
    exc = UnknownTarget("no rule makes 'nope'")
    h.heard("b2", plan_failed_event({"targets": ["nope"], "client": "cron"}, exc))
    [entry] = entries(records)
    assert (entry.state, entry.targets, entry.started_by, entry.code) == (
        "failed", ["nope"], "cron", exc.exit_code)
    assert "nope" in entry.error


def test_a_dry_run_is_not_kept_and_a_fresh_answer_is_kept_once():
    clock, records, h = history()
    h.heard("d", {"t": "plan", "steps": 2, "targets": ["x"], "by": "cli", "dry_run": True})
    h.heard("d", {"t": "done", "ok": True, "code": 0, "dry_run": True})
    assert records == []
    h.heard("f", {"t": "queued", "targets": ["x"], "by": "cli"})
    h.heard("f", {"t": "plan", "steps": 2, "targets": ["x"], "fresh": True})
    h.heard("f", {"t": "done", "ok": True, "code": 0, "ran": 0, "skipped": 2, "fresh": True})
    [entry] = entries(records)
    assert (entry.state, entry.up_to_date, entry.started_by) == ("done", 2, "cli")


def test_who_started_a_build_comes_from_its_connection_name():
    assert [started_by(c) for c in ("cpod@host:12", "rest:99", "watch", "watch:h:3", "cron",
                                    None, "someone")] == [
        "cli", "rest", "watcher", "watcher", "cron", "bus", "bus"]
