"""Rules at work: goal-directed matching, binding, and plans.

Matching is make's: to build X, find the rule whose output pattern matches X
and bind ``%`` to the rest (the stem, ``/`` included).  An explicit rule
beats a pattern rule.  When the caller says which files exist, a pattern rule
whose inputs can be neither found nor made is passed over, as make does:
otherwise the ``latex`` pack's ``%.pdf`` rule would claim every figure PDF
in the tree and then fail for want of ``figure.tex``.  The same rule never
applies twice in one chain with different stems (``%.x`` from ``%.x.x``
would recurse forever); with the same stem it is a cycle, which is allowed.
Two pattern rules that can both work are an error, except among one pack's
rules: a pack lists them in order, and the first wins (the latex pack's
biber before bibtex).  An ``on_demand`` pack rule reads what a run wrote:
its first input counts only when a step makes it (:meth:`RuleSet.reading`),
so a ``.bcf`` left from when the document used biblatex does not choose biber.

A rule with globs in its inputs is bound from the rule with each glob
replaced by the files it finds (:func:`~computepods.project.globs.found_rule`),
once per RuleSet; that rule is the step's, and what a chef is sent.  The
globs are listed by the RuleSet's Globber, which keeps what they matched
for the plan's basis.

A bound :class:`Step` expands its command with
:mod:`computepods.planning.commands`.
"""
from __future__ import annotations

import copy
import functools
import posixpath
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Container, Sequence

import computepods.errors as errors
from computepods.errors import ProjectError
from computepods.planning.commands import (SCRATCH_SHOWN, Command, argv_command, expand_argv,
                                           identity, quote_shown, render, string_command)
from computepods.planning.wanted import missing_input
from computepods.project import stems
from computepods.project.globs import Globber, found_rule
from computepods.project.model import Project, Rule
from computepods.project.templates import parse_template, used_placeholders

PathMap = Callable[[str], str]
Exists = Callable[[str], bool]
# (rule name, stem) pairs already used on the way to the current path.
Chain = frozenset[tuple[str, "str | None"]]


# --- steps --------------------------------------------------------------------

@dataclass(frozen=True)
class Step:
    """A rule bound to one stem: concrete inputs, outputs and command."""
    id: str                   # f"{rule.name}:{outputs[0]}"
    rule: Rule
    stem: str | None
    inputs: tuple[str, ...]   # project-relative
    outputs: tuple[str, ...]
    depfile: str | None

    def command(self, out_path: PathMap = identity, scratch: str = "",
                dir_path: PathMap = identity) -> Command:
        """Expand the rule's command for this step.

        ``out_path`` maps each output to where the command must write it (its
        scratch path); ``dir_path`` maps ``{dir}``, for tools told to write
        next to their inputs (``-output-directory {dir}``).  Relative results
        are taken as project paths.  When the rule sets ``cwd``, relative
        paths are given relative to it, so ``cwd = "{dir}"`` with ``{in}``
        works.  The display always uses project paths.
        """
        cwd = self.cwd
        used = used_placeholders(self.rule.command)
        run = self._values(out_path, scratch, dir_path, cwd, used)
        shown = self._values(identity, SCRATCH_SHOWN, identity, cwd, used)
        if isinstance(self.rule.command, str):
            return string_command(self.rule.command, run, shown)
        return argv_command(self.rule.command, run, shown)

    def display(self) -> str:
        """The command as a person sees it (and as it is recorded), without
        expanding what it would run: the staleness check needs only this."""
        shown = self._values(identity, SCRATCH_SHOWN, identity, self.cwd,
                             used_placeholders(self.rule.command))
        if isinstance(self.rule.command, str):
            return render(parse_template(self.rule.command), shown, quote_shown)
        return " ".join(quote_shown(a) for a in expand_argv(self.rule.command, shown))

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
        text = posixpath.normpath(render(parse_template(self.rule.cwd),
                                         values, identity))
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
        seen = functools.partial(_seen_from, cwd) if cwd else identity
        values: dict[str, str | list[str]] = {}
        if "in" in used:
            values["in"] = [not_an_option(seen(p)) for p in self.inputs]
        if "out" in used:
            values["out"] = [not_an_option(seen(out_path(p))) for p in self.outputs]
        if "stem" in used:
            values["stem"] = self.stem or ""
        if "dir" in used:
            values["dir"] = not_an_option(seen(dir_path(self.dir)))
        if "scratch" in used:
            values["scratch"] = (scratch if scratch == SCRATCH_SHOWN
                                 else not_an_option(seen(scratch)))
        return values


def not_an_option(path: str) -> str:
    """``./-x`` for a path ``-x``, so a tool takes it for a file, not an
    option.  Only such paths change: any other path is left exactly as it
    was, or every recorded command would differ and every step go stale."""
    return "./" + path if path.startswith("-") else path


def _seen_from(cwd: str, path: str) -> str:
    """A project path as the command sees it from its working directory."""
    if not cwd or not path or posixpath.isabs(path):
        return path
    return posixpath.relpath(path, cwd)


# --- matching and binding -----------------------------------------------------

