"""The ``ignore`` and ``stream`` patterns of computepods.toml (docs/architecture.md §3).

They read like a small ``.gitignore``, so a user's habits carry over:

* ``*.swp`` — no ``/``: matches a file or directory *name* at any depth.
* ``tmp/`` — a trailing ``/``: matches directories only (and so everything
  below them), at any depth when there is no other ``/``.
* ``logs/*.log`` — a ``/`` at the start or in the middle: anchored at the
  project root (a leading ``/`` is dropped).
* ``*`` and ``?`` never match a ``/``; ``**`` matches across directories
  (``docs/**/*.png``); ``[abc]`` is a character class.

A pattern that matches a directory matches every path below it.  There is no
``!`` negation.
"""
from __future__ import annotations

import re
from typing import Iterable

__all__ = ["PathPatterns", "translate"]


def translate(pattern: str) -> str:
    """The regular expression of one glob (without the anchoring rules)."""
    out, i, n = [], 0, len(pattern)
    while i < n:
        c = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif c == "*":
            out.append("[^/]*")
            i += 1
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[" and (end := pattern.find("]", i + 2)) != -1:
            body = pattern[i + 1:end]
            if body.startswith("!"):
                body = "^" + body[1:]
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = end + 1
        else:
            out.append(re.escape(c))
            i += 1
    return "".join(out)


class PathPatterns:
    """A set of patterns; :meth:`matches` says whether a project path is covered.

    Paths are relative to the project root, with ``/`` separators.
    """

    def __init__(self, patterns: Iterable[str] = ()):
        self.patterns = tuple(patterns)
        # (directories only?, anchored?) -> regexes
        kinds: dict[tuple[bool, bool], list[str]] = {(d, a): [] for d in (0, 1) for a in (0, 1)}
        for raw in self.patterns:
            pat = raw.strip()
            dir_only = pat.endswith("/")
            pat = pat.rstrip("/")
            if pat:
                kinds[dir_only, "/" in pat].append(translate(pat.lstrip("/")))
        self._name = _compile(kinds[0, 0])       # any path component
        self._path = _compile(kinds[0, 1])       # the path or one of its parents
        self._dir_name = _compile(kinds[1, 0])   # a directory component
        self._dir_path = _compile(kinds[1, 1])   # a directory: itself or a parent

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def matches(self, rel: str, is_dir: bool = False) -> bool:
        """Whether ``rel`` (a file, or a directory when ``is_dir``) or one of
        the directories above it matches a pattern."""
        if not self.patterns or not rel or rel == ".":
            return False
        parts = rel.split("/")
        last = len(parts) - 1
        for i, part in enumerate(parts):
            a_dir = is_dir or i < last
            if self._name and self._name.fullmatch(part):
                return True
            if a_dir and self._dir_name and self._dir_name.fullmatch(part):
                return True
            if self._path or self._dir_path:
                prefix = "/".join(parts[:i + 1])
                if self._path and self._path.fullmatch(prefix):
                    return True
                if a_dir and self._dir_path and self._dir_path.fullmatch(prefix):
                    return True
        return False


def _compile(regexes: list[str]) -> re.Pattern | None:
    return re.compile("|".join(f"(?:{r})" for r in regexes)) if regexes else None
