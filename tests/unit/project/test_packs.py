"""computepods.project.packs: the latex and c packs, their settings, their tools,
and the examples that use them."""
from __future__ import annotations

import hashlib
import itertools
import shlex
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from computepods import errors
from computepods.project import packs
from computepods.project.packs import (KNOWN_PACKS, PACKS, PackFileError,
                               available_packs, load_pack, missing_tools,
                               rule_tables)
from computepods.paths import PROJECT_FILE
from computepods.project.load import load_project
from computepods.project.targets import target_paths
from computepods.planning.resolve import RuleSet, bind

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
TEX_TOOLS = ("pdflatex", "bibtex")


def load(root: Path, text: str):
    (root / PROJECT_FILE).write_text(textwrap.dedent(text))
    return load_project(root)


def fails(root: Path, text: str, key: str, *words: str) -> errors.ProjectError:
    """Load, expect a ProjectError naming the file, the key and ``words``."""
    with pytest.raises(errors.ProjectError) as info:
        load(root, text)
    message = str(info.value)
    assert str(root.resolve() / PROJECT_FILE) in message
    assert info.value.key == key and f"key {key!r}" in message
    for word in words:
        assert word in message
    return info.value


def rules_of(root: Path, pack: str, settings: str = "") -> dict:
    """name -> Rule, for a project that uses ``pack`` with ``settings``."""
    text = f'[project]\nuse = ["{pack}"]\n'
    if settings:
        text += f"[pack.{pack}]\n{settings}\n"
    return {r.name: r for r in load(root, text).rules}


def program(rule) -> str:
    command = rule.command
    return shlex.split(command)[0] if isinstance(command, str) else command[0]


# --- the pack files -----------------------------------------------------------

def test_the_packs_are_read_from_their_toml_files():
    assert sorted(PACKS) == ["c", "latex"]
    assert sorted(KNOWN_PACKS) == ["c", "latex"]
    for name, pack in PACKS.items():
        assert pack.description
        # KNOWN_PACKS: the rules with default settings, as plain rule tables
        assert KNOWN_PACKS[name] == rule_tables(name)
        for table in KNOWN_PACKS[name]:
            assert table["name"].startswith(name + ".")
            assert not set(table) & packs.PACK_RULE_KEYS


def test_every_combination_of_settings_makes_rules_that_pass_the_checks(
        tmp_path):
    for name, pack in PACKS.items():
        # tables of targets are tried in test_pack_c.py
        choices = {k: s.choices or (s.default, "-g -DX={1}")
                   for k, s in pack.settings.items() if not s.per_target}
        for values in itertools.product(*choices.values()):
            settings = "\n".join(f"{k} = {v!r}".replace("'", '"')
                                 for k, v in zip(choices, values))
            rules = rules_of(tmp_path, name, settings)
            tools = pack.tools(dict(zip(choices, values)), on_demand=True)
            for rule in rules.values():
                assert rule.pack == name
                assert program(rule) in tools, rule.name   # a rule's program is a tool


# --- latex --------------------------------------------------------------------

LATEX_COMMAND = ("{engine}", "-interaction=nonstopmode", "-halt-on-error",
                 "-file-line-error", "-recorder", "{in[0]}")


def latex_command(engine: str) -> tuple[str, ...]:
    return (engine, *LATEX_COMMAND[1:])


LATEX_AUX_RULES = ["latex.biber", "latex.bibtex", "latex.makeindex", "latex.glossaries",
                   "latex.acronyms", "latex.nomencl"]


