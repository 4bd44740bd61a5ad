"""Command-line names to project paths: aliases expanded, the cwd applied.

Names are alias names or paths relative to the working directory (as a
user types them); none means ``project.default``, whose entries are
relative to the root.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Sequence

from computepods import errors
from computepods.errors import ProjectError
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
    root, here = project.root.resolve(), Path(cwd).resolve()
    return _unique(expand(project, names, lambda n: _from_cwd(n, here, root)))


def expand(project: Project, names: Sequence[str], path_of: Callable[[str], str],
           chain: tuple[str, ...] = ()) -> list[str]:
    """Alias names to their paths, recursively; other names by ``path_of``.
    An alias cycle is a ProjectError naming it."""
    paths: list[str] = []
    for name in names:
        if name not in project.aliases:
            paths.append(path_of(name))
        elif name in chain:
            cycle = " -> ".join((*chain[chain.index(name):], name))
            raise ProjectError(str(project.path), f"alias cycle: {cycle}",
                               key=f"alias.{name}")
        else:   # alias values are relative to the root, not the cwd
            paths.extend(expand(project, project.aliases[name], str, (*chain, name)))
    return paths


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
