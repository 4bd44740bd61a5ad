"""computepods.project.checks: typed reads of TOML values and their errors."""
from __future__ import annotations

import pytest

from computepods.errors import ProjectError
from computepods.project.checks import (as_positive, as_string, as_strings, as_table,
                                        check_keys, describe, project_path, target_names)

FILE = "/p/computepods.toml"


def error(call, *args) -> ProjectError:
    with pytest.raises(ProjectError) as info:
        call(*args)
    return info.value


def test_values_of_the_right_type_come_back():
    assert as_table({"a": 1}, FILE, None, "t") == {"a": 1}
    assert as_string("x", FILE, "r", "k") == "x"
    assert as_strings(["a", "b"], FILE, "r", "k") == ("a", "b")
    assert as_positive(2, FILE, "r", "k", integer=True) == 2
    assert as_positive(0.5, FILE, "r", "k", integer=False) == 0.5


def test_a_wrong_type_names_the_file_rule_key_and_what_came():
    exc = error(as_strings, ["a", 1], FILE, "link", "inputs")
    assert (exc.rule, exc.key) == ("link", "inputs")
    assert FILE in str(exc) and "an array of strings, got an array" in str(exc)
    assert "an empty one" in str(error(as_string, "  ", FILE, None, "project.name"))
    assert "got a boolean" in str(error(as_table, True, FILE, None, "alias"))
    for bad in (0, -1, True, float("inf"), "3"):
        error(as_positive, bad, FILE, "r", "timeout", False)
    assert "positive integer" in str(error(as_positive, 1.5, FILE, "r", "max_passes", True))
    assert describe(3.0) == "a float" and describe(None) == "NoneType"


def test_an_unknown_key_lists_the_allowed_ones():
    exc = error(check_keys, {"name": 1, "comand": 2}, frozenset({"name", "command"}), FILE,
                "r", "")
    assert exc.key == "comand" and "command, name" in str(exc)
    check_keys({"name": 1}, frozenset({"name"}), FILE, None, "")


@pytest.mark.parametrize("text, word", [("", "empty"), ("/etc/x", "absolute"),
                                        ("a/../b", "'..'"), ("./", "project root")])
def test_project_paths_stay_inside_the_project(text, word):
    assert word in str(error(project_path, text, FILE, "r", "outputs"))


def test_project_paths_are_normalized_and_names_may_be_aliases():
    assert project_path("./a//b/", FILE, None, "k") == "a/b"
    assert target_names(["all", "./x"], {"all": ("x",)}, FILE, "project.default") == (
        "all", "x")
