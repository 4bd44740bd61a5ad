"""computepods.project.model: the records a project file becomes."""
from __future__ import annotations

from computepods.project.model import DEFAULT_MAX_PASSES, Rule


def rule(**kw) -> Rule:
    fields = dict(name="r", inputs=("src/%.c",), outputs=("build/%.o",), command="cc {in}")
    fields.update(kw)
    return Rule(**fields)


def test_a_rule_with_a_percent_output_is_a_pattern_rule():
    assert rule().is_pattern
    assert not rule(inputs=("a.c",), outputs=("a.o",)).is_pattern


def test_rules_with_parts_are_hashable_and_equal_by_their_other_fields():
    a = rule(parts={"%.bbl": "bibliography"})
    b = rule(parts={"%.bbl": "bibliography"})
    assert a == b and hash(a) == hash(b)
    assert len({a, b, rule(name="other")}) == 2


def test_defaults():
    r = rule()
    assert r.max_passes == DEFAULT_MAX_PASSES
    assert (r.depfile, r.discover, r.timeout, r.cwd, r.pack) == (None, None, None, None, None)
