"""A project's own rule and a pack's rule of the same name: the project's
replaces it, or (``extend = true``) adds inputs to it."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from computepods import errors
from computepods.paths import PROJECT_FILE
from computepods.planning.resolve import RuleSet
from computepods.planning.staleness import rule_fingerprint
from computepods.project.load import load_project

LATEX = '[project]\nuse = ["latex"]\n'


def load(root: Path, text: str):
    (root / PROJECT_FILE).write_text(textwrap.dedent(text))
    return load_project(root)


def named(project, name: str):
    return [r for r in project.rules if r.name == name]


def test_a_rule_of_a_pack_rules_name_replaces_it(tmp_path):
    project = load(tmp_path, LATEX + """
        [[rule]]
        name = "latex.pdf"
        inputs = ["%.tex", "%.bbl", "%.ind"]
        outputs = ["%.pdf", "%.aux"]
        command = ["pdflatex", "{in[0]}"]
        """)
    [pdf] = named(project, "latex.pdf")
    assert (pdf.pack, pdf.overrides, pdf.inputs) == (None, "latex", ("%.tex", "%.bbl", "%.ind"))
    assert pdf.customised() == "rule latex.pdf: the project's, overriding pack latex's"
    assert named(project, "latex.bibtex")[0].pack == "latex"      # the others stay
    (tmp_path / "paper.tex").write_text("")
    assert RuleSet(project).step_for("paper.pdf").rule is pdf      # no ambiguity


def test_extend_adds_inputs_to_the_packs_rule_and_keeps_the_rest(tmp_path):
    plain = named(load(tmp_path, LATEX), "latex.pdf")[0]
    project = load(tmp_path, LATEX + """
        [vars]
        index = ["%.ind"]

        [[rule]]
        name = "latex.pdf"
        extend = true
        inputs = ["{index}", "macros.sty"]
        """)
    [pdf] = named(project, "latex.pdf")
    assert pdf.inputs == (*plain.inputs, "%.ind", "macros.sty")
    assert (pdf.command, pdf.outputs, pdf.pack, pdf.cwd) == (
        plain.command, plain.outputs, "latex", plain.cwd)
    assert pdf.added == ("%.ind", "macros.sty")
    assert pdf.customised() == ("rule latex.pdf: pack latex's, with inputs the project "
                                "added: %.ind, macros.sty")
    (tmp_path / "paper.tex").write_text("")
    step = RuleSet(project).step_for("paper.pdf")
    assert step.inputs == ("paper.tex", "paper.ind", "macros.sty")


def test_a_packs_on_demand_rule_stays_so_when_extended_but_not_when_replaced(tmp_path):
    """on_demand (the first input must be one a run wrote) is the pack's
    word on its own rule: a rule the project writes instead is plain."""
    extended = load(tmp_path, LATEX + """
        [[rule]]
        name = "latex.bibtex"
        extend = true
        inputs = ["refs.bib"]
        """)
    assert named(extended, "latex.bibtex")[0].on_demand
    replaced = load(tmp_path, LATEX + """
        [[rule]]
        name = "latex.bibtex"
        inputs = ["%.aux"]
        outputs = ["%.bbl"]
        command = ["bibtex", "{in[0]}"]
        """)
    assert not named(replaced, "latex.bibtex")[0].on_demand
    assert not named(replaced, "latex.pdf")[0].on_demand
    assert named(replaced, "latex.makeindex")[0].on_demand


def test_a_rule_keeps_the_fingerprint_it_had_before_rules_could_be_replaced(tmp_path):
    """What a rule is (replaced, extended, globbed) is not what it does: a
    rule that uses none of it has the fingerprint of the code before them
    (computed there), so no recorded step goes stale."""
    (tmp_path / "a.c").write_text("")
    step = RuleSet(load(tmp_path, """
        [[rule]]
        name = "copy"
        inputs = ["%.c"]
        outputs = ["%.o"]
        command = "cp {in} {out}"
        """)).step_for("a.o")
    assert rule_fingerprint(step) == "copy#1ef0047898bb"


@pytest.mark.parametrize("rules, rule, key, words", [
    ('[[rule]]\nname = "latex.pdf"\nextend = true\ncommand = "x"\n', "latex.pdf", "command",
     ("only adds inputs", "leave out extend")),
    ('[[rule]]\nname = "latex.nope"\nextend = true\ninputs = ["x"]\n', "latex.nope", "extend",
     ("no used pack has a rule 'latex.nope'",
      "latex.bibtex, latex.glossaries, latex.makeindex, latex.nomencl, latex.pdf")),
    ('[[rule]]\nname = "latex.pdf"\nextend = "yes"\n', "latex.pdf", "extend",
     ("true or false",)),
    ('[[rule]]\nname = "latex.pdf"\nextend = true\ninputs = "%.ind"\n', "latex.pdf", "inputs",
     ("array",)),
    ('[[rule]]\nname = "latex.pdf"\nextend = true\ninputs = ["%.ind"]\n'
     '[[rule]]\nname = "latex.pdf"\nextend = true\ninputs = ["%.idx"]\n', "latex.pdf", "name",
     ("replaced or extended twice",)),
])
def test_a_wrong_extension_is_one_line_naming_the_rule_and_key(tmp_path, rules, rule, key,
                                                                 words):
    with pytest.raises(errors.ProjectError) as info:
        load(tmp_path, LATEX + rules)
    message = str(info.value)
    assert message.startswith(f"{tmp_path / PROJECT_FILE}: rule {rule!r}: key {key!r}: ")
    for word in words:
        assert word in message


def test_a_rule_beside_a_packs_rule_for_one_target_is_told_how_to_replace_it(tmp_path):
    project = load(tmp_path, LATEX + """
        [[rule]]
        name = "tex"
        inputs = ["%.tex"]
        outputs = ["%.pdf"]
        command = "pdflatex {in}"
        """)
    (tmp_path / "paper.tex").write_text("")
    with pytest.raises(errors.ProjectError) as info:
        RuleSet(project).step_for("paper.pdf", lambda p: (tmp_path / p).exists())
    assert "matches the outputs of rules 'tex' and 'latex.pdf'" in str(info.value)
    assert "rename rule 'tex' to 'latex.pdf'" in str(info.value)


def test_extend_false_on_a_rule_of_ones_own_is_just_a_rule(tmp_path):
    project = load(tmp_path, """
        [[rule]]
        name = "copy"
        extend = false
        inputs = ["a"]
        outputs = ["b"]
        command = "cp {in} {out}"
        """)
    assert [r.name for r in project.rules] == ["copy"]


@pytest.mark.parametrize("extra", ["", 'extend = true\ninputs = ["x"]\n'])
def test_a_rule_named_by_a_table_is_one_line_not_a_traceback(tmp_path, extra):
    # Found by the fuzzed project files: a name that is no string met the
    # pack rules' names as a dict key.
    with pytest.raises(errors.ProjectError):
        load(tmp_path, LATEX + '[[rule]]\nname = {a = 1}\n' + extra)
