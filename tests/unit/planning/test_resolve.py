"""computepods.planning.resolve: matching, binding and resolution."""
from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from computepods import errors
from computepods.paths import PROJECT_FILE
from computepods.planning.resolve import Plan, RuleSet, Step, bind, pattern_stem
from computepods.project.model import Project, Rule
from computepods.project.targets import target_paths
from projects import C_PROJECT, load, ruleset


LATEX_PROJECT = """
[[rule]]
name = "latex"
inputs = ["%.tex", "%.bbl"]
outputs = ["%.pdf", "%.aux"]
command = "pdflatex -interaction=nonstopmode {in[0]}"
discover = "fls"

[[rule]]
name = "bibtex"
inputs = ["%.aux"]
outputs = ["%.bbl"]
command = "bibtex {stem}"
"""


def on_disk(*paths: str):
    """An `exists` that sees exactly ``paths``."""
    return set(paths).__contains__


# --- matching -----------------------------------------------------------------

def test_pattern_stem():
    assert pattern_stem("build/%.o", "build/a/b.o") == "a/b"
    assert pattern_stem("%.o", "build/x.o") == "build/x"
    assert pattern_stem("build/%.o", "build/.o") is None      # stem non-empty
    assert pattern_stem("build/%.o", "src/x.o") is None
    assert pattern_stem("a%a", "a") is None                     # no overlap
    assert pattern_stem("bin/app", "bin/app") is None           # not a pattern


def test_explicit_beats_pattern_and_stems_hold_slashes(tmp_path):
    rules = ruleset(tmp_path, C_PROJECT)
    rule, stem = rules.match("build/lib/x.o")
    assert (rule.name, stem) == ("compile", "lib/x")
    rule, stem = rules.match("build/special.o")
    assert (rule.name, stem) == ("special", None)
    assert rules.match("src/main.c") is None
    assert rules.match("./build//main.o")[1] == "main"          # normalized


def test_a_step_binds_inputs_outputs_and_depfile(tmp_path):
    step = ruleset(tmp_path, C_PROJECT).step_for("build/lib/x.o.d")
    assert step == Step(id="compile:build/lib/x.o", rule=step.rule,
                        stem="lib/x", inputs=("src/lib/x.c",),
                        outputs=("build/lib/x.o", "build/lib/x.o.d"),
                        depfile="build/lib/x.o.d")
    assert step.timeout == 600.0 and step.cwd == ""


def test_two_pattern_rules_matching_is_an_error_naming_both(tmp_path):
    rules = ruleset(tmp_path, """
        [[rule]]
        name = "cc"
        inputs = ["%.c"]
        outputs = ["%.o"]
        command = "cc -c {in} -o {out}"

        [[rule]]
        name = "as"
        inputs = ["%.s"]
        outputs = ["%.o"]
        command = "as {in} -o {out}"
        """)
    with pytest.raises(errors.ProjectError) as info:
        rules.match("x.o")
    message = str(info.value)
    for part in (str(tmp_path / PROJECT_FILE), "'x.o'", "'cc'", "'as'",
                 "key 'outputs'"):
        assert part in message
    # Knowing what exists settles it, as in make: only x.s is there.
    assert rules.match("x.o", on_disk("x.s"))[0].name == "as"
    with pytest.raises(errors.ProjectError, match="'cc' and 'as'"):
        rules.match("x.o", on_disk("x.s", "x.c"))


def test_a_pattern_rule_that_cannot_work_here_is_passed_over(tmp_path):
    # With use = ["c"], the pack's %.o rule also matches build/x.o, but
    # build/x.c exists nowhere and no rule makes it.
    rules = ruleset(tmp_path, '[project]\nuse = ["c"]\n' + C_PROJECT)
    exists = on_disk("src/x.c")
    assert rules.match("build/x.o", exists) == (rules.project.rules[0], "x")
    assert rules.match("x.o", on_disk("x.c"))[0].pack == "c"


def test_an_existing_file_no_rule_can_remake_is_a_source(tmp_path):
    # A figure PDF in a LaTeX tree is not made by the %.pdf rule.
    rules = ruleset(tmp_path, LATEX_PROJECT)
    assert rules.match("fig.pdf", on_disk("fig.pdf")) is None
    assert rules.step_for("fig.pdf", on_disk("fig.pdf")) is None
    # Without knowing the disk, the rule matches.
    assert rules.match("fig.pdf")[0].name == "latex"
    # A cycle back into the chain counts as makeable: paper.bbl comes from
    # paper.aux, which latex itself makes.
    assert rules.match("paper.pdf", on_disk("paper.tex", "paper.pdf"))[1] == \
        "paper"


def test_match_refuses_paths_outside_the_project(tmp_path):
    rules = ruleset(tmp_path, C_PROJECT)
    with pytest.raises(errors.PathEscapesWorkspace):
        rules.match("../build/x.o")
    with pytest.raises(errors.PathEscapesWorkspace):
        rules.match("/build/x.o")


# A path segment: no '%', no '/', not '.' or '..'.
_segment = st.text(st.sampled_from("abz09_-."), min_size=1,
                   max_size=6).filter(lambda s: s not in (".", ".."))
_relpath = st.lists(_segment, min_size=1, max_size=3).map("/".join)


