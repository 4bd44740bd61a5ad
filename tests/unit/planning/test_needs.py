"""Steps a build takes on because a run found it needs their outputs.

A stand-in for TeX, driven through the real Scheduler with no chef: the
"doc" rule discovers what it reads (as ``discover = "fls"`` does) and, like
``\\printindex``, looks for ``%.ind`` after writing ``%.idx``; the "index"
rule makes one from the other, and no declared input says so.
"""
from __future__ import annotations

import textwrap
from pathlib import Path

from computepods.planning.graph import BuildGraph
from computepods.planning.job import Job
from computepods.planning.needs import Needs, with_needs
from computepods.planning.resolve import RuleSet
from computepods.planning.scheduler import Scheduler
from computepods.planning.staleness import record_inputs
from computepods.project.load import load_project
from computepods.state.db import StepRecord
from computepods.state.hashing import StatCache, sha256_file

RULES = """
    [[rule]]
    name = "doc"
    inputs = ["%.src"]
    outputs = ["%.out", "%.aux"]
    command = "doc {in[0]}"
    discover = "fls"

    [[rule]]
    name = "index"
    inputs = ["%.idx"]
    outputs = ["%.ind"]
    command = "index {in[0]}"
"""


class Desk:
    """A project on disk, its records, and a build driven step by step."""

    def __init__(self, root: Path, rules: str, files: dict[str, str]):
        self.root = root
        self.records: dict[str, StepRecord] = {}
        self.ran: list[str] = []
        (root / "computepods.toml").write_text(textwrap.dedent(rules))
        for name, text in files.items():
            (root / name).write_text(text)

    def exists(self, path: str) -> bool:
        return (self.root / path).is_file()

    def plan(self, target: str):
        project = load_project(self.root)
        rules = RuleSet(project)
        plan = with_needs(rules, rules.resolve([target], self.exists), self.records, self.exists)
        return rules, plan

    def build(self, target: str) -> Scheduler:
        rules, plan = self.plan(target)
        graph = BuildGraph.from_plan(plan, {s: r.discovered for s, r in self.records.items()})
        s = Scheduler(graph, dict(self.records), StatCache(self.root, {}),
                      needs=Needs(rules, self.exists))
        todo = s.next_jobs()
        while todo:
            job = todo.pop(0)
            self.ran.append(job.step.id)
            record = self.run(job)
            todo += s.complete(job.step.id, record.outputs, record)
            todo += s.next_jobs()
        extra, _ = s.drain_records()
        self.records.update({r.step_id: r for r in extra})
        return s

    def run(self, job: Job) -> StepRecord:
        """doc: copies its source, with the index if there is one; writes the
        .idx; "reads" the .ind (found or not) and what the source names."""
        step, discovered, written = job.step, [], []
        if step.rule.name == "doc":
            stem = step.stem
            text = (self.root / step.inputs[0]).read_text()
            wanted = [line.split()[1] for line in text.splitlines() if line.startswith("needs ")]
            ind = self.root / f"{stem}.ind"
            body = text + (ind.read_text() if ind.exists() else "")
            (self.root / step.outputs[0]).write_text(body)
            (self.root / step.outputs[1]).write_text("aux\n")
            (self.root / f"{stem}.idx").write_text(text.upper())
            discovered, written = [f"{stem}.ind", *wanted], [f"{stem}.idx"]
        else:
            src = (self.root / step.inputs[0]).read_text()
            (self.root / step.outputs[0]).write_text("index of " + src)
        outputs = {p: sha256_file(self.root / p) for p in (*step.outputs, *written)}
        digest = lambda p: sha256_file(self.root / p) if self.exists(p) else None  # noqa: E731
        record = StepRecord(step.id, job.rule_fp, job.command, record_inputs(
            job.inputs, job.copied, discovered, set(outputs), digest), outputs, discovered)
        self.records[step.id] = record
        return record


def test_a_step_a_run_finds_it_needs_runs_in_the_same_build(tmp_path):
    desk = Desk(tmp_path, RULES, {"paper.src": "apples\n"})
    _, plan = desk.plan("paper.out")
    assert list(plan.steps) == ["doc:paper.out"]        # nothing declares the index
    s = desk.build("paper.out")
    assert s.ok, s.not_run()
    # doc, then the index it asked for in the same pass, then doc with it
    assert desk.ran == ["doc:paper.out", "index:paper.ind", "doc:paper.out"]
    assert (tmp_path / "paper.out").read_text() == "apples\nindex of APPLES\n"
    assert s.counts.total == 2 and s.counts.done == 2

    desk.ran.clear()
    assert desk.build("paper.out").ok and desk.ran == []      # a no-op