def pattern_stem(pattern: str, path: str) -> str | None:
    """The stem binding ``pattern``'s '%' to ``path``, or None if no match."""
    return stems.match(pattern, path)


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
    if stem is None or not stems.has_stem(pattern):
        return stems.literal(pattern)
    path = posixpath.normpath(stems.substitute(pattern, stem))
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

    def __init__(self, project: Project, glob: Globber | None = None):
        """``glob``: how globs are found (default: in the project's tree,
        unrecorded)."""
        self.project = project
        self._file = str(project.path)
        self._glob = glob if glob is not None else Globber(project.root, project.ignore)
        # id of a rule with globs -> it with them found (or why they found nothing)
        self._found: dict[int, Rule | ProjectError | None] = {
            id(rule): None for rule in project.rules if rule.has_globs}
        self._explicit: dict[str, Rule] = {}
        self._patterns: list[Rule] = []
        self._written: Container[str] = ()     # files steps were seen to write
        for rule in project.rules:
            if rule.is_pattern:
                self._patterns.append(rule)
            else:
                for out in rule.outputs:
                    self._explicit.setdefault(stems.literal(out), rule)

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
        return None if found is None else self._bind(*found)

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
        self._close(plan, todo, exists)
        return plan

    def reading(self, written: Container[str]) -> "RuleSet":
        """These rules, where an on-demand rule's first input is also made
        when in ``written``: what steps were seen to write (planning/needs.py)."""
        view = copy.copy(self)
        view._written = written
        return view

    def makes(self, path: str, exists: Exists) -> bool:
        """Whether some rule can make ``path`` here (its inputs exist or can
        be made); raises ProjectError if two rules of the project could."""
        found = self._choose(path, exists, frozenset())
        return found is not None and self._viable(found, exists, frozenset())

    def add(self, plan: Plan, paths: Sequence[str], exists: Exists) -> list[str]:
        """Plan, into ``plan``, the steps that make ``paths`` (files a step
        found it needs, :mod:`computepods.planning.needs`), and what they
        need in turn; returns the ids of the steps added.  ``paths`` that no
        rule can make here are left out: not targets, and not sources either."""
        before = len(plan.steps)
        todo: deque[tuple[Step, Chain]] = deque()
        for path in paths:
            if path not in plan.producers and self.makes(path, exists):
                self._need(plan, todo, path, exists, frozenset(), None)
        self._close(plan, todo, exists)
        return list(plan.steps)[before:]

    def _close(self, plan: Plan, todo: deque[tuple[Step, Chain]], exists: Exists) -> None:
        while todo:
            step, chain = todo.popleft()
            for path in step.inputs:
                if path not in plan.producers:
                    self._need(plan, todo, path, exists, chain, step)

    def _need(self, plan: Plan, todo: deque[tuple[Step, Chain]], path: str,
              exists: Exists, chain: Chain, needed_by: Step | None) -> None:
        """Plan the step that makes ``path``, or record it as a source."""
        found = self._choose(path, exists, chain)
        if found is None:
            if path not in plan.sources and not exists(path):
                raise errors.UnknownTarget(missing_input(path, needed_by, plan, self._file))
            plan.sources.add(path)
            return
        step = self._bind(*found)
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
        if len(candidates) > 1 and not _one_pack(candidates):
            raise self._ambiguous(path, candidates)
        return min(candidates, key=lambda c: c[0].index) if candidates else None

    def _candidates(self, path: str,
                    chain: Chain) -> list[tuple[Rule, str | None]]:
        """Pattern rules whose outputs match, minus endless self-chains."""
        found = []
        for rule in self._patterns:
            found_stems = [s for s in (pattern_stem(o, path) for o in rule.outputs)
                           if s is not None]
            if not found_stems:
                continue
            stem = min(found_stems, key=len)   # the most specific of its outputs
            if any(name == rule.name and used != stem for name, used in chain):
                continue
            found.append((rule, stem))
        return found

    def _viable(self, candidate: tuple[Rule, str | None], exists: Exists,
                chain: Chain) -> bool:
        """Whether each bound input exists or some rule could make it."""
        rule, stem = candidate
        chain = chain | {(rule.name, stem)}
        try:
            inputs = self._bind(rule, stem).inputs
        except ProjectError:          # a glob that finds nothing: chosen, it says so
            return False
        if rule.on_demand and inputs:         # made by a step, not lying in the tree
            first, inputs = inputs[0], inputs[1:]
            if first not in self._written and not self._makeable(first, exists, chain):
                return False
        return all(exists(path) or self._makeable(path, exists, chain) for path in inputs)

    def _bind(self, rule: Rule, stem: str | None) -> Step:
        """:func:`bind`, from the rule with its globs found."""
        key = id(rule)
        if key in self._found:
            found = self._found[key]
            if found is None:
                try:
                    found = found_rule(rule, self._glob, self._where(rule))
                except ProjectError as exc:
                    found = exc
                self._found[key] = found
            if isinstance(found, ProjectError):
                raise found
            rule = found
        return bind(rule, stem)

    def _where(self, rule: Rule) -> str:
        return self._file if rule.pack is None else f"{self._file} (pack {rule.pack!r})"

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
        packed = [rule.name for rule, _ in candidates if rule.pack is not None]
        own = [rule.name for rule, _ in candidates if rule.pack is None]
        fix = ("make one output pattern more specific" if not (packed and own) else
               f"to use yours instead of the pack's, rename rule {own[0]!r} to "
               f"{packed[0]!r} (a rule of the pack's name replaces it)")
        return ProjectError(
            self._file, f"target {path!r} matches the outputs of rules "
            f"{listed}; {fix}", names[0], "outputs")


def _one_pack(candidates: list[tuple[Rule, str | None]]) -> bool:
    """All from one pack, which orders them (see the module docstring)."""
    packs = {rule.pack for rule, _ in candidates}
    return len(packs) == 1 and None not in packs