def test_latex_defaults_pdflatex_and_every_tool_on_demand(tmp_path):
    rules = rules_of(tmp_path, "latex")
    assert list(rules) == ["latex.pdf", *LATEX_AUX_RULES]
    pdf, bib = rules["latex.pdf"], rules["latex.bibtex"]
    # the engine declares only the document: what else it reads, it says
    assert pdf.inputs == ("%.tex",)
    assert pdf.outputs == ("%.pdf", "%.aux")
    assert pdf.command == latex_command("pdflatex")
    assert (pdf.cwd, pdf.discover, pdf.max_passes) == ("{dir}", "fls", 5)
    assert bib.inputs == ("%.aux",)
    assert bib.outputs == ("%.bbl", "%.blg")
    assert bib.command == ("bibtex", "{in[0]}")       # no shell around it
    assert (bib.cwd, bib.discover, bib.depfile) == ("{dir}", "blg", None)
    assert bib.parts == {"%.aux": "bibtex"}
    # biber first: with bib = "auto" a .bcf (biblatex) takes it over bibtex;
    # its log names the .bib files it read
    assert rules["latex.biber"].inputs == ("%.bcf",)
    assert rules["latex.biber"].discover == "blg"
    # every tool's rule reads what a run wrote (planning/resolve.py)
    assert [n for n, r in rules.items() if r.on_demand] == LATEX_AUX_RULES
    for name, ins, outs in [("latex.makeindex", ("%.idx",), ("%.ind", "%.ilg")),
                            ("latex.glossaries", ("%.glo",), ("%.gls", "%.glg")),
                            ("latex.acronyms", ("%.acn",), ("%.acr", "%.alg")),
                            ("latex.nomencl", ("%.nlo",), ("%.nls",))]:
        assert (rules[name].inputs, rules[name].outputs) == (ins, outs), name
    # a machine without biber or makeglossaries still builds with the pack
    assert PACKS["latex"].tools() == ["pdflatex"]
    assert PACKS["latex"].tools(on_demand=True) == [
        "pdflatex", "biber", "bibtex", "makeindex", "makeglossaries"]


def test_latex_runs_in_the_documents_directory(tmp_path):
    rules = rules_of(tmp_path, "latex")
    pdf = bind(rules["latex.pdf"], "docs/paper")
    assert pdf.inputs == ("docs/paper.tex",)
    assert pdf.cwd == "docs"
    assert pdf.command().display == (
        "pdflatex -interaction=nonstopmode -halt-on-error -file-line-error "
        "-recorder paper.tex")
    bib = bind(rules["latex.bibtex"], "docs/paper")
    assert bib.cwd == "docs" and bib.display() == "bibtex paper.aux"
    assert bind(rules["latex.makeindex"], "docs/paper").display() == "makeindex paper.idx"
    assert bind(rules["latex.glossaries"], "docs/paper").display() == (
        "makeglossaries paper.glo")
    assert bind(rules["latex.nomencl"], "docs/paper").display() == (
        "makeindex -s nomencl.ist < paper.nlo > paper.nls")


@pytest.mark.parametrize("engine", ["pdflatex", "lualatex", "xelatex"])
def test_latex_engine_setting(tmp_path, engine):
    rules = rules_of(tmp_path, "latex", f'engine = "{engine}"')
    assert rules["latex.pdf"].command == latex_command(engine)
    assert PACKS["latex"].tools({"engine": engine}) == [engine]


@pytest.mark.parametrize("settings, left_out", [
    ('bib = "bibtex"', ["latex.biber"]),
    ('bib = "biber"', ["latex.bibtex"]),
    ('bib = "none"\nengine = "xelatex"', ["latex.biber", "latex.bibtex"]),
    ('index = "none"', ["latex.makeindex"]),
])
def test_latex_bib_and_index_settings_leave_rules_out(tmp_path, settings, left_out):
    rules = rules_of(tmp_path, "latex", settings)
    assert list(rules) == ["latex.pdf", *(r for r in LATEX_AUX_RULES if r not in left_out)]
    assert rules["latex.pdf"].inputs == ("%.tex",)


def test_latex_index_by_xindy(tmp_path):
    rules = rules_of(tmp_path, "latex", 'index = "xindy"')
    assert "latex.makeindex" not in rules
    xindy = rules["latex.xindy"]
    assert (xindy.inputs, xindy.outputs) == (("%.idx",), ("%.ind",))
    assert bind(xindy, "paper").display() == "texindy paper.idx"


