"""LaTeX documents built by computepods against latexmk, counting each tool's runs.

    python bench/latex.py
    python bench/latex.py --repeat 5 --docs paper,thesis --paper examples/paper

The documents:

paper
    examples/paper (table of contents, \\ref, \\cite with refs.bib, \\input
    chapters; its computepods.toml uses the latex pack).  Without one, an
    equivalent paper is written to ``bench/work/latex/paper-source``.
thesis, index, glossary, nomencl, plain, biblatex
    the documents of tests/integration/latexdocs/ (``\\include``d chapters
    with bibtex, an index, glossaries and acronyms, a nomenclature, no
    bibliography, biblatex with biber), each built as NAME.pdf with
    ``use = ["latex"]`` and nothing else; latexmk gets the latexmkrc shipped
    beside them (``-r latexmkrc``: its rules for glossaries and nomencl).

Each tool builds its own copy of a document in ``bench/work/latex/<doc>/<tool>``:

    cpod build
    latexmk -pdf [-r latexmkrc] -interaction=nonstopmode NAME.tex

``cpod`` is cpod as a user types it: its first build in a copy leaves a
pod running in the background, which the later builds hand their requests
to (stopped with ``cpod down`` before the copy is replaced, and at the end);
``cpod-cold`` is the one-shot build (``CP_POD=0``).  Each round (tools
taking turns) times, per document:

clean build
    in a fresh copy (for cpod, the pod's start included);
comment edit (the paper only)
    after a comment line is appended to its first chapter (its text, hence
    its hash and mtime, changes; the PDF's content does not);
word edit
    after one word is added to the first line of prose of the edited file
    (the thesis's first chapter; the document itself for the others): the
    PDF changes;
no-op
    nothing changed.

pdflatex, bibtex, biber, makeindex and makeglossaries are counted by shims:
a directory put first on PATH holds a script for each that appends its name
to a log and execs the real program, so every tool is counted the same way.
A call from inside a counted one (makeglossaries runs makeindex) is not
counted again.  After each build the PDF must exist, NAME.log must not ask
for a rerun or report undefined references or a missing file ("No file
NAME.toc."), NAME.aux (and with pdftotext the PDF's text) must equal
latexmk's, and a no-op must not rewrite the PDF.  The median time of each
is shown with its ratio to latexmk.  A build that fails or a check that
does not hold makes the run exit 1 (a failed build's output is printed).
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / "bench" / "work" / "latex"
EXAMPLE = REPO / "examples" / "paper"
LATEXDOCS = REPO / "tests" / "integration" / "latexdocs"
LATEXMKRC = "latexmkrc"                # beside the latexdocs
VENV_BIN = REPO / ".venv" / "bin"
BIN = VENV_BIN if VENV_BIN.is_dir() else Path(sys.executable).parent
COUNTED = ("pdflatex", "bibtex", "biber", "makeindex", "makeglossaries")
NESTED = "BENCH_LATEX_COUNTED"         # set by a shim: a call inside a counted one
PAPER_SCENARIOS = ("clean build", "comment edit", "word edit", "no-op")
DOC_SCENARIOS = ("clean build", "word edit", "no-op")
TOOLS = ("latexmk", "cpod", "cpod-cold")      # latexmk first: the ratios are to it
CPOD_ENV = {"cpod": {"CP_POD": "1"}, "cpod-cold": {"CP_POD": "0"}}
ADDED_WORD = " indeed"
# latexdocs document -> the file its word edit changes (default: NAME.tex)
EDITED = {"thesis": "chapters/intro.tex"}
# What a build writes; a fresh copy leaves these behind.
BUILD_PRODUCTS = (".computepods", "*.pdf", "*.aux", "*.bbl", "*.bbl.d", "*.blg", "*.fls",
                  "*.log", "*.toc", "*.out", "*.fdb_latexmk", "*.synctex.gz", "*.bcf",
                  "*.run.xml", "*.idx", "*.ind", "*.ilg", "*.glo", "*.gls", "*.glg",
                  "*.acn", "*.acr", "*.alg", "*.ist", "*.nlo", "*.nls")
# NAME.log text that means the last run did not make the finished document:
# it asks for another run, something is undefined, or it did not find a file
# (NAME.toc, NAME.bbl, NAME.ind) that an earlier run or a tool wrote.
UNSETTLED = ("Rerun to get", "There were undefined references", "Citation `",
             "Reference `", "No file ")
ERROR_TAIL_CHARS = 3000
BUILD_TIMEOUT_S = 300         # seconds; a build of one of these still running then has hung

PAPER_TEX = r"""\documentclass[11pt]{article}
\title{Building to a Fixpoint}
\author{bench/latex.py}
\date{}
\begin{document}
\maketitle
\tableofcontents
\input{chapters/intro}
\input{chapters/method}
\bibliographystyle{plain}
\bibliography{refs}
\end{document}
"""
CHAPTERS = {
    "intro": r"""\section{Introduction}
