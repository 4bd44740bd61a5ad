"""Globs in a rule's inputs: ``src/*.c``, ``docs/**/*.md`` (docs/architecture.md §3).

A glob is found in the tree when a rule is planned, not when the project
file is read, so a file that appears or disappears changes what the next
plan holds.  The syntax is the shell's: ``*`` and ``?`` never cross a
``/``, ``[abc]`` is a class, and ``**`` as a whole path component matches
any number of directories.  As in the shell, a wildcard does not match a
name that starts with ``.`` (``.git``, ``.computepods``), and the state
directory is never matched.  Paths under ``project.ignore`` are not
matched either: the watcher does not report them, so a pod could not know
when they change.  A wildcard does not descend into a symbolically linked
directory (the watcher does not see through links).

A :class:`Globber` lists the tree once per pattern and keeps what each
pattern matched (``seen``); that record goes into the plan's basis beside
its probes, so a cached plan or a verdict is used only while every glob
still matches the same files (:func:`globs_hold`), and a watching pod drops
a plan when a created or deleted file changes a glob's answer
(:func:`glob_news`).
"""
from __future__ import annotations

import dataclasses
import functools
import os
import posixpath
import re
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from computepods.errors import ProjectError
from computepods.paths import in_state_dir
from computepods.project import stems
from computepods.project.checks import as_string, describe, name_problem, project_path, shown
from computepods.project.model import Glob, Input, Rule
from computepods.project.patterns import PathPatterns

GLOB_KEYS = frozenset({"glob", "as"})
_CLASS = re.compile(r"\[[^/\]]+\]")
# One wildcard token of a path component: *, ?, or a [class].
_WILD = re.compile(r"\*+|\?|\[[^/\]]+\]")

Globs = dict[str, tuple[str, ...]]        # pattern -> the files it matched, sorted


def is_glob(text: str) -> bool:
    """Whether a path as written is a glob (holds ``*``, ``?`` or a ``[class]``)."""
    return "*" in text or "?" in text or _CLASS.search(text) is not None


def input_item(value: Any, file: str, rule: str, key: str) -> Input:
    """One item of ``inputs`` as written: a path pattern, a glob, or a
    ``{ glob = "src/*.c", as = "build/%.o" }`` table."""
    if isinstance(value, dict):
        unknown = sorted(set(value) - GLOB_KEYS)
        if unknown or "glob" not in value:
            raise ProjectError(file, "a table in inputs is a glob with a mapping, "
                               '{ glob = "src/*.c", as = "build/%.o" }; '
                               + (f"unknown key {unknown[0]!r}" if unknown else "it has no 'glob'"),
                               rule, key)
        pattern = _pattern(as_string(value["glob"], file, rule, key), file, rule, key)
        if "as" not in value:
            return Glob(pattern)
        to = project_path(as_string(value["as"], file, rule, key), file, rule, key)
        if stems.stem_count(to) != 1:
            raise ProjectError(file, f"the 'as' of glob {pattern!r} needs exactly one '%' "
                               f"(what the wildcards matched), got {to!r}", rule, key)
        return Glob(pattern, to)
    if not isinstance(value, str):
        raise ProjectError(file, "must be an array of strings (paths or globs), got "
                           f"{describe(value)} in it", rule, key)
    if is_glob(value):
        return Glob(_pattern(value, file, rule, key))
    return project_path(value, file, rule, key)


def _pattern(text: str, file: str, rule: str, key: str) -> str:
    pattern = project_path(text, file, rule, key)
    if not is_glob(pattern):
        raise ProjectError(file, f"{pattern!r} is not a glob (no '*', '?' or '[...]')",
                           rule, key)
    if "%" in pattern:
        raise ProjectError(file, f"glob {pattern!r} has a '%'; a glob is found in the "
                           "tree as written, with no stem", rule, key)
    return pattern


# --- matching -----------------------------------------------------------------

def _component(part: str) -> str:
    """The regex of one path component (no ``**``)."""
    out, pos = [], 0
    for m in _WILD.finditer(part):
        out.append(re.escape(part[pos:m.start()]))
        token = m.group(0)
        if token.startswith("*"):
            out.append("[^/]*")
        elif token == "?":
            out.append("[^/]")
        else:
            body = token[1:-1]
            out.append("[^" + body[1:] + "]" if body.startswith("!") else "[" + body + "]")
        pos = m.end()
    out.append(re.escape(part[pos:]))
    regex = "".join(out)
    # A wildcard at the start of a name does not match a leading dot.
    return "(?!\\.)" + regex if _WILD.match(part) else regex


@functools.lru_cache(maxsize=1024)
def glob_regex(pattern: str) -> re.Pattern:
    """The whole-path regex of a glob."""
    parts = pattern.split("/")
    out = []
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if part == "**":
            out.append("(?:(?!\\.)[^/]+/)*(?!\\.)[^/]+" if last else "(?:(?!\\.)[^/]+/)*")
        else:
            out.append(_component(part) + ("" if last else "/"))
    return re.compile("".join(out))


def matches(pattern: str, path: str) -> bool:
    """Whether the file ``path`` is one the glob would find (ignore apart)."""
    return glob_regex(pattern).fullmatch(path) is not None and not in_state_dir(path)


