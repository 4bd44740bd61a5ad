"""The Scheduler driven directly: a tiny project, a fake chef, no threads, no bus.

Each test resolves a small project in a tmp dir, then plays the MajorDomo:
it asks for jobs, "runs" each with a Python function per rule that writes
the outputs in the tree, and reports the result back.  Records carry over
from one build to the next in a dict, as the state database would.
"""
from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Callable

from computepods.planning.graph import BuildGraph
from computepods.planning.job import Job, State, StepFailure
from computepods.planning.resolve import RuleSet
from computepods.planning.scheduler import Scheduler
from computepods.planning.staleness import record_inputs
from computepods.project.load import load_project
from computepods.project.targets import target_paths
from computepods.state.db import StepRecord
from computepods.state.hashing import StatCache, sha256_file

Cook = Callable[[Path, Job], None]      # writes the job's outputs in the tree


class Kitchen:
    """A project on disk, its records, and what each rule does when run."""

    def __init__(self, root: Path, toml: str, files: dict[str, str], cooks: dict[str, Cook]):
        self.root = root
        self.cooks = cooks
        self.records: dict[str, StepRecord] = {}
        self.ran: list[str] = []                  # step ids, in the order they ran
        self.notes: list[dict] = []               # the cycle news of the last build
        root.mkdir(parents=True, exist_ok=True)
        (root / "computepods.toml").write_text(textwrap.dedent(toml))
        for path, text in files.items():
            self.write(path, text)

    def write(self, path: str, text: str) -> None:
        (self.root / path).parent.mkdir(parents=True, exist_ok=True)
        (self.root / path).write_text(text)

    def read(self, path: str) -> str:
        return (self.root / path).read_text()

    def scheduler(self, targets: list[str], keep_going: bool = False) -> Scheduler:
        project = load_project(self.root)
        plan = RuleSet(project).resolve(target_paths(project, targets, self.root),
                                        lambda p: (self.root / p).is_file())
        graph = BuildGraph.from_plan(plan, {s: r.discovered for s, r in self.records.items()
                                            if r.discovered})
        return Scheduler(graph, dict(self.records), StatCache(self.root, {}),
                         keep_going=keep_going)

    def build(self, targets: list[str], keep_going: bool = False) -> Scheduler:
        """One build to its end, one job at a time, in the order they come."""
        s = self.scheduler(targets, keep_going)
        self.notes = []
        todo = s.next_jobs()
        while todo:
            job = todo.pop(0)
            self.ran.append(job.step.id)
            try:
                self.cooks[job.step.rule.name](self.root, job)
            except RuntimeError as exc:
                s.fail(job.step.id, StepFailure(job.step.id, job.command, 1, str(exc), "", ""))
            else:
                outputs = {p: sha256_file(self.root / p) for p in job.step.outputs}
                record = StepRecord(job.step.id, job.rule_fp, job.command, record_inputs(
                    job.inputs, job.copied, (), set(outputs), lambda p: None), outputs)
                self.records[job.step.id] = record
                todo += s.complete(job.step.id, outputs, record)
            todo += s.next_jobs()
            self.notes += s.drain_cycle_notes()
        self.notes += s.drain_cycle_notes()
        assert s.finished
        extra, drops = s.drain_records()
        self.records.update({r.step_id: r for r in extra})
        for sid in drops:
            self.records.pop(sid, None)
        return s


def copy_upper(root: Path, job: Job) -> None:
    (root / job.step.outputs[0]).write_text((root / job.step.inputs[0]).read_text().upper())


CHAIN = """
    [[rule]]
    name = "up"
    inputs = ["%.src"]
    outputs = ["%.mid"]
    command = "up {in} {out}"

    [[rule]]
    name = "first"
    inputs = ["%.mid"]
    outputs = ["%.out"]
    command = "first {in} {out}"
"""


def first_line(root: Path, job: Job) -> None:
    text = (root / job.step.inputs[0]).read_text()
    (root / job.step.outputs[0]).write_text(text.splitlines()[0] + "\n")


def test_steps_run_in_dependency_order_and_only_when_stale(tmp_path):
    k = Kitchen(tmp_path, CHAIN, {"a.src": "a\n", "b.src": "b\n"},
                {"up": copy_upper, "first": first_line})
    s = k.build(["a.out", "b.out"])
    assert s.ok and s.counts.done == 4
    assert k.ran.index("up:a.mid") < k.ran.index("first:a.out")
    assert k.ran.index("up:b.mid") < k.ran.index("first:b.out")
    assert k.read("a.out") == "A\n"

    k.ran.clear()
    again = k.build(["a.out", "b.out"])
    assert again.ok and k.ran == [] and again.counts.skipped == 4

    k.write("b.src", "bee\n")
    k.build(["a.out", "b.out"])
    assert k.ran == ["up:b.mid", "first:b.out"]


