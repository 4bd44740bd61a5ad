"""computepods.planning.commands: a step's command, as run and as shown."""
from __future__ import annotations

import shlex
import shutil
from pathlib import Path

from computepods.planning.commands import SHELL, needs_shell
from computepods.planning.resolve import RuleSet, bind
from computepods.project.load import load_project
from computepods.project.targets import target_paths
from projects import C_PROJECT, load, one_rule_step, ruleset


def test_a_plain_string_runs_directly_with_an_absolute_program(tmp_path):
    step = ruleset(tmp_path, C_PROJECT).step_for("build/x.o")
    command = step.command()
    assert not command.shell
    assert command.argv == (shutil.which("cc") or "cc", "-MD", "-MF",
                            "build/x.o.d", "-c", "src/x.c", "-o", "build/x.o")
    assert command.display == "cc -MD -MF build/x.o.d -c src/x.c -o build/x.o"


def test_a_redirect_to_its_output_runs_without_a_shell_and_anything_more_keeps_it(tmp_path):
    step = one_rule_step(tmp_path, command='"cat {in} > {out[0]}"')
    command = step.command()
    assert not command.shell and command.stdout == "out.txt"
    assert command.argv == (shutil.which("cat"), "in put.txt", "b.txt")
    assert command.display == "cat 'in put.txt' b.txt > out.txt"     # recorded as before
    for text in ["cat {in} >> {out[0]}", "cat {in} 2> {out[0]}", "cat {in} | sort > {out[0]}",
                 "cat {in} &> {out[0]}", "cat {in} >| {out[0]}", "cat {in} > {in[0]}"]:
        command = one_rule_step(tmp_path, command=repr(text).replace("'", '"')).command()
        assert command.shell and not command.stdout, text


def test_metacharacters_need_a_shell(tmp_path):
    step = one_rule_step(tmp_path, command='"cat {in} | tr a-z A-Z > {out[0]}"')
    command = step.command()
    assert command.shell
    assert command.argv == (SHELL, "-c", "cat 'in put.txt' b.txt | tr a-z A-Z > out.txt")
    assert command.display == command.argv[2]
    for text in ["a=b", "echo $HOME", "a | b", "x*", "a; b", "a\nb", "'q'",
                 "100%", "{{x}}"]:
        assert needs_shell(text), text
    # Only the template's own text counts: braces of placeholders do not.
    assert not needs_shell("cc -c {in[0]} -o {out}")


def test_paths_with_spaces_are_quoted_for_the_shell_and_split_back(tmp_path):
    step = one_rule_step(tmp_path, command='"cp {in} {out[0]}"')
    command = step.command()
    assert not command.shell
    assert command.argv[1:] == ("in put.txt", "b.txt", "out.txt")
    assert command.display == "cp 'in put.txt' b.txt out.txt"
    assert shlex.split(command.display)[1:] == list(command.argv[1:])


def test_a_list_is_an_argv_and_whole_item_placeholders_spread(tmp_path):
    step = one_rule_step(
        tmp_path,
        command='["tool", "{in}", "--out={out}", "{out[1]}", "{{x}}"]')
    command = step.command()
    assert not command.shell
    assert command.argv[1:] == ("in put.txt", "b.txt",
                                "--out=out.txt log.txt", "log.txt", "{x}")
    assert command.display == ("tool 'in put.txt' b.txt "
                               "'--out=out.txt log.txt' log.txt '{x}'")


def test_literal_braces(tmp_path):
    step = one_rule_step(tmp_path, command='''"awk '{{print $1}}' {in[1]}"''')
    assert step.command().argv == (SHELL, "-c", "awk '{print $1}' b.txt")


def test_outputs_map_to_scratch_for_running_but_not_for_display(tmp_path):
    step = one_rule_step(tmp_path, command='"cp {in[0]} {out[0]} {scratch}"')
    scratch = "/p/.computepods/scratch/7"
    command = step.command(out_path=lambda p: f"{scratch}/{p}",
                           scratch=scratch)
    assert command.argv[1:] == ("in put.txt", f"{scratch}/out.txt", scratch)
    assert command.display == "cp 'in put.txt' out.txt $CP_SCRATCH"
    assert step.command().display == command.display      # stable


def test_dir_and_stem_and_dir_path(tmp_path):
    rule = load(tmp_path, """
        [[rule]]
        name = "tex"
        inputs = ["%.tex"]
        outputs = ["%.pdf"]
        command = "pdflatex -output-directory {dir} {stem}"
        """).rules[0]
    step = bind(rule, "docs/my paper")
    command = step.command(dir_path=lambda d: f"/scratch/{d}")
    assert command.argv[1:] == ("-output-directory", "/scratch/docs",
                                "docs/my paper")
    assert command.display == ("pdflatex -output-directory docs "
                               "'docs/my paper'")


def test_dir_is_dot_without_inputs(tmp_path):
    step = one_rule_step(tmp_path, inputs="[]", command='"touch {dir}/{out}"')
    assert step.dir == "."
    assert step.command().argv[1:] == ("./out.txt", "log.txt")
    assert step.command().display == "touch ./out.txt log.txt"


def test_a_cwd_makes_paths_relative_to_it(tmp_path):
    rule = load(tmp_path, """
        [[rule]]
        name = "tex"
        inputs = ["%.tex", "refs.bib"]
        outputs = ["%.pdf"]
        command = ["pdflatex", "{in[0]}", "{in[1]}", "{out}", "{dir}"]
        cwd = "{dir}"
        """).rules[0]
    step = bind(rule, "docs/paper")
    assert step.cwd == "docs"
    assert step.command().argv[1:] == ("paper.tex", "../refs.bib",
                                       "paper.pdf", ".")
    scratch = step.command(out_path=lambda p: "/s/" + p)
    assert scratch.argv[3] == "/s/docs/paper.pdf"
    assert bind(rule, "paper").cwd == ""


def test_a_program_not_on_path_is_left_for_the_chef(tmp_path):
    step = one_rule_step(tmp_path, command='"no-such-tool-xyz {in}"')
    assert step.command().argv[0] == "no-such-tool-xyz"
    step = one_rule_step(tmp_path, command='["./tool", "{in}"]')
    assert step.command().argv[0] == "./tool"


def test_display_alone_equals_the_display_of_a_full_expansion(tmp_path):
    """The staleness check renders only the display; it must be the same text."""
    examples = Path(__file__).resolve().parents[3] / "examples"
    for name in ("hello", "c", "paper", "cycle"):
        project = load_project(examples / name)
        plan = RuleSet(project).resolve(target_paths(project, [], examples / name),
                                        lambda p: True)
        for step in plan.steps.values():
            assert step.display() == step.command(out_path=lambda p: "/scratch/" + p,
                                                  scratch="/s").display, step.id
