"""Rules at work: goal-directed matching, binding, command expansion, plans.

Matching is make's: to build X, find the rule whose output pattern matches X
and bind ``%`` to the rest (the stem, ``/`` included).  An explicit rule
beats a pattern rule.  When the caller says which files exist, a pattern rule
whose inputs can be neither found nor made is passed over, as make does:
otherwise the ``latex`` pack's ``%.pdf`` rule would claim every figure PDF
in the tree and then fail for want of ``figure.tex``.  The same rule never
applies twice in one chain with different stems (``%.x`` from ``%.x.x``
would recurse forever); with the same stem it is a cycle, which is allowed.

Commands are expanded here too.  A string without shell metacharacters runs
directly (no ``sh``: it is measurably cheaper), with the program resolved to
an absolute path; otherwise it runs under ``/bin/sh -c``.  What the command
sees and what a human sees differ only in the output paths (scratch versus
project) and ``{scratch}``: the display text is the same on every run, so
it can be recorded and compared for staleness.  The template syntax lives
here too, and project.py uses it to reject bad templates at load time.
"""
from __future__ import annotations

import functools
import os
import posixpath
import re
import shlex
import shutil
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from computepods import errors
from computepods.errors import ProjectError

if TYPE_CHECKING:   # project.py imports this module to check templates
    from computepods.project.model import Project, Rule

SHELL = "/bin/sh"
# make's list: any of these in a command's own text needs a shell.
SHELL_METACHARACTERS = frozenset("|&;<>()$`\\\"'*?[]#~=%!{}\n")
# {scratch} as shown to people: the variable the chef sets (docs/architecture.md §4).
SCRATCH_SHOWN = "$CP_SCRATCH"

PathMap = Callable[[str], str]
Exists = Callable[[str], bool]
Values = Mapping[str, "str | Sequence[str]"]
# (rule name, stem) pairs already used on the way to the current path.
Chain = frozenset[tuple[str, "str | None"]]


# --- command templates --------------------------------------------------------

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


# --- steps --------------------------------------------------------------------

def _identity(path: str) -> str:
    return path


@dataclass(frozen=True)
class Command:
    """A command ready to exec, and the text a person is shown."""
    argv: tuple[str, ...]     # for shell commands ("/bin/sh", "-c", text)
    shell: bool
    display: str              # project paths, shell-quoted; stable across runs


@dataclass(frozen=True)
class Step:
    """A rule bound to one stem: concrete inputs, outputs and command."""
    id: str                   # f"{rule.name}:{outputs[0]}"
    rule: Rule
    stem: str | None
    inputs: tuple[str, ...]   # project-relative
    outputs: tuple[str, ...]
    depfile: str | None

    def command(self, out_path: PathMap = _identity, scratch: str = "",
                dir_path: PathMap = _identity) -> Command:
        """Expand the rule's command for this step.

        ``out_path`` maps each output to where the command must write it (its
        scratch path); ``dir_path`` maps ``{dir}``, for tools told to write
        next to their inputs (``-output-directory {dir}``).  Relative results
        are taken as project paths.  When the rule sets ``cwd``, relative
        paths are given relative to it, so ``cwd = "{dir}"`` with ``{in}``
        works.  The display always uses project paths.
        """
        cwd = self.cwd
        used = _used_placeholders(self.rule.command)
        run = self._values(out_path, scratch, dir_path, cwd, used)
        shown = self._values(_identity, SCRATCH_SHOWN, _identity, cwd, used)
        if isinstance(self.rule.command, str):
            return _string_command(self.rule.command, run, shown)
        return _argv_command(self.rule.command, run, shown)

    def display(self) -> str:
        """The command as a person sees it (and as it is recorded), without
        expanding what it would run: the staleness check needs only this."""
        shown = self._values(_identity, SCRATCH_SHOWN, _identity, self.cwd,
                             _used_placeholders(self.rule.command))
        if isinstance(self.rule.command, str):
            return _render(parse_template(self.rule.command), shown, _quote_shown)
        return " ".join(_quote_shown(a) for a in _expand_argv(self.rule.command, shown))

    @property
    def dir(self) -> str:
        """The first input's directory ("." if none): what ``{dir}`` means."""
        if not self.inputs:
            return "."
        return posixpath.dirname(self.inputs[0]) or "."

    @property
    def cwd(self) -> str:
        """The bound working directory, project-relative ("" = the root)."""
        if self.rule.cwd is None:
            return ""
        values = {"dir": self.dir, "stem": self.stem or ""}
        text = posixpath.normpath(_render(parse_template(self.rule.cwd),
                                          values, _identity))
        if text.startswith("/") or text == ".." or text.startswith("../"):
            raise errors.PathEscapesWorkspace(
                f"step {self.id!r}: cwd {self.rule.cwd!r} becomes {text!r}, "
                "outside the project")
        return "" if text == "." else text

    @property
    def timeout(self) -> float | None:
        """Seconds the step may run; None means no limit."""
        return self.rule.timeout

    def _values(self, out_path: PathMap, scratch: str, dir_path: PathMap,
                cwd: str, used: frozenset[str]) -> dict[str, str | list[str]]:
        """The values of the placeholders the template uses (only those:
        ``out_path`` makes scratch directories)."""
        seen = functools.partial(_seen_from, cwd) if cwd else _identity
        values: dict[str, str | list[str]] = {}
        if "in" in used:
            values["in"] = [seen(p) for p in self.inputs] if cwd else list(self.inputs)
        if "out" in used:
            values["out"] = [seen(out_path(p)) for p in self.outputs]
        if "stem" in used:
            values["stem"] = self.stem or ""
        if "dir" in used:
            values["dir"] = seen(dir_path(self.dir))
        if "scratch" in used:
            values["scratch"] = scratch if scratch == SCRATCH_SHOWN else seen(scratch)
        return values


