"""Cyclic groups run to a fixpoint, and say so clearly when they do not."""
from __future__ import annotations

from pathlib import Path


from cpodrun import cpod, write

# One step that reads what it wrote last pass (as pdflatex reads its .aux).
# tools/next.py maps the previous .aux to the next one by a table, so each
# test picks how the group behaves: converge, flip, or never settle.
NEXT = """
import json, sys
src, aux_in, out, aux_out, table = sys.argv[1:6]
try:
    prev = open(aux_in).read()
except FileNotFoundError:
    prev = "missing"
nxt = json.loads(table)[prev]
open(aux_out, "w").write(nxt)
open(out, "w").write(open(src).read() + nxt)
open("passes.log", "a").write(prev + "->" + nxt + "\\n")
"""


def project(root: Path, table: str, max_passes: int = 5) -> Path:
    table = table.replace("{", "{{").replace("}", "}}")   # literal braces in a command
    return write(root, {
        "computepods.toml": f"""
            [project]
            default = ["doc.out"]

            [[rule]]
            name = "typeset"
            inputs = ["doc.src", "doc.aux", "tools/next.py"]
            outputs = ["doc.out", "doc.aux"]
            command = ["python3", "tools/next.py", "{{in[0]}}", "{{in[1]}}", "{{out[0]}}", "{{out[1]}}", '{table}']
            max_passes = {max_passes}
        """,
        "doc.src": "text\n",
        "tools/next.py": NEXT,
    })


def passes(root: Path) -> list[str]:
    return (root / "passes.log").read_text().split()


def test_fixpoint_on_the_third_pass_then_nothing_to_do(tmp_path):
    root = project(tmp_path / "p", '{"missing": "1", "1": "2", "2": "2"}')
    run = cpod(root, "build")
    assert run.code == 0, run.err
    assert passes(root) == ["missing->1", "1->2", "2->2"]       # pass 3 changes nothing
    assert "pass 3/5 of {doc.aux}" in run.err
    assert (root / "doc.out").read_text() == "text\n2"
    again = cpod(root, "build")
    assert again.code == 0 and passes(root) == ["missing->1", "1->2", "2->2"], again.err


def test_a_source_change_reruns_the_group_to_its_fixpoint(tmp_path):
    root = project(tmp_path / "p", '{"missing": "1", "1": "2", "2": "2"}')
    assert cpod(root, "build").code == 0
    (root / "doc.src").write_text("new text\n")
    run = cpod(root, "build")
    assert run.code == 0, run.err
    assert passes(root)[3:] == ["2->2"]       # already at the fixpoint: one pass
    assert (root / "doc.out").read_text() == "new text\n2"


def test_two_state_flip_is_an_oscillation_at_pass_3(tmp_path):
    root = project(tmp_path / "p", '{"missing": "A", "A": "B", "B": "A"}')
    run = cpod(root, "build")
    assert run.code == 1
    assert passes(root) == ["missing->A", "A->B", "B->A"]
    assert "oscillates: pass 3 repeats the state after pass 1" in run.err
    assert "flip: doc.aux" in run.err
    assert "build FAILED: 0 ran, 0 up to date, 1 failed; 3 tool runs in " in run.err
    assert (root / "doc.out").exists()          # the last pass's outputs are kept


def test_max_passes_fails_listing_what_still_changes_and_is_remembered(tmp_path):
    table = '{"missing": "1", "1": "2", "2": "3", "3": "4", "4": "5"}'
    root = project(tmp_path / "p", table, max_passes=3)
    run = cpod(root, "build")
    assert run.code == 1
    assert "did not converge in 3 passes; still changing: doc.aux" in run.err
    assert len(passes(root)) == 3
    again = cpod(root, "build")          # fails again without running
    assert again.code == 1
    assert "remembered from an earlier build" in again.err
    assert len(passes(root)) == 3
    (root / "doc.src").write_text("changed\n")     # an input changes: it runs again
    third = cpod(root, "build")
    assert third.code == 1 and len(passes(root)) > 3


