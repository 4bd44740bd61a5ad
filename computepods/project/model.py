"""Finding and loading ``computepods.toml`` (docs/architecture.md §2, §3).

Every mistake in the project file is reported before anything runs, as a
:class:`~computepods.errors.ProjectError` that names the file, the rule and
the key, so the user can fix it without reading a stack trace.  The file is
checked strictly (unknown keys, wrong types, bad placeholders) because a
typo that is silently ignored in a build file costs an afternoon later.

Command templates are parsed with :mod:`computepods.planning.resolve`, which owns
their syntax, so that a bad placeholder fails here, at load time.
"""
from __future__ import annotations

import math
import os
import posixpath
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from computepods import errors
from computepods.errors import ProjectError
from computepods.planning.resolve import PLACEHOLDERS, TemplateError, parse_template
from computepods.cron.timetable import cron_problem
from computepods import paths as where

PROJECT_FILE = where.PROJECT_FILE
STATE_DIR = where.STATE_DIR
find_project_root = where.find_project_root     # lives in where.py for the thin client

DEFAULT_MAX_PASSES = 5
DISCOVERY_KINDS = ("fls",)           # TeX's -recorder file
CWD_PLACEHOLDERS = ("dir", "stem")   # a working directory is a project path

TOP_KEYS = frozenset({"project", "alias", "rule", "schedule", "pack"})
PROJECT_KEYS = frozenset({"name", "default", "use", "ignore", "stream"})
RULE_KEYS = frozenset({"name", "inputs", "outputs", "command", "depfile",
                       "discover", "timeout", "max_passes", "cwd", "parts"})
SCHEDULE_KEYS = frozenset({"cron", "targets"})

# Rule names end up in step ids ("compile:build/x.o") and log file names,
# so they keep to characters that need no quoting anywhere.
_RULE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


# --- records ------------------------------------------------------------------

@dataclass(frozen=True)
class Rule:
    """One ``[[rule]]``: how to make its outputs from its inputs."""
    name: str
    inputs: tuple[str, ...]          # project-relative patterns, <= one '%'
    outputs: tuple[str, ...]
    command: str | tuple[str, ...]   # str: shell-ish string; tuple: argv
    depfile: str | None = None       # pattern
    discover: str | None = None      # None or "fls"
    timeout: float | None = None     # seconds; None = no limit
    max_passes: int = DEFAULT_MAX_PASSES
    cwd: str | None = None           # may hold {dir} / {stem}
    # input pattern -> part name (docs/architecture.md §4 early cutoff); kept out of the
    # hash because a dict is not hashable.
    parts: dict[str, str] | None = field(default=None, hash=False)
    pack: str | None = None          # the pack it came from, via `use`
    index: int = 0                   # 0-based position among all rules

    @property
    def is_pattern(self) -> bool:
        """Whether the rule makes many files (make's `%` rules)."""
        return any("%" in out for out in self.outputs)


@dataclass(frozen=True)
class Schedule:
    """One ``[[schedule]]``: build ``targets`` when ``cron`` fires."""
    cron: str
    targets: tuple[str, ...]


@dataclass
class Project:
    """A loaded, checked project file."""
    root: Path
    path: Path                       # root / PROJECT_FILE
    name: str
    default: tuple[str, ...]
    use: tuple[str, ...]
    ignore: tuple[str, ...]
    stream: tuple[str, ...]
    aliases: dict[str, tuple[str, ...]]
    rules: tuple[Rule, ...]          # the file's rules, then the packs'
    schedules: tuple[Schedule, ...]
    # every used pack's settings, defaults filled in ([pack.NAME] tables)
    packs: dict[str, dict[str, str]] = field(default_factory=dict)

    def target_paths(self, names: Sequence[str], cwd: Path) -> list[str]:
        """Project-relative paths for command-line targets.

        ``names`` are alias names or paths relative to ``cwd`` (as a user
        types them); none means ``project.default``, whose entries are
        relative to the root.  An alias name wins over a file of that name
        (write ``./all`` for the file).  Duplicates are dropped.
        """
        if not names:
            if not self.default:
                raise errors.UsageError("no targets given and computepods.toml "
                                        "has no project.default")
            return _unique(self._expand(self.default, str))
        root, here = self.root.resolve(), Path(cwd).resolve()
        return _unique(self._expand(names, lambda n: _from_cwd(n, here, root)))

    def _expand(self, names: Sequence[str], path_of: Callable[[str], str],
                chain: tuple[str, ...] = ()) -> list[str]:
        """Alias names to their paths, recursively; other names by path_of."""
        paths: list[str] = []
        for name in names:
            if name not in self.aliases:
                paths.append(path_of(name))
            elif name in chain:
                cycle = " -> ".join((*chain[chain.index(name):], name))
                raise ProjectError(str(self.path), f"alias cycle: {cycle}",
                                   key=f"alias.{name}")
            else:   # alias values are relative to the root, not the cwd
                paths.extend(self._expand(self.aliases[name], str,
                                          (*chain, name)))
        return paths


