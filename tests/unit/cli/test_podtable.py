"""The pods' table as `cpod status` and `cpctrl pods` print it."""
from __future__ import annotations

import re

from computepods.cli.podtable import (HEADERS, TOOLS_CHARS, chef_lines, federation_text,
                                      human_bytes, names_cell, pod_table)


def pod(name: str, **kw) -> dict:
    return {"pod": name, "role": "chef", "host": f"{name}.example", "ours": False,
            "chefs": [], "chef_names": [], "slots": 2, "load": {"running": 0, "queued": 0},
            "tools": [], "moved": {"in": 0, "out": 0}, "held": {"files": 0, "bytes": 0}, **kw}


def test_bytes_read_as_a_person_reads_them():
    assert [human_bytes(n) for n in (0, 999, 1024, 1536, 10 * 1024, 5 * 1024 ** 3, -1)] == \
        ["0 B", "999 B", "1.0 KiB", "1.5 KiB", "10 KiB", "5.0 GiB", "0 B"]


def test_many_tools_are_counted_and_cut():
    names = [f"tool{i}" for i in range(20)]
    cell = names_cell(names, TOOLS_CHARS, counted=True)
    assert cell.startswith("20: tool0, tool1") and cell.endswith("...")
    assert len(cell) <= TOOLS_CHARS
    assert names_cell(["cc"], TOOLS_CHARS, counted=True) == "1: cc"
    assert names_cell([], TOOLS_CHARS) == "-"


def test_the_table_has_a_column_each_and_marks_our_pod():
    lines = pod_table([
        pod("a", role="majordomo", ours=True, chef_names=["a-0"], slots=4,
            load={"running": 1, "queued": 2}, tools=["cc", "tr"],
            moved={"in": 2048, "out": 100}),
        pod("b", chef_names=["b-chef"], held={"files": 3, "bytes": 3 * 1024})])
    assert lines[0].split() == ["pod", "role", "host", "chefs", "slots", "load", "tools",
                                "moved", "in/out", "held"]
    header, a, b = lines
    assert a.split()[:6] == ["a*", "majordomo", "a.example", "a-0", "4", "1/2"]
    assert "2: cc, tr" in a and "2.0 KiB/100 B" in a and a.rstrip().endswith("-")
    assert b.split()[:6] == ["b", "chef", "b.example", "b-chef", "2", "0/0"]
    assert b.endswith("3 files, 3.0 KiB") and "0 B/0 B" in b
    # columns line up: every row's moved cell starts where its header does
    at = header.index("moved in/out")
    assert a[at:].startswith("2.0 KiB") and b[at:].startswith("0 B")
    assert len(HEADERS) == 9


def test_chefs_are_listed_with_the_steps_our_majordomo_handed_them():
    pods = [pod("b", chefs=[{"chef": "b-chef", "pod": "b", "slots": 2, "running": 1,
                             "queued": 0, "outstanding": 4}])]
    assert chef_lines(pods) == ["chef b-chef (pod b): 2 slots, 1 running, 0 queued, "
                                "4 steps outstanding"]


def test_a_pod_alone_says_it_is_not_federated():
    alone = federation_text({"federated": False, "pods": [pod("local", ours=True)]})
    assert alone[0].startswith("not federated")
    assert alone[2].startswith("local*")
    together = federation_text({"federated": True, "pods": [pod("a", ours=True), pod("b")]})
    assert not any("not federated" in line for line in together) and len(together) == 3
    assert federation_text(None) == ["(the pod did not say)"]


def test_a_refused_pod_says_so_in_its_role():
    [_, line] = pod_table([pod("c", trusted=False)])
    assert re.split(r"\s{2,}", line)[1] == "chef (refused)"
