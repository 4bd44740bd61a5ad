"""The command template language: literal text, ``{name}``, ``{name[N]}``.

``{{`` and ``}}`` are literal braces.  The project loader parses every
template at load time, so a bad placeholder fails before anything runs;
:mod:`computepods.planning.commands` expands them.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass

PLACEHOLDERS = ("in", "out", "stem", "dir", "scratch")
INDEXED_PLACEHOLDERS = ("in", "out")
_TEMPLATE_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
_PLACEHOLDER = re.compile(r"(in|out|stem|dir|scratch)(?:\[(\d+)\])?")


@dataclass(frozen=True)
class Placeholder:
    """One ``{name}`` or ``{name[index]}`` in a command template."""
    name: str
    index: int | None = None

    def __str__(self) -> str:
        return "{%s}" % (self.name if self.index is None
                         else f"{self.name}[{self.index}]")


TemplatePart = str | Placeholder


class TemplateError(ValueError):
    """A malformed template; turned into a ProjectError by the caller."""


@functools.lru_cache(maxsize=4096)
def parse_template(text: str) -> tuple[TemplatePart, ...]:
    """Split a template into literal text and placeholders; ``{{`` is ``{``.

    Cached because every step of a rule expands the same few templates.
    """
    parts: list[TemplatePart] = []
    literal: list[str] = []
    pos = 0
    for m in _TEMPLATE_TOKEN.finditer(text):
        literal.append(text[pos:m.start()])
        pos = m.end()
        token = m.group(0)
        if token in ("{{", "}}"):
            literal.append(token[0])
        elif m.group(1) is None:
            raise TemplateError(
                f"unmatched {token!r} at column {m.start() + 1}; "
                f"write {token * 2!r} for a literal brace")
        else:
            if any(literal):
                parts.append("".join(literal))
            literal = []
            parts.append(_placeholder(token, m.group(1)))
    literal.append(text[pos:])
    if any(literal):
        parts.append("".join(literal))
    return tuple(parts)


def _placeholder(token: str, inner: str) -> Placeholder:
    m = _PLACEHOLDER.fullmatch(inner)
    if m is None:
        known = ", ".join("{%s}" % p for p in PLACEHOLDERS)
        raise TemplateError(f"undefined placeholder {token}; known: {known} "
                            "and {in[N]}, {out[N]}; write {{ and }} for "
                            "literal braces")
    name, index = m.group(1), m.group(2)
    if index is not None and name not in INDEXED_PLACEHOLDERS:
        raise TemplateError(f"{token}: only {{in}} and {{out}} take an index")
    return Placeholder(name, None if index is None else int(index))


@functools.lru_cache(maxsize=4096)
def used_placeholders(template: str | tuple[str, ...]) -> frozenset[str]:
    """The names of the placeholders a string or argv template uses."""
    texts = (template,) if isinstance(template, str) else template
    return frozenset(part.name for text in texts for part in parse_template(text)
                     if isinstance(part, Placeholder))
