"""The critical path of a build's timeline: known answers on small graphs."""
from __future__ import annotations

import pytest

from computepods.coordinator.criticalpath import critical_path
from computepods.coordinator.timeline import Span, Timeline


def test_the_longest_chain_by_duration_not_by_count_of_steps():
    #   a(1) -> b(3) -> d(1)       a -> c(0.5) -> e(0.5) -> d
    spans = [Span("a", "c0", 0, 1), Span("b", "c0", 1, 4), Span("c", "c1", 1, 1.5),
             Span("e", "c1", 1.5, 2), Span("d", "c0", 4, 5)]
    deps = {"b": ["a"], "c": ["a"], "e": ["c"], "d": ["b", "e"]}
    path = critical_path(spans, deps)
    assert path.steps == ["a", "b", "d"]
    assert path.runs == [0, 1, 4]
    assert path.duration_s == pytest.approx(5.0)


def test_waiting_for_a_slot_is_not_on_the_path_and_independent_steps_do_not_chain():
    # one slot: x, y, z run one after another but none reads another's output
    spans = [Span("x", "c0", 0, 2), Span("y", "c0", 2, 3), Span("z", "c0", 3, 3.5)]
    path = critical_path(spans, {})
    assert path.steps == ["x"]
    assert path.duration_s == pytest.approx(2.0)


def test_a_run_that_started_before_its_producer_ended_does_not_follow_it():
    spans = [Span("a", "c0", 0, 2), Span("b", "c1", 1, 4)]       # b does not wait for a
    assert critical_path(spans, {"b": ["a"]}).steps == ["b"]


def test_a_cyclic_group_is_on_the_path_once_per_pass_it_needed():
    # latex -> bibtex -> latex -> latex (a fixpoint after pass 3), then the pdf is copied
    tl = Timeline()
    t = 0.0
    for pass_no, step, dur in [(1, "latex", 2.0), (1, "bibtex", 0.5), (2, "latex", 2.0),
                               (3, "latex", 2.0)]:
        tl.heard({"t": "ran", "step": step, "chef": "c0", "cycle": "{doc.aux}",
                  "pass": pass_no, "duration_s": dur}, t + dur)
        t += dur
    tl.heard({"t": "ran", "step": "copy", "chef": "c0", "duration_s": 0.25}, t + 0.25)
    stored = tl.finish(t + 0.25)
    spans = [Span.from_row(r) for r in stored["spans"]]
    deps = {"latex": ["bibtex"], "bibtex": ["latex"], "copy": ["latex"]}
    path = critical_path(spans, deps)
    assert path.steps == ["latex", "bibtex", "latex", "latex", "copy"]
    assert [spans[i].pass_no for i in path.runs] == [1, 1, 2, 3, None]
    assert path.duration_s == pytest.approx(6.75)


def test_no_runs_no_path():
    path = critical_path([], {"a": ["b"]})
    assert (path.steps, path.duration_s) == ([], 0.0)
