"""computepods.project.load: finding and loading computepods.toml, and its errors."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from computepods import errors
from computepods.project.packs import KNOWN_PACKS
from computepods.paths import PROJECT_FILE, find_project_root
from computepods.project.load import load_project
from computepods.project.model import Rule

EXAMPLE = """
[project]
name = "app"
default = ["bin/app"]
use = ["c"]
ignore = ["*.swp", "tmp/"]
stream = ["logs/*.log"]

[alias]
all = ["bin/app", "docs/manual.pdf"]
everything = ["all", "./README"]

[[rule]]
name = "compile"
inputs = ["src/%.c"]
outputs = ["build/%.o", "build/%.o.d"]
command = "cc -MD -MF {out[1]} -c {in} -o {out[0]}"
depfile = "build/%.o.d"
timeout = 600

[[rule]]
name = "link"
inputs = ["build/main.o", "./build//util.o"]
outputs = ["bin/app"]
command = ["cc", "{in}", "-o", "{out}"]

[[rule]]
name = "latex"
inputs = ["%.tex", "%.bbl"]
outputs = ["%.pdf", "%.aux"]
command = "pdflatex -interaction=nonstopmode -recorder {stem}.tex"
discover = "fls"
max_passes = 7
cwd = "{dir}"
parts = { "%.bbl" = "bibliography" }

