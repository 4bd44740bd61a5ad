"""Project files and names a user or an attacker could write (issue 11,
breaks 5, 7 and 8): each is refused at load, naming the file, the rule and
the key, or works as documented."""
from __future__ import annotations

from pathlib import Path

import pytest

from computepods import errors
from computepods.paths import PROJECT_FILE
from computepods.planning.resolve import RuleSet
from computepods.project import stems
from computepods.project.checks import name_problem, shown
from computepods.project.targets import target_paths
from projects import C_PROJECT, load, one_rule_step


def refused(root: Path, text: str) -> str:
    with pytest.raises(errors.ProjectError) as info:
        load(root, text)
    message = str(info.value)
    assert str(root / PROJECT_FILE) in message
    return message


def test_deeply_nested_toml_is_a_project_error_not_a_recursion_error(tmp_path):
    for text in ["x = " + "[" * 5000 + "]" * 5000,
                 "x = " + "{a = " * 5000 + "1" + "}" * 5000]:
        assert "nested too deeply" in refused(tmp_path, text)


def test_a_3000_long_alias_chain_loads_and_expands(tmp_path):
    n = 3000
    aliases = "".join(f'a{i} = ["a{i + 1}"]\n' for i in range(n)) + f'a{n} = ["out.txt"]\n'
    project = load(tmp_path, '[project]\ndefault = ["a0"]\n[alias]\n' + aliases)
    assert target_paths(project, [], tmp_path) == ["out.txt"]
    assert target_paths(project, ["a1500"], tmp_path) == ["out.txt"]


def test_a_long_alias_cycle_is_named(tmp_path):
    n = 3000
    aliases = "".join(f'a{i} = ["a{(i + 1) % n}"]\n' for i in range(n))
    message = refused(tmp_path, "[alias]\n" + aliases)
    assert "alias cycle: a0 -> a1 -> a2" in message and "-> a0" in message


def test_a_5000_character_output_name_is_refused_naming_rule_and_key(tmp_path):
    message = refused(tmp_path, f'[[rule]]\nname = "r"\noutputs = ["{"x" * 5000}"]\n'
                      'command = "touch {out}"\n')
    assert "rule 'r'" in message and "key 'outputs'" in message
    assert "5000 bytes" in message and "at most 4095" in message
    message = refused(tmp_path, f'[[rule]]\nname = "r"\noutputs = ["d/{"x" * 300}"]\n'
                      'command = "touch {out}"\n')
    assert "300 bytes" in message and "at most 255" in message


def test_a_nul_in_an_argv_item_or_a_path_is_refused(tmp_path):
    message = refused(tmp_path, '[[rule]]\nname = "r"\noutputs = ["o"]\n'
                      'command = ["touch", "o\\u0000rm -rf x"]\n')
    assert "rule 'r'" in message and "key 'command'" in message and "NUL" in message
    message = refused(tmp_path, '[[rule]]\nname = "r"\noutputs = ["o\\u0000x"]\n'
                      'command = "touch {out}"\n')
    assert "key 'outputs'" in message and "NUL" in message


def test_a_nul_or_overlong_target_is_a_usage_error(tmp_path):
    project = load(tmp_path, C_PROJECT)
    for name, words in [("bin/a\0pp", "NUL"), ("x" * 5000, "at most 4095"),
                        ("bad\udcff.txt", r"'bad\xff.txt' is not a UTF-8 file name"),
                        ("", "non-empty string")]:
        with pytest.raises(errors.UsageError, match="target") as info:
            target_paths(project, [name], tmp_path)
        assert words in str(info.value)
    with pytest.raises(errors.UsageError):
        target_paths(project, [5], tmp_path)    # type: ignore[list-item]


def test_a_duplicate_output_in_one_rule_is_refused(tmp_path):
    message = refused(tmp_path, '[[rule]]\nname = "r"\noutputs = ["o.txt", "./o.txt"]\n'
                      'command = "touch {out}"\n')
    assert "rule 'r'" in message and "key 'outputs'" in message
    assert "'o.txt' is listed twice" in message
    message = refused(tmp_path, '[[rule]]\nname = "p"\ninputs = ["%.c"]\n'
                      'outputs = ["%.o", "%.o"]\ncommand = "cc {in} -o {out[0]}"\n')
    assert "rule 'p'" in message and "listed twice" in message


