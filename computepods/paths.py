"""Where a project is: its file, its state directory, its root.

Kept apart from :mod:`computepods.project.load` (the TOML reader and checks) so
that the thin client finds a running pod without importing any of that.
"""
from __future__ import annotations

from pathlib import Path

from computepods import errors

PROJECT_FILE = "computepods.toml"
STATE_DIR = ".computepods"


def find_project_root(start: Path) -> Path:
    """The nearest directory at or above ``start`` that holds the project file.

    Like git finding its repository, so cpod works from any subdirectory.
    """
    here = Path(start).resolve()
    if not here.is_dir():
        here = here.parent
    for folder in (here, *here.parents):
        if (folder / PROJECT_FILE).is_file():
            return folder
    raise errors.ProjectNotFound(
        f"no {PROJECT_FILE} found in {start} or any directory above it")


def prepare_state_dir(root: Path) -> Path:
    """`.computepods/` with a .gitignore of `*`, as docs/architecture.md §2 says."""
    state = root / STATE_DIR
    state.mkdir(exist_ok=True)
    ignore = state / ".gitignore"
    if not ignore.exists():
        ignore.write_text("*\n")
    return state