\label{sec:intro}
\TeX{} reads the cross references it needs from the auxiliary file of its
previous run~\cite{knuth1984}, so a reference to Section~\ref{sec:method}
is known only after a run has reached it~\cite{lamport1994}.
""",
    "method": r"""\section{Method}
\label{sec:method}
Run the passes until the auxiliary files stop changing~\cite{mokhov2018};
Section~\ref{sec:intro} says why one is not enough.
""",
}
REFS_BIB = r"""@book{knuth1984, author = {Donald E. Knuth}, title = {The {\TeX}book},
  publisher = {Addison-Wesley}, year = {1984}}
@book{lamport1994, author = {Leslie Lamport},
  title = {{\LaTeX}: A Document Preparation System}, publisher = {Addison-Wesley},
  year = {1994}}
@article{mokhov2018, author = {Andrey Mokhov and Neil Mitchell and Simon {Peyton Jones}},
  title = {Build Systems \`a la Carte}, journal = {Proc. ACM Program. Lang.},
  volume = {2}, number = {ICFP}, year = {2018}}
"""
PROJECT_TOML = '[project]\nname = "{name}"\ndefault = ["{name}.pdf"]\nuse = ["latex"]\n'


@dataclass(frozen=True)
class Document:
    """One document to build: NAME.tex in ``source``, copied for each tool."""
    name: str
    source: Path
    origin: str                        # where it came from, for the report
    edited: str                        # the file the edits change
    scenarios: tuple[str, ...]
    latexmkrc: bool = False            # latexmk -r latexmkrc
    project_file: bool = False         # write computepods.toml into each copy


@dataclass
class Measure:
    seconds: list[float] = field(default_factory=list)
    calls: list[dict[str, int]] = field(default_factory=list)


@dataclass
class Tool:
    name: str
    doc: Document
    root: Path
    shims: Path
    log: Path
    why: str = ""                      # not available, or how it failed
    measures: dict[str, Measure] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.measures = {s: Measure() for s in self.doc.scenarios}

    def argv(self) -> list[str]:
        if self.name in CPOD_ENV:
            return [str(BIN / "cpod"), "-C", str(self.root), "build"]
        rc = ["-r", LATEXMKRC] if self.doc.latexmkrc else []
        return ["latexmk", "-pdf", *rc, "-interaction=nonstopmode", f"{self.doc.name}.tex"]


def write_paper(root: Path) -> None:
    """An equivalent of examples/paper, for a tree that does not have it."""
    if root.exists():
        shutil.rmtree(root)
    (root / "chapters").mkdir(parents=True)
    (root / "paper.tex").write_text(PAPER_TEX)
    for name, text in CHAPTERS.items():
        (root / "chapters" / f"{name}.tex").write_text(text)
    (root / "refs.bib").write_text(REFS_BIB)
    (root / "computepods.toml").write_text(PROJECT_TOML.format(name="paper"))


def documents(paper_dir: Path | None) -> dict[str, Document]:
    """Every document this bench knows, the paper first."""
    if paper_dir is not None:
        paper, origin = paper_dir.resolve(), str(paper_dir)
    elif (EXAMPLE / "paper.tex").is_file():
        paper, origin = EXAMPLE, "examples/paper"
    else:
        paper, origin = WORK / "paper-source", "generated: bench/work/latex/paper-source"
        write_paper(paper)
    found = {"paper": Document("paper", paper, origin, first_chapter(paper), PAPER_SCENARIOS)}
    for tex in sorted(LATEXDOCS.glob("*.tex")):
        name = tex.stem
        found[name] = Document(name, LATEXDOCS, f"tests/integration/latexdocs/{tex.name}",
                               EDITED.get(name, tex.name), DOC_SCENARIOS, latexmkrc=True,
                               project_file=True)
    return found


def first_chapter(root: Path) -> str:
    chapters = sorted((root / "chapters").glob("*.tex"))
    if not chapters:
        raise SystemExit(f"latex.py: {root}/chapters has no .tex file to edit")
    return str(chapters[0].relative_to(root))


def write_shims(shims: Path, log: Path) -> None:
    """A script for each counted program that is installed: it logs its name
    (unless a counted program called it), then execs the real program
    (found now, before the shims are on PATH)."""
    shims.mkdir(parents=True, exist_ok=True)
    for program in COUNTED:
        real = shutil.which(program)
        if real is None:
            continue                   # a document that needs it fails, saying so
        script = shims / program
        script.write_text(f"#!/bin/sh\n# bench/latex.py: count this call, then run {real}.\n"
                          f"[ -n \"${NESTED}\" ] || echo {program} >> '{log}'\n"
                          f"{NESTED}=1; export {NESTED}\nexec '{real}' \"$@\"\n")
        script.chmod(0o755)


def calls_since(log: Path, start: int) -> dict[str, int]:
    names = log.read_text().splitlines()[start:] if log.exists() else []
    return {program: names.count(program) for program in COUNTED}


def log_lines(log: Path) -> int:
    return len(log.read_text().splitlines()) if log.exists() else 0


def settled_problems(root: Path, name: str) -> list[str]:
    """What says the build did not finish the document: no PDF, or a log
    that asks for another run or reports something undefined or missing."""
    if not (root / f"{name}.pdf").is_file():
        return ["no PDF"]
    log = root / f"{name}.log"
    text = log.read_text(errors="replace") if log.is_file() else ""
    lines = text.splitlines()
    return [f"{name}.log: {next(line for line in lines if marker in line).strip()[:60]!r}"
            for marker in UNSETTLED if marker in text]


def build(tool: Tool, scenario: str) -> None:
    """Time one build of ``tool`` and count the runs of each program."""
    env = {k: v for k, v in os.environ.items() if k != NESTED}
    env.update(PATH=f"{tool.shims}{os.pathsep}{os.environ.get('PATH', '')}",
               **CPOD_ENV.get(tool.name, {}))
    start_line = log_lines(tool.log)
    pdf = tool.root / f"{tool.doc.name}.pdf"
    pdf_before = pdf.stat().st_mtime_ns if pdf.exists() else None
    start = time.perf_counter()
    try:
        proc = subprocess.run(tool.argv(), cwd=tool.root, env=env, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              timeout=BUILD_TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        output = exc.output.decode(errors="replace") if isinstance(exc.output, bytes) else exc.output
        tool.why = f"{scenario} timed out after {BUILD_TIMEOUT_S} s:\n{(output or '')[-ERROR_TAIL_CHARS:]}"
        return
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        tool.why = f"{scenario} exited {proc.returncode}:\n{proc.stdout[-ERROR_TAIL_CHARS:]}"
        return
    measure = tool.measures[scenario]
    measure.seconds.append(seconds)
    measure.calls.append(calls_since(tool.log, start_line))
    tool.problems += [f"{scenario}: {p}" for p in settled_problems(tool.root, tool.doc.name)]
    if scenario == "no-op" and pdf.stat().st_mtime_ns != pdf_before:
        tool.problems.append("no-op: rewrote the PDF")


def result_of(tool: Tool) -> tuple[bytes | None, str | None]:
    """What must equal latexmk's: NAME.aux, and the PDF's text if pdftotext is here."""
    aux = tool.root / f"{tool.doc.name}.aux"
    text = None
    if shutil.which("pdftotext"):
        done = subprocess.run(["pdftotext", str(tool.root / f"{tool.doc.name}.pdf"), "-"],
                              capture_output=True, text=True, timeout=60)
        text = done.stdout if done.returncode == 0 else None
    return (aux.read_bytes() if aux.exists() else None), text


def add_a_word(path: Path) -> None:
    """One word more at the end of the first line of prose (not a command,
    a comment or a blank line)."""
    lines = path.read_text().splitlines(keepends=True)
    for i, line in enumerate(lines):
        text = line.rstrip("\n")
        if text.strip() and not text.lstrip().startswith(("\\", "%")):
            lines[i] = text + ADDED_WORD + line[len(text):]
            path.write_text("".join(lines))
            return
    raise SystemExit(f"latex.py: {path} has no line of prose to add a word to")


def stop_pod(tool: Tool) -> None:
    if tool.name in CPOD_ENV and (tool.root / ".computepods").exists():
        subprocess.run([str(BIN / "cpod"), "-C", str(tool.root), "down"], capture_output=True,
                       timeout=60)


def fresh_copy(tool: Tool) -> None:
    stop_pod(tool)
    if tool.root.exists():
        shutil.rmtree(tool.root)
    shutil.copytree(tool.doc.source, tool.root, ignore=shutil.ignore_patterns(*BUILD_PRODUCTS))
    if tool.doc.project_file:
        (tool.root / "computepods.toml").write_text(PROJECT_TOML.format(name=tool.doc.name))


def one_round(tools: list[Tool], round_no: int) -> None:
    """Each scenario in turn, each tool in turn within it."""
    for tool in tools:
        if not tool.why:
            fresh_copy(tool)
    for scenario in tools[0].doc.scenarios:
        for tool in tools:
            if tool.why:
                continue
            edited = tool.root / tool.doc.edited
            if scenario == "comment edit":
                with edited.open("a") as f:
                    f.write(f"% bench/latex.py: a comment, round {round_no}\n")
            elif scenario == "word edit":
                add_a_word(edited)
            build(tool, scenario)
        built = [(t, result_of(t)) for t in tools if not t.why]
        for tool, (aux, text) in built[1:]:
            first, (first_aux, first_text) = built[0]
            if aux != first_aux:
                tool.problems.append(f"{scenario}: {tool.doc.name}.aux differs from "
                                     f"{first.name}'s")
            if text != first_text:
                tool.problems.append(f"{scenario}: the PDF's text differs from {first.name}'s")
    for tool in tools:
        stop_pod(tool)                 # the next round's clean build starts its own


def calls_text(calls: list[dict[str, int]], program: str) -> str:
    """One number when every round agrees, else each round's ("3/4/3")."""
    values = [c[program] for c in calls]
    if not values:
        return "-"
    return str(values[0]) if len(set(values)) == 1 else "/".join(map(str, values))


def report(doc: Document, tools: list[Tool], repeat: int) -> str:
    """One table per document: time, ratio to latexmk and each program's runs
    (the programs some tool ran here)."""
    ran = [p for p in COUNTED if p == "pdflatex" or any(
        c[p] for t in tools for m in t.measures.values() for c in m.calls)]
    header = (f"{'scenario':<13} {'tool':<9} {'time s':>7} {'/latexmk':>8}   "
              + " ".join(f"{p:>{len(p)}}" for p in ran) + "   notes")
    lines = [f"{doc.name} ({doc.origin}): median of {repeat}; runs per build, "
             "counted by PATH shims", header, "-" * len(header)]
    for scenario in doc.scenarios:
        medians = {t.name: statistics.median(t.measures[scenario].seconds)
                   for t in tools if not t.why and t.measures[scenario].seconds}
        for tool in tools:
            if tool.name not in medians:
                why = tool.why.splitlines()[0] if tool.why else "-"
                lines.append(f"{scenario:<13} {tool.name:<9} {why}")
                continue
            base = medians.get("latexmk")
            ratio = f"{medians[tool.name] / base:.2f}x" if base else "-"
            calls = tool.measures[scenario].calls
            notes = "; ".join(sorted({p.partition(': ')[2] for p in tool.problems
                                      if p.startswith(scenario + ":")})) or "ok"
            counts = " ".join(f"{calls_text(calls, p):>{len(p)}}" for p in ran)
            lines.append(f"{scenario:<13} {tool.name:<9} {medians[tool.name]:7.3f} {ratio:>8}   "
                         f"{counts}   {notes}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Time cpod against latexmk on LaTeX documents.")
    parser.add_argument("--paper", type=Path, default=None,
                        help="the paper's directory (default: examples/paper, else a generated one)")
    parser.add_argument("--docs", default=None,
                        help="comma-separated documents (default: all): paper, and the "
                             "latexdocs' thesis, index, glossary, nomencl, plain, biblatex")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)

    if (BIN / "cpod").exists():
        # as an install would (bench/README.rst, run.py): no module compiled on the clock
        subprocess.run([str(BIN / "python"), "-m", "compileall", "-q", str(REPO / "computepods")],
                       capture_output=True, timeout=300)
    known = documents(args.paper)
    names = [n.strip() for n in args.docs.split(",") if n.strip()] if args.docs else list(known)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SystemExit(f"latex.py: unknown document {unknown[0]!r}; known: {', '.join(known)}")
    everyone: list[list[Tool]] = []
    for name in names:
        tools = []
        for tool_name in TOOLS:
            base = WORK / name
            log = base / f"{tool_name}.calls"
            base.mkdir(parents=True, exist_ok=True)
            log.unlink(missing_ok=True)
            tool = Tool(tool_name, known[name], base / tool_name, base / f"shims-{tool_name}", log)
            write_shims(tool.shims, tool.log)
            available = (BIN / "cpod").exists() if tool_name in CPOD_ENV else shutil.which(tool_name)
            if not available:
                tool.why = "not available"
            tools.append(tool)
        everyone.append(tools)
    try:
        for round_no in range(1, args.repeat + 1):
            for tools in everyone:
                one_round(tools, round_no)
    finally:
        for tools in everyone:
            for tool in tools:
                stop_pod(tool)

    print("\n\n".join(report(tools[0].doc, tools, args.repeat) for tools in everyone))
    failed = False
    for tools in everyone:
        for tool in tools:
            if tool.why and tool.why != "not available":
                print(f"{tool.doc.name} {tool.name}: {tool.why}", file=sys.stderr)
            failed |= bool(tool.problems or (tool.why and tool.why != "not available"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
