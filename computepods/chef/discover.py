"""Dependencies a step reports after it ran: depfiles, TeX's .fls and log, bibtex's .blg.

A rule's declared inputs are what it is known to read before it runs; the
tool itself knows the rest (the headers ``cc -MD`` followed, the chapters
``\\input`` pulled in, the chapters' ``.aux`` files bibtex read), and a
TeX run also says what it looked for and did not find (its log's ``No file
paper.ind.``).  These become discovered edges of the graph
(docs/architecture.md §4, "Dynamic dependencies"), so the next decision about the step
sees them.  Everything here is plain parsing and path arithmetic: the only
filesystem access is reading the reports, resolving the project root's
(and the view's) real path, and asking whether a file bibtex looked up on
its search path is the project's.

Tools write paths as they opened them: relative to their working directory,
or absolute — and an absolute path may be spelled through the real path of a
symlinked root, or through the scratch view the step ran in.  All of those
are mapped back to one project-relative posix path; what lies outside the
project (system headers, the TeX distribution, ``/dev/null``) or inside
``.computepods/`` is not a dependency the project can track, and is dropped.
"""
from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from computepods.errors import BuildFailed
from computepods.paths import in_state_dir
from computepods.project.checks import NOT_UTF8, shown, undecodable

# Reports are paths, and Linux paths are bytes: undecodable bytes survive as
# surrogates and round-trip to the same file name through os functions.
REPORT_ENCODING = "utf-8"
REPORT_ERRORS = "surrogateescape"

# .fls line keywords (TeX's -recorder).
_FLS_PWD, _FLS_INPUT, _FLS_OUTPUT = "PWD", "INPUT", "OUTPUT"
# TeX breaks a log line once it holds max_print_line bytes (79 in TeX Live's
# texmf.cnf); the message goes on on the next line.
LOG_LINE_BYTES = 79
# LaTeX's \@input, for a file it reads only if it is there (the .bbl, .ind,
# .gls, .nls a tool makes; the .aux and .toc the run itself writes).
_LOG_NO_FILE = "No file "
# biblatex writes the .bcf for biber and reads the .bbl biber makes of it; it
# says nothing in the log when the .bbl is missing, so the .bcf says it.
BIBLATEX_CONTROL, BIBLATEX_READS = ".bcf", ".bbl"
# bibtex's log (.blg) names each file it read on a line of its own.
_BLG_READ = ("The top-level auxiliary file: ", "The style file: ")
_BLG_NUMBERED = (("A level-", " auxiliary file: "), ("Database file #", ": "))


@dataclass
class Discovered:
    """What a step reported it read and wrote, as project paths."""
    inputs: list[str] = field(default_factory=list)    # project paths read
    outputs: list[str] = field(default_factory=list)   # written (.fls only)


# --- depfiles -----------------------------------------------------------------

def parse_depfile(text: str) -> list[str]:
    """The prerequisites of every rule in a make-style depfile, deduplicated.

    Reads what gcc and clang write with ``-MD``/``-MMD`` (and ``-MP``):
    rules ``targets: prerequisites`` continued over lines by a trailing
    backslash; ``\\ `` for a space and ``\\#`` for ``#`` in a name (with
    gcc's doubling of backslashes before them), ``$$`` for ``$``; ``#``
    comments; phony ``header.h:`` rules with no prerequisites, which add
    nothing.  Targets are not returned: the step's outputs are declared.

    Raises BuildFailed for a line of names with no ``:``, so a step whose
    depfile we cannot read fails visibly instead of losing dependencies.
    """
    found: dict[str, None] = {}
    for number, targets, prerequisites in _depfile_rules(text):
        if not targets:
            raise BuildFailed(f"depfile line {number}: no target before ':'")
        if prerequisites is None:
            raise BuildFailed(f"depfile line {number}: expected ':' after "
                              f"{' '.join(targets)!r}")
        found.update(dict.fromkeys(prerequisites))
    return list(found)


