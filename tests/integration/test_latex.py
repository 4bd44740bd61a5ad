"""LaTeX against real pdflatex and bibtex: the cycle, input parts, discovery."""
from __future__ import annotations

from pathlib import Path

import pytest

from cpodrun import cpod, write

RULES = """
[project]
default = ["paper.pdf"]

[[rule]]
name = "latex"
inputs = ["%.tex", "%.bbl"]
outputs = ["%.pdf", "%.aux"]
command = "pdflatex -interaction=nonstopmode -halt-on-error -recorder {in[0]}"
discover = "fls"

[[rule]]
name = "bibtex"
inputs = ["%.aux"]
outputs = ["%.bbl"]
command = "bibtex {in[0]}"
parts = {"%.aux" = "bibtex"}
"""

LATEX_ALONE = """
[[rule]]
name = "latex"
inputs = ["%.tex"]
outputs = ["%.pdf", "%.aux"]
command = "pdflatex -interaction=nonstopmode -halt-on-error -recorder {in[0]}"
discover = "fls"
"""

PAPER = r"""\documentclass{article}
\begin{document}
\tableofcontents
\section{Intro}\label{sec:intro}
See Section~\ref{sec:two} and \cite{knuth84}.
\input{chapter}
\bibliographystyle{plain}
\bibliography{refs}
\end{document}
"""


@pytest.fixture
def paper(tmp_path) -> Path:
    return write(tmp_path / "paper", {
        "computepods.toml": RULES,
        "paper.tex": PAPER,
        "chapter.tex": "\\section{Two}\\label{sec:two}\nBack to Section~\\ref{sec:intro}.\n",
        "refs.bib": "@book{knuth84, author={Donald E. Knuth}, title={The TeXbook},"
                    " publisher={Addison-Wesley}, year={1984}}\n",
    })


def runs(run, rule: str) -> int:
    return sum(1 for step in run.ran if step.startswith(rule + ":"))


def resolved(root: Path) -> bool:
    """pdflatex's own verdict: no undefined references or citations left."""
    log = (root / "paper.log").read_text(errors="replace")
    return "undefined" not in log and "Rerun to get" not in log and "No file" not in log


def test_first_build_is_three_pdflatex_and_one_bibtex(paper):
    run = cpod(paper, "build")
    assert run.code == 0, run.err
    assert (runs(run, "latex"), runs(run, "bibtex")) == (3, 1)
    assert "fixpoint of {paper.aux, paper.bbl, paper.toc} after pass 3" in run.err
    assert resolved(paper)
    assert "No file paper.toc" not in (paper / "paper.log").read_text(errors="replace")
    assert (paper / "paper.toc").exists()             # an output only the .fls names
    assert cpod(paper, "build").ran == []


def test_clean_then_build_takes_the_runs_of_a_fresh_copy(tmp_path):
    """The .toc and .lof are outputs only the .fls names.  A clean that kept
    them handed the next build a table of contents a page long before the
    first pass, and the group oscillated instead of taking its three runs."""
    sections = "".join(f"\\section{{Part {i}}}\\label{{s{i}}}\nWords on part {i}.\n"
                       for i in range(1, 41))
    files = {"computepods.toml": RULES.split("[[rule]]")[0] + LATEX_ALONE,
             "paper.tex": "\\documentclass{article}\n\\begin{document}\n"
                          "The last part is on page~\\pageref{s40}.\n"
                          "\\tableofcontents\n\\listoffigures\n"
                          "\\begin{figure}[h]\\caption{A figure}\\end{figure}\n"
                          f"{sections}\\end{{document}}\n"}
    root = write(tmp_path / "doc", files)
    fresh = cpod(root, "build")
    assert fresh.code == 0, fresh.err
    assert {"paper.toc", "paper.lof", "paper.log"} <= {p.name for p in root.iterdir()}
    clean = cpod(root, "clean")
    assert clean.code == 0, clean.err
    assert "cpod: removed 5 outputs and .computepods/" in clean.err      # pdf aux toc lof log
    assert sorted(p.name for p in root.iterdir()) == sorted(files)
    again = cpod(root, "build")
    assert again.code == 0, again.err
    assert again.ran == fresh.ran == ["latex:paper.pdf"] * 3


def test_comment_in_a_chapter_reruns_pdflatex_once_and_not_bibtex(paper):
    assert cpod(paper, "build").code == 0
    with open(paper / "chapter.tex", "a") as f:
        f.write("% just a comment\n")
    run = cpod(paper, "build")
    assert run.code == 0, run.err
    assert (runs(run, "latex"), runs(run, "bibtex")) == (1, 0)


def test_new_citation_reruns_bibtex(paper):
    assert cpod(paper, "build").code == 0
    (paper / "refs.bib").write_text((paper / "refs.bib").read_text() +
                                    "@book{lamport94, author={Leslie Lamport}, title={LaTeX},"
                                    " publisher={Addison-Wesley}, year={1994}}\n")
    (paper / "chapter.tex").write_text((paper / "chapter.tex").read_text() + "\\cite{lamport94}\n")
    run = cpod(paper, "build")
    assert run.code == 0, run.err
    assert runs(run, "bibtex") == 1 and runs(run, "latex") >= 2
    assert "lamport94" in (paper / "paper.bbl").read_text().lower()
    assert resolved(paper)


def test_new_input_added_between_builds_is_discovered(paper):
    assert cpod(paper, "build").code == 0
    (paper / "extra.tex").write_text("\\section{Extra}\\label{sec:extra}\n")
    (paper / "chapter.tex").write_text((paper / "chapter.tex").read_text() + "\\input{extra}\n")
    assert cpod(paper, "build").code == 0
    (paper / "extra.tex").write_text("\\section{Extra, renamed}\\label{sec:extra}\n")
    run = cpod(paper, "build")                # only a discovered input changed
    assert runs(run, "latex") >= 1, run.err
    assert "Extra, renamed" in (paper / "paper.toc").read_text()


def test_latex_error_changes_nothing_in_the_tree_and_shows_the_log(paper):
    assert cpod(paper, "build").code == 0
    before = (paper / "paper.pdf").read_bytes()
    (paper / "chapter.tex").write_text("\\undefinedcommand\n")
    run = cpod(paper, "build")
    assert run.code == 1
    assert "Undefined control sequence" in run.err        # pdflatex reports on stdout
    assert (paper / "paper.pdf").read_bytes() == before


def test_aux_change_outside_citations_does_not_rerun_bibtex(paper):
    """The .aux gains labels and toc lines, but not its \\citation lines:
    bibtex's part of it is unchanged, so only pdflatex reruns."""
    assert cpod(paper, "build").code == 0
    aux_before = (paper / "paper.aux").read_text()
    (paper / "chapter.tex").write_text((paper / "chapter.tex").read_text() +
                                       "\\section{Three}\\label{sec:three}\n")
    run = cpod(paper, "build")
    assert run.code == 0, run.err
    assert (paper / "paper.aux").read_text() != aux_before        # the .aux did change
    assert runs(run, "bibtex") == 0 and runs(run, "latex") >= 2
    assert "Three" in (paper / "paper.toc").read_text()
    assert resolved(paper)
