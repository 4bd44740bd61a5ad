"""The latex pack does what latexmk does: real pdflatex, bibtex, makeindex,
makeglossaries and latexmk on the documents in tests/integration/latexdocs/.

The pack has no setting for a document's bibliography, index, glossaries or
nomenclature: each run's recorder file and log say what it looked for, and
the rule that makes it joins the build (planning/needs.py).  latexmk builds
the same documents with the latexmkrc beside them, and the PDFs must agree.
"""
from __future__ import annotations

import shutil
import struct
import subprocess
import zlib
from pathlib import Path

from cpodrun import cpod

DOCS = Path(__file__).parent / "latexdocs"
TOOL_TIMEOUT_S = 120        # seconds, for one latexmk or pdftotext run


def project(root: Path, targets: list[str], settings: str = "") -> Path:
    shutil.copytree(DOCS, root)
    listed = ", ".join(f'"{t}"' for t in targets)
    (root / "computepods.toml").write_text(
        f'[project]\ndefault = [{listed}]\nuse = ["latex"]\n'
        + (f"[pack.latex]\n{settings}\n" if settings else ""))
    return root


def png(rgb: tuple[int, int, int]) -> bytes:
    """A PNG of one pixel of colour ``rgb``."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" + bytes(rgb))) + chunk(b"IEND", b""))


def rules_run(run) -> list[str]:
    """The rule of each step that ran, in order: "latex.pdf", "latex.bibtex", ..."""
    return [step.split(":", 1)[0] for step in run.ran]


def pdf_text(pdf: Path) -> str:
    """pdftotext's text; a form feed ends each page."""
    done = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True,
                          timeout=TOOL_TIMEOUT_S, check=True)
    return done.stdout


def settled(log: Path) -> bool:
    """pdflatex's own verdict: nothing undefined, nothing to rerun, nothing missing."""
    text = log.read_text(errors="replace")
    return not any(word in text for word in ("undefined", "Rerun to get", "No file"))


def test_included_chapters_take_three_engine_runs_and_one_bibtex(tmp_path):
    """L B L L: the chapters' .aux files change on the second pass (the
    contents grow a page) but not their \\citation lines, which are all that
    bibtex reads of them; latexmk reruns bibtex here (L B L B L)."""
    root = project(tmp_path / "doc", ["thesis.pdf"])
    run = cpod(root, "build")
    assert run.code == 0, run.err
    assert rules_run(run) == ["latex.pdf", "latex.bibtex", "latex.pdf", "latex.pdf"], run.err
    assert "pass 3/5 of {chapters/intro.aux, chapters/method.aux" in run.err
    assert settled(root / "thesis.log")
    text = pdf_text(root / "thesis.pdf")
    assert "As Knuth shows [1]" in text and "[2] Leslie Lamport." in text
    assert cpod(root, "build").ran == []
    explained = cpod(root, "explain", "--all", "thesis.pdf")     # every step, not only those to run
    assert "command: bibtex thesis.aux" in explained.out, explained.out
    assert "discovered inputs: chapters/intro.aux, chapters/method.aux, refs.bib" in explained.out
    assert "figures/dot.png" in explained.out.split("latex.pdf:thesis.pdf", 1)[1]

    # the figure a chapter shows was found through the .fls: a new one reruns
    # the engine once, and nothing that goes round changes
    (root / "figures/dot.png").write_bytes(png((30, 30, 200)))
    run = cpod(root, "build")
    assert run.code == 0, run.err
    assert rules_run(run) == ["latex.pdf"], run.err

    # a clean removes what the .fls and the .blg found too (the .toc, the
    # chapters' .aux), so the next build takes the runs of a fresh copy
    sources = sorted(p.relative_to(root) for p in root.rglob("*") if not is_built(root, p))
    assert cpod(root, "clean").code == 0
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == sources
    run = cpod(root, "build")
    assert rules_run(run) == ["latex.pdf", "latex.bibtex", "latex.pdf", "latex.pdf"], run.err


def is_built(root: Path, path: Path) -> bool:
    """Written by a build: the state directory, or beside a source with
    another suffix (figures/dot.png is a source, and so is every .tex)."""
    rel = path.relative_to(root)
    return rel.parts[0] == ".computepods" or (
        path.suffix not in (".tex", ".bib", ".png", ".toml", "") and rel.name != "latexmkrc")


