"""Filling a pack's settings into its rule tables: ``{cflags}`` in any string.

Plain text substitution before the rules reach the ordinary checks, so what
comes out is a plain rule.  ``{in}``, ``{out}`` and the other command
placeholders are not settings and are left for
:mod:`computepods.planning.commands`.
"""
from __future__ import annotations

import re
from typing import Any, Mapping

# Keys whose strings are command templates: a setting's value goes in with
# its braces doubled, so "-DX={1}" stays text instead of a placeholder.
TEMPLATE_KEYS = frozenset({"command", "cwd"})
# "{{" and "}}" are literal braces and are kept; " {name}" keeps the space
# before it so that an empty value can take it away ("cc {cflags} -c").
TOKEN = re.compile(r"\{\{|\}\}|( ?)\{([a-z][a-z0-9_]*)\}")


def fill_table(value: Any, settings: Mapping[str, str],
               escape: bool = False) -> Any:
    """A copy of a rule table with ``{setting}`` replaced in every string."""
    if isinstance(value, str):
        return fill(value, settings, escape)
    if isinstance(value, list):
        items = [fill_table(v, settings, escape) for v in value]
        # An argv item that was only an empty setting is dropped, not "".
        return [item for item, v in zip(items, value)
                if item or not isinstance(v, str) or not TOKEN.fullmatch(v)]
    if isinstance(value, dict):
        return {k: fill_table(v, settings, escape or k in TEMPLATE_KEYS)
                for k, v in value.items()}
    return value


def fill(text: str, settings: Mapping[str, str], escape: bool) -> str:
    """``text`` with each ``{setting}`` of ``settings`` replaced (braces in
    the value doubled when ``escape``: the text is a command template)."""
    def replace(m: re.Match) -> str:
        space, name = m.group(1), m.group(2)
        if name is None or name not in settings:
            return m.group(0)
        value = settings[name]
        if escape:
            value = value.replace("{", "{{").replace("}", "}}")
        return space + value if value else ""
    return TOKEN.sub(replace, text)


def placeholders(value: Any, inputs: bool = False):
    """(the ``{name}`` token, its whole string, whether that string is an
    item of ``inputs``) for every setting-like token in a rule table."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from placeholders(item, key == "inputs")
    elif isinstance(value, list):
        for item in value:
            yield from placeholders(item, inputs)
    elif isinstance(value, str):
        for m in TOKEN.finditer(value):
            if m.group(2):
                yield m.group(2), value, inputs
