"""A pack's per-target settings, and the rules made once per target.

A setting of ``type = "lists"`` is a table of targets, each with a list of
paths (``[pack.c.programs] "bin/app" = ["src/main.o", "lib/libutil.a"]``);
one of ``type = "texts"`` a table of targets, each with a string
(``[pack.c.flags] "src/foo.c" = "-O0"``).  A pack rule with ``each =
"programs"`` is made once per entry of that table, as a plain explicit rule:

* the entry's target must match the rule's ``key`` pattern (default
  ``"%"``, any path), and the stem it binds replaces the ``%`` of the
  rule's inputs, outputs and depfile;
* ``{programs}`` alone as an item of ``inputs`` becomes the entry's list,
  in its order (link order matters); ``{flags}`` in any string becomes the
  entry's text, as a text setting would;
* its name is the rule's, a dot and the stem, with each character a rule
  name cannot hold (``/`` first) turned to ``_``: ``c.program.bin_app``,
  so every target has a step id and a record of its own.

An explicit rule beats a pattern rule
(:mod:`computepods.planning.resolve`), so an ``each`` rule with the outputs
of a pattern rule overrides it for one file: that is how ``[pack.c.flags]``
compiles ``src/foo.c`` with flags of its own.
"""
from __future__ import annotations

import re
from typing import Any, Mapping, Sequence

from computepods.project import stems
from computepods.project.packs.fill import fill_table, placeholders

# A setting's type: a string, or a table of targets to strings or to lists.
TEXT, TEXTS, LISTS = "text", "texts", "lists"
SETTING_TYPES = (TEXT, TEXTS, LISTS)
# What a rule name cannot hold, in the stem that names an `each` rule.
_NOT_IN_NAME = re.compile(r"[^A-Za-z0-9_.-]")


def entry_name(rule: str, stem: str) -> str:
    """The name of ``rule`` made for the entry whose stem is ``stem``."""
    return f"{rule}.{_NOT_IN_NAME.sub('_', stem)}"


def table_problem(pack: str, setting: str, kind: str, keys: Sequence[str],
                  value: Any) -> str | None:
    """Why ``value`` is not a table of targets for the setting, or None.

    ``keys``: the key patterns of the rules made from it; each target must
    match them all, and no two targets may give one rule name.
    """
    wanted = "an array of paths" if kind == LISTS else "a string"
    if not isinstance(value, dict):
        return (f"must be a table of targets, each = {wanted}: write "
                f"[pack.{pack}.{setting}] and a line \"TARGET\" = ...")
    named: dict[str, str] = {}
    for target, item in value.items():
        where = f"target {target!r}"
        if (not target.strip() or target.startswith("/") or "\0" in target
                or ".." in target.split("/") or stems.STEM in target):
            return (f"{where}: a target is a relative path inside the "
                    "project, without '..' or '%'")
        found = [stems.match(key, target) for key in keys]
        if None in found:
            return f"{where} must match {keys[found.index(None)]!r}"
        if kind == LISTS:
            if (not isinstance(item, list) or not item or not all(
                    isinstance(i, str) and i.strip() for i in item)):
                return f"{where} must be {wanted}, got {item!r}"
        elif not isinstance(item, str):
            return f"{where} must be {wanted}, got {item!r}"
        for stem in found:
            other = named.setdefault(entry_name("", stem), target)
            if other != target:
                return (f"targets {other!r} and {target!r} would give two "
                        "rules one name; rename one")
    return None


def entry_table(plain: dict[str, Any], key: str, each: str, target: str,
                value: str | list[str], text: Mapping[str, str],
                ) -> dict[str, Any]:
    """The explicit rule table an ``each`` rule makes for one entry."""
    stem = stems.match(key, target)
    assert stem is not None        # checked with the setting (table_problem)
    table = fill_table(plain, dict(text, **({each: value}
                                            if isinstance(value, str) else {})))
    table["name"] = entry_name(table["name"], stem)

    def bound(pattern: str) -> str:       # still a path as written: '%%' kept
        if not stems.has_stem(pattern):
            return pattern
        return stems.substitute(pattern, stem).replace(stems.STEM, stems.ESCAPED)

    whole = "{%s}" % each
    for field in ("inputs", "outputs"):
        if field in table:
            table[field] = [bound(p) for item in table[field] for p in (
                [i.replace(stems.STEM, stems.ESCAPED) for i in value]
                if item == whole and isinstance(value, list) else [item])]
    if "depfile" in table:
        table["depfile"] = bound(table["depfile"])
    return table


def placeholder_problem(rule: Mapping[str, Any], kinds: Mapping[str, str],
                        each: str | None) -> str | None:
    """Why a pack rule's use of a per-target setting is wrong, or None.

    ``kinds``: setting name -> type.  Only the ``each`` rule of a table may
    name it, and a list only as a whole item of ``inputs``.
    """
    for name, text, in_inputs in placeholders(rule):
        kind = kinds.get(name, TEXT)
        if kind == TEXT:
            continue
        if each != name:
            return f"{{{name}}} is a table of targets: only its each rule may use it"
        if kind == LISTS and not (in_inputs and text == "{%s}" % name):
            return f"{{{name}}} is a list: it may only be a whole item of inputs"
    return None