def test_names_that_are_not_utf8_are_shown_escaped():
    assert shown("src/bad\udcff.txt") == r"'src/bad\xff.txt'"
    assert shown("plain.txt") == "'plain.txt'"
    assert "rename" in name_problem("src/bad\udcff.txt")
    assert name_problem("src/good.txt") is None


# --- '%%' ---------------------------------------------------------------------

def test_stems_and_escaped_percent_signs():
    assert stems.stem_count("a/100%%.txt") == 0
    assert stems.stem_count("a/%-100%%.txt") == 1
    assert stems.literal("a/100%%.txt") == "a/100%.txt"
    assert stems.split("a/%-100%%.txt") == ("a/", "-100%.txt")
    assert stems.substitute("a/%-100%%.txt", "x%y") == "a/x%y-100%.txt"


def test_an_explicit_path_with_a_percent_sign_is_written_as_percent_percent(tmp_path):
    ruleset = RuleSet(load(tmp_path, """
        [[rule]]
        name = "pct"
        inputs = ["src/50%%.txt"]
        outputs = ["out/50%%.txt"]
        command = "cp {in} {out}"

        [[rule]]
        name = "pat"
        inputs = ["src/%.txt"]
        outputs = ["out/%-100%%.log"]
        command = "cp {in} {out}"
        """))
    step = ruleset.step_for("out/50%.txt")
    assert step.rule.name == "pct" and not step.rule.is_pattern
    assert (step.inputs, step.outputs) == (("src/50%.txt",), ("out/50%.txt",))
    assert step.command().argv[-2:] == ("src/50%.txt", "out/50%.txt")
    step = ruleset.step_for("out/a-100%.log")
    assert (step.stem, step.inputs) == ("a", ("src/a.txt",))
    assert ruleset.step_for("out/a-100.log") is None


def test_two_rules_writing_one_percent_path_clash(tmp_path):
    message = refused(tmp_path, """
        [[rule]]
        name = "one"
        outputs = ["50%%.txt"]
        command = "touch {out}"

        [[rule]]
        name = "two"
        outputs = ["50%%.txt"]
        command = "touch {out}"
        """)
    assert "'50%.txt' is also produced by rule 'one'" in message


# --- paths that look like options ---------------------------------------------

def test_a_path_starting_with_a_dash_is_passed_as_dot_slash(tmp_path):
    step = one_rule_step(tmp_path, inputs='["-x"]', outputs='["-o.txt"]',
                         command='"cp {in} {out}"')
    assert step.command().argv[1:] == ("./-x", "./-o.txt")
    assert step.display() == "cp ./-x ./-o.txt"
    step = one_rule_step(tmp_path, inputs='["-x"]', outputs='["o.txt"]',
                         command='["cp", "{in}", "{out}"]')
    assert step.command().argv[1:] == ("./-x", "o.txt")
    step = one_rule_step(tmp_path, inputs='["-x", "b"]', outputs='["o.txt"]',
                         command='"cat {in} > {out}"')
    command = step.command()          # no shell: its stdout goes to the output
    assert (command.argv[1:], command.stdout, command.display) == (("./-x", "b"), "o.txt",
                                                                    "cat ./-x b > o.txt")
    cwd = one_rule_step(tmp_path, "sub/-a", inputs='["src/%.txt"]', outputs='["build/%.o"]',
                        command='"cc -c {in} -o {out} -I {dir}"', cwd='"{dir}"')
    assert cwd.display() == "cc -c ./-a.txt -o ../../build/sub/-a.o -I ."


def test_ordinary_commands_are_byte_identical(tmp_path):
    """Only a path starting with '-' changes: every other command is what it
    was before that rule, or every recorded step of every project would go
    stale.  The expected texts are those of the code before the change."""
    rules = RuleSet(load(tmp_path, C_PROJECT))
    want = {
        "build/x.o": "cc -MD -MF build/x.o.d -c src/x.c -o build/x.o",
        "bin/app": "cc build/main.o build/util.o -o bin/app",
        "build/special.o": "cc -O0 -c src/special.c -o build/special.o",
    }
    for target, display in want.items():
        step = rules.step_for(target)
        assert step.display() == display
        assert step.command().display == display
        assert " ".join(step.command().argv[1:]) == display.split(" ", 1)[1]
    cwd = one_rule_step(tmp_path, "a", inputs='["src/%.txt"]', outputs='["build/%.o"]',
                        command='"cc -c {in} -o {out} -I {dir}"', cwd='"{dir}"')
    assert cwd.display() == "cc -c a.txt -o ../build/a.o -I ."
