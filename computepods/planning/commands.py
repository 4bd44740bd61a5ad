"""Commands from templates: what a step runs, and what a person is shown.

A string without shell metacharacters runs directly (no ``sh``: it is
measurably cheaper), with the program resolved to an absolute path, and so
does one whose only metacharacter is its stdout sent to its one output
(``cat {in} > {out}``: the chef opens the file as sh would, O_TRUNC, mode
0666 less the umask); otherwise it runs under ``/bin/sh -c``.  What the command sees and what a
human sees differ only in the output paths (scratch versus project) and
``{scratch}``: the display text is the same on every run, so it can be
recorded and compared for staleness.
"""
from __future__ import annotations

import functools
import os
import re
import shlex
import shutil
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

from computepods.project.templates import Placeholder, TemplatePart, parse_template

SHELL = "/bin/sh"
# make's list: any of these in a command's own text needs a shell.
SHELL_METACHARACTERS = frozenset("|&;<>()$`\\\"'*?[]#~=%!{}\n")
# {scratch} as shown to people: the variable the chef sets (docs/architecture.md §4).
SCRATCH_SHOWN = "$CP_SCRATCH"

Values = Mapping[str, "str | Sequence[str]"]


def identity(path: str) -> str:
    return path


@dataclass(frozen=True)
class Command:
    """A command ready to exec, and the text a person is shown."""
    argv: tuple[str, ...]     # for shell commands ("/bin/sh", "-c", text)
    shell: bool
    display: str              # project paths, shell-quoted; stable across runs
    stdout: str = ""          # a file its stdout goes to (``> {out}``, no shell)


def render(parts: Sequence[TemplatePart], values: Values,
           quote: Callable[[str], str]) -> str:
    """Template to text; many paths are joined with spaces, each quoted."""
    text: list[str] = []
    for part in parts:
        if isinstance(part, str):
            text.append(part)
            continue
        value = values[part.name]
        if isinstance(value, str):
            text.append(quote(value))
        elif part.index is None:
            text.append(" ".join(quote(v) for v in value))
        else:
            text.append(quote(value[part.index]))
    return "".join(text)


def quote_shown(text: str) -> str:
    """shlex.quote, but leave ``$CP_SCRATCH`` readable (and expandable)."""
    if SCRATCH_SHOWN not in text:
        return shlex.quote(text) if text else ""
    return SCRATCH_SHOWN.join(shlex.quote(piece) if piece else ""
                              for piece in text.split(SCRATCH_SHOWN))


@functools.lru_cache(maxsize=4096)
def needs_shell(template: str) -> bool:
    """Whether a string command's own text (not its paths) needs a shell."""
    return any(ch in SHELL_METACHARACTERS
               for part in parse_template(template) if isinstance(part, str)
               for ch in part)


@functools.lru_cache(maxsize=4096)
def _split_template(template: str) -> tuple[str, ...] | None:
    """A shell-free command template split into argv items once, so a step
    costs a substitution, not a shlex pass (shlex was the largest cost of
    dispatching 1,000 small steps).  None when an item embeds a multi-path
    placeholder ({in} inside a larger word): those keep the text path."""
    items = tuple(shlex.split(template))
    for item in items:
        parts = parse_template(item)
        if len(parts) > 1 and any(isinstance(p, Placeholder) and p.index is None
                                  and p.name in ("in", "out") for p in parts):
            return None
    return items


def string_command(template: str, run: Values, shown: Values) -> Command:
    """A string template as a Command: run directly unless its text needs a shell."""
    parts = parse_template(template)
    display = render(parts, shown, quote_shown)
    argv, stdout = (_redirected(template, run) if needs_shell(template)
                    else (_direct_argv(template, run), ""))
    if not argv:
        return Command((SHELL, "-c", render(parts, run, shlex.quote)), True, display)
    return Command(absolute_program(argv), False, display, stdout)


def _direct_argv(template: str, run: Values) -> tuple[str, ...]:
    """The argv of a shell-free template (empty if it has none)."""
    items = _split_template(template)
    if items is not None:
        return expand_argv(items, run)
    return tuple(shlex.split(render(parse_template(template), run, shlex.quote)))


@functools.lru_cache(maxsize=4096)
def _stdout_redirect(template: str) -> tuple[str, Placeholder] | None:
    """``(command, {out} placeholder)`` of a template that is a shell-free
    command with its stdout sent to an output (``cat {in} > {out}``), else
    None (``>>``, ``2>``, ``&>``, ``>|`` and anything else keep the shell)."""
    head, sep, tail = template.rpartition(">")
    target = parse_template(tail.strip()) if sep else ()
    if (len(target) != 1 or not isinstance(target[0], Placeholder) or target[0].name != "out"
            or not head.strip() or head.endswith((">", "&")) or _IO_NUMBER.search(head)
            or needs_shell(head)):
        return None
    return head.strip(), target[0]


_IO_NUMBER = re.compile(r"(?:^|\s)\d+$")    # "2>": a descriptor's number, not a word


def _redirected(template: str, run: Values) -> tuple[tuple[str, ...], str]:
    """The argv and stdout file of ``prog args > {out}``, run without a
    shell; ``((), "")`` when the template needs one."""
    redirect = _stdout_redirect(template)
    if redirect is None:
        return (), ""
    head, target = redirect
    value = run[target.name]
    if not isinstance(value, str):
        if target.index is None and len(value) != 1:
            return (), ""                   # {out} of several files: sh says so
        value = value[target.index or 0]
    return _direct_argv(head, run), value


def argv_command(template: Sequence[str], run: Values,
                 shown: Values) -> Command:
    """An argv template as a Command: never a shell."""
    argv = expand_argv(template, run)
    display = " ".join(quote_shown(a) for a in expand_argv(template, shown))
    return Command(absolute_program(argv), False, display)


def expand_argv(template: Sequence[str], values: Values) -> tuple[str, ...]:
    """A whole-item ``{in}``/``{out}`` gives one item per path."""
    argv: list[str] = []
    for item in template:
        parts = parse_template(item)
        if (len(parts) == 1 and isinstance(parts[0], Placeholder)
                and parts[0].index is None
                and not isinstance(values[parts[0].name], str)):
            argv.extend(values[parts[0].name])
        else:
            argv.append(render(parts, values, identity))
    return tuple(argv)


_programs: dict[tuple[str, str | None], str] = {}


def absolute_program(argv: tuple[str, ...]) -> tuple[str, ...]:
    """argv with its program found on PATH now, so exec needs no search.

    Only successful look-ups are remembered: a tool installed later is then
    found on the next step.  Not found: left as is, for the chef to report.
    """
    program = argv[0]
    if "/" in program:
        return argv
    key = (program, os.environ.get("PATH"))
    found = _programs.get(key)
    if found is None:
        found = shutil.which(program, path=key[1])
        if found is None:
            return argv
        _programs[key] = found
    return (found, *argv[1:])
