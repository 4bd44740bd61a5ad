"""The ``%`` of a path pattern: the stem, and ``%%`` for a literal ``%``.

A rule's paths are kept as written (``%%`` still doubled), so the loader
can tell a stem from a literal percent sign; these functions are the only
readers of that spelling.  ``out/100%%.txt`` is the file ``out/100%.txt``;
``out/%-100%%.txt`` is a pattern whose stem sits before ``-100%.txt``.
"""
from __future__ import annotations

import re

STEM = "%"
ESCAPED = "%%"
_TOKEN = re.compile(r"%%|%")


def stem_count(pattern: str) -> int:
    """How many stems (lone ``%``) the pattern has; ``%%`` is not one."""
    return sum(1 for m in _TOKEN.finditer(pattern) if m.group(0) == STEM)


def has_stem(pattern: str) -> bool:
    return stem_count(pattern) > 0


def literal(pattern: str) -> str:
    """The path a pattern without a stem names: ``%%`` undoubled."""
    return pattern.replace(ESCAPED, STEM)


def split(pattern: str) -> tuple[str, str] | None:
    """(text before the stem, text after it), each as a literal path piece,
    or None when the pattern has no stem."""
    for m in _TOKEN.finditer(pattern):
        if m.group(0) == STEM:
            return literal(pattern[:m.start()]), literal(pattern[m.end():])
    return None


def substitute(pattern: str, stem: str) -> str:
    """The pattern with its stem replaced by ``stem`` and ``%%`` undoubled."""
    return _TOKEN.sub(lambda m: STEM if m.group(0) == ESCAPED else stem, pattern)


def match(pattern: str, path: str) -> str | None:
    """The stem binding ``pattern``'s '%' to ``path`` (at least one
    character), or None when the path does not match or there is no '%'."""
    pieces = split(pattern)
    if pieces is None:
        return None
    prefix, suffix = pieces
    if (len(path) > len(prefix) + len(suffix) and path.startswith(prefix)
            and path.endswith(suffix)):
        return path[len(prefix):len(path) - len(suffix)]
    return None
