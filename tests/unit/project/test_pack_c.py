"""The c pack's tables of targets: archives, programs and one file's flags,
as a project writes them, and the explicit rules they become."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from computepods import errors
from computepods.paths import PROJECT_FILE
from computepods.planning.resolve import RuleSet, bind
from computepods.project.load import load_project
from computepods.project.packs import PACKS, PackFileError, load_pack

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "clib"
LIBRARY = """
[project]
use = ["c"]
[pack.c]
cflags = "-O2 -Iinclude"
ldflags = "-static"
libs = "-lm"
[pack.c.archives]
"lib/libutil.a" = ["src/util.o", "src/list.o"]
[pack.c.programs]
"bin/app" = ["src/main.o", "lib/libutil.a"]
[pack.c.flags]
"src/list.c" = "-O0 -DN={8}"
"""


def load(root: Path, text: str):
    (root / PROJECT_FILE).write_text(textwrap.dedent(text))
    return load_project(root)


def fails(root: Path, text: str, key: str, *words: str) -> str:
    with pytest.raises(errors.ProjectError) as info:
        load(root, text)
    message = str(info.value)
    assert info.value.key == key, message
    assert str(root.resolve() / PROJECT_FILE) in message
    for word in words:
        assert word in message
    return message


def test_a_library_and_a_program_are_explicit_rules_named_after_their_target(tmp_path):
    rules = {r.name: r for r in load(tmp_path, LIBRARY).rules}
    assert list(rules) == ["c.compile", "c.compile.src_list",
                           "c.archive.lib_libutil.a", "c.program.bin_app"]
    archive, program = rules["c.archive.lib_libutil.a"], rules["c.program.bin_app"]
    assert not archive.is_pattern and archive.pack == "c"
    assert (archive.inputs, archive.outputs) == (("src/util.o", "src/list.o"),
                                                 ("lib/libutil.a",))
    assert bind(archive, None).command().display == (
        "ar rcsD lib/libutil.a src/util.o src/list.o")
    # the inputs in the order given: the archive after the objects using it
    assert bind(program, None).command().display == (
        "cc -static src/main.o lib/libutil.a -lm -o bin/app")


def test_one_files_flags_come_after_cflags_and_only_for_that_file(tmp_path):
    project = load(tmp_path, LIBRARY)
    for name in ("src/util.c", "src/list.c", "src/main.c"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text("")
    plan = RuleSet(project).resolve(["bin/app"], lambda p: (tmp_path / p).exists())
    assert sorted(plan.steps) == ["c.archive.lib_libutil.a:lib/libutil.a",
                                  "c.compile.src_list:src/list.o",
                                  "c.compile:src/main.o", "c.compile:src/util.o",
                                  "c.program.bin_app:bin/app"]
    own = plan.steps["c.compile.src_list:src/list.o"]
    assert own.depfile == "src/list.d"
    assert own.command().display == (
        "cc -O2 -Iinclude -O0 -DN={8} -MD -MF src/list.d -c src/list.c -o src/list.o")
    assert plan.steps["c.compile:src/util.o"].command().display == (
        "cc -O2 -Iinclude -MD -MF src/util.d -c src/util.c -o src/util.o")


def test_ar_is_a_tool_only_when_there_is_an_archive():
    pack = PACKS["c"]
    assert pack.tools() == ["cc"]
    assert pack.tools({"programs": {"bin/app": ["a.o"]}}) == ["cc"]
    assert pack.tools({"archives": {"lib/liba.a": ["a.o"]}}) == ["cc", "ar"]


def test_the_tables_start_empty_and_add_no_rule(tmp_path):
    project = load(tmp_path, '[project]\nuse = ["c"]\n')
    assert [r.name for r in project.rules] == ["c.compile"]
    assert project.packs["c"]["programs"] == {}


def test_a_percent_in_an_object_list_is_a_literal_file_name(tmp_path):
    rules = load(tmp_path, '[project]\nuse = ["c"]\n[pack.c.programs]\n'
                 '"bin/app" = ["src/100%.o"]\n').rules
    assert bind(rules[-1], None).inputs == ("src/100%.o",)


@pytest.mark.parametrize("table, key, words", [
    ('[pack.c]\nprograms = "bin/app"', "pack.c.programs",
     ("must be a table of targets", "[pack.c.programs]")),
    ('[pack.c.programs]\n"bin/app" = "src/main.o"', "pack.c.programs",
     ("target 'bin/app' must be an array of paths",)),
    ('[pack.c.programs]\n"bin/app" = []', "pack.c.programs",
     ("must be an array of paths",)),
    ('[pack.c.archives]\n"../libx.a" = ["a.o"]', "pack.c.archives",
     ("target '../libx.a'", "inside the project")),
    ('[pack.c.flags]\n"src/foo.h" = "-O0"', "pack.c.flags",
     ("target 'src/foo.h' must match '%.c'",)),
    ('[pack.c.flags]\n"src/foo.c" = ["-O0"]', "pack.c.flags",
     ("must be a string",)),
    ('[pack.c.programs]\n"bin/app" = ["a.o"]\n"bin_app" = ["b.o"]',
     "pack.c.programs", ("'bin/app' and 'bin_app'", "one name")),
])
def test_a_wrong_table_of_targets_names_the_table_and_the_target(
        tmp_path, table, key, words):
    fails(tmp_path, f'[project]\nuse = ["c"]\n{table}\n', key, *words)


def test_a_program_that_is_also_a_rules_output_is_refused(tmp_path):
    fails(tmp_path, LIBRARY + '[[rule]]\nname = "link"\ninputs = ["src/main.o"]\n'
          'outputs = ["bin/app"]\ncommand = "cc {in} -o {out}"\n',
          "outputs", "'bin/app' is also produced by rule 'link'")


EACH = ('[settings.progs]\ntype = "lists"\n[settings.opts]\ntype = "texts"\n'
        '[settings.s]\ndefault = ""\n[[rule]]\nname = "t.x"\ntools = ["t"]\n')


@pytest.mark.parametrize("rule, words", [
    ('outputs = ["%"]\ninputs = ["{progs}"]\ncommand = "t"\n', "each rule"),
    ('each = "s"\noutputs = ["%"]\ncommand = "t"\n', "each must name"),
    ('key = "%.c"\noutputs = ["%.o"]\ncommand = "t"\n', "key is a pattern"),
    ('each = "opts"\nkey = "x"\noutputs = ["%"]\ncommand = "t"\n', "key is a pattern"),
    ('each = "progs"\noutputs = ["%"]\ncommand = "t {progs}"\n', "whole item of inputs"),
    ('each = "progs"\noutputs = ["%"]\ncommand = "t {opts}"\n', "each rule"),
])
def test_malformed_each_rules_in_a_pack_file(rule, words):
    with pytest.raises(PackFileError, match=words):
        load_pack("t", EACH + rule, "t.toml")


def test_a_table_setting_has_no_default():
    with pytest.raises(PackFileError, match="no default"):
        load_pack("t", '[settings.p]\ntype = "lists"\ndefault = ""\n'
                  '[[rule]]\nname = "t.x"\ntools = ["t"]\noutputs = ["x"]\n'
                  'command = "t"\n', "t.toml")


def test_the_clib_example_is_a_library_and_a_program_without_a_rule():
    project = load_project(EXAMPLE)
    assert all(rule.pack == "c" for rule in project.rules)
    plan = RuleSet(project).resolve(["bin/wc-lite"], lambda p: (EXAMPLE / p).exists())
    assert sorted(plan.steps) == ["c.archive.lib_libwords.a:lib/libwords.a",
                                  "c.compile.src_count:src/count.o",
                                  "c.compile:src/main.o", "c.compile:src/words.o",
                                  "c.program.bin_wc-lite:bin/wc-lite"]
    assert plan.sources == {"src/count.c", "src/main.c", "src/words.c"}
    assert "-O0 -g" in plan.steps["c.compile.src_count:src/count.o"].command().display