def test_a_dependant_is_not_judged_before_its_producer_finishes(tmp_path):
    k = Kitchen(tmp_path, CHAIN, {"a.src": "a\n"}, {"up": copy_upper, "first": first_line})
    s = k.scheduler(["a.out"])
    jobs = s.next_jobs()
    assert [j.step.id for j in jobs] == ["up:a.mid"]
    assert s.next_jobs() == [] and s.state_of("first:a.out") is State.WAITING
    assert not s.finished and s.is_running("up:a.mid")


HEAD_THEN_UP = """
    [[rule]]
    name = "head"
    inputs = ["%.src"]
    outputs = ["%.head"]
    command = "head -1 {in} > {out}"

    [[rule]]
    name = "up"
    inputs = ["%.head"]
    outputs = ["%.out"]
    command = "up {in} {out}"
"""


def test_early_cutoff_an_unchanged_output_leaves_dependants_up_to_date(tmp_path):
    k = Kitchen(tmp_path, HEAD_THEN_UP, {"a.src": "title\nbody\n"},
                {"head": first_line, "up": copy_upper})
    k.build(["a.out"])
    k.ran.clear()
    k.write("a.src", "title\nanother body\n")      # a.head is rebuilt, to the same bytes
    s = k.build(["a.out"])
    assert k.ran == ["head:a.head"]
    assert s.ok and s.counts.done == 1 and s.counts.skipped == 1
    k.ran.clear()
    k.write("a.src", "new title\n")
    k.build(["a.out"])
    assert k.ran == ["head:a.head", "up:a.out"] and k.read("a.out") == "NEW TITLE\n"



def test_the_file_records_a_build_leaves_are_of_the_files_as_they_are_after_it(tmp_path):
    """An output hashed when its step was judged, then rebuilt: the record
    of the old file must not be persisted after the new one's (a hot pod
    would trust it, and the next no-op would rerun the step)."""
    k = Kitchen(tmp_path, CHAIN, {"a.src": "one\n"}, {"up": copy_upper, "first": first_line})
    k.build(["a.out"])
    k.write("a.src", "two\n")
    s = k.build(["a.out"])
    assert k.read("a.out") == "TWO\n"
    for rec in s.updated_files():
        st = (tmp_path / rec.path).stat()
        assert (rec.size, rec.mtime_ns, rec.ino) == (st.st_size, st.st_mtime_ns, st.st_ino), rec.path
        assert rec.sha256 == sha256_file(tmp_path / rec.path), rec.path

# One step that reads what it wrote last pass, as pdflatex reads its .aux: the
# next .aux comes from a table, so each test picks how the group behaves.
CYCLE = """
    [[rule]]
    name = "typeset"
    inputs = ["doc.src", "doc.aux"]
    outputs = ["doc.out", "doc.aux"]
    command = "typeset {{in}} {{out}}"
    max_passes = {max_passes}
"""


def cycle_kitchen(root: Path, table: dict[str, str], max_passes: int = 5) -> Kitchen:
    def typeset(root: Path, job: Job) -> None:
        aux = root / "doc.aux"
        prev = aux.read_text() if aux.exists() else "missing"
        aux.write_text(table[prev])
        (root / "doc.out").write_text((root / "doc.src").read_text() + table[prev])
    return Kitchen(root, CYCLE.format(max_passes=max_passes), {"doc.src": "text\n"},
                   {"typeset": typeset})


def test_a_cyclic_group_runs_to_its_fixpoint_in_the_expected_passes(tmp_path):
    k = cycle_kitchen(tmp_path, {"missing": "1", "1": "2", "2": "2"})
    s = k.scheduler(["doc.out"])
    todo, notes = s.next_jobs(), []
    while todo:
        job = todo.pop(0)
        k.cooks["typeset"](k.root, job)
        outputs = {p: sha256_file(k.root / p) for p in job.step.outputs}
        todo += s.complete(job.step.id, outputs)
        notes += s.drain_cycle_notes()
    assert [n["pass"] for n in notes if n["t"] == "pass"] == [1, 2, 3]
    assert notes[-1] == {"t": "fixpoint", "cycle": "{doc.aux}", "pass": 3}
    assert s.ok and s.finished and k.read("doc.out") == "text\n2"