def glob_news(globs: Mapping[str, Sequence[str]], path: str, exists: bool) -> bool:
    """Whether ``path`` appearing (``exists``) or disappearing changes what
    one of these globs matched."""
    return any(matches(pattern, path) and (path in found) != exists
               for pattern, found in globs.items())


# --- the tree -----------------------------------------------------------------

class Globber:
    """``glob(pattern)`` over one tree, each pattern listed once; ``seen``
    keeps every answer, for the plan's basis."""

    def __init__(self, root: Path, ignore: Sequence[str] = (), seen: Globs | None = None):
        self._root = os.path.join(str(root), "")
        self._ignore = PathPatterns(ignore)
        self.seen: Globs = {} if seen is None else seen

    def __call__(self, pattern: str) -> tuple[str, ...]:
        found = self.seen.get(pattern)
        if found is None:
            found = self.seen[pattern] = self.list(pattern)
        return found

    def list(self, pattern: str) -> tuple[str, ...]:
        """The files matching ``pattern`` now, sorted."""
        regex = glob_regex(pattern)
        return tuple(sorted({p for p in self._walk("", pattern.split("/"))
                             if regex.fullmatch(p) and not in_state_dir(p)}))

    def _walk(self, where: str, parts: list[str]) -> Iterator[str]:
        part, rest = parts[0], parts[1:]
        if part == "**":
            if not rest:                       # a trailing ** is any file below
                rest = ["*"]
            yield from self._walk(where, rest)
            for name in self._entries(where, dirs=True, dots=False):
                yield from self._walk(_join(where, name), parts)
        elif not is_glob(part):
            path = _join(where, part)
            full = self._root + path
            if not rest:
                if os.path.isfile(full) and not self._ignored(path, False):
                    yield path
            elif os.path.isdir(full) and not self._ignored(path, True):
                yield from self._walk(path, rest)
        else:
            regex = re.compile(_component(part))
            for name in self._entries(where, dirs=bool(rest), dots=True):
                if regex.fullmatch(name):         # a leading wildcard skips dot names
                    path = _join(where, name)
                    if rest:
                        yield from self._walk(path, rest)
                    else:
                        yield path

    def _entries(self, where: str, dirs: bool, dots: bool) -> Iterator[str]:
        """Names in ``where``: directories (never through a link) or files,
        without ignored paths (and dot names unless ``dots``)."""
        try:
            with os.scandir(self._root + where if where else self._root) as it:
                entries = list(it)
        except (FileNotFoundError, NotADirectoryError):
            return
        except OSError as exc:
            raise ProjectError(self._root + where, f"cannot list the directory for a glob: "
                               f"{exc.strerror or exc}") from None
        for entry in entries:
            if not dots and entry.name.startswith("."):
                continue
            try:
                kind = entry.is_dir(follow_symlinks=False) if dirs else entry.is_file()
            except OSError:
                continue
            if kind and not self._ignored(_join(where, entry.name), dirs):
                yield entry.name

    def _ignored(self, path: str, is_dir: bool) -> bool:
        return bool(self._ignore) and self._ignore.matches(path, is_dir)


def _join(where: str, name: str) -> str:
    return f"{where}/{name}" if where else name


def globs_hold(root: Path, ignore: Sequence[str], globs: Mapping[str, Sequence[str]]) -> bool:
    """Whether every glob still matches exactly the files it matched."""
    if not globs:
        return True
    globber = Globber(root, ignore)
    return all(globber.list(pattern) == tuple(found) for pattern, found in globs.items())


# --- a rule's globs, found ----------------------------------------------------

def found_rule(rule: Rule, glob: Globber, file: str) -> Rule:
    """The rule with each glob replaced by the paths it finds now: what a
    step is bound from, and what a chef is sent.  A glob that finds nothing
    is a ProjectError naming the rule."""
    inputs: list[str] = []
    for item in rule.inputs:
        if not isinstance(item, Glob):
            inputs.append(item)
            continue
        files = glob(item.pattern)
        if not files:
            raise ProjectError(file, f"glob {item.pattern!r} matches no file", rule.name,
                               "inputs")
        for path in files:
            problem = name_problem(path)
            if problem is not None:
                raise ProjectError(file, f"glob {item.pattern!r} found a file it cannot "
                                   f"take: {problem}", rule.name, "inputs")
            inputs.append(_escaped(path if item.to is None
                                   else _mapped(item, path, file, rule.name)))
    return dataclasses.replace(rule, inputs=tuple(inputs),
                               written=tuple(str(i) for i in rule.inputs))


def _mapped(item: Glob, path: str, file: str, rule: str) -> str:
    """``to`` with its ``%`` as what the wildcards of the glob matched."""
    first = _WILD.search(item.pattern)
    last = list(_WILD.finditer(item.pattern))[-1]
    prefix, suffix = item.pattern[:first.start()], item.pattern[last.end():]
    stem = path[len(prefix):len(path) - len(suffix)]
    if not stem:
        raise ProjectError(file, f"glob {item.pattern!r} matched {shown(path)} with an empty "
                           f"'%' for {item.to!r}", rule, "inputs")
    return posixpath.normpath(stems.substitute(item.to, stem))


def _escaped(path: str) -> str:
    """A found path as a rule's input pattern: a literal '%' is written '%%'."""
    return path.replace("%", "%%")