@settings(derandomize=True, database=None)   # same cases on every run
@given(prefix=st.sampled_from(["", "build/", "out/x-"]),
       suffix=st.sampled_from(["", ".o", "/index.html"]), stem=_relpath)
def test_property_a_bound_output_matches_back_to_its_stem(prefix, suffix,
                                                          stem):
    rule = Rule(name="r", inputs=("src/%.c",),
                outputs=(f"{prefix}%{suffix}", f"{prefix}%{suffix}.d"),
                command="true")
    project = Project(root=Path("/p"), path=Path("/p") / PROJECT_FILE,
                      name="p", default=(), use=(), ignore=(), stream=(),
                      aliases={}, rules=(rule,), schedules=())
    rules = RuleSet(project)
    step = bind(rule, stem)
    for output in step.outputs:
        found_rule, found_stem = rules.match(output)
        assert found_rule is rule
        # With outputs "%" and "%.d", "x.d" is ambiguous; the most specific
        # pattern (shortest stem) wins, and its step does make the path.
        assert output in bind(rule, found_stem).outputs
        if suffix:
            assert found_stem == stem
    assert pattern_stem(rule.outputs[0], step.outputs[0]) == stem


@settings(derandomize=True, database=None)   # same cases on every run
@given(prefix=st.text("ab/.", max_size=4), suffix=st.text("ab/.", max_size=4),
       path=st.text("ab/.", max_size=10))
def test_property_a_stem_rebuilds_the_path(prefix, suffix, path):
    stem = pattern_stem(f"{prefix}%{suffix}", path)
    if stem is not None:
        assert stem and prefix + stem + suffix == path


# --- resolution ---------------------------------------------------------------

def test_resolve_finds_the_closure(tmp_path):
    rules = ruleset(tmp_path, C_PROJECT)
    plan = rules.resolve(["bin/app"], on_disk("src/main.c", "src/util.c"))
    assert isinstance(plan, Plan)
    assert list(plan.steps) == ["link:bin/app", "compile:build/main.o",
                                "compile:build/util.o"]
    assert plan.sources == {"src/main.c", "src/util.c"}
    assert plan.producers == {
        "bin/app": "link:bin/app",
        "build/main.o": "compile:build/main.o",
        "build/main.o.d": "compile:build/main.o",
        "build/util.o": "compile:build/util.o",
        "build/util.o.d": "compile:build/util.o"}
    assert plan.targets == ["bin/app"]


def test_a_missing_source_names_the_step_and_the_rule_that_need_it(tmp_path):
    rules = ruleset(tmp_path, C_PROJECT)
    with pytest.raises(errors.UnknownTarget) as info:
        rules.resolve(["bin/app"], on_disk("src/main.c"))
    assert str(info.value) == (
        f"'src/util.c' does not exist and no rule in {tmp_path / PROJECT_FILE} builds it; "
        "rule 'compile' needs it (input 'src/%.c') for step 'compile:build/util.o', "
        "which rule 'link' needs for step 'link:bin/app'")


def test_a_target_no_rule_builds_and_not_on_disk(tmp_path):
    rules = ruleset(tmp_path, C_PROJECT)
    with pytest.raises(errors.UnknownTarget, match="'README'"):
        rules.resolve(["README"], on_disk())
    plan = rules.resolve(["README"], on_disk("README"))
    assert plan.steps == {} and plan.sources == {"README"}


def test_a_cycle_terminates_and_produced_inputs_need_not_exist(tmp_path):
    rules = ruleset(tmp_path, LATEX_PROJECT)
    plan = rules.resolve(["paper.pdf"], on_disk("paper.tex"))
    assert list(plan.steps) == ["latex:paper.pdf", "bibtex:paper.bbl"]
    assert plan.sources == {"paper.tex"}
    assert plan.producers["paper.aux"] == "latex:paper.pdf"
    assert plan.producers["paper.bbl"] == "bibtex:paper.bbl"


def test_a_rule_feeding_itself_new_stems_ends_with_an_error(tmp_path):
    rules = ruleset(tmp_path, """
        [[rule]]
        name = "grow"
        inputs = ["%.x.x"]
        outputs = ["%.x"]
        command = "cp {in} {out}"
        """)
    with pytest.raises(errors.UnknownTarget, match="'a.x.x'.*'grow:a.x'"):
        rules.resolve(["a.x"], on_disk())
    plan = rules.resolve(["a.x"], on_disk("a.x.x"))
    assert list(plan.steps) == ["grow:a.x"]


def test_resolve_with_aliases_and_the_default(tmp_path):
    project = load(tmp_path, '[project]\ndefault = ["all"]\n'
                   '[alias]\nall = ["bin/app", "build/special.o"]\n'
                   + C_PROJECT)
    rules = RuleSet(project)
    targets = target_paths(project, [], tmp_path)
    exists = on_disk("src/main.c", "src/util.c", "src/special.c",
                     "src/special.h")
    plan = rules.resolve(targets, exists)
    assert plan.targets == ["bin/app", "build/special.o"]
    assert "special:build/special.o" in plan.steps
    assert plan.sources == {"src/main.c", "src/util.c", "src/special.c",
                            "src/special.h"}
