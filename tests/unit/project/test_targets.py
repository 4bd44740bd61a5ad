"""computepods.project.targets: command-line names to project paths."""
from __future__ import annotations

import dataclasses
import textwrap

import pytest

from computepods import errors
from computepods.paths import PROJECT_FILE
from computepods.project.load import load_project
from computepods.project.targets import target_paths

EXAMPLE = """
[project]
default = ["bin/app"]

[alias]
all = ["bin/app", "docs/manual.pdf"]
everything = ["all", "./README"]

[[rule]]
name = "link"
inputs = ["main.o"]
outputs = ["bin/app"]
command = "cc {in} -o {out}"
"""

RULE_OK = """
[[rule]]
name = "r"
inputs = ["a.txt"]
outputs = ["b.txt"]
command = "cp {in} {out}"
"""


def load(root, text):
    (root / PROJECT_FILE).write_text(textwrap.dedent(text))
    return load_project(root)


@pytest.fixture
def example(tmp_path):
    (tmp_path / "docs").mkdir()
    return load(tmp_path, EXAMPLE)


def test_targets_are_relative_to_the_working_directory(example):
    docs = example.root / "docs"
    assert target_paths(example, ["manual.pdf", "../bin/app"], docs) == [
        "docs/manual.pdf", "bin/app"]
    assert target_paths(example, ["./x/../y.o"], example.root) == ["y.o"]
    assert target_paths(example, [str(docs / "m.pdf")], example.root) == [
        "docs/m.pdf"]


def test_aliases_expand_recursively_and_duplicates_go(example):
    assert target_paths(example, ["everything", "bin/app"], example.root) == [
        "bin/app", "docs/manual.pdf", "README"]
    # An alias is an alias wherever you stand; ./all is the file.
    docs = example.root / "docs"
    assert target_paths(example, ["all"], docs) == ["bin/app",
                                                   "docs/manual.pdf"]
    assert target_paths(example, ["./all"], docs) == ["docs/all"]


def test_no_names_means_the_default(example):
    assert target_paths(example, [], example.root / "docs") == ["bin/app"]
    with_alias = dataclasses.replace(example, default=("all",))
    assert target_paths(with_alias, [], example.root) == ["bin/app",
                                                         "docs/manual.pdf"]


def test_no_names_and_no_default_is_a_usage_error(tmp_path):
    project = load(tmp_path, RULE_OK)
    with pytest.raises(errors.UsageError, match="project.default"):
        target_paths(project, [], tmp_path)


def test_paths_outside_the_root_escape(example, tmp_path):
    with pytest.raises(errors.PathEscapesWorkspace, match="outside"):
        target_paths(example, ["../elsewhere"], example.root)
    with pytest.raises(errors.PathEscapesWorkspace):
        target_paths(example, ["/etc/passwd"], example.root)
    with pytest.raises(errors.UsageError, match="project root"):
        target_paths(example, ["docs/.."], example.root)


def test_alias_cycles_are_caught_when_expanding_too(example):
    cyclic = dataclasses.replace(example, aliases={"a": ("b",), "b": ("a",)})
    with pytest.raises(errors.ProjectError, match="a -> b -> a"):
        target_paths(cyclic, ["a"], example.root)
