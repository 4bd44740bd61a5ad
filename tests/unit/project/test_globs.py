"""computepods.project.globs: what a glob in inputs finds in a real tree,
what it records, and when that record stops holding."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from computepods import errors
from computepods.project.globs import (Globber, found_rule, glob_news, globs_hold,
                                       input_item, is_glob, matches)
from computepods.project.model import Glob, Rule

TREE = ["src/a.c", "src/b.c", "src/b.h", "src/sub/c.c", "src/sub/deep/d.c",
        "src/.hidden.c", "src/.git/x.c", "src/tmp/t.c", "src/x1.c", "src/x22.c",
        ".computepods/scratch/s.c", "top.c", "src/100%.c"]


@pytest.fixture
def tree(tmp_path) -> Path:
    for name in TREE:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(name)
    return tmp_path


@pytest.mark.parametrize("pattern, found", [
    ("src/*.c", ["src/100%.c", "src/a.c", "src/b.c", "src/x1.c", "src/x22.c"]),
    ("src/?.c", ["src/a.c", "src/b.c"]),
    ("src/x??.c", ["src/x22.c"]),
    ("src/[ab].*", ["src/a.c", "src/b.c", "src/b.h"]),
    ("src/[!ab]*.c", ["src/100%.c", "src/x1.c", "src/x22.c"]),
    ("src/*/*.c", ["src/sub/c.c", "src/tmp/t.c"]),
    ("src/**/*.c", ["src/100%.c", "src/a.c", "src/b.c", "src/sub/c.c", "src/sub/deep/d.c",
                    "src/tmp/t.c", "src/x1.c", "src/x22.c"]),
    ("src/sub/**", ["src/sub/c.c", "src/sub/deep/d.c"]),
    ("**/d.c", ["src/sub/deep/d.c"]),
    ("*.c", ["top.c"]),
    ("src/.*.c", ["src/.hidden.c"]),           # a dot written is a dot matched
    ("src/*.nothing", []),
    ("nowhere/*.c", []),
])
def test_a_glob_finds_the_files_the_shell_would(tree, pattern, found):
    assert list(Globber(tree).list(pattern)) == found
    for path in TREE:
        assert matches(pattern, path) == (path in found), path


def test_ignored_paths_and_the_state_directory_are_never_found(tree):
    glob = Globber(tree, ignore=["tmp/", "x*.c"])
    assert glob("src/**/*.c") == ("src/100%.c", "src/a.c", "src/b.c", "src/sub/c.c",
                                  "src/sub/deep/d.c")
    assert Globber(tree)(".computepods/*/*.c") == ()


def test_a_wildcard_does_not_descend_into_a_linked_directory(tree):
    os.symlink(tree / "src/sub", tree / "src/link")
    assert "src/link/c.c" not in Globber(tree).list("src/*/*.c")
    assert "src/link/c.c" not in Globber(tree).list("src/**/*.c")
    assert Globber(tree).list("src/link/*.c") == ("src/link/c.c",)   # written, it is followed


def test_each_pattern_is_listed_once_and_what_it_found_is_kept(tree):
    glob = Globber(tree)
    assert glob("src/?.c") == ("src/a.c", "src/b.c")
    (tree / "src/e.c").write_text("")
    assert glob("src/?.c") == ("src/a.c", "src/b.c")       # the answer of this plan
    assert glob.seen == {"src/?.c": ("src/a.c", "src/b.c")}
    assert not globs_hold(tree, (), glob.seen)             # the next plan's differs


def test_globs_hold_until_a_matching_file_appears_or_goes(tree):
    seen = Globber(tree, ["tmp/"]).seen
    Globber(tree, ["tmp/"], seen)("src/**/*.c")
    assert globs_hold(tree, ["tmp/"], seen)
    (tree / "src/notes.txt").write_text("")               # matches nothing
    (tree / "src/tmp/u.c").write_text("")                 # ignored
    assert globs_hold(tree, ["tmp/"], seen)
    (tree / "src/sub/new.c").write_text("")
    assert not globs_hold(tree, ["tmp/"], seen)
    (tree / "src/sub/new.c").unlink()
    assert globs_hold(tree, ["tmp/"], seen)
    (tree / "src/a.c").unlink()
    assert not globs_hold(tree, ["tmp/"], seen)


def test_glob_news_is_a_match_appearing_or_going():
    globs = {"src/*.c": ("src/a.c",)}
    assert glob_news(globs, "src/new.c", exists=True)
    assert glob_news(globs, "src/a.c", exists=False)
    assert not glob_news(globs, "src/a.c", exists=True)          # an edit
    assert not glob_news(globs, "src/new.h", exists=True)
    assert not glob_news(globs, "src/sub/new.c", exists=True)
    assert not glob_news(globs, "src/.new.c", exists=True)


def test_found_rule_lists_the_files_and_maps_them(tree):
    rule = Rule("archive", ("first.o", Glob("src/**/*.c", "build/%.o"), Glob("src/?.c")),
                ("lib/x.a",), "ar rcs {out} {in}")
    found = found_rule(rule, Globber(tree), "computepods.toml")
    assert found.inputs == ("first.o", "build/100%%.o", "build/a.o", "build/b.o",
                            "build/sub/c.o", "build/sub/deep/d.o", "build/tmp/t.o",
                            "build/x1.o", "build/x22.o", "src/a.c", "src/b.c")
    assert found.written == ("first.o", "src/**/*.c as build/%.o", "src/?.c")
    assert not found.has_globs and found.name == rule.name


def test_a_glob_that_finds_nothing_names_the_rule_and_key(tree):
    rule = Rule("archive", (Glob("lib/*.c"),), ("lib/x.a",), "ar rcs {out} {in}")
    with pytest.raises(errors.ProjectError) as info:
        found_rule(rule, Globber(tree), "computepods.toml")
    assert str(info.value) == ("computepods.toml: rule 'archive': key 'inputs': "
                               "glob 'lib/*.c' matches no file")


@pytest.mark.parametrize("value, words", [
    ("src/%*.c", "has a '%'"),
    ({"glob": "src/*.c", "as": "build/x.o"}, "exactly one '%'"),
    ({"glob": "src/a.c", "as": "build/%.o"}, "is not a glob"),
    ({"glob": "src/*.c", "to": "build/%.o"}, "unknown key 'to'"),
    ({"as": "build/%.o"}, "it has no 'glob'"),
    ("../*.c", "'..'"),
    (3, "an integer"),
])
def test_bad_globs_name_the_rule_and_key(value, words):
    with pytest.raises(errors.ProjectError) as info:
        input_item(value, "computepods.toml", "r", "inputs")
    assert str(info.value).startswith("computepods.toml: rule 'r': key 'inputs': ")
    assert words in str(info.value)


def test_what_counts_as_a_glob():
    assert is_glob("src/*.c") and is_glob("a?b") and is_glob("x/[ab].c")
    assert not is_glob("src/a.c") and not is_glob("src/%.c") and not is_glob("a[b")
    assert input_item("./src//*.c", "f", "r", "inputs") == Glob("src/*.c")
    assert input_item("src/%.c", "f", "r", "inputs") == "src/%.c"
