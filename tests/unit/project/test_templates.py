"""computepods.project.templates: the command template language."""
from __future__ import annotations

import pytest

from computepods.project.templates import (Placeholder, TemplateError, parse_template,
                                           used_placeholders)


def test_parse_template():
    assert parse_template("cc {in[0]} -o {out}") == (
        "cc ", Placeholder("in", 0), " -o ", Placeholder("out"))
    assert parse_template("awk '{{print}}' {{{stem}}}") == (
        "awk '{print}' {", Placeholder("stem"), "}")
    assert parse_template("") == ()
    with pytest.raises(TemplateError, match="column 3"):
        parse_template("a {")


def test_an_unknown_placeholder_lists_the_known_ones():
    with pytest.raises(TemplateError, match=r"undefined placeholder \{input\}.*\{stem\}"):
        parse_template("cc {input}")
    with pytest.raises(TemplateError, match="only {in} and {out} take an index"):
        parse_template("{stem[0]}")


def test_placeholders_are_shown_as_written():
    assert [str(p) for p in parse_template("{in} {out[1]}") if not isinstance(p, str)] == [
        "{in}", "{out[1]}"]


def test_used_placeholders_of_a_string_and_an_argv():
    assert used_placeholders("cc -c {in} -o {out[0]}") == {"in", "out"}
    assert used_placeholders(("tool", "{stem}.x", "{{literal}}")) == {"stem"}