def test_a_group_with_nothing_going_round_yet_is_named_by_its_steps(tmp_path):
    """A TeX step is a cyclic group of one from its first build, before it has
    read anything it wrote: its passes name the step, not an empty set."""
    toml = """
        [[rule]]
        name = "typeset"
        inputs = ["doc.src"]
        outputs = ["doc.out"]
        command = "typeset {in} {out}"
        discover = "fls"
    """
    k = Kitchen(tmp_path, toml, {"doc.src": "text\n"}, {"typeset": copy_upper})
    assert k.build(["doc.out"]).ok
    assert [n["cycle"] for n in k.notes] == ["{typeset:doc.out}", "{typeset:doc.out}"]


def failed_notes(k: Kitchen) -> list[str]:
    return [n["reason"] for n in k.notes if n["t"] == "cycle_failed"]


def test_a_two_state_flip_is_an_oscillation_naming_the_files(tmp_path):
    k = cycle_kitchen(tmp_path, {"missing": "A", "A": "B", "B": "A"})
    s = k.build(["doc.out"])
    assert not s.ok and s.counts.failed == 1 and k.ran == ["typeset:doc.out"] * 3
    [reason] = failed_notes(k)
    assert "oscillates: pass 3 repeats the state after pass 1" in reason
    assert "these files flip: doc.aux" in reason


def test_max_passes_then_the_failure_is_remembered_until_an_input_changes(tmp_path):
    table = {"missing": "1", "1": "2", "2": "3", "3": "4", "4": "5", "5": "5"}
    k = cycle_kitchen(tmp_path, table, max_passes=3)
    s = k.build(["doc.out"])
    assert not s.ok and k.ran == ["typeset:doc.out"] * 3
    [reason] = failed_notes(k)
    assert "did not converge in 3 passes; still changing: doc.aux" in reason
    assert k.records["cycle:typeset:doc.out"].status == "failed"

    k.ran.clear()
    again = k.build(["doc.out"])
    assert not again.ok and k.ran == []             # failed again, without running
    [reason] = failed_notes(k)
    assert "remembered from an earlier build" in reason

    k.write("doc.src", "new text\n")                # from aux 3: 4, 5, then 5 again
    third = k.build(["doc.out"])
    assert third.ok and k.ran == ["typeset:doc.out"] * 3
    assert "cycle:typeset:doc.out" not in k.records   # the remembered failure is dropped


def test_a_failure_elsewhere_ends_a_running_group_where_it_is(tmp_path):
    """Without keep-going a failure stops the build: a cyclic group whose
    step is running then starts no new pass (the MajorDomo would never send
    it), and the build is finished once that step reports; it hung before."""
    k = Kitchen(tmp_path, CYCLE.format(max_passes=5) + """
        [[rule]]
        name = "broken"
        inputs = ["x.src"]
        outputs = ["x.out"]
        command = "false"
        """, {"doc.src": "text\n", "x.src": "x\n"}, {})
    s = k.scheduler(["doc.out", "x.out"])
    jobs = {job.step.id: job for job in s.next_jobs()}
    assert sorted(jobs) == ["broken:x.out", "typeset:doc.out"]
    s.fail("broken:x.out", StepFailure("broken:x.out", "false", 1, "exit 1", "", ""))
    assert s.stopping and not s.finished             # typeset is still running
    (tmp_path / "doc.aux").write_text("1")           # its pass would call for another
    (tmp_path / "doc.out").write_text("text\n1")
    more = s.complete("typeset:doc.out", {p: sha256_file(tmp_path / p)
                                           for p in ("doc.out", "doc.aux")})
    assert more == [] and s.finished and not s.ok
    assert s.state_of("typeset:doc.out") is State.BLOCKED
    assert s.counts.running == 0


def test_an_input_read_by_part_reruns_only_when_that_part_changes(tmp_path):
    toml = """
        [[rule]]
        name = "cites"
        inputs = ["%.aux"]
        outputs = ["%.bbl"]
        command = "bibtex {in}"
        parts = {"%.aux" = "bibtex"}
    """
    def cites(root: Path, job: Job) -> None:
        lines = (root / job.step.inputs[0]).read_text().splitlines()
        (root / job.step.outputs[0]).write_text(
            "".join(line + "\n" for line in lines if line.startswith("\\citation")))
    k = Kitchen(tmp_path, toml, {"doc.aux": "\\citation{knuth}\n\\newlabel{a}{1}\n"},
                {"cites": cites})
    k.build(["doc.bbl"])
    k.ran.clear()
    k.write("doc.aux", "\\citation{knuth}\n\\newlabel{a}{2}\n")     # a page number moved
    assert k.build(["doc.bbl"]).counts.skipped == 1 and k.ran == []
    k.write("doc.aux", "\\citation{knuth}\n\\citation{lamport}\n\\newlabel{a}{2}\n")
    k.build(["doc.bbl"])
    assert k.ran == ["cites:doc.bbl"]
