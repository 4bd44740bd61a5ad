"""A LaTeX paper built by computepods against latexmk, counting TeX runs.

    python bench/latex.py
    python bench/latex.py --repeat 5 --paper examples/paper

The paper is examples/paper (table of contents, \\ref, \\cite with refs.bib,
\\input chapters; its computepods.toml uses the latex pack).  Without one, an
equivalent paper is written to ``bench/work/paper/source``.  Each tool
builds its own copy in ``bench/work/paper/<tool>``:

    cpod build
    latexmk -pdf -interaction=nonstopmode paper.tex

``cpod`` is cpod as a user types it: its first build in a copy leaves a
pod running in the background, which the later builds hand their requests
to (stopped with ``cpod down`` before the copy is replaced, and at the end);
``cpod-cold`` is the one-shot build (``CP_POD=0``).  Each round (tools
taking turns) times four builds there:

clean build
    in a fresh copy of the paper (for cpod, the pod's start included);
comment edit
    after a comment line is appended to the first chapter (its text, hence
    its hash and mtime, changes; the PDF's content does not);
word edit
    after one word is added to the first line of prose of the first chapter
    (the PDF changes; the cross references do not);
no-op
    nothing changed.

pdflatex and bibtex are counted by shims: a directory put first on PATH
holds a ``pdflatex`` and a ``bibtex`` script that append their name to a
log and exec the real program, so both tools are counted the same way.
After each build the PDF must exist, paper.log must not ask for a rerun or
report undefined references or a missing auxiliary file ("No file
paper.toc."), and paper.aux must equal latexmk's.
The median time of each is shown with its ratio to latexmk.  A build that
fails makes the run exit 1 (its output is printed).
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
WORK = REPO / "bench" / "work" / "paper"
EXAMPLE = REPO / "examples" / "paper"
VENV_BIN = REPO / ".venv" / "bin"
BIN = VENV_BIN if VENV_BIN.is_dir() else Path(sys.executable).parent
DOCUMENT = "paper"                    # paper.tex -> paper.pdf
COUNTED = ("pdflatex", "bibtex")      # the programs the shims count
SCENARIOS = ("clean build", "comment edit", "word edit", "no-op")
TOOLS = ("latexmk", "cpod", "cpod-cold")      # latexmk first: the ratios are to it
CPOD_ENV = {"cpod": {"CP_POD": "1"}, "cpod-cold": {"CP_POD": "0"}}
ADDED_WORD = " indeed"
# What a build writes; a fresh copy leaves these behind.
BUILD_PRODUCTS = (".computepods", "*.pdf", "*.aux", "*.bbl", "*.bbl.d", "*.blg", "*.fls",
                  "*.log", "*.toc", "*.out", "*.fdb_latexmk", "*.synctex.gz")
# paper.log text that means the last run did not make the finished document:
# it asks for another run, something is undefined, or it did not find an
# auxiliary file (paper.toc, paper.bbl) that an earlier run wrote.
UNSETTLED = ("Rerun to get", "There were undefined references", "Citation `",
             "Reference `", "No file ")
ERROR_TAIL_CHARS = 3000
BUILD_TIMEOUT_S = 300         # seconds; a build of this paper still running then has hung

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
COMPUTEPODS_TOML = """[project]
name = "paper"
default = ["paper.pdf"]
use = ["latex"]
"""


@dataclass
class Measure:
    seconds: list[float] = field(default_factory=list)
    calls: list[dict[str, int]] = field(default_factory=list)


@dataclass
class Tool:
    name: str
    root: Path
    shims: Path
    log: Path
    why: str = ""                      # not available, or how it failed
    measures: dict[str, Measure] = field(
        default_factory=lambda: {s: Measure() for s in SCENARIOS})
    problems: list[str] = field(default_factory=list)

    def argv(self) -> list[str]:
        if self.name in CPOD_ENV:
            return [str(BIN / "cpod"), "-C", str(self.root), "build"]
        return ["latexmk", "-pdf", "-interaction=nonstopmode", f"{DOCUMENT}.tex"]


def write_paper(root: Path) -> None:
    """An equivalent of examples/paper, for a tree that does not have it."""
    if root.exists():
        shutil.rmtree(root)
    (root / "chapters").mkdir(parents=True)
    (root / f"{DOCUMENT}.tex").write_text(PAPER_TEX)
    for name, text in CHAPTERS.items():
        (root / "chapters" / f"{name}.tex").write_text(text)
    (root / "refs.bib").write_text(REFS_BIB)
    (root / "computepods.toml").write_text(COMPUTEPODS_TOML)


def write_shims(shims: Path, log: Path) -> None:
    """``pdflatex`` and ``bibtex`` scripts that log their name, then exec the
    real program (found now, before the shims are on PATH)."""
    shims.mkdir(parents=True, exist_ok=True)
    for program in COUNTED:
        real = shutil.which(program)
        if real is None:
            raise SystemExit(f"latex.py: {program} is not installed (make bench-system-deps)")
        script = shims / program
        script.write_text(f"#!/bin/sh\n# bench/latex.py: count this call, then run {real}.\n"
                          f"echo {program} >> '{log}'\nexec '{real}' \"$@\"\n")
        script.chmod(0o755)


def calls_since(log: Path, start: int) -> dict[str, int]:
    names = log.read_text().splitlines()[start:] if log.exists() else []
    return {program: names.count(program) for program in COUNTED}


def log_lines(log: Path) -> int:
    return len(log.read_text().splitlines()) if log.exists() else 0


def first_chapter(root: Path) -> Path:
    chapters = sorted((root / "chapters").glob("*.tex"))
    if not chapters:
        raise SystemExit(f"latex.py: {root}/chapters has no .tex file to edit")
    return chapters[0]


def settled_problems(root: Path) -> list[str]:
    """What says the build did not finish the document: no PDF, or a log
    that asks for another run or reports something undefined."""
    if not (root / f"{DOCUMENT}.pdf").is_file():
        return ["no PDF"]
    log = root / f"{DOCUMENT}.log"
    text = log.read_text(errors="replace") if log.is_file() else ""
    lines = text.splitlines()
    return [f"paper.log: {next(line for line in lines if marker in line).strip()[:60]!r}"
            for marker in UNSETTLED if marker in text]


def build(tool: Tool, scenario: str) -> None:
    """Time one build of ``tool`` and count its TeX runs."""
    env = dict(os.environ, PATH=f"{tool.shims}{os.pathsep}{os.environ.get('PATH', '')}",
               **CPOD_ENV.get(tool.name, {}))
    start_line = log_lines(tool.log)
    pdf = tool.root / f"{DOCUMENT}.pdf"
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
        tool.why = (f"{scenario} exited {proc.returncode}:\n"
                    f"{proc.stdout[-ERROR_TAIL_CHARS:]}")
        return
    measure = tool.measures[scenario]
    measure.seconds.append(seconds)
    measure.calls.append(calls_since(tool.log, start_line))
    tool.problems += [f"{scenario}: {p}" for p in settled_problems(tool.root)]
    if scenario == "no-op" and pdf.stat().st_mtime_ns != pdf_before:
        tool.problems.append("no-op: rewrote the PDF")


def aux_text(tool: Tool) -> bytes | None:
    aux = tool.root / f"{DOCUMENT}.aux"
    return aux.read_bytes() if aux.exists() else None


def add_a_word(chapter: Path) -> None:
    """One word more at the end of the first line of prose (not a command,
    a comment or a blank line)."""
    lines = chapter.read_text().splitlines(keepends=True)
    for i, line in enumerate(lines):
        text = line.rstrip("\n")
        if text.strip() and not text.lstrip().startswith(("\\", "%")):
            lines[i] = text + ADDED_WORD + line[len(text):]
            chapter.write_text("".join(lines))
            return
    raise SystemExit(f"latex.py: {chapter} has no line of prose to add a word to")


def stop_pod(tool: Tool) -> None:
    if tool.name in CPOD_ENV and tool.root.exists():
        subprocess.run([str(BIN / "cpod"), "-C", str(tool.root), "down"], capture_output=True,
                       timeout=60)


def one_round(tools: list[Tool], paper: Path, round_no: int) -> None:
    """Each scenario in turn, each tool in turn within it."""
    for tool in tools:
        stop_pod(tool)
        if tool.root.exists():
            shutil.rmtree(tool.root)
        shutil.copytree(paper, tool.root, ignore=shutil.ignore_patterns(*BUILD_PRODUCTS))
    for scenario in SCENARIOS:
        for tool in tools:
            if tool.why:
                continue
            if scenario == "comment edit":
                with first_chapter(tool.root).open("a") as f:
                    f.write(f"% bench/latex.py: a comment, round {round_no}\n")
            elif scenario == "word edit":
                add_a_word(first_chapter(tool.root))
            build(tool, scenario)
        built = [t for t in tools if not t.why]
        for tool in built[1:]:
            if aux_text(tool) != aux_text(built[0]):
                tool.problems.append(f"{scenario}: paper.aux differs from {built[0].name}'s")


def calls_text(calls: list[dict[str, int]], program: str) -> str:
    """One number when every round agrees, else each round's ("3/4/3")."""
    values = [c[program] for c in calls]
    if not values:
        return "-"
    return str(values[0]) if len(set(values)) == 1 else "/".join(map(str, values))


