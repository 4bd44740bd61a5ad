"""charts/*.txt and diagrams/*.dot say what the chart code does (docs/architecture.md §8).

A change to a chart's states or transitions must come with the regenerated
text, so that review sees the behaviour change; `make diagrams` makes it.
"""
from __future__ import annotations

import difflib
from pathlib import Path

import pytest
from miros import return_status, spy_on

from computepods.charts.base import Chart
from computepods.charts.chef import Chef
from computepods.charts.majordomo import MajorDomo
from computepods.charts.store import Store
from computepods.tools import charts as tool

ROOT = Path(__file__).resolve().parents[3]


def test_committed_charts_and_diagrams_are_current(tmp_path):
    assert tool.main(["--root", str(tmp_path)]) == 0
    fresh = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert fresh == sorted(tool.generate())
    problems = []
    for rel in fresh:
        new = (tmp_path / rel).read_text()
        committed = ROOT / rel
        if not committed.is_file():
            problems.append(f"{rel}: missing")
        elif committed.read_text() != new:
            diff = difflib.unified_diff(committed.read_text().splitlines(), new.splitlines(),
                                        f"{rel} (committed)", f"{rel} (from the code)", lineterm="")
            problems.append("\n".join(diff))
    assert not problems, ("the charts changed: run `make diagrams` and commit the result\n"
                          + "\n".join(problems))
    assert tool.stale(ROOT) == [], "run `make diagrams`: leftover generated files"


@pytest.mark.parametrize("chart, state, parent, signal, target", [
    (Chef, "chef_busy", "chef_serving", "STEP_DONE", "chef_idle"),
    (Chef, "chef_serving", None, "CHEF_RUN", "chef_busy"),
    (MajorDomo, "md_idle", "md_ready", "BUILD_START", "md_dispatching"),
    (MajorDomo, "md_dispatching", "md_building", "STEP_RESULTS", "md_draining"),
    (MajorDomo, "md_finishing", "md_building", "RECORDED", "md_idle"),
    (Store, "store_open", None, "RECORD", None),
])
def test_generator_reads_states_parents_and_transitions(chart, state, parent, signal, target):
    model = tool.read_chart(chart)
    assert model.initial == chart.initial_state.__name__
    assert model.states[state].parent == parent
    assert signal in model.states[state].handlers
    assert target is None or target in model.states[state].handlers[signal]


@spy_on
def pick_waiting(chart: "Picky", e):
    if e.signal_name == "TICK":
        return chart.decide()
    chart.temp.fun = chart.top
    return return_status.SUPER


@spy_on
def pick_done(chart: "Picky", e):
    chart.temp.fun = pick_waiting
    return return_status.SUPER


class Picky(Chart):
    """A chart whose method picks the next state: what a catch-all looks like."""
    initial_state = pick_waiting

    def decide(self):
        target = pick_waiting
        if self.running:
            target = pick_done
        return self.trans(target)


def test_a_method_that_picks_the_state_is_named_with_what_it_can_pick():
    model = tool.read_chart(Picky)
    assert set(model.choices["chart.decide()"]) == {"pick_waiting", "pick_done"}
    assert "│   TICK -> (decided by chart.decide())\n" in tool.chart_text(model)


def test_the_majordomo_decides_in_its_states():
    text = tool.chart_text(tool.read_chart(MajorDomo))
    assert "decided by" not in text and "choices" not in text
    assert "md_ready\n│   INIT -> md_idle\n" in text
    assert "            RECORDED -> md_idle\n" in text


def test_architecture_names_who_talks_on_which_subject():
    use = tool.wiring()
    assert ("MajorDomo", "request", "CHEF_RUN") in use
    assert ("Chef", "subscribe", "CHEF_RUN") in use
    assert ("Store", "subscribe", "RECORD") in use            # miros fabric
    assert "{ns}.chef.{chef}.run" in tool.architecture_dot(use, {"Chef", "MajorDomo"})


def test_check_names_a_stale_file(tmp_path, capsys):
    tool.main(["--root", str(tmp_path)])
    (tmp_path / "charts" / "chef.txt").write_text("old\n")
    (tmp_path / "diagrams" / "gone.dot").write_text(f"// {tool.MARK}\n")
    assert tool.main(["--check", "--root", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "stale: charts/chef.txt" in err and "stale: diagrams/gone.dot" in err
    assert "make diagrams" in err
