"""Dependencies a step reports after it ran: depfiles, TeX's .fls and log, a .blg.

A rule's declared inputs are what it is known to read before it runs; the
tool itself knows the rest (the headers ``cc -MD`` followed, the chapters
``\\input`` pulled in, the chapters' ``.aux`` files bibtex read, the
``.bib`` files biber read), and a
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
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from computepods.chef.texlogs import (BIBLATEX_CONTROL, BIBLATEX_READS, REPORT_ENCODING,
                                      REPORT_ERRORS, parse_blg, parse_log_missing)
from computepods.errors import BuildFailed
from computepods.paths import in_state_dir
from computepods.project.checks import NOT_UTF8, shown, undecodable


# .fls line keywords (TeX's -recorder).
_FLS_PWD, _FLS_INPUT, _FLS_OUTPUT = "PWD", "INPUT", "OUTPUT"


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
    for _, prerequisites in _checked_rules(text):
        found.update(dict.fromkeys(prerequisites))
    return list(found)


def _checked_rules(text: str) -> Iterator[tuple[list[str], list[str]]]:
    """(targets, prerequisites) of each rule; BuildFailed for a line that is
    not one."""
    for number, targets, prerequisites in _depfile_rules(text):
        if not targets:
            raise BuildFailed(f"depfile line {number}: no target before ':'")
        if prerequisites is None:
            raise BuildFailed(f"depfile line {number}: expected ':' after "
                              f"{' '.join(targets)!r}")
        yield targets, prerequisites


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
    """The project files bibtex or biber read, from its log: for bibtex the
    ``.aux`` files (the document's and each \\include'd chapter's), and the
    style and databases that are the project's (TeX Live's ``plain.bst`` is
    not); for biber the data sources (``refs.bib``)."""
    names = parse_blg(_read_report(blg_file, "log (.blg)"))
    found = [p for p in project_paths(names, root, cwd, view)
             if os.path.isfile(os.path.join(view or root, p))]
    return _utf8_names(blg_file, Discovered(found))


def discover_depfile(depfile: Path, root: Path, cwd: str = "", view: Path | None = None,
                     out_dir: Path | None = None, rewrite: bool = False) -> Discovered:
    """The project files a compiler read, from its make-style depfile.

    With ``rewrite`` (the depfile is an output, about to land in the tree)
    the file is rewritten in place to name project paths
    (:func:`rewrite_depfile`), so the tree never holds a scratch path.
    """
    text = _read_report(depfile, "depfile")
    try:
        prerequisites = parse_depfile(text)
        tree_text = rewrite_depfile(text, root, cwd, view, out_dir) if rewrite else text
    except BuildFailed as e:
        raise BuildFailed(f"{depfile}: {e.message}") from None
    found = _utf8_names(depfile, Discovered(project_paths(prerequisites, root, cwd, view)))
    if tree_text != text:
        Path(depfile).write_text(tree_text, REPORT_ENCODING, REPORT_ERRORS)
    return found


def rewrite_depfile(text: str, root: Path, cwd: str = "", view: Path | None = None,
                    out_dir: Path | None = None) -> str:
    """A depfile naming project paths, relative to the root, as make there reads it.

    A compiler names its target as ``-o`` gave it, in the step's scratch
    (``out_dir``, where ``{out}`` pointed), and its inputs as it opened
    them: from the step's ``cwd``, through the ``view`` or a symlinked
    root.  Each becomes the project path it stands for; a name outside the
    project (``/usr/include/stdio.h``) is kept, absolute as written, or
    relative to the root.  Comments go; rules and phony targets stay.
    Raises BuildFailed as :func:`parse_depfile` does.
    """
    bases = _bases(out_dir) + _bases(view) + _bases(root)
    lines = []
    for targets, prerequisites in _checked_rules(text):
        line = " ".join(_tree_name(t, bases, cwd, target=True) for t in targets) + ":"
        # gcc's layout: the first prerequisite on the rule's line, then one a line
        names = [_tree_name(p, bases, cwd) for p in prerequisites]
        lines.append(" \\\n ".join([line + (" " + names[0] if names else ""), *names[1:]])
                     + "\n")
    return "".join(lines)


def _tree_name(name: str, bases: list[str], cwd: str, target: bool = False) -> str:
    """One depfile name as a project path, escaped as a depfile writes it."""
    if posixpath.isabs(name):
        normal = posixpath.normpath(name)
        path = next((normal[len(base) + 1:] for base in bases
                     if normal.startswith(base + "/")), name)
    else:
        path = posixpath.normpath(posixpath.join(cwd, name))
    # gcc's escapes: 2k+1 backslashes before a space are k and the space
    path = re.sub(r"(\\*)([ \t#])", lambda m: m.group(1) * 2 + "\\" + m.group(2), path)
    path = path.replace("$", "$$")
    return path.replace(":", "\\:") if target else path


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