[[schedule]]
cron = "0 2 * * *"
targets = ["all"]
"""

RULE_OK = """
[[rule]]
name = "r"
inputs = ["a.txt"]
outputs = ["b.txt"]
command = "cp {in} {out}"
"""


def write(root: Path, text: str) -> Path:
    (root / PROJECT_FILE).write_text(textwrap.dedent(text))
    return root


def load(root: Path, text: str):
    return load_project(write(root, text))


def fails(root: Path, text: str, rule: str | None = None,
          key: str | None = None, *words: str) -> errors.ProjectError:
    """Load, expect a ProjectError naming the file, rule, key and words."""
    with pytest.raises(errors.ProjectError) as info:
        load(root, text)
    message = str(info.value)
    assert str(root / PROJECT_FILE) in message
    if rule is not None:
        assert f"rule {rule!r}" in message
        assert info.value.rule == rule
    if key is not None:
        assert f"key {key!r}" in message
        assert info.value.key == key
    for word in words:
        assert word in message
    return info.value


# --- finding ------------------------------------------------------------------

def test_find_root_from_the_root_a_subdirectory_and_a_file(tmp_path):
    write(tmp_path, RULE_OK)
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    (deep / "f.txt").write_text("")
    root = tmp_path.resolve()
    assert find_project_root(tmp_path) == root
    assert find_project_root(deep) == root
    assert find_project_root(deep / "f.txt") == root


def test_find_root_takes_the_nearest_project(tmp_path):
    write(tmp_path, RULE_OK)
    inner = tmp_path / "sub"
    inner.mkdir()
    write(inner, RULE_OK)
    assert find_project_root(inner / ".") == inner.resolve()


def test_find_root_without_a_project_names_the_start(tmp_path):
    start = tmp_path / "nowhere"
    start.mkdir()
    with pytest.raises(errors.ProjectNotFound, match="nowhere"):
        find_project_root(start)


# --- loading ------------------------------------------------------------------

def test_load_the_design_example(tmp_path):
    project = load(tmp_path, EXAMPLE)
    assert project.root == tmp_path.resolve()
    assert project.path == tmp_path.resolve() / PROJECT_FILE
    assert project.name == "app"
    assert project.default == ("bin/app",)
    assert project.use == ("c",)
    assert project.ignore == ("*.swp", "tmp/")
    assert project.stream == ("logs/*.log",)
    assert project.aliases == {"all": ("bin/app", "docs/manual.pdf"),
                               "everything": ("all", "README")}
    compile_, link, latex, pack_rule = project.rules
    assert compile_ == Rule(
        name="compile", inputs=("src/%.c",),
        outputs=("build/%.o", "build/%.o.d"),
        command="cc -MD -MF {out[1]} -c {in} -o {out[0]}",
        depfile="build/%.o.d", timeout=600.0, index=0)
    assert link.inputs == ("build/main.o", "build/util.o")   # normalized
    assert link.command == ("cc", "{in}", "-o", "{out}")
    assert not link.is_pattern and compile_.is_pattern
    assert (latex.discover, latex.max_passes, latex.cwd) == ("fls", 7, "{dir}")
    assert latex.parts == {"%.bbl": "bibliography"}
    assert latex.timeout is None
    assert pack_rule.pack == "c" and pack_rule.index == 3
    assert pack_rule.name == KNOWN_PACKS["c"][0]["name"]
    assert [s.cron for s in project.schedules] == ["0 2 * * *"]
    assert project.schedules[0].targets == ("all",)


def test_defaults_of_an_almost_empty_file(tmp_path):
    project = load(tmp_path / "", "")
    assert project.name == tmp_path.name
    assert project.default == project.use == project.ignore == ()
    assert project.rules == () and project.schedules == ()
    assert project.aliases == {}


def test_rules_are_hashable_even_with_parts(tmp_path):
    project = load(tmp_path, EXAMPLE)
    assert len(set(project.rules)) == 4


# --- errors: each names the file, the rule and the key ------------------------

@pytest.mark.parametrize("text, key", [
    ("rules = []", "rules"),
    ("[project]\nnmae = 'x'", "project.nmae"),
    ("[[schedule]]\ncron = '* * * * *'\ntargets = ['a']\nwhen = 1",
     "schedule.when"),
])
def test_unknown_keys_outside_rules(tmp_path, text, key):
    fails(tmp_path, text, None, key, "unknown key")


@pytest.mark.parametrize("text, key, word", [
    ("[project]\ndefault = 'bin/app'", "project.default", "array of strings"),
    ("[project]\nuse = [1]", "project.use", "array of strings"),
    ("[project]\nname = 3", "project.name", "string"),
    ("project = 3", "project", "table"),
    ("alias = 3", "alias", "table"),
    ("[alias]\nall = 'x'", "alias.all", "array of strings"),
    ("[alias]\n'a/b' = ['x']", "alias.a/b", "'/'"),
    ("[alias]\nall = ['../x']", "alias.all", ".."),
    ("[rule]\nname = 'x'", "rule", "[[rule]]"),
    ("schedule = 1", "schedule", "[[schedule]]"),
    ("[[schedule]]\ntargets = ['a']", "schedule.cron", "no 'cron'"),
    ("[[schedule]]\ncron = '* * * * *'\ntargets = []", "schedule.targets",
     "no targets"),
    ("[[schedule]]\ncron = ''\ntargets = ['a']", "schedule.cron", "empty"),
])
def test_bad_values_outside_rules(tmp_path, text, key, word):
    fails(tmp_path, text, None, key, word)


@pytest.mark.parametrize("cron, reason", [
    ("61 2 * * *", "out of range"),                  # croniter's own words
    ("0 2 * *", "columns"),
    ("*/0 * * * *", "step '0'"),
    ("0 0 30 2 *", "never fires"),                   # February 30th
])
def test_a_bad_cron_expression_names_the_schedule_and_the_reason(tmp_path, cron, reason):
    text = (f"[[schedule]]\ncron = '0 2 * * *'\ntargets = ['a']\n"
            f"[[schedule]]\ncron = '{cron}'\ntargets = ['a']")
    error = fails(tmp_path, text, None, "schedule.cron", "schedule #2", repr(cron), reason)
    assert error.exit_code == 2


def test_cron_shorthands_and_names_are_accepted(tmp_path):
    text = ("[[schedule]]\ncron = '@daily'\ntargets = ['a']\n"
            "[[schedule]]\ncron = '30 2 * * mon-fri'\ntargets = ['a']")
    assert [s.cron for s in load(tmp_path, text).schedules] == ["@daily", "30 2 * * mon-fri"]


def rule(**keys: object) -> str:
    """A [[rule]] table from RULE_OK's keys, with some replaced or removed."""
    table = {"name": '"r"', "inputs": '["a.txt"]', "outputs": '["b.txt"]',
             "command": '"cp {in} {out}"'}
    table.update({k: v for k, v in keys.items() if v is not None})
    for k in [k for k, v in keys.items() if v is None]:
        del table[k]
    return "[[rule]]\n" + "".join(f"{k} = {v}\n" for k, v in table.items())


