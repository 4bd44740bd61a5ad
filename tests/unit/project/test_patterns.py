"""The ignore/stream patterns of computepods.toml read like a small .gitignore."""
from __future__ import annotations

import pytest

from computepods.project.patterns import PathPatterns

PATTERNS = PathPatterns(["*.swp", "tmp/", "logs/*.log", "docs/**/*.png", "/build", "[#]*"])


@pytest.mark.parametrize("path, is_dir, expected", [
    ("a.swp", False, True),               # a name pattern matches at any depth
    ("src/deep/.a.swp", False, True),
    ("tmp", True, True),                  # a trailing / matches directories ...
    ("tmp", False, False),                # ... and not a file of that name
    ("src/tmp/x.c", False, True),         # ... and everything below one
    ("logs/a.log", False, True),          # a / in the middle anchors at the root
    ("src/logs/a.log", False, False),
    ("logs/old/a.log", False, False),     # '*' does not cross '/'
    ("docs/a.png", False, True),          # '**/' is zero or more directories
    ("docs/x/y/a.png", False, True),
    ("build/x.o", False, True),           # a leading / anchors too
    ("src/build", False, False),
    ("#notes", False, True),              # a character class
    ("src/main.c", False, False),
])
def test_patterns_match_like_gitignore(path, is_dir, expected):
    assert PATTERNS.matches(path, is_dir) is expected


def test_no_patterns_match_nothing():
    assert not PathPatterns()
    assert not PathPatterns().matches("a.swp")
