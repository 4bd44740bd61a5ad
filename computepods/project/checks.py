"""Typed reads of TOML values, each failing as a ProjectError that names
the file, the rule and the key."""
from __future__ import annotations

import math
import os
import posixpath
from typing import Any

from computepods.errors import ProjectError
from computepods.paths import PROJECT_FILE, STATE_DIR, in_state_dir
from computepods.project.stems import literal

NAME_MAX_BYTES = 255      # one file name (Linux's NAME_MAX)
PATH_MAX_BYTES = 4095     # a whole path, less its NUL (PATH_MAX)
NOT_UTF8 = ("is not a UTF-8 file name; computepods takes only UTF-8 names "
            "(docs/architecture.md §3): rename the file")


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
    return no_nul(value, file, rule, key)


def as_strings(value: Any, file: str, rule: str | None,
               key: str) -> tuple[str, ...]:
    if not (isinstance(value, list)
            and all(isinstance(v, str) for v in value)):
        raise ProjectError(file, "must be an array of strings, got "
                           + describe(value), rule, key)
    return tuple(no_nul(v, file, rule, key) for v in value)


def no_nul(text: str, file: str, rule: str | None, key: str) -> str:
    """Refuse a NUL: exec and every file name end a C string there, so the
    rest of the text would be cut off silently."""
    if "\0" in text:
        raise ProjectError(file, f"{text!r} contains a NUL character (\\0), which "
                           "no command argument or file name can hold; remove it",
                           rule, key)
    return text


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
    normal = posixpath.normpath(no_nul(text, file, rule, key))
    if normal == ".":
        raise ProjectError(file, f"{text!r} names the project root, not a "
                           "file", rule, key)
    problem = name_problem(normal)
    if problem is not None:
        raise ProjectError(file, problem, rule, key)
    return normal


def name_problem(path: str) -> str | None:
    """Why the system could not hold ``path`` as a file name, or None:
    a NUL, a name the file system cannot encode, or one over its length
    limits (checked here, not met as an OSError deep in a build)."""
    if "\0" in path:
        return f"{shown(path)} contains a NUL character (\\0); remove it"
    if undecodable(path):
        return f"{shown(path)} {NOT_UTF8}"
    raw = os.fsencode(path)
    if len(raw) > PATH_MAX_BYTES:
        return (f"{shown(path)[:60]}... is {len(raw)} bytes long; a path may have at "
                f"most {PATH_MAX_BYTES}")
    longest = max(raw.split(b"/"), key=len)
    if len(longest) > NAME_MAX_BYTES:
        return (f"{shown(path)[:60]}... has a name of {len(longest)} bytes; a file "
                f"system allows at most {NAME_MAX_BYTES} in one name")
    return None


def shown(path: str) -> str:
    """A path for a message, quoted, with bytes that are not UTF-8 shown
    escaped (``'src/bad\\xff.txt'``): a name read from the disk may hold any
    bytes, and printing them raw would fail or garble the terminal."""
    if not undecodable(path):
        return repr(path)
    text = "".join(f"\\x{ord(c) - 0xDC00:02x}" if "\udc80" <= c <= "\udcff"
                   else f"\\u{ord(c):04x}" if "\ud800" <= c <= "\udfff"
                   else "\\'" if c == "'" else c for c in path)
    return f"'{text}'"


def undecodable(path: str) -> bool:
    """Whether a name read from the disk (``surrogateescape``d by Python)
    holds bytes that are not UTF-8: such a name cannot be stored, sent on
    the bus or shown as text, so computepods refuses it where it enters."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def check_output_paths(paths: tuple[str, ...], file: str, rule: str, key: str) -> None:
    """Refuse an output that would overwrite the project file or land in the
    state directory: both belong to computepods, and a build must not
    rewrite its own instructions or records."""
    for path in map(literal, paths):
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