def test_a_later_plan_has_the_step_and_knows_who_writes_what_it_reads(tmp_path):
    desk = Desk(tmp_path, RULES, {"paper.src": "apples\n"})
    assert desk.build("paper.out").ok
    _, plan = desk.plan("paper.out")
    assert list(plan.steps) == ["doc:paper.out", "index:paper.ind"]
    assert plan.producers["paper.idx"] == "doc:paper.out"     # seen written by doc
    graph = BuildGraph.from_plan(plan, {s: r.discovered for s, r in desk.records.items()})
    [group] = graph.components
    assert group.cyclic and set(group.steps) == {"doc:paper.out", "index:paper.ind"}

    (tmp_path / "paper.src").write_text("pears\n")
    desk.ran.clear()
    assert desk.build("paper.out").ok
    assert desk.ran == ["doc:paper.out", "index:paper.ind", "doc:paper.out"]
    assert (tmp_path / "paper.out").read_text() == "pears\nindex of PEARS\n"


def test_a_file_looked_for_that_no_rule_makes_fails_the_build_every_time(tmp_path):
    desk = Desk(tmp_path, RULES, {"paper.src": "apples\nneeds paper.gls\n"})
    for _ in range(2):
        s = desk.build("paper.out")
        assert not s.ok
        record = desk.records["doc:paper.out"]
        assert record.status == "failed"            # so the next build runs it again
        assert record.reason.startswith("doc:paper.out looked for paper.gls, which no "
                                        "rule made, so paper.out would come out without it")
    assert desk.ran.count("doc:paper.out") >= 2

    (tmp_path / "paper.gls").write_text("glossary\n")    # a source after all
    assert desk.build("paper.out").ok


def test_a_plan_without_discovering_steps_is_returned_as_it_is(tmp_path):
    desk = Desk(tmp_path, """
        [[rule]]
        name = "copy"
        inputs = ["a.txt"]
        outputs = ["b.txt"]
        command = "cp {in} {out}"
        """, {"a.txt": "a\n"})
    rules, plan = desk.plan("b.txt")
    assert with_needs(rules, plan, {}, desk.exists) is plan


# --- the latex pack: what the run wrote chooses biber or bibtex -----------------

def latex_record(wrote: list[str]) -> StepRecord:
    """A run of latex.pdf that wrote paper.aux and ``wrote``, and looked for paper.bbl."""
    outputs = {p: "0" * 64 for p in ("paper.pdf", "paper.aux", *wrote)}
    return StepRecord("latex.pdf:paper.pdf", "fp", "pdflatex paper.tex", {"paper.tex": "1" * 64},
                      outputs, ["paper.bbl"])


def test_a_bcf_the_run_wrote_chooses_biber_and_one_left_in_the_tree_does_not(tmp_path):
    """bib = "auto": biber for biblatex, whose run writes the .bcf.  A
    paper.bcf left from when the document used biblatex lies in the tree,
    but this run did not write it: bibtex makes the .bbl."""
    desk = Desk(tmp_path, '[project]\nuse = ["latex"]\n',
                {"paper.tex": "\\bibliography{refs}\n", "paper.bcf": "<bcf/>\n"})
    rules, plan = desk.plan("paper.pdf")
    assert list(plan.steps) == ["latex.pdf:paper.pdf"]
    stale = with_needs(rules, plan, {"latex.pdf:paper.pdf": latex_record([])}, desk.exists)
    assert stale.producers["paper.bbl"] == "latex.bibtex:paper.bbl"
    assert "latex.biber:paper.bbl" not in stale.steps
    wrote = with_needs(rules, plan, {"latex.pdf:paper.pdf": latex_record(["paper.bcf"])},
                       desk.exists)
    assert wrote.producers["paper.bbl"] == "latex.biber:paper.bbl"
    assert wrote.producers["paper.bcf"] == "latex.pdf:paper.pdf"

    # while a build runs, the record of the run just done decides the same way
    plan = desk.plan("paper.pdf")[1]
    added = Needs(rules, desk.exists).take(plan, {"latex.pdf:paper.pdf": latex_record([])},
                                           ["latex.pdf:paper.pdf"])
    assert added == ["latex.bibtex:paper.bbl"]
