"""Every example builds as its comments promise, with the real tools."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path


from cpodrun import cpod

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def copy(name: str, tmp_path: Path) -> Path:
    root = tmp_path / name
    shutil.copytree(EXAMPLES / name, root,
                    ignore=shutil.ignore_patterns("out", "build", "bin", ".computepods",
                                                  "*.o", "*.d", "*.pdf", "*.aux", "*.log",
                                                  "*.toc", "*.bbl", "*.blg", "*.fls", "*.bbl.d",
                                                  "doc.out", "doc.toc", "doc.headings"))
    return root


def test_cycle_example_reaches_its_fixpoint_at_pass_3(tmp_path):
    root = copy("cycle", tmp_path)
    run = cpod(root, "build")
    assert run.code == 0, run.err
    assert "fixpoint of" in run.err and "after pass 3" in run.err
    assert cpod(root, "build").ran == []


def test_c_example_builds_and_a_header_change_recompiles_both_objects(tmp_path):
    root = copy("c", tmp_path)
    run = cpod(root, "build")
    assert run.code == 0, run.err
    assert subprocess.run([str(root / "bin/hello")], capture_output=True).returncode == 0
    with open(root / "src/util.h", "a") as f:
        f.write("/* a comment */\n")
    run = cpod(root, "build")
    assert run.code == 0, run.err
    # both objects include util.h (a discovered input); they come out
    # byte-identical, so the link step is cut off
    assert sorted(run.ran) == ["c.compile:src/main.o", "c.compile:src/util.o"]


def test_paper_example_builds_with_the_latex_pack(tmp_path):
    root = copy("paper", tmp_path)
    run = cpod(root, "build")
    assert run.code == 0, run.err
    pdflatex = sum(1 for s in run.ran if s.startswith("latex.pdf:"))
    bibtex = sum(1 for s in run.ran if s.startswith("latex.bibtex:"))
    assert (pdflatex, bibtex) == (3, 1), run.err
    log = (root / "paper.log").read_text(errors="replace")
    assert "undefined" not in log and "No file" not in log
    assert cpod(root, "build").ran == []


def test_a_missing_tool_is_named_before_anything_runs(tmp_path):
    root = copy("paper", tmp_path)
    (tmp_path / "empty-bin").mkdir()
    path = os.pathsep.join([str(tmp_path / "empty-bin"), os.path.dirname(sys.executable)])
    run = cpod(root, "build", env={"PATH": path})
    assert run.code == 2, run.err
    # bibtex is looked for only once a document asks for it (an on_demand rule)
    assert ("no chef can build paper.pdf: the latex pack needs pdflatex, which is not on "
            "PATH here") in run.err
    assert not (root / ".computepods/state.db").exists()
