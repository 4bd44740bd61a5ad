"""`cpctrl graph`'s text, from the graph index's own answers."""
from __future__ import annotations

from computepods.api.graphindex import GraphIndex, Overlay
from computepods.cli.graphtext import groups_lines, step_lines, steps_lines
from graphs import wide


def test_the_groups_as_a_table_with_a_column_per_state_present():
    g = wide(2000)
    g["nodes"][0]["state"] = "failed"
    index = GraphIndex(g)
    lines = groups_lines(index.groups(Overlay(running=frozenset({"copy:build/f00001.txt"}))))
    assert lines[0] == "2001 steps in 2 groups; targets: out/all.txt"
    assert lines[1].split() == ["group", "steps", "stale", "building", "failed"]
    assert lines[2].split() == ["copy", "2000", "1998", "1", "1"]
    assert lines[3].split() == ["sum", "1", "1", "0", "0"]
    assert lines[4] == "running now: copy:build/f00001.txt"


def test_a_step_that_reads_2000_files_is_short_lines_and_a_count():
    index = GraphIndex(wide(2000))
    lines = step_lines(index.step("sum:out/all.txt", limit=50))
    assert lines[0] == "sum:out/all.txt: stale"
    assert lines[2] == "inputs (2000):"
    assert lines[3] == "  build/f00000.txt  <- copy:build/f00000.txt (stale)"
    assert "  ... 1950 more (--limit)" in lines
    assert max(map(len, lines)) < 100


def test_a_page_of_steps_says_how_many_more():
    lines = steps_lines(GraphIndex(wide(120)).steps(group="copy", limit=50))
    assert len(lines) == 51 and lines[0] == "stale       copy:build/f00000.txt"
    assert lines[-1] == "... 70 more (--offset 50)"
    assert steps_lines(GraphIndex(wide(3)).steps(q="nothing")) == ["no such steps"]