# --- c ------------------------------------------------------------------------

def test_c_compile_with_and_without_cflags(tmp_path):
    plain = rules_of(tmp_path, "c")["c.compile"]
    assert (plain.inputs, plain.outputs) == (("%.c",), ("%.o", "%.d"))
    assert plain.depfile == "%.d"
    # an empty setting takes its space with it
    assert plain.command == "cc -MD -MF {out[1]} -c {in[0]} -o {out[0]}"
    flags = rules_of(tmp_path, "c", 'cflags = "-O2 -Wall"')["c.compile"]
    assert flags.command == ("cc -O2 -Wall -MD -MF {out[1]} -c {in[0]} "
                             "-o {out[0]}")
    assert bind(flags, "src/util").command().display == (
        "cc -O2 -Wall -MD -MF src/util.d -c src/util.c -o src/util.o")


def test_a_setting_value_with_braces_stays_text(tmp_path):
    rule = rules_of(tmp_path, "c", 'cflags = "-DX={1}"')["c.compile"]
    assert rule.command.startswith("cc -DX={{1}} -MD")
    assert "-DX={1} -MD" in bind(rule, "a").command().display


def test_an_argv_item_that_is_only_an_empty_setting_is_dropped():
    pack = load_pack("t", textwrap.dedent("""
        [settings.flags]
        default = ""
        [[rule]]
        name = "t.x"
        tools = ["tool"]
        outputs = ["%.x"]
        command = ["tool", "{flags}", "{{literal}}", "{in}"]
        """), "t.toml")
    assert pack.rule_tables()[0]["command"] == ["tool", "{{literal}}", "{in}"]
    assert pack.rule_tables({"flags": "-v"})[0]["command"] == [
        "tool", "-v", "{{literal}}", "{in}"]


# --- settings errors in computepods.toml --------------------------------------

def test_unknown_pack_in_use(tmp_path):
    fails(tmp_path, '[project]\nuse = ["tex"]', "project.use", "'tex'",
          "known packs: c, latex")


def test_a_pack_used_twice(tmp_path):
    fails(tmp_path, '[project]\nuse = ["c", "c"]', "project.use", "twice")


def test_settings_for_an_unknown_pack(tmp_path):
    fails(tmp_path, '[project]\nuse = ["latex"]\n[pack.tex]\nengine = "x"',
          "pack.tex", "unknown pack 'tex'", "known packs: c, latex")


def test_settings_for_a_pack_not_in_use(tmp_path):
    fails(tmp_path, '[project]\nuse = ["c"]\n[pack.latex]\nbib = "none"',
          "pack.latex", "project.use does not list")


def test_unknown_setting(tmp_path):
    fails(tmp_path, '[project]\nuse = ["latex"]\n[pack.latex]\nengin = "x"',
          "pack.latex.engin", "unknown key", "bib, engine")


@pytest.mark.parametrize("key, value, words", [
    ("engine", '"luatex"', ("pdflatex, lualatex, xelatex", "'luatex'")),
    ("bib", '"biblatex"', ("bibtex, biber, none", "'biblatex'")),
    ("engine", "3", ("must be a string",)),
])
def test_bad_setting_value_lists_the_choices(tmp_path, key, value, words):
    fails(tmp_path, f'[project]\nuse = ["latex"]\n[pack.latex]\n{key} = '
          f'{value}', f"pack.latex.{key}", *words)


def test_pack_tables_must_be_tables(tmp_path):
    fails(tmp_path, '[project]\nuse = ["c"]\n[pack]\nc = "-O2"', "pack.c",
          "must be a table")
    fails(tmp_path, 'pack = 3\n[project]\nuse = ["c"]', "pack",
          "must be a table")