@pytest.mark.parametrize("keys, key, word", [
    ({"colour": '"red"'}, "colour", "unknown key"),
    ({"outputs": None}, "outputs", "missing"),
    ({"command": None}, "command", "missing"),
    ({"outputs": "[]"}, "outputs", "at least one output"),
    ({"outputs": '"b.txt"'}, "outputs", "array of strings"),
    ({"inputs": '"a.txt"'}, "inputs", "array of strings"),
    ({"inputs": '["/etc/passwd"]'}, "inputs", "absolute"),
    ({"outputs": '["../b.txt"]'}, "outputs", ".."),
    ({"outputs": '["x/../../b"]'}, "outputs", ".."),
    ({"outputs": '["."]'}, "outputs", "project root"),
    ({"outputs": '[""]'}, "outputs", "empty path"),
    ({"outputs": '["computepods.toml"]'}, "outputs", "'computepods.toml' is the project file"),
    ({"outputs": '["./computepods.toml"]'}, "outputs", "project file"),
    ({"outputs": '[".computepods/state.db"]'}, "outputs", "inside .computepods/"),
    ({"outputs": '[".computepods"]'}, "outputs", "inside .computepods/"),
    ({"outputs": '[".computepods/%.o"]', "inputs": '["%.c"]'}, "outputs",
     "inside .computepods/"),
    ({"command": "3"}, "command", "array of strings"),
    ({"command": '""'}, "command", "empty"),
    ({"command": "[]"}, "command", "program"),
    ({"command": '"cp {input} {out}"'}, "command", "{input}"),
    ({"command": '"cp {in[1]} {out}"'}, "command", "out of range"),
    ({"command": '"cp {in} {out[1]}"'}, "command", "out of range"),
    ({"command": '"cp {stem} {out}"'}, "command", "pattern rule"),
    ({"command": '"awk {print} {in}"'}, "command", "{print}"),
    ({"command": '"x { y"'}, "command", "'{{'"),
    ({"command": '"x } y"'}, "command", "'}}'"),
    ({"command": '"x {scratch[0]}"'}, "command", "index"),
    ({"command": '["cp", "{in}", "{dest}"]'}, "command", "{dest}"),
    ({"timeout": '"10"'}, "timeout", "positive number"),
    ({"timeout": "-1"}, "timeout", "positive number"),
    ({"timeout": "0"}, "timeout", "positive number"),
    ({"timeout": "nan"}, "timeout", "positive number"),
    ({"timeout": "true"}, "timeout", "positive number"),
    ({"max_passes": "0"}, "max_passes", "positive integer"),
    ({"max_passes": "2.5"}, "max_passes", "positive integer"),
    ({"max_passes": "true"}, "max_passes", "positive integer"),
    ({"discover": '"aux"'}, "discover", "fls"),
    ({"depfile": '"b.d"', "outputs": '["%.o"]', "inputs": '["%.c"]'},
     "depfile", "exactly one '%'"),
    ({"depfile": '"%.d"'}, "depfile", "has a '%'"),
    ({"outputs": '["%.o", "%.%.x"]', "inputs": '["%.c"]'}, "outputs",
     "more than one '%'"),
    ({"outputs": '["%.o", "log.txt"]', "inputs": '["%.c"]'}, "outputs",
     "every output"),
    ({"inputs": '["%.c"]'}, "inputs", "nothing binds"),
    ({"cwd": '"{in[0]}"'}, "cwd", "{in[0]}"),
    ({"cwd": '"/tmp"'}, "cwd", "inside the project"),
    ({"cwd": '"{stem}"'}, "cwd", "pattern rule"),
    ({"parts": '"x"'}, "parts", "table"),
    ({"parts": '{ "a.txt" = 1 }'}, "parts.a.txt", "string"),
])
def test_bad_rules_name_the_rule_and_key(tmp_path, keys, key, word):
    fails(tmp_path, rule(**keys), "r", key, word)