def report(title: str, tools: list[Tool]) -> str:
    header = (f"{'scenario':<13} {'tool':<9} {'time s':>7} {'/latexmk':>8}   "
              f"{'pdflatex':>8} {'bibtex':>6}   notes")
    lines = [title, header, "-" * len(header)]
    for scenario in SCENARIOS:
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
            lines.append(f"{scenario:<13} {tool.name:<9} {medians[tool.name]:7.3f} {ratio:>8}   "
                         f"{calls_text(calls, 'pdflatex'):>8} {calls_text(calls, 'bibtex'):>6}"
                         f"   {notes}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Time cpod against latexmk on a LaTeX paper.")
    parser.add_argument("--paper", type=Path, default=None,
                        help="the paper's directory (default: examples/paper, else a generated one)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)

    if args.paper is not None:
        paper, origin = args.paper.resolve(), str(args.paper)
    elif (EXAMPLE / f"{DOCUMENT}.tex").is_file():
        paper, origin = EXAMPLE, "examples/paper"
    else:
        paper, origin = WORK / "source", "generated: bench/work/paper/source"
        write_paper(paper)
    tools = []
    for name in TOOLS:
        log = WORK / f"{name}.calls"
        log.parent.mkdir(parents=True, exist_ok=True)
        log.unlink(missing_ok=True)
        tool = Tool(name, WORK / name, WORK / f"shims-{name}", log)
        write_shims(tool.shims, tool.log)
        available = (BIN / "cpod").exists() if name in CPOD_ENV else shutil.which(name)
        if not available:
            tool.why = "not available"
        tools.append(tool)
    try:
        for round_no in range(1, args.repeat + 1):
            one_round(tools, paper, round_no)
    finally:
        for tool in tools:
            stop_pod(tool)

    title = (f"LaTeX paper ({origin}): median of {args.repeat}; "
             "pdflatex/bibtex = runs per build, counted by PATH shims")
    print(report(title, tools))
    for tool in tools:
        if tool.why and tool.why != "not available":
            print(f"{tool.name}: {tool.why}", file=sys.stderr)
    return 1 if any(t.problems or (t.why and t.why != "not available") for t in tools) else 0


if __name__ == "__main__":
    sys.exit(main())
