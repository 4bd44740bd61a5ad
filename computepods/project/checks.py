"""Typed reads of TOML values, each failing as a ProjectError that names
the file, the rule and the key."""
from __future__ import annotations

import math
import posixpath
from typing import Any

from computepods.errors import ProjectError
from computepods.paths import PROJECT_FILE, STATE_DIR, in_state_dir


def describe(value: Any) -> str:
    """A TOML-ish name for a value's type, for messages."""
    kinds = {bool: "a boolean", int: "an integer", float: "a float",
             str: "a string", list: "an array", dict: "a table"}
    return kinds.get(type(value), type(value).__name__)


def check_keys(table: dict, allowed: frozenset[str], file: str,
               rule: str | None, prefix: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ProjectError(file, "unknown key; expected one of: "
                           + ", ".join(sorted(allowed)), rule,
                           prefix + unknown[0])


def as_table(value: Any, file: str, rule: str | None, key: str) -> dict:
    if not isinstance(value, dict):
        raise ProjectError(file, f"must be a table, got {describe(value)}",
                           rule, key)
    return value


def as_string(value: Any, file: str, rule: str | None, key: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ProjectError(file, "must be a non-empty string, got "
                           + (describe(value) if not isinstance(value, str)
                              else "an empty one"), rule, key)
    return value


def as_strings(value: Any, file: str, rule: str | None,
               key: str) -> tuple[str, ...]:
    if not (isinstance(value, list)
            and all(isinstance(v, str) for v in value)):
        raise ProjectError(file, "must be an array of strings, got "
                           + describe(value), rule, key)
    return tuple(value)


def as_positive(value: Any, file: str, rule: str, key: str,
                integer: bool) -> float | int:
    kinds = (int,) if integer else (int, float)
    if (isinstance(value, bool) or not isinstance(value, kinds)
            or not value > 0 or not math.isfinite(value)):
        what = "a positive integer" if integer else "a positive number"
        raise ProjectError(file, f"must be {what}, got {value!r}", rule, key)
    return value


def project_path(text: str, file: str, rule: str | None, key: str) -> str:
    """A normalized project-relative posix path (or pattern), or an error.

    ``..`` is refused outright (not just when it escapes) because normpath
    would fold ``%/..`` and silently drop the stem.
    """
    if not text.strip():
        raise ProjectError(file, "empty path", rule, key)
    if text.startswith("/"):
        raise ProjectError(file, f"{text!r} is absolute; paths are relative "
                           "to the project root", rule, key)
    if ".." in text.split("/"):
        raise ProjectError(file, f"{text!r} contains '..'; paths must stay "
                           "inside the project", rule, key)
    normal = posixpath.normpath(text)
    if normal == ".":
        raise ProjectError(file, f"{text!r} names the project root, not a "
                           "file", rule, key)
    return normal


def check_output_paths(paths: tuple[str, ...], file: str, rule: str, key: str) -> None:
    """Refuse an output that would overwrite the project file or land in the
    state directory: both belong to computepods, and a build must not
    rewrite its own instructions or records."""
    for path in paths:
        if path == PROJECT_FILE:
            raise ProjectError(file, f"{path!r} is the project file; a rule may not "
                               "produce it", rule, key)
        if in_state_dir(path):
            raise ProjectError(file, f"{path!r} is inside {STATE_DIR}/, which belongs "
                               "to computepods; choose another output path", rule, key)


def target_names(value: Any, aliases: dict[str, tuple[str, ...]], file: str,
                 key: str) -> tuple[str, ...]:
    """Target names written in the file: alias names or project paths."""
    return tuple(item if item in aliases
                 else project_path(item, file, None, key)
                 for item in as_strings(value, file, None, key))