def test_a_rule_name_that_needs_quoting(tmp_path):
    fails(tmp_path, rule(name='"has space"'), "has space", "name",
          "letters, digits")


def test_a_rule_without_a_name_is_named_by_position(tmp_path):
    text = RULE_OK + rule(name=None)
    fails(tmp_path, text, "#2", "name", "missing")


def test_a_name_of_the_wrong_type_is_named_by_position(tmp_path):
    fails(tmp_path, rule(name="3"), "#1", "name", "string")


def test_a_rule_that_is_not_a_table(tmp_path):
    fails(tmp_path, "rule = [1]", "#1", "rule", "table")


def test_duplicate_rule_names(tmp_path):
    text = rule() + rule(outputs='["c.txt"]')
    fails(tmp_path, text, "r", "name", "rule #1", "same name")


def test_a_rule_with_a_pack_rules_name_replaces_it(tmp_path):
    pack_rule = KNOWN_PACKS["c"][0]["name"]
    text = '[project]\nuse = ["c"]\n' + rule(name=f'"{pack_rule}"')
    rules = [r for r in load(tmp_path, text).rules if r.name == pack_rule]
    assert len(rules) == 1
    assert (rules[0].pack, rules[0].overrides, rules[0].inputs) == (None, "c", ("a.txt",))


def test_two_explicit_rules_producing_one_output_name_both(tmp_path):
    text = rule() + rule(name='"copy"', outputs='["x.txt", "./b.txt"]')
    fails(tmp_path, text, "copy", "outputs", "'b.txt'", "rule 'r'")


def test_two_pattern_rules_with_one_output_pattern_load(tmp_path):
    # Ambiguity among pattern rules depends on the target: checked when
    # matching (test_rules), not here.
    text = (rule(inputs='["%.c"]', outputs='["%.o"]')
            + rule(name='"s"', inputs='["%.s"]', outputs='["%.o"]'))
    assert len(load(tmp_path, text).rules) == 2


def test_unknown_pack_names_it_and_lists_the_known(tmp_path):
    error = fails(tmp_path, '[project]\nuse = ["nope"]', None, "project.use",
                  "'nope'", "known packs:")
    for name in KNOWN_PACKS:
        assert name in str(error)


def test_toml_syntax_error_gives_the_line(tmp_path):
    fails(tmp_path, "[project]\nname = 'x'\nthis is not toml\n", None, None,
          "TOML syntax error", "line 3")


def test_a_file_that_is_not_utf8(tmp_path):
    (tmp_path / PROJECT_FILE).write_bytes(b"[project]\nname = '\xff'\n")
    with pytest.raises(errors.ProjectError, match=str(tmp_path)):
        load_project(tmp_path)


def test_a_missing_file(tmp_path):
    with pytest.raises(errors.ProjectError, match="cannot read"):
        load_project(tmp_path)


def test_alias_cycles_fail_at_load(tmp_path):
    text = "[alias]\na = ['b']\nb = ['c', 'x']\nc = ['a']\n"
    fails(tmp_path, text, None, "alias.a", "a -> b -> c -> a")


def test_default_and_schedule_paths_are_checked(tmp_path):
    fails(tmp_path, "[project]\ndefault = ['/abs']", None, "project.default",
          "absolute")
    fails(tmp_path, "[[schedule]]\ncron = '@daily'\ntargets = ['../x']", None,
          "schedule.targets", "..")