@functools.lru_cache(maxsize=4096)
def _used_placeholders(template: str | tuple[str, ...]) -> frozenset[str]:
    texts = (template,) if isinstance(template, str) else template
    return frozenset(part.name for text in texts for part in parse_template(text)
                     if isinstance(part, Placeholder))


def _seen_from(cwd: str, path: str) -> str:
    """A project path as the command sees it from its working directory."""
    if not cwd or not path or posixpath.isabs(path):
        return path
    return posixpath.relpath(path, cwd)


# --- expansion ----------------------------------------------------------------

def _render(parts: Sequence[TemplatePart], values: Values,
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


def _quote_shown(text: str) -> str:
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


def _string_command(template: str, run: Values, shown: Values) -> Command:
    parts = parse_template(template)
    display = _render(parts, shown, _quote_shown)
    if needs_shell(template):
        return Command((SHELL, "-c", _render(parts, run, shlex.quote)), True, display)
    items = _split_template(template)
    if items is not None:
        argv = _expand_argv(items, run)
    else:
        argv = tuple(shlex.split(_render(parts, run, shlex.quote)))
    if not argv:
        return Command((SHELL, "-c", _render(parts, run, shlex.quote)), True, display)
    return Command(_absolute_program(argv), False, display)


def _argv_command(template: Sequence[str], run: Values,
                  shown: Values) -> Command:
    argv = _expand_argv(template, run)
    display = " ".join(_quote_shown(a) for a in _expand_argv(template, shown))
    return Command(_absolute_program(argv), False, display)


def _expand_argv(template: Sequence[str], values: Values) -> tuple[str, ...]:
    """A whole-item ``{in}``/``{out}`` gives one item per path."""
    argv: list[str] = []
    for item in template:
        parts = parse_template(item)
        if (len(parts) == 1 and isinstance(parts[0], Placeholder)
                and parts[0].index is None
                and not isinstance(values[parts[0].name], str)):
            argv.extend(values[parts[0].name])
        else:
            argv.append(_render(parts, values, _identity))
    return tuple(argv)


_programs: dict[tuple[str, str | None], str] = {}


def _absolute_program(argv: tuple[str, ...]) -> tuple[str, ...]:
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


# --- matching and binding -----------------------------------------------------

def pattern_stem(pattern: str, path: str) -> str | None:
    """The stem binding ``pattern``'s '%' to ``path``, or None if no match."""
    prefix, percent, suffix = pattern.partition("%")
    if not percent:
        return None
    if (len(path) > len(prefix) + len(suffix) and path.startswith(prefix)
            and path.endswith(suffix)):
        return path[len(prefix):len(path) - len(suffix)]
    return None


@functools.lru_cache(maxsize=1 << 16)
def bind(rule: Rule, stem: str | None) -> Step:
    """The step ``rule`` makes for ``stem`` (None for an explicit rule).
    Cached: resolving a target binds the same rule and stem several times."""
    outputs = tuple(_bound(rule, p, stem) for p in rule.outputs)
    return Step(
        id=f"{rule.name}:{outputs[0]}", rule=rule, stem=stem,
        inputs=tuple(_bound(rule, p, stem) for p in rule.inputs),
        outputs=outputs,
        depfile=None if rule.depfile is None else _bound(rule, rule.depfile,
                                                         stem))


def _bound(rule: Rule, pattern: str, stem: str | None) -> str:
    if stem is None or "%" not in pattern:
        return pattern
    path = posixpath.normpath(pattern.replace("%", stem))
    if path.startswith("/") or path == ".." or path.startswith("../"):
        raise errors.PathEscapesWorkspace(
            f"rule {rule.name!r}: stem {stem!r} turns {pattern!r} into "
            f"{path!r}, outside the project")
    return path


def _normal_target(path: str) -> str:
    normal = posixpath.normpath(path)
    if normal.startswith("/") or normal == ".." or normal.startswith("../"):
        raise errors.PathEscapesWorkspace(
            f"{path!r} is not a path inside the project")
    return normal


@dataclass
class Plan:
    """Everything needed to build some targets, found from the targets."""
    steps: dict[str, Step] = field(default_factory=dict)   # discovery order
    producers: dict[str, str] = field(default_factory=dict)  # output -> id
    sources: set[str] = field(default_factory=set)   # inputs no rule makes
    targets: list[str] = field(default_factory=list)
    basis: Any = None     # what it was resolved from (plancache.Basis), if known


class RuleSet:
    """A project's rules, indexed to answer "which rule builds X?"."""

    def __init__(self, project: Project):
        self.project = project
        self._file = str(project.path)
        self._explicit: dict[str, Rule] = {}
        self._patterns: list[Rule] = []
        for rule in project.rules:
            if rule.is_pattern:
                self._patterns.append(rule)
            else:
                for out in rule.outputs:
                    self._explicit.setdefault(out, rule)

    def match(self, path: str, exists: Exists | None = None,
              ) -> tuple[Rule, str | None] | None:
        """(rule, stem) that builds ``path``, or None for a source.

        With ``exists``, pattern rules that cannot work here are passed over
        (see the module docstring).  Two pattern rules left over is an error.
        """
        return self._choose(_normal_target(path), exists, frozenset())

    def step_for(self, path: str, exists: Exists | None = None) -> Step | None:
        """The step that builds ``path``, or None for a source."""
        found = self.match(path, exists)
        return None if found is None else bind(*found)

    def resolve(self, targets: Sequence[str], exists: Exists) -> Plan:
        """Every step and source needed for ``targets``, goal-directed.

        Inputs some planned step produces are not checked on disk (a ``.bbl``
        does not exist before bibtex's first run).  A step is planned once,
        by id, so cycles among steps end the search.
        """
        plan = Plan(targets=[_normal_target(t) for t in targets])
        todo: deque[tuple[Step, Chain]] = deque()
        for target in plan.targets:
            self._need(plan, todo, target, exists, frozenset(), None)
        while todo:
            step, chain = todo.popleft()
            for path in step.inputs:
                if path not in plan.producers:
                    self._need(plan, todo, path, exists, chain, step)
        return plan

    def _need(self, plan: Plan, todo: deque[tuple[Step, Chain]], path: str,
              exists: Exists, chain: Chain, needed_by: Step | None) -> None:
        """Plan the step that makes ``path``, or record it as a source."""
        found = self._choose(path, exists, chain)
        if found is None:
            if path not in plan.sources and not exists(path):
                raise errors.UnknownTarget(_missing(path, needed_by,
                                                    self._file))
            plan.sources.add(path)
            return
        step = bind(*found)
        if step.id in plan.steps:
            return
        plan.steps[step.id] = step
        for out in step.outputs:
            plan.producers.setdefault(out, step.id)
        todo.append((step, chain | {(step.rule.name, step.stem)}))

    def _choose(self, path: str, exists: Exists | None,
                chain: Chain) -> tuple[Rule, str | None] | None:
        explicit = self._explicit.get(path)
        if explicit is not None:
            return explicit, None
        candidates = self._candidates(path, chain)
        if exists is not None and candidates:
            viable = [c for c in candidates if self._viable(c, exists, chain)]
            if viable:
                candidates = viable
            elif exists(path):
                return None           # a source no rule can remake here
            # else: keep them all, so the error names the missing input
        if len(candidates) > 1:
            raise self._ambiguous(path, candidates)
        return candidates[0] if candidates else None

    def _candidates(self, path: str,
                    chain: Chain) -> list[tuple[Rule, str | None]]:
        """Pattern rules whose outputs match, minus endless self-chains."""
        found = []
        for rule in self._patterns:
            stems = [s for s in (pattern_stem(o, path) for o in rule.outputs)
                     if s is not None]
            if not stems:
                continue
            stem = min(stems, key=len)   # the most specific of its outputs
            if any(name == rule.name and used != stem for name, used in chain):
                continue
            found.append((rule, stem))
        return found

    def _viable(self, candidate: tuple[Rule, str | None], exists: Exists,
                chain: Chain) -> bool:
        """Whether each bound input exists or some rule could make it."""
        rule, stem = candidate
        chain = chain | {(rule.name, stem)}
        return all(exists(path) or self._makeable(path, exists, chain)
                   for path in bind(rule, stem).inputs)

    def _makeable(self, path: str, exists: Exists, chain: Chain) -> bool:
        if path in self._explicit:
            return True
        for rule, stem in self._candidates(path, chain):
            if (rule.name, stem) in chain:   # a cycle back into the chain
                return True
            if self._viable((rule, stem), exists, chain):
                return True
        return False

    def _ambiguous(self, path: str,
                   candidates: list[tuple[Rule, str | None]]) -> ProjectError:
        names = [rule.name for rule, _ in candidates]
        listed = ", ".join(repr(n) for n in names[:-1]) + f" and {names[-1]!r}"
        return ProjectError(
            self._file, f"target {path!r} matches the outputs of rules "
            f"{listed}; make one output pattern more specific",
            names[0], "outputs")


def _missing(path: str, needed_by: Step | None, file: str) -> str:
    if needed_by is None:
        return f"{path!r} does not exist and no rule in {file} builds it"
    return (f"{path!r}, an input of step {needed_by.id!r}, does not exist "
            f"and no rule in {file} builds it")
