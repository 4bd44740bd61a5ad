"""Finding and loading ``computepods.toml`` (docs/architecture.md §2, §3).

Every mistake in the project file is reported before anything runs, as a
:class:`~computepods.errors.ProjectError` that names the file, the rule and
the key, so the user can fix it without reading a stack trace.  The file is
checked strictly (unknown keys, wrong types, bad placeholders) because a
typo that is silently ignored in a build file costs an afternoon later.

Command templates are parsed with :mod:`computepods.project.templates`,
which owns their syntax, so that a bad placeholder fails here, at load time.
``[vars]`` are filled into the project's own rules first
(:mod:`computepods.project.variables`); globs in inputs are checked here and
found in the tree only when a rule is planned (:mod:`computepods.project.globs`).
"""
from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any, Sequence

from computepods.cron.timetable import cron_problem
from computepods.errors import ProjectError
from computepods.paths import PROJECT_FILE
from computepods.project.checks import (as_positive, as_string, as_strings, as_table,
                                        check_keys, check_output_paths, describe,
                                        project_path, target_names)
from computepods.project import stems
from computepods.project.durations import as_duration
from computepods.project.globs import input_item, is_glob
from computepods.project.model import (DEFAULT_MAX_PASSES, DISCOVERY_KINDS, Glob, Input, Project,
                                       Rule, Schedule)
from computepods.project.targets import check_alias_cycles
from computepods.project.templates import PLACEHOLDERS, TemplateError, parse_template
from computepods.project.variables import Vars, load_vars

CWD_PLACEHOLDERS = ("dir", "stem")   # a working directory is a project path

TOP_KEYS = frozenset({"project", "alias", "rule", "schedule", "pack", "vars"})
DEFAULT_POD_IDLE = "30m"          # a background pod's idle timeout
PROJECT_KEYS = frozenset({"name", "default", "use", "ignore", "stream", "interchangeable",
                          "pod_idle"})
RULE_KEYS = frozenset({"name", "inputs", "outputs", "command", "depfile",
                       "discover", "timeout", "max_passes", "cwd", "parts"})
SCHEDULE_KEYS = frozenset({"cron", "targets"})

# Rule names end up in step ids ("compile:build/x.o") and log file names,
# so they keep to characters that need no quoting anywhere.
_RULE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


def load_project(root: Path, source: bytes | None = None) -> Project:
    """Read and check ``root/computepods.toml``, including the used packs.
    ``source``: the file's bytes, when the caller has read them already."""
    root = Path(root).resolve()
    path = root / PROJECT_FILE
    file = str(path)
    data = _read_toml(path, source)
    check_keys(data, TOP_KEYS, file, None, "")
    table = as_table(data.get("project", {}), file, None, "project")
    check_keys(table, PROJECT_KEYS, file, None, "project.")
    name = as_string(table.get("name", root.name), file, None, "project.name")
    use = as_strings(table.get("use", []), file, None, "project.use")
    aliases = _load_aliases(data.get("alias", {}), file)
    packs = _load_pack_settings(data.get("pack", {}), use, file)
    rules = _load_rules(data.get("rule", []), packs,
                        load_vars(data.get("vars", {}), packs, file), file)
    _check_rules_together(rules, file)
    project = Project(
        root=root, path=path, name=name,
        default=target_names(table.get("default", []), aliases, file,
                       "project.default"),
        use=use,
        ignore=as_strings(table.get("ignore", []), file, None, "project.ignore"),
        stream=as_strings(table.get("stream", []), file, None, "project.stream"),
        interchangeable=as_strings(table.get("interchangeable", []), file, None,
                                   "project.interchangeable"),
        pod_idle_s=as_duration(table.get("pod_idle", DEFAULT_POD_IDLE), file, "project.pod_idle"),
        aliases=aliases, rules=rules,
        schedules=_load_schedules(data.get("schedule", []), aliases, file),
        packs=packs)
    check_alias_cycles(aliases, file)       # alias cycles fail now
    return project