def _from_cwd(name: str, cwd: Path, root: Path) -> str:
    """A cwd-relative (or absolute) path as a project-relative posix path."""
    full = os.path.normpath(os.path.join(cwd, name))
    rel = os.path.relpath(full, root)
    if rel == os.pardir or rel.startswith(os.pardir + os.sep):
        raise errors.PathEscapesWorkspace(
            f"target {name!r} is outside the project {root}")
    if rel == os.curdir:
        raise errors.UsageError(f"target {name!r} is the project root itself, "
                                "not a file")
    return Path(rel).as_posix()


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


# --- finding and reading ------------------------------------------------------

def load_project(root: Path, source: bytes | None = None) -> Project:
    """Read and check ``root/computepods.toml``, including the used packs.
    ``source``: the file's bytes, when the caller has read them already."""
    root = Path(root).resolve()
    path = root / PROJECT_FILE
    file = str(path)
    data = _read_toml(path, source)
    _check_keys(data, TOP_KEYS, file, None, "")
    table = _table(data.get("project", {}), file, None, "project")
    _check_keys(table, PROJECT_KEYS, file, None, "project.")
    name = _string(table.get("name", root.name), file, None, "project.name")
    use = _strings(table.get("use", []), file, None, "project.use")
    aliases = _load_aliases(data.get("alias", {}), file)
    packs = _load_pack_settings(data.get("pack", {}), use, file)
    rules = _load_rules(data.get("rule", []), packs, file)
    _check_rules_together(rules, file)
    project = Project(
        root=root, path=path, name=name,
        default=_names(table.get("default", []), aliases, file,
                       "project.default"),
        use=use,
        ignore=_strings(table.get("ignore", []), file, None, "project.ignore"),
        stream=_strings(table.get("stream", []), file, None, "project.stream"),
        aliases=aliases, rules=rules,
        schedules=_load_schedules(data.get("schedule", []), aliases, file),
        packs=packs)
    project._expand(list(aliases), str)     # alias cycles fail now
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
    except UnicodeDecodeError as exc:
        raise ProjectError(file, f"not UTF-8 text: {exc}") from exc
    except OSError as exc:
        raise ProjectError(file, f"cannot read: {exc.strerror or exc}") from exc


# --- checking values ----------------------------------------------------------

def _describe(value: Any) -> str:
    """A TOML-ish name for a value's type, for messages."""
    kinds = {bool: "a boolean", int: "an integer", float: "a float",
             str: "a string", list: "an array", dict: "a table"}
    return kinds.get(type(value), type(value).__name__)