def _depfile_rules(text: str) -> Iterator[tuple[int, list[str], list[str] | None]]:
    """(first line number, targets, prerequisites or None if no ':') per rule.

    One logical line is one rule; blank and comment-only lines yield nothing.
    """
    text = text.replace("\r\n", "\n")
    n = len(text)
    targets: list[str] = []
    prerequisites: list[str] | None = None      # None until the ':'
    word: list[str] = []
    line = start_line = 1
    i = 0

    def end_word() -> None:
        name = "".join(word)
        if name:
            (targets if prerequisites is None else prerequisites).append(name)
        word.clear()

    while True:
        c = text[i] if i < n else "\n"
        if c == "\\":
            j = i
            while j < n and text[j] == "\\":
                j += 1
            run, nxt = j - i, text[j] if j < n else ""
            if nxt == "\n":                     # continuation: a separator
                word.append("\\" * (run - 1))
                end_word()
                line += 1
                i = j + 1
            elif nxt in (" ", "\t", "#"):
                # gcc doubles backslashes before a space it escapes: 2k+1
                # backslashes are k literal ones and an escaped character.
                word.append("\\" * (run // 2))
                if run % 2:
                    word.append(nxt)
                    i = j + 1
                else:
                    i = j
            elif nxt == ":":
                word.append("\\" * (run - 1) + ":")
                i = j + 1
            else:
                word.append("\\" * run)
                i = j
        elif c == "$" and text[i + 1:i + 2] == "$":
            word.append("$")
            i += 2
        elif c in (" ", "\t"):
            end_word()
            i += 1
        elif c == "#":                          # comment to the end of line
            end = text.find("\n", i)
            i = n if end < 0 else end
        elif c == ":" and prerequisites is None:
            end_word()
            prerequisites = []
            i += 1
            if text[i:i + 1] == ":":            # a double-colon rule
                i += 1
        elif c == "\n":
            end_word()
            if targets or prerequisites is not None:
                yield start_line, targets, prerequisites
            if i >= n:
                return
            targets, prerequisites = [], None
            line += 1
            start_line = line
            i += 1
        else:
            word.append(c)
            i += 1


# --- TeX's recorder file --------------------------------------------------------

def parse_fls(text: str) -> tuple[str | None, list[str], list[str]]:
    """(PWD, inputs, outputs) of a TeX ``-recorder`` file, in order, deduplicated.

    TeX records every open, so a class file opened eleven times appears
    eleven times: each path is kept once, where it first appears.  A file
    both read and written (``paper.aux``: read at ``\\begin{document}``,
    written at the end) is in both lists, because for a cyclic group it is
    exactly such a file that circulates.  Paths are returned as TeX wrote
    them; unknown keywords are ignored, so a newer engine's additions do not
    break the build.  Only the first PWD counts: one engine run, one cwd.
    """
    pwd: str | None = None
    inputs: dict[str, None] = {}
    outputs: dict[str, None] = {}
    for line in text.splitlines():
        keyword, _, path = line.partition(" ")
        if not path:
            continue
        if keyword == _FLS_INPUT:
            inputs[path] = None
        elif keyword == _FLS_OUTPUT:
            outputs[path] = None
        elif keyword == _FLS_PWD and pwd is None:
            pwd = path
    return pwd, list(inputs), list(outputs)


def parse_log_missing(text: str) -> list[str]:
    """The files a TeX run looked for and did not find, as its log names them.

    LaTeX says "No file paper.ind." for each file its ``\\@input`` wanted
    and did not find.  A name too long for one log line goes on on the next
    (a line broken at :data:`LOG_LINE_BYTES`); each name is kept once.
    """
    found: dict[str, None] = {}
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith(_LOG_NO_FILE):
            while (len(lines[i].encode(REPORT_ENCODING, REPORT_ERRORS)) == LOG_LINE_BYTES
                   and i + 1 < len(lines)):
                i += 1
                line += lines[i]
            if line.endswith(".") and len(line) > len(_LOG_NO_FILE) + 1:
                found[line[len(_LOG_NO_FILE):-1]] = None
        i += 1
    return list(found)


def parse_blg(text: str) -> list[str]:
    """The files bibtex read, from its log (``.blg``), in order, deduplicated.

    The top-level ``.aux``, each ``\\@input`` one (``A level-1 auxiliary
    file: chapters/intro.aux``, the \\include'd chapters), the style and
    each database, as bibtex named them: the style and the databases were
    looked up on its search path, so a name is the project's file only if it
    is there (:func:`discover_blg` checks).
    """
    found: dict[str, None] = {}
    for line in text.splitlines():
        name = next((line[len(p):] for p in _BLG_READ if line.startswith(p)), None)
        for head, sep in _BLG_NUMBERED:
            if name is None and line.startswith(head) and sep in line:
                number, _, rest = line[len(head):].partition(sep)
                if number.isdigit():
                    name = rest
        if name:
            found[name] = None
    return list(found)


# --- paths --------------------------------------------------------------------

def project_paths(paths: Iterable[str], root: Path, cwd: str = "",
                  view: Path | None = None) -> list[str]:
    """Paths as a tool wrote them -> normalized project-relative posix paths.

    Relative paths are relative to the step's working directory ``cwd``
    (project-relative, "" = the root); a step run in a scratch ``view`` had
    the same relative layout, so they need nothing more.  Absolute paths are
    matched against the view and the root, each both as given and as its
    real path: a tool reports ``getcwd()``-based paths, which have symlinks
    resolved.  The view is tried first because it lives under the root.

    Dropped: paths outside the project, the root itself, and anything under
    ``.computepods/``.  Matching is lexical (``..`` folds before any symlink
    is followed), as make does; the file itself is never resolved, so a
    project file that is a symlink stays the project path it was read by.
    Deduplicated, order kept.
    """
    bases = _bases(view) + _bases(root)
    found: dict[str, None] = {}
    for path in paths:
        rel = _project_path(path, bases, cwd)
        if rel is not None:
            found[rel] = None
    return list(found)


def _bases(directory: Path | None) -> list[str]:
    """The absolute spellings of a directory a tool may report: as given, real."""
    if directory is None:
        return []
    given = os.path.normpath(os.path.abspath(directory))
    real = os.path.realpath(directory)
    return [given] if real == given else [given, real]


def _project_path(path: str, bases: list[str], cwd: str) -> str | None:
    if not path:
        return None
    if posixpath.isabs(path):
        normal = posixpath.normpath(path)
        rel = next((normal[len(base) + 1:] for base in bases
                    if normal.startswith(base + "/")), None)
        if rel is None:
            return None
    else:
        rel = posixpath.normpath(posixpath.join(cwd, path))
        if rel in (".", "..") or rel.startswith("../"):
            return None
    if in_state_dir(rel):       # never a dependency: our own state and scratch
        return None
    return rel


# --- from report files --------------------------------------------------------

def discover_fls(fls_file: Path, root: Path, cwd: str = "",
                 view: Path | None = None) -> Discovered:
    """The project files a TeX run read and wrote, from its ``.fls``.

    Relative paths are taken from the caller's ``cwd``, not from the file's
    PWD line: PWD is the real path of wherever the engine ran (a view, a
    symlinked root), which the caller already knows as ``cwd``.
    """
    _, inputs, outputs = parse_fls(_read_report(fls_file, "recorder (.fls)"))
    inputs += [name for name in _looked_for(fls_file, outputs) if name not in inputs]
    return _utf8_names(fls_file, Discovered(project_paths(inputs, root, cwd, view),
                                            project_paths(outputs, root, cwd, view)))


def _looked_for(fls_file: Path, outputs: list[str]) -> list[str]:
    """What the run needs beyond what it read: the files its log says it
    looked for (the log the .fls names as an output), and the .bbl of each
    .bcf it wrote.  A file that is still missing after its group settles
    is a file no rule made (docs/architecture.md §4, "Files a step looks for")."""
    wanted: list[str] = []
    for name in outputs:
        if name.endswith(".log"):
            log = Path(name) if os.path.isabs(name) else fls_file.parent / name
            wanted += parse_log_missing(_read_report(log, "log"))
        elif name.endswith(BIBLATEX_CONTROL):
            wanted.append(name[:-len(BIBLATEX_CONTROL)] + BIBLATEX_READS)
    return wanted


def discover_blg(blg_file: Path, root: Path, cwd: str = "",
                 view: Path | None = None) -> Discovered:
    """The project files bibtex read, from its log: the ``.aux`` files (the
    document's and each \\include'd chapter's), and the style and databases
    that are the project's (TeX Live's ``plain.bst`` is not)."""
    names = parse_blg(_read_report(blg_file, "log (.blg)"))
    found = [p for p in project_paths(names, root, cwd, view)
             if os.path.isfile(os.path.join(view or root, p))]
    return _utf8_names(blg_file, Discovered(found))


def discover_depfile(depfile: Path, root: Path, cwd: str = "") -> Discovered:
    """The project files a compiler read, from its make-style depfile."""
    text = _read_report(depfile, "depfile")
    try:
        prerequisites = parse_depfile(text)
    except BuildFailed as e:
        raise BuildFailed(f"{depfile}: {e.message}") from None
    return _utf8_names(depfile, Discovered(project_paths(prerequisites, root, cwd)))


def _utf8_names(report: Path, found: Discovered) -> Discovered:
    """``found``, unless it names a project file whose name is not UTF-8:
    such a name cannot be recorded or sent, and dropping it would lose a
    dependency, so the step fails naming it (docs/architecture.md §3)."""
    for path in (*found.inputs, *found.outputs):
        if undecodable(path):
            raise BuildFailed(f"{report}: {shown(path)} {NOT_UTF8}")
    return found


def _read_report(path: Path, kind: str) -> str:
    """A report's text; a missing one is an error, not "no dependencies".

    Silently treating it as empty would forget every discovered edge, and
    the next build would miss a changed header.
    """
    try:
        return Path(path).read_text(REPORT_ENCODING, REPORT_ERRORS)
    except FileNotFoundError:
        raise BuildFailed(f"{path}: the step did not write its {kind}") from None