def _read_toml(path: Path, source: bytes | None = None) -> dict[str, Any]:
    file = str(path)
    try:
        if source is not None:
            return tomllib.loads(source.decode())
        with open(path, "rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:   # its text carries line and column
        raise ProjectError(file, f"TOML syntax error: {exc}") from exc
    except RecursionError:                   # tomllib parses nesting by recursion
        raise ProjectError(file, "arrays or tables nested too deeply to read; "
                           "a project file needs at most a few levels") from None
    except UnicodeDecodeError as exc:
        raise ProjectError(file, f"not UTF-8 text: {exc}") from exc
    except OSError as exc:
        raise ProjectError(file, f"cannot read: {exc.strerror or exc}") from exc


# --- aliases and schedules ----------------------------------------------------

def _load_aliases(value: Any, file: str) -> dict[str, tuple[str, ...]]:
    table = as_table(value, file, None, "alias")
    names = set(table)
    aliases: dict[str, tuple[str, ...]] = {}
    for name, items in table.items():
        key = f"alias.{name}"
        if "/" in name or not name.strip():
            raise ProjectError(file, "an alias name may not be empty or "
                               "contain '/' (it would look like a path)",
                               key=key)
        aliases[name] = tuple(
            item if item in names else project_path(item, file, None, key)
            for item in as_strings(items, file, None, key))
    return aliases


def _load_schedules(value: Any, aliases: dict[str, tuple[str, ...]],
                    file: str) -> tuple[Schedule, ...]:
    if not isinstance(value, list):
        raise ProjectError(file, "must be an array of tables: write "
                           "[[schedule]]", key="schedule")
    schedules = []
    for n, table in enumerate(value, 1):
        table = as_table(table, file, None, f"schedule #{n}")
        check_keys(table, SCHEDULE_KEYS, file, None, "schedule.")
        missing = sorted(SCHEDULE_KEYS - set(table))
        if missing:
            raise ProjectError(file, f"schedule #{n} has no {missing[0]!r}",
                               key=f"schedule.{missing[0]}")
        cron = as_string(table["cron"], file, None, "schedule.cron")
        problem = cron_problem(cron)
        if problem:
            raise ProjectError(file, f"schedule #{n}: bad cron expression {cron!r}: "
                               f"{problem}", key="schedule.cron")
        targets = target_names(table["targets"], aliases, file, "schedule.targets")
        if not targets:
            raise ProjectError(file, f"schedule #{n} has no targets",
                               key="schedule.targets")
        schedules.append(Schedule(cron, targets))
    return tuple(schedules)


# --- rules --------------------------------------------------------------------

def _load_pack_settings(value: Any, use: Sequence[str],
                        file: str) -> dict[str, dict[str, str]]:
    if not use and value == {}:
        return {}                         # no pack files to read
    from computepods.project.packs import load_settings   # packs are data; keep it lazy
    return load_settings(value, use, file)


def _load_rules(value: Any, packs: dict[str, dict[str, str]], found: Vars,
                file: str) -> tuple[Rule, ...]:
    """The file's rules, its vars filled in, then those of each used pack,
    in order; a rule of the file's with a pack rule's name replaces or
    extends it."""
    from computepods.project.packs import on_demand_rules, rule_tables
    from computepods.project.packs.own import with_own_rules

    if not isinstance(value, list):
        raise ProjectError(file, "must be an array of tables: write [[rule]]",
                           key="rule")
    own = [found.fill_rule(t, _label(t, i)) if isinstance(t, dict) else t
           for i, t in enumerate(value)]
    theirs = [(t, pack) for pack, settings in packs.items()
              for t in rule_tables(pack, settings)]
    return tuple(load_rule(s.table, i, file, s.pack, s.overrides, s.added,
                           s.pack is not None and s.table.get("name") in on_demand_rules(s.pack))
                 for i, s in enumerate(with_own_rules(own, theirs, file)))


def _label(table: Any, index: int) -> str:
    if isinstance(table, dict) and isinstance(table.get("name"), str):
        return table["name"]
    return f"#{index + 1}"


def load_rule(table: Any, index: int, file: str, pack: str | None = None,
              overrides: str | None = None, added: int = 0, on_demand: bool = False) -> Rule:
    """Check one rule table (as TOML gives it) and build its Rule.
    ``overrides``: the pack whose rule it replaces; ``added``: how many of
    its inputs, at the end, the project added to its pack's rule;
    ``on_demand``: a pack rule's own key (project/packs/__init__.py)."""
    label = _label(table, index)
    if pack is not None:
        file = f"{file} (pack {pack!r})"
    table = as_table(table, file, label, "rule")
    check_keys(table, RULE_KEYS, file, label, "")
    for required in ("name", "outputs", "command"):
        if required not in table:
            raise ProjectError(file, "missing required key", label, required)
    name = as_string(table["name"], file, label, "name")
    if not _RULE_NAME.fullmatch(name):
        raise ProjectError(file, "a rule name may hold only letters, digits, "
                           "'_', '-' and '.'", label, "name")
    outputs = _patterns(table["outputs"], file, name, "outputs")
    for out in outputs:
        if is_glob(out):
            raise ProjectError(file, f"{out!r} is a glob; outputs are the paths a rule "
                               "makes, each named", name, "outputs")
    literal = [stems.literal(p) for p in outputs]
    for n, out in enumerate(literal):
        if out in literal[:n]:       # two commits to one path: which one wins?
            raise ProjectError(file, f"output {out!r} is listed twice; list each "
                               "output once", name, "outputs")
    check_output_paths(outputs, file, name, "outputs")
    inputs = _inputs(table.get("inputs", []), file, name)
    if not outputs:
        raise ProjectError(file, "a rule must produce at least one output",
                           name, "outputs")
    pattern = _check_stems(inputs, outputs, file, name)
    command = _command(table["command"], file, name)
    globbed = next((n for n, i in enumerate(inputs) if isinstance(i, Glob)), None)
    _check_template_use(command, len(inputs) if globbed is None else globbed,
                        len(outputs), pattern, file, name, "command", PLACEHOLDERS,
                        globbed is not None)
    cwd = table.get("cwd")
    if cwd is not None:
        cwd = _cwd(cwd, pattern, file, name)
    return Rule(
        name=name, inputs=inputs, outputs=outputs, command=command,
        depfile=_depfile(table.get("depfile"), pattern, file, name),
        discover=_discover(table.get("discover"), file, name),
        timeout=(None if "timeout" not in table else
                 float(as_positive(table["timeout"], file, name, "timeout",
                                 integer=False))),
        max_passes=as_positive(table.get("max_passes", DEFAULT_MAX_PASSES),
                             file, name, "max_passes", integer=True),
        cwd=cwd, parts=_parts(table.get("parts"), file, name),
        pack=pack, index=index, overrides=overrides,
        added=tuple(str(i) for i in inputs[len(inputs) - added:]) if added else (),
        on_demand=on_demand)


def _patterns(value: Any, file: str, rule: str, key: str) -> tuple[str, ...]:
    paths = tuple(project_path(p, file, rule, key)
                  for p in as_strings(value, file, rule, key))
    for p in paths:
        if stems.stem_count(p) > 1:
            raise ProjectError(file, f"{p!r} has more than one '%' (write '%%' "
                               "for a literal '%')", rule, key)
    return paths


def _inputs(value: Any, file: str, rule: str) -> tuple[Input, ...]:
    if not isinstance(value, list):
        raise ProjectError(file, "must be an array of strings (paths or globs), got "
                           + describe(value), rule, "inputs")
    inputs = tuple(input_item(v, file, rule, "inputs") for v in value)
    for p in inputs:
        if isinstance(p, str) and stems.stem_count(p) > 1:
            raise ProjectError(file, f"{p!r} has more than one '%' (write '%%' "
                               "for a literal '%')", rule, "inputs")
    return inputs


def _check_stems(inputs: tuple[Input, ...], outputs: tuple[str, ...],
                 file: str, rule: str) -> bool:
    """Whether the rule is a pattern rule; its '%' use must be consistent."""
    with_stem = [o for o in outputs if stems.has_stem(o)]
    if not with_stem:
        for i in inputs:
            if isinstance(i, str) and stems.has_stem(i):
                raise ProjectError(file, f"input {i!r} has a '%' but no "
                                   "output has one, so nothing binds it",
                                   rule, "inputs")
        return False
    for o in outputs:
        if not stems.has_stem(o):
            raise ProjectError(file, f"output {o!r} has no '%' while "
                               f"{with_stem[0]!r} has: every output of a "
                               "pattern rule needs one", rule, "outputs")
    return True


def _command(value: Any, file: str, rule: str) -> str | tuple[str, ...]:
    if isinstance(value, str):
        return as_string(value, file, rule, "command")
    argv = as_strings(value, file, rule, "command")
    if not argv or not argv[0].strip():
        raise ProjectError(file, "an argv command needs a program as its "
                           "first item", rule, "command")
    return argv


def _check_template_use(command: str | tuple[str, ...], n_in: int, n_out: int,
                        pattern: bool, file: str, rule: str, key: str,
                        allowed: Sequence[str], globbed: bool = False) -> None:
    """Each placeholder must mean something for this rule: checked once.
    ``globbed``: ``n_in`` inputs come before the first glob, whose number
    of files is known only when the rule is planned."""
    texts = (command,) if isinstance(command, str) else command
    counts = {"in": n_in, "out": n_out}
    for text in texts:
        try:
            parts = parse_template(text)
        except TemplateError as exc:
            raise ProjectError(file, str(exc), rule, key) from None
        for part in parts:
            if isinstance(part, str):
                continue
            shown = str(part)
            if part.name not in allowed:
                raise ProjectError(file, f"{shown} cannot be used here; only "
                                   + ", ".join("{%s}" % a for a in allowed),
                                   rule, key)
            if part.name == "stem" and not pattern:
                raise ProjectError(file, "{stem} needs a pattern rule (a '%' "
                                   "in the outputs)", rule, key)
            if part.index is not None and part.index >= counts[part.name]:
                if part.name == "in" and globbed:
                    raise ProjectError(
                        file, f"{shown} comes at or after a glob in inputs, whose "
                        "files are known only when the rule is planned; list the input "
                        "before the glob, or use {in}", rule, key)
                raise ProjectError(
                    file, f"{shown} is out of range: the rule has "
                    f"{counts[part.name]} {part.name}put(s)", rule, key)


def _cwd(value: Any, pattern: bool, file: str, rule: str) -> str:
    text = as_string(value, file, rule, "cwd")
    _check_template_use(text, 0, 0, pattern, file, rule, "cwd",
                        CWD_PLACEHOLDERS)
    if text.startswith("/") or ".." in text.split("/"):
        raise ProjectError(file, f"{text!r} must be a directory inside the "
                           "project", rule, "cwd")
    return text


def _depfile(value: Any, pattern: bool, file: str, rule: str) -> str | None:
    if value is None:
        return None
    path = project_path(as_string(value, file, rule, "depfile"), file, rule,
                        "depfile")
    count = stems.stem_count(path)
    if pattern and count != 1:
        raise ProjectError(file, f"{path!r} needs exactly one '%', as the "
                           "rule's outputs have", rule, "depfile")
    if not pattern and count:
        raise ProjectError(file, f"{path!r} has a '%' but the rule's outputs "
                           "have none", rule, "depfile")
    return path


def _discover(value: Any, file: str, rule: str) -> str | None:
    if value is None or value in DISCOVERY_KINDS:
        return value
    raise ProjectError(file, f"must be one of {', '.join(DISCOVERY_KINDS)}, "
                       f"got {value!r}", rule, "discover")


def _parts(value: Any, file: str, rule: str) -> dict[str, str] | None:
    if value is None:
        return None
    table = as_table(value, file, rule, "parts")
    parts = {}
    for pattern, part in table.items():
        key = f"parts.{pattern}"
        if is_glob(pattern):
            raise ProjectError(file, "a part is keyed by an input pattern with '%' or a "
                               "path, not a glob", rule, key)
        parts[project_path(pattern, file, rule, key)] = as_string(
            part, file, rule, key)
    return parts


def _check_rules_together(rules: Sequence[Rule], file: str) -> None:
    """Names are unique, and no explicit output has two rules."""
    by_name: dict[str, Rule] = {}
    by_output: dict[str, Rule] = {}
    for rule in rules:
        where = file if rule.pack is None else f"{file} (pack {rule.pack!r})"
        if rule.name in by_name:
            other = by_name[rule.name]
            whose = "" if other.pack is None else f" of pack {other.pack!r}"
            raise ProjectError(where, f"rule #{other.index + 1}{whose} has "
                               "the same name; rename one", rule.name, "name")
        by_name[rule.name] = rule
        if rule.is_pattern:
            continue
        for out in map(stems.literal, rule.outputs):
            other = by_output.setdefault(out, rule)
            if other is not rule:
                raise ProjectError(where, f"output {out!r} is also produced "
                                   f"by rule {other.name!r}", rule.name,
                                   "outputs")
