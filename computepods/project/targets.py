"""Command-line names to project paths: aliases expanded, the cwd applied.

Names are alias names or paths relative to the working directory (as a
user types them); none means ``project.default``, whose entries are
relative to the root.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Iterator, Mapping, Sequence

import computepods.errors as errors
from computepods.errors import ProjectError
from computepods.project.checks import name_problem
from computepods.project.model import Project


def target_paths(project: Project, names: Sequence[str], cwd: Path) -> list[str]:
    """Project-relative paths for command-line targets.

    An alias name wins over a file of that name (write ``./all`` for the
    file).  Duplicates are dropped.
    """
    if not names:
        if not project.default:
            raise errors.UsageError("no targets given and computepods.toml "
                                    "has no project.default")
        return _unique(expand(project, project.default, str))
    for name in names:
        check_target_name(name)
    root, here = project.root.resolve(), Path(cwd).resolve()
    return _unique(expand(project, names, lambda n: _from_cwd(n, here, root)))


def expand(project: Project, names: Sequence[str],
           path_of: Callable[[str], str]) -> list[str]:
    """Alias names to their paths, depth first; other names by ``path_of``
    (alias values are relative to the root, so only the given names are).
    A loop, not recursion: an alias chain may be thousands long.  An alias
    cycle is a ProjectError naming it."""
    paths: list[str] = []
    chain: list[str] = []                       # the aliases being expanded
    on_chain: set[str] = set()
    stack: list[Iterator[str]] = [iter(names)]
    while stack:
        name = next(stack[-1], None)
        if name is None:
            stack.pop()
            if chain:
                on_chain.discard(chain.pop())
        elif name not in project.aliases:
            paths.append(path_of(name) if len(stack) == 1 else name)
        elif name in on_chain:
            raise _cycle(chain, name, str(project.path))
        else:
            chain.append(name)
            on_chain.add(name)
            stack.append(iter(project.aliases[name]))
    return paths


def check_alias_cycles(aliases: Mapping[str, Sequence[str]], file: str) -> None:
    """A ProjectError naming an alias cycle, if there is one: each alias is
    walked once (expanding every alias in turn costs the square of a long
    chain)."""
    done: set[str] = set()
    for top in aliases:
        if top in done:
            continue
        chain, on_chain, stack = [top], {top}, [iter(aliases[top])]
        while stack:
            name = next(stack[-1], None)
            if name is None:
                stack.pop()
                finished = chain.pop()
                on_chain.discard(finished)
                done.add(finished)
            elif name in aliases and name not in done:
                if name in on_chain:
                    raise _cycle(chain, name, file)
                chain.append(name)
                on_chain.add(name)
                stack.append(iter(aliases[name]))


def _cycle(chain: list[str], name: str, file: str) -> ProjectError:
    """The error naming an alias cycle: its first few links, and its length."""
    loop = chain[chain.index(name):]
    shown = loop if len(loop) <= 20 else [*loop[:10], f"... ({len(loop) - 20} more)", *loop[-10:]]
    return ProjectError(file, "alias cycle: " + " -> ".join((*shown, name)),
                        key=f"alias.{name}")


def check_target_name(name: object) -> None:
    """A UsageError unless ``name`` can be a file name: the names come from
    a command line, a bus request or the REST API, and one the system
    cannot hold (a NUL, bytes that are not UTF-8, over its length limits)
    is refused here, not met as an OSError in the middle of a build."""
    if not isinstance(name, str) or not name:
        raise errors.UsageError(f"target {name!r}: a target must be a non-empty string")
    problem = name_problem(name)
    if problem is not None:
        raise errors.UsageError(f"target {problem}")


def _from_cwd(name: str, cwd: Path, root: Path) -> str:
    """A cwd-relative (or absolute) path as a project-relative posix path."""
    full = os.path.normpath(os.path.join(cwd, name))
    rel = os.path.relpath(full, root)
    if rel == os.pardir or rel.startswith(os.pardir + os.sep):
        raise errors.PathEscapesWorkspace(
            f"target {name!r} is outside the project {root}")
    if rel == os.curdir:
        raise errors.UsageError(f"target {name!r} is the project root itself, "
                                "not a file")
    return Path(rel).as_posix()


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))
