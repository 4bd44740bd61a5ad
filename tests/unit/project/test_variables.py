"""[vars] and {pack.NAME.SETTING} in the project's own rules: what they
expand to in inputs, outputs and commands, and the one-line errors."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from computepods import errors
from computepods.paths import PROJECT_FILE
from computepods.planning.resolve import RuleSet
from computepods.project.load import load_project
from computepods.project.model import Glob

VARS = """
[project]
use = ["c"]

[pack.c]
cflags = "-O2 -Wall"

[vars]
objs = ["build/parse.o", "build/eval.o"]
more = ["{objs}", "build/main.o"]
libs = ["-lm", "-l pthread"]
arch = "x86"
opt = "{pack.c.cflags} -g"
empty = ""
srcs = ["src/*.c"]
mapped = { glob = "src/*.c", as = "build/%.o" }
"""


def load(root: Path, rules: str, head: str = VARS):
    (root / PROJECT_FILE).write_text(textwrap.dedent(head) + textwrap.dedent(rules))
    return load_project(root)


def rule(root: Path, rules: str, head: str = VARS):
    [found] = [r for r in load(root, rules, head).rules if r.pack is None]
    return found


def refused(root: Path, rules: str, head: str = VARS) -> str:
    with pytest.raises(errors.ProjectError) as info:
        load(root, rules, head)
    return str(info.value)


def test_a_list_in_inputs_is_its_items_and_may_use_other_vars(tmp_path):
    r = rule(tmp_path, """
        [[rule]]
        name = "link"
        inputs = ["{more}", "build/{arch}/start.o"]
        outputs = ["bin/app"]
        command = "cc {in} -o {out}"
        """)
    assert r.inputs == ("build/parse.o", "build/eval.o", "build/main.o", "build/x86/start.o")


def test_a_list_in_a_string_command_is_quoted_words_and_a_string_is_text(tmp_path):
    r = rule(tmp_path, """
        [[rule]]
        name = "link"
        inputs = ["{objs}"]
        outputs = ["bin/app"]
        command = "cc {opt} {empty} {in} {libs} -o {out} -D'X={{1}}'"
        """)
    assert r.command == "cc -O2 -Wall -g {in} -lm '-l pthread' -o {out} -D'X={{1}}'"


def test_a_list_in_an_argv_is_one_item_each(tmp_path):
    r = rule(tmp_path, """
        [[rule]]
        name = "link"
        inputs = ["{objs}"]
        outputs = ["bin/app"]
        command = ["cc", "{in}", "{libs}", "-march={arch}", "{pack.c.cflags}", "-o", "{out}"]
        """)
    assert r.command == ("cc", "{in}", "-lm", "-l pthread", "-march=x86", "-O2 -Wall",
                         "-o", "{out}")


def test_the_command_a_step_runs_has_the_vars_filled_in(tmp_path):
    project = load(tmp_path, """
        [[rule]]
        name = "link"
        inputs = ["{objs}"]
        outputs = ["bin/app"]
        command = "cc {in} {libs} -o {out}"
        """)
    step = RuleSet(project).step_for("bin/app")
    assert step.display() == "cc build/parse.o build/eval.o -lm '-l pthread' -o bin/app"


def test_globs_in_vars_stay_globs_until_the_rule_is_planned(tmp_path):
    r = rule(tmp_path, """
        [[rule]]
        name = "archive"
        inputs = ["{srcs}", "{mapped}"]
        outputs = ["lib/x.a"]
        command = "ar rcs {out} {in}"
        """)
    assert r.inputs == (Glob("src/*.c"), Glob("src/*.c", "build/%.o"))


def test_braces_doubled_in_a_value_or_path_are_literal_braces(tmp_path):
    project = load(tmp_path, """
        [[rule]]
        name = "r"
        inputs = ["in{{1}}.txt"]
        outputs = ["x"]
        command = "echo {v} > {out}"
        """, head='[vars]\nv = "a{{b}}c"\n')
    step = RuleSet(project).step_for("x")
    assert step.inputs == ("in{1}.txt",)
    assert step.display() == "echo a{b}c > x"


@pytest.mark.parametrize("rules, words", [
    ('inputs = ["{nope}"]\noutputs = ["x"]\ncommand = "true"',
     ("key 'inputs'", "unknown var {nope}", "[vars] defines: arch, empty, libs")),
    ('outputs = ["x"]\ncommand = "cc {nope} -o {out}"',
     ("key 'command'", "unknown var {nope}")),
    ('outputs = ["x"]\ndepfile = "{objs}"\ncommand = "true"',
     ("key 'depfile'", "var 'objs' is a list", "single string or path")),
    ('inputs = ["lib/{objs}"]\noutputs = ["x"]\ncommand = "true"',
     ("key 'inputs'", "var 'objs' is a list", '"{objs}"')),
    ('outputs = ["x"]\ncwd = "{objs}"\ncommand = "true"',
     ("key 'cwd'", "var 'objs' is a list")),
    ('outputs = ["{srcs}"]\ncommand = "true"',
     ("key 'outputs'", "var 'srcs' holds a glob")),
    ('inputs = ["{srcs}"]\noutputs = ["x"]\ncommand = "cat {srcs} > {out}"',
     ("key 'command'", "var 'srcs' holds a glob", "{in}")),
    ('inputs = ["{mapped}"]\noutputs = ["x"]\ncommand = ["cat", "{mapped}"]',
     ("key 'command'", "var 'mapped' holds a glob")),
    ('inputs = ["{in}"]\noutputs = ["x"]\ncommand = "true"',
     ("key 'inputs'", "{in} is a command placeholder")),
    ('outputs = ["x"]\ncommand = "cc {pack.c.nope}"',
     ("key 'command'", "pack 'c' has no setting 'nope'; its settings: archives, cflags, flags, ldflags, libs, programs")),
    ('outputs = ["x"]\ncommand = "cc {pack.latex.engine}"',
     ("key 'command'", "{pack.NAME.SETTING}", "used: c")),
    ('inputs = ["{srcs}"]\noutputs = ["x"]\ncommand = "cat {in[1]} > {out}"',
     ("key 'command'", "{in[1]} comes at or after a glob")),
    ('inputs = ["src/*.c"]\noutputs = ["out/*.o"]\ncommand = "true"',
     ("key 'outputs'", "'out/*.o' is a glob")),
])
def test_misused_vars_are_one_line_naming_the_file_rule_and_key(tmp_path, rules, words):
    message = refused(tmp_path, '[[rule]]\nname = "r"\n' + rules)
    assert message.startswith(f"{tmp_path / PROJECT_FILE}: rule 'r': ")
    assert "\n" not in message
    for word in words:
        assert word in message


@pytest.mark.parametrize("head, words", [
    ('[vars]\na = "{b}"\nb = ["{a}"]\n', ("key 'vars.", "var cycle: a -> b -> a")),
    ('[vars]\nin = ["x"]\n', ("key 'vars.in'", "not one of in, out")),
    ('[vars]\na = 3\n', ("key 'vars.a'", "an integer")),
    ('[vars]\na = { glob = "src/*.c", as = "x.o" }\n', ("key 'vars.a'", "exactly one '%'")),
    ('[vars]\na = "{nope}"\n', ("key 'vars.a'", "unknown var {nope}")),
    ("vars = 3\n", ("key 'vars'", "table")),
])
def test_bad_vars_are_named_by_their_key(tmp_path, head, words):
    message = refused(tmp_path, "", head)
    assert message.startswith(f"{tmp_path / PROJECT_FILE}: key 'vars")
    for word in words:
        assert word in message


def test_pack_rules_do_not_see_the_projects_vars(tmp_path):
    project = load(tmp_path, "", head='[project]\nuse = ["c"]\n[vars]\ncflags = "-O9"\n')
    [compile_rule] = [r for r in project.rules if r.name == "c.compile"]
    assert "-O9" not in compile_rule.command