def _check_keys(table: dict, allowed: frozenset[str], file: str,
                rule: str | None, prefix: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ProjectError(file, "unknown key; expected one of: "
                           + ", ".join(sorted(allowed)), rule,
                           prefix + unknown[0])


def _table(value: Any, file: str, rule: str | None, key: str) -> dict:
    if not isinstance(value, dict):
        raise ProjectError(file, f"must be a table, got {_describe(value)}",
                           rule, key)
    return value


def _string(value: Any, file: str, rule: str | None, key: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ProjectError(file, "must be a non-empty string, got "
                           + (_describe(value) if not isinstance(value, str)
                              else "an empty one"), rule, key)
    return value


def _strings(value: Any, file: str, rule: str | None,
             key: str) -> tuple[str, ...]:
    if not (isinstance(value, list)
            and all(isinstance(v, str) for v in value)):
        raise ProjectError(file, "must be an array of strings, got "
                           + _describe(value), rule, key)
    return tuple(value)


def _positive(value: Any, file: str, rule: str, key: str,
              integer: bool) -> float | int:
    kinds = (int,) if integer else (int, float)
    if (isinstance(value, bool) or not isinstance(value, kinds)
            or not value > 0 or not math.isfinite(value)):
        what = "a positive integer" if integer else "a positive number"
        raise ProjectError(file, f"must be {what}, got {value!r}", rule, key)
    return value


def project_path(text: str, file: str, rule: str | None, key: str) -> str:
    """A normalized project-relative posix path (or pattern), or an error.

    ``..`` is refused outright (not just when it escapes) because normpath
    would fold ``%/..`` and silently drop the stem.
    """
    if not text.strip():
        raise ProjectError(file, "empty path", rule, key)
    if text.startswith("/"):
        raise ProjectError(file, f"{text!r} is absolute; paths are relative "
                           "to the project root", rule, key)
    if ".." in text.split("/"):
        raise ProjectError(file, f"{text!r} contains '..'; paths must stay "
                           "inside the project", rule, key)
    normal = posixpath.normpath(text)
    if normal == ".":
        raise ProjectError(file, f"{text!r} names the project root, not a "
                           "file", rule, key)
    return normal


def _names(value: Any, aliases: dict[str, tuple[str, ...]], file: str,
           key: str) -> tuple[str, ...]:
    """Target names written in the file: alias names or project paths."""
    return tuple(item if item in aliases
                 else project_path(item, file, None, key)
                 for item in _strings(value, file, None, key))


# --- aliases and schedules ----------------------------------------------------

def _load_aliases(value: Any, file: str) -> dict[str, tuple[str, ...]]:
    table = _table(value, file, None, "alias")
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
            for item in _strings(items, file, None, key))
    return aliases


def _load_schedules(value: Any, aliases: dict[str, tuple[str, ...]],
                    file: str) -> tuple[Schedule, ...]:
    if not isinstance(value, list):
        raise ProjectError(file, "must be an array of tables: write "
                           "[[schedule]]", key="schedule")
    schedules = []
    for n, table in enumerate(value, 1):
        table = _table(table, file, None, f"schedule #{n}")
        _check_keys(table, SCHEDULE_KEYS, file, None, "schedule.")
        missing = sorted(SCHEDULE_KEYS - set(table))
        if missing:
            raise ProjectError(file, f"schedule #{n} has no {missing[0]!r}",
                               key=f"schedule.{missing[0]}")
        cron = _string(table["cron"], file, None, "schedule.cron")
        problem = cron_problem(cron)
        if problem:
            raise ProjectError(file, f"schedule #{n}: bad cron expression {cron!r}: "
                               f"{problem}", key="schedule.cron")
        targets = _names(table["targets"], aliases, file, "schedule.targets")
        if not targets:
            raise ProjectError(file, f"schedule #{n} has no targets",
                               key="schedule.targets")
        schedules.append(Schedule(cron, targets))
    return tuple(schedules)


# --- rules --------------------------------------------------------------------

def _load_pack_settings(value: Any, use: Sequence[str],
                        file: str) -> dict[str, dict[str, str]]:
    """Each used pack's settings: its ``[pack.NAME]`` table over the defaults.

    A table for a pack the project does not use is an error, not ignored:
    it is most likely a misspelt name in one of the two places.
    """
    if not use and value == {}:
        return {}                         # no pack files to read
    from computepods.project.packs import PACKS   # packs are data; keep it lazy

    def known(name: str, key: str) -> None:
        if name not in PACKS:
            raise ProjectError(file, f"unknown pack {name!r}; known packs: "
                               + (", ".join(sorted(PACKS)) or "none"),
                               key=key)

    for n, name in enumerate(use):
        known(name, "project.use")
        if name in use[:n]:
            raise ProjectError(file, f"pack {name!r} is listed twice",
                               key="project.use")
    tables = _table(value, file, None, "pack")
    for name, table in tables.items():
        key = f"pack.{name}"
        known(name, key)
        if name not in use:
            raise ProjectError(file, f"settings for pack {name!r}, which "
                               "project.use does not list; add it there or "
                               f"remove [{key}]", key=key)
        for setting, setting_value in _table(table, file, None, key).items():
            problem = PACKS[name].setting_problem(setting, setting_value)
            if problem is not None:
                raise ProjectError(file, problem, key=f"{key}.{setting}")
    return {name: PACKS[name].settings_for(tables.get(name)) for name in use}


def _load_rules(value: Any, packs: dict[str, dict[str, str]],
                file: str) -> tuple[Rule, ...]:
    """The file's rules, then those of each used pack, in order."""
    from computepods.project.packs import rule_tables

    if not isinstance(value, list):
        raise ProjectError(file, "must be an array of tables: write [[rule]]",
                           key="rule")
    tables: list[tuple[Any, str | None]] = [(t, None) for t in value]
    for pack, settings in packs.items():
        tables.extend((t, pack) for t in rule_tables(pack, settings))
    return tuple(load_rule(table, i, file, pack)
                 for i, (table, pack) in enumerate(tables))


def load_rule(table: Any, index: int, file: str,
              pack: str | None = None) -> Rule:
    """Check one rule table (as TOML gives it) and build its Rule."""
    label = f"#{index + 1}"
    if isinstance(table, dict) and isinstance(table.get("name"), str):
        label = table["name"]
    if pack is not None:
        file = f"{file} (pack {pack!r})"
    table = _table(table, file, label, "rule")
    _check_keys(table, RULE_KEYS, file, label, "")
    for required in ("name", "outputs", "command"):
        if required not in table:
            raise ProjectError(file, "missing required key", label, required)
    name = _string(table["name"], file, label, "name")
    if not _RULE_NAME.fullmatch(name):
        raise ProjectError(file, "a rule name may hold only letters, digits, "
                           "'_', '-' and '.'", label, "name")
    outputs = _patterns(table["outputs"], file, name, "outputs")
    inputs = _patterns(table.get("inputs", []), file, name, "inputs")
    if not outputs:
        raise ProjectError(file, "a rule must produce at least one output",
                           name, "outputs")
    pattern = _check_stems(inputs, outputs, file, name)
    command = _command(table["command"], file, name)
    _check_template_use(command, len(inputs), len(outputs), pattern, file,
                        name, "command", PLACEHOLDERS)
    cwd = table.get("cwd")
    if cwd is not None:
        cwd = _cwd(cwd, pattern, file, name)
    return Rule(
        name=name, inputs=inputs, outputs=outputs, command=command,
        depfile=_depfile(table.get("depfile"), pattern, file, name),
        discover=_discover(table.get("discover"), file, name),
        timeout=(None if "timeout" not in table else
                 float(_positive(table["timeout"], file, name, "timeout",
                                 integer=False))),
        max_passes=_positive(table.get("max_passes", DEFAULT_MAX_PASSES),
                             file, name, "max_passes", integer=True),
        cwd=cwd, parts=_parts(table.get("parts"), file, name),
        pack=pack, index=index)


def _patterns(value: Any, file: str, rule: str, key: str) -> tuple[str, ...]:
    paths = tuple(project_path(p, file, rule, key)
                  for p in _strings(value, file, rule, key))
    for p in paths:
        if p.count("%") > 1:
            raise ProjectError(file, f"{p!r} has more than one '%'", rule, key)
    return paths


def _check_stems(inputs: tuple[str, ...], outputs: tuple[str, ...],
                 file: str, rule: str) -> bool:
    """Whether the rule is a pattern rule; its '%' use must be consistent."""
    with_stem = [o for o in outputs if "%" in o]
    if not with_stem:
        for i in inputs:
            if "%" in i:
                raise ProjectError(file, f"input {i!r} has a '%' but no "
                                   "output has one, so nothing binds it",
                                   rule, "inputs")
        return False
    for o in outputs:
        if "%" not in o:
            raise ProjectError(file, f"output {o!r} has no '%' while "
                               f"{with_stem[0]!r} has: every output of a "
                               "pattern rule needs one", rule, "outputs")
    return True


def _command(value: Any, file: str, rule: str) -> str | tuple[str, ...]:
    if isinstance(value, str):
        return _string(value, file, rule, "command")
    argv = _strings(value, file, rule, "command")
    if not argv or not argv[0].strip():
        raise ProjectError(file, "an argv command needs a program as its "
                           "first item", rule, "command")
    return argv


def _check_template_use(command: str | tuple[str, ...], n_in: int, n_out: int,
                        pattern: bool, file: str, rule: str, key: str,
                        allowed: Sequence[str]) -> None:
    """Each placeholder must mean something for this rule: checked once."""
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
                raise ProjectError(
                    file, f"{shown} is out of range: the rule has "
                    f"{counts[part.name]} {part.name}put(s)", rule, key)


def _cwd(value: Any, pattern: bool, file: str, rule: str) -> str:
    text = _string(value, file, rule, "cwd")
    _check_template_use(text, 0, 0, pattern, file, rule, "cwd",
                        CWD_PLACEHOLDERS)
    if text.startswith("/") or ".." in text.split("/"):
        raise ProjectError(file, f"{text!r} must be a directory inside the "
                           "project", rule, "cwd")
    return text


def _depfile(value: Any, pattern: bool, file: str, rule: str) -> str | None:
    if value is None:
        return None
    path = project_path(_string(value, file, rule, "depfile"), file, rule,
                        "depfile")
    stems = path.count("%")
    if pattern and stems != 1:
        raise ProjectError(file, f"{path!r} needs exactly one '%', as the "
                           "rule's outputs have", rule, "depfile")
    if not pattern and stems:
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
    table = _table(value, file, rule, "parts")
    parts = {}
    for pattern, part in table.items():
        key = f"parts.{pattern}"
        parts[project_path(pattern, file, rule, key)] = _string(
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
        for out in rule.outputs:
            other = by_output.setdefault(out, rule)
            if other is not rule:
                raise ProjectError(where, f"output {out!r} is also produced "
                                   f"by rule {other.name!r}", rule.name,
                                   "outputs")