def test_the_project_keeps_every_used_packs_settings(tmp_path):
    project = load(tmp_path, '[project]\nuse = ["latex", "c"]\n'
                   '[pack.latex]\nbib = "none"')
    assert project.packs == {"latex": {"engine": "pdflatex", "bib": "none",
                                       "index": "makeindex"},
                             "c": {"cflags": "", "ldflags": "", "libs": "",
                                   "archives": {}, "programs": {},
                                   "flags": {}}}
    assert load(tmp_path, "[project]\n").packs == {}


def test_settings_checked_outside_a_project_too():
    with pytest.raises(ValueError, match="engine"):
        rule_tables("latex", {"engine": "tex"})
    with pytest.raises(ValueError, match="unknown pack 'tex'"):
        missing_tools("tex")


# --- pack files that are wrong (a bug in computepods, caught here) ------------

RULE = '[[rule]]\nname = "t.x"\ntools = ["t"]\noutputs = ["x"]\ncommand = "t"\n'


@pytest.mark.parametrize("text, words", [
    ("version = 1\n" + RULE, "unknown key 'version'"),
    ("", r"needs \[\[rule\]\]"),
    (RULE.replace('tools = ["t"]\n', ""), "tools"),
    ('[settings.s]\ndefault = "a"\nchoices = ["b"]\n' + RULE,
     "not one of its choices"),
    ('[settings.in]\ndefault = ""\n' + RULE, "setting name"),
    ('[settings.s]\ndefault = "a"\nchoices = ["a"]\n'
     + RULE + 'when = { s = "z" }\n', "when.s"),
    (RULE + "when = { nope = \"a\" }\n", "when.nope"),
    ("[settings.s]\nchoices = []\n" + RULE, "default must be a string"),
    ("this is not toml", "TOML syntax error"),
])
def test_malformed_pack_files(text, words):
    with pytest.raises(PackFileError, match=words) as info:
        load_pack("t", text, "t.toml")
    assert "t.toml" in str(info.value)


# --- which tools a chef has ---------------------------------------------------