def test_a_failed_first_run_leaves_no_chapter_aux_in_the_tree(tmp_path):
    """pdflatex writes an \\include'd chapter's .aux beside it, in
    chapters/, before any record names the file: it lands in the step's view,
    and a run that fails leaves the tree as it was."""
    root = project(tmp_path / "doc", ["thesis.pdf"])
    (root / "chapters/method.tex").write_text("\\chapter{Method}\n\\undefinedcommand\n")
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    run = cpod(root, "build")
    assert run.code == 1 and "Undefined control sequence" in run.err, run.err
    assert sorted(p.relative_to(root) for p in root.rglob("*")
                  if ".computepods" not in p.parts) == before


def test_biblatex_runs_biber_and_an_edited_bib_runs_it_again(tmp_path):
    root = project(tmp_path / "doc", ["biblatex.pdf"])
    run = cpod(root, "build")
    assert run.code == 0, run.err
    assert rules_run(run)[:2] == ["latex.pdf", "latex.biber"], run.err
    assert "latex.bibtex" not in rules_run(run) and settled(root / "biblatex.log")
    assert "Donald E. Knuth. The TEXbook" in pdf_text(root / "biblatex.pdf")
    assert "discovered inputs: refs.bib" in cpod(root, "explain", "--all").out

    # biber's .blg named refs.bib: an edit of it reruns biber
    bib = root / "refs.bib"
    bib.write_text(bib.read_text().replace("Donald E. Knuth", "Donald Ervin Knuth"))
    run = cpod(root, "build")
    assert run.code == 0, run.err
    assert rules_run(run)[:2] == ["latex.biber", "latex.pdf"], run.err
    assert "Donald Ervin Knuth. The TEXbook" in pdf_text(root / "biblatex.pdf")


def test_a_bcf_left_from_biblatex_does_not_choose_biber(tmp_path):
    """The document moved to bibtex; its old .bcf is still in the tree.  The
    run did not write it this time, so bibtex makes the .bbl."""
    root = project(tmp_path / "doc", ["thesis.pdf"])
    (root / "thesis.bcf").write_text('<?xml version="1.0"?>\n<bcf:controlfile/>\n')
    run = cpod(root, "build")
    assert run.code == 0, run.err
    assert rules_run(run) == ["latex.pdf", "latex.bibtex", "latex.pdf", "latex.pdf"], run.err


def test_index_glossaries_and_nomenclature_come_out_as_latexmks(tmp_path):
    docs = ["index", "glossary", "nomencl"]
    root = project(tmp_path / "cpod", [f"{d}.pdf" for d in docs])
    run = cpod(root, "build")
    assert run.code == 0, run.err
    tools = [r for r in rules_run(run) if r != "latex.pdf"]
    assert sorted(tools) == ["latex.acronyms", "latex.glossaries", "latex.makeindex",
                             "latex.nomencl"], run.err

    theirs = shutil.copytree(DOCS, tmp_path / "latexmk")
    for doc in docs:
        done = subprocess.run(["latexmk", "-pdf", "-r", "latexmkrc", "-interaction=nonstopmode",
                               f"{doc}.tex"], cwd=theirs, capture_output=True, text=True,
                              timeout=TOOL_TIMEOUT_S)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        ours, latexmk = pdf_text(root / f"{doc}.pdf"), pdf_text(theirs / f"{doc}.pdf")
        assert ours.count("\f") == latexmk.count("\f"), doc      # the same pages
        assert ours == latexmk, doc
        assert settled(root / f"{doc}.log"), doc
    # and each has what it asked for, not merely the same lack
    assert "apple, 1, 2" in pdf_text(root / "index.pdf")
    glossary = pdf_text(root / "glossary.pdf")
    assert "Glossary" in glossary and "Acronyms" in glossary and "central processing unit" in glossary
    assert "Nomenclature" in pdf_text(root / "nomencl.pdf")


def test_a_document_without_a_bibliography_runs_the_engine_alone(tmp_path):
    root = project(tmp_path / "doc", ["plain.pdf"])      # bib = "auto", the default
    run = cpod(root, "build")
    assert run.code == 0, run.err
    assert set(rules_run(run)) == {"latex.pdf"}
    assert settled(root / "plain.log") and not (root / "plain.bbl").exists()


def test_a_file_the_document_needs_that_no_rule_makes_fails_naming_it(tmp_path):
    root = project(tmp_path / "doc", ["index.pdf"], 'index = "none"')
    for _ in range(2):          # not silently up to date the second time
        run = cpod(root, "build")
        assert run.code == 1, run.err
        assert ("latex.pdf:index.pdf looked for index.ind, which no rule made, so index.pdf "
                "would come out without it") in run.err
