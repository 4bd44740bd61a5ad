"""Build requests: queued in order, joined, fresh, cancelled; a watching pod's follow-up."""
from __future__ import annotations

from computepods.bus import messages as m
from computepods.coordinator.requests import RequestQueue


def request(*targets: str, **more) -> m.Message:
    return m.Message("cp.build.request", {"targets": list(targets), **more})


def test_requests_wait_in_order_and_one_can_be_cancelled(tmp_path):
    q = RequestQueue(tmp_path)
    first, second = q.add(request("a"), None), q.add(request("b"), None)
    assert len(q) == 2 and first.build_id != second.build_id
    assert q.cancel(first.build_id) and not q.cancel("nope")
    assert q.pop()[0] == second.build_id and q.pop() is None


def test_a_request_for_the_running_targets_joins_that_build(tmp_path):
    q = RequestQueue(tmp_path)
    assert q.add(request("a"), ("b1", ["a"])).joined
    assert not q.add(request("a", dry_run=True), ("b1", ["a"])).joined
    assert len(q) == 1


def test_a_watching_pod_answers_a_fresh_request_at_once(tmp_path):
    q = RequestQueue(tmp_path, watch_targets=["all"])
    gen = q.build_started([], {})
    q.build_finished(q.key({"targets": ["all"]}), gen, ok=True, steps=3)
    intake = q.add(request("all"), None)
    assert intake.fresh_steps == 3 and len(q) == 0
    assert intake.fresh_events(["all"])[-1]["skipped"] == 3
    assert q.add(request("all"), ("b1", ["other"])).fresh_steps is None   # a build runs
    assert not q.follow_up(building=True)