def fake_path(monkeypatch, tmp_path: Path, *tools: str) -> None:
    """PATH is one directory holding do-nothing executables named ``tools``."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for tool in tools:
        exe = bin_dir / tool
        exe.write_text("#!/bin/sh\nexit 0\n")
        exe.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))


def test_with_an_empty_path_every_tool_is_missing(monkeypatch, tmp_path):
    fake_path(monkeypatch, tmp_path)
    assert available_packs() == {"c": ["cc"], "latex": ["pdflatex"]}
    assert missing_tools("latex", {"engine": "lualatex", "bib": "biber"}) == ["lualatex"]


def test_a_pack_is_available_when_its_tools_are_on_path(monkeypatch,
                                                        tmp_path):
    """The tools of on_demand rules are not asked for: a document that
    needs one fails when it does (`command not found`)."""
    fake_path(monkeypatch, tmp_path, "pdflatex")
    assert available_packs() == {"c": ["cc"], "latex": []}
    assert missing_tools("latex", {"bib": "none"}) == []
    assert missing_tools("latex", {"engine": "xelatex"}) == ["xelatex"]
    # a project's own settings, as Project.packs holds them
    assert available_packs({"latex": {"engine": "lualatex"}}) == {
        "c": ["cc"], "latex": ["lualatex"]}


# --- the examples -------------------------------------------------------------

def resolve_example(name: str):
    root = EXAMPLES / name
    project = load_project(root)
    plan = RuleSet(project).resolve(target_paths(project, [], root),
                                    lambda path: (root / path).exists())
    return project, plan


def test_example_paper_needs_no_rule_of_its_own():
    project, plan = resolve_example("paper")
    assert project.default == ("paper.pdf",) and project.use == ("latex",)
    assert all(rule.pack == "latex" for rule in project.rules)
    # bibtex joins once the first run looked for paper.bbl (planning/needs.py)
    assert sorted(plan.steps) == ["latex.pdf:paper.pdf"]
    assert plan.producers["paper.aux"] == "latex.pdf:paper.pdf"
    assert plan.sources == {"paper.tex"}   # chapters and refs.bib: discovered


def test_example_c_compiles_with_the_pack_and_links_itself():
    project, plan = resolve_example("c")
    assert project.packs["c"]["cflags"] == "-O2 -Wall"
    assert sorted(plan.steps) == ["c.compile:src/main.o",
                                  "c.compile:src/util.o", "link:bin/hello"]
    assert plan.sources == {"src/main.c", "src/util.c"}
    assert (EXAMPLES / "c/src/util.h").is_file()   # found by the depfile


def test_example_cycle_is_one_group_of_two_rules():
    project, plan = resolve_example("cycle")
    assert project.use == ()
    assert sorted(plan.steps) == ["contents:doc.toc", "typeset:doc.out"]
    assert plan.producers["doc.toc"] == "contents:doc.toc"
    assert plan.producers["doc.headings"] == "typeset:doc.out"
    assert plan.sources == {"doc.src", "tools/typeset.py",
                            "tools/contents.py"}


def digests(folder: Path, names) -> dict[str, str]:
    return {n: hashlib.sha256((folder / n).read_bytes()).hexdigest()
            for n in names if (folder / n).exists()}


def test_example_cycle_settles_in_the_third_pass(tmp_path):
    """What the comment in examples/cycle/computepods.toml promises."""
    work = tmp_path / "cycle"
    shutil.copytree(EXAMPLES / "cycle", work, ignore=shutil.ignore_patterns(
        ".computepods", "doc.out", "doc.headings", "doc.toc"))
    circulating = ("doc.headings", "doc.toc")
    after = []
    for _ in range(3):
        for script, args in (("typeset", "doc.src doc.toc doc.out "
                              "doc.headings"), ("contents", "doc.headings "
                                                "doc.toc")):
            subprocess.run([sys.executable, f"tools/{script}.py",
                            *args.split()], cwd=work, check=True,
                           capture_output=True)
        after.append(digests(work, circulating))
    assert after[0] != after[1]          # pass 2: the contents moved pages
    assert after[1] == after[2]          # pass 3: nothing going round changed
    assert "2. How it converges ........... 2" in (work / "doc.out").read_text()


def test_the_latex_pack_builds_the_paper_example_in_a_subdirectory(tmp_path):
    """The pack's commands, run by hand as the cycle would: latex, bibtex,
    latex, latex, each in the document's directory."""
    shutil.copytree(EXAMPLES / "paper", tmp_path / "docs",
                    ignore=shutil.ignore_patterns(
                        ".computepods", "*.pdf", "*.aux", "*.bbl*", "*.toc",
                        "*.log", "*.fls", "*.blg"))
    rules = {r.name: r for r in load(tmp_path, '[project]\nuse = ["latex"]').rules}
    latex = bind(rules["latex.pdf"], "docs/paper")
    bibtex = bind(rules["latex.bibtex"], "docs/paper")
    docs = tmp_path / "docs"
    circulating = ("paper.aux", "paper.bbl", "paper.toc")
    after = []
    for step in (latex, bibtex, latex, latex):
        run = subprocess.run(step.command().argv, cwd=tmp_path / step.cwd,
                             capture_output=True, text=True)
        assert run.returncode == 0, run.stdout[-2000:]
        after.append(digests(docs, circulating))
    assert after[1]["paper.bbl"]                 # bibtex wrote it
    assert after[2] != after[1]                  # the \bibcite lines came
    assert after[3] == after[2]                  # the third latex run settles
    assert "Database file #1: refs.bib" in (docs / "paper.blg").read_text()
    assert (docs / "paper.pdf").stat().st_size > 0
    assert "INPUT chapters/intro.tex" in (docs / "paper.fls").read_text()