def test_input_made_inside_the_group_may_be_missing_on_the_first_pass(tmp_path):
    """latex reads %.bbl, which bibtex makes from latex's .aux: a two-step group."""
    root = write(tmp_path / "p", {
        "computepods.toml": """
            [project]
            default = ["paper.pdf"]

            [[rule]]
            name = "latex"
            inputs = ["paper.tex", "paper.bbl"]
            outputs = ["paper.pdf", "paper.aux"]
            command = "cat {in[0]} > {out[1]}; (cat {in[1]} 2>/dev/null || echo no-bbl) > {out[0]}; echo latex >> runs.log"

            [[rule]]
            name = "bib"
            inputs = ["paper.aux"]
            outputs = ["paper.bbl"]
            command = "sed s/cite/bib/ {in} > {out}; echo bib >> runs.log"
        """,
        "paper.tex": "cite\n",
    })
    run = cpod(root, "build")
    assert run.code == 0, run.err
    assert (root / "paper.pdf").read_text() == "bib\n"
    assert (root / "runs.log").read_text().split() == ["latex", "bib", "latex"]
    assert "build ok: 2 ran, 0 up to date; 3 tool runs in " in run.err


def test_a_profile_has_a_complete_event_per_run_and_marks_each_pass(tmp_path):
    import json
    root = project(tmp_path / "p", '{"missing": "1", "1": "2", "2": "2"}')
    run = cpod(root, "build", "--profile", "trace.json")
    assert run.code == 0, run.err
    assert "profile of build" in run.err and "trace.json" in run.err
    trace = json.loads((root / "trace.json").read_text())
    events = trace["traceEvents"]
    runs = [e for e in events if e["ph"] == "X" and e["cat"].startswith("step")]
    assert [(e["name"], e["args"]["pass"]) for e in runs] == [("typeset:doc.out", 1),
                                                               ("typeset:doc.out", 2),
                                                               ("typeset:doc.out", 3)]
    ends = [e["ts"] + e["dur"] for e in runs]
    assert all(e["dur"] > 0 for e in runs) and all(
        b["ts"] >= end for b, end in zip(runs[1:], ends)), "a pass after the one before"
    marks = [e["name"] for e in events if e["ph"] == "i"]
    assert marks == ["pass 1/5 of {doc.aux}", "pass 2/5 of {doc.aux}",
                     "pass 3/5 of {doc.aux}", "fixpoint of {doc.aux} after pass 3"]
    lanes = {(e["pid"], e["tid"]): e["args"]["name"] for e in events
             if e["ph"] == "M" and e["name"] == "thread_name"}
    assert {name for name in lanes.values()} >= {"build", "slot 0"}

    again = cpod(root, "build", "--profile", "again.json")       # nothing to do: no build
    assert again.code == 0 and "no profile written" in again.err
    assert not (root / "again.json").exists()


def test_a_profile_has_one_lane_per_chef_slot_however_the_results_were_batched(tmp_path):
    """Issue 15: a chef's results come in batches, so a timeline guessed from
    when they were heard showed 27 lanes for a chef of 2 slots.  The chef
    says which slot ran a step and when it started."""
    import json
    names = [f"f{i:02d}" for i in range(60)]
    root = write(tmp_path / "p", {
        "computepods.toml": f"""
            [project]
            default = {json.dumps([f"out/{n}.txt" for n in names])}

            [[rule]]
            name = "copy"
            inputs = ["src/%.txt"]
            outputs = ["out/%.txt"]
            command = "cp {{in}} {{out}}"
            """,
        **{f"src/{n}.txt": f"{n}\n" for n in names}})
    run = cpod(root, "build", "-j", "2", "--profile", "trace.json")
    assert run.code == 0, run.err
    events = json.loads((root / "trace.json").read_text())["traceEvents"]
    runs = [e for e in events if e["ph"] == "X" and e["cat"].startswith("step")]
    assert len(runs) == len(names)
    lanes: dict[tuple, int] = {}
    for e in runs:
        lanes[(e["pid"], e["tid"])] = lanes.get((e["pid"], e["tid"]), 0) + 1
    # Both slots ran steps, on two lanes.  (On one lane a run's commit may
    # overlap the next run's start: a slot starts its next command while it
    # hashes the last one's output.)
    assert len(lanes) == 2 and all(lanes.values()), lanes
