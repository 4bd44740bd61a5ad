"""CP_TRACE and CP_SPY: miros' live_trace / live_spy for the charts of the
kinds named, in `cpod build` and in the chef child it starts
(docs/debugging.md)."""
from __future__ import annotations

import re

import pytest

from computepods.charts.base import traced
from cpodrun import cpod, write

PROJECT = {
    "computepods.toml": """
        [project]
        default = ["out/a.txt"]

        [[rule]]
        name = "up"
        inputs = ["a.txt"]
        outputs = ["out/a.txt"]
        command = "tr a-z A-Z < {in} > {out}"
    """,
    "a.txt": "a\n",
}
TRACE = re.compile(r"^\[[0-9-]+ [0-9:.]+\] \[([a-z]+)[^\]]*\] e->(\S+)\(\) (\S+)->(\S+)$")


def traced_lines(err: str) -> list[tuple[str, str, str, str]]:
    """(chart kind, event, from, to) of each live_trace line."""
    return [m.groups() for line in err.splitlines() if (m := TRACE.match(line))]


@pytest.mark.parametrize("value, name, expected", [
    ("majordomo,chef", "chef:host-1-0", True), ("majordomo,chef", "majordomo", True),
    ("majordomo,chef", "store", False), (" Store ", "store", True), ("all", "herald", True),
    ("", "majordomo", False), (",", "majordomo", False)])
def test_which_charts_CP_TRACE_names(monkeypatch, value, name, expected):
    monkeypatch.setenv("CP_TRACE", value)
    assert traced(name) is expected


def test_CP_TRACE_traces_only_the_kinds_named_even_in_the_chef_child(tmp_path):
    root = write(tmp_path / "p", PROJECT)
    run = cpod(root, "build", env={"CP_TRACE": "chef"})
    assert run.code == 0, run.err
    lines = traced_lines(run.err)
    assert {kind for kind, *_ in lines} == {"chef"}, run.err      # from the child process
    assert ("chef", "CHEF_RUN", "chef_idle", "chef_busy") in lines

    (root / "a.txt").write_text("b\n")
    run = cpod(root, "build", env={"CP_TRACE": "majordomo", "CP_SPY": "store"})
    assert run.code == 0, run.err
    lines = traced_lines(run.err)
    assert {kind for kind, *_ in lines} == {"majordomo"}, run.err
    assert ("majordomo", "BUILD_START", "md_idle", "md_dispatching") in lines
    assert "RECORD:store_open" in run.err.splitlines()              # the Store's spy
    assert "PUBLISH:(RECORDED, PRIORITY:1000)" in run.err

    run = cpod(root, "build")
    assert run.code == 0 and traced_lines(run.err) == [] and "store_open" not in run.err
