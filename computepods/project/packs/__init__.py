"""Rule packs: ready-made rules a project takes with ``use = ["latex"]``.

A pack is a TOML file shipped beside this module (``latex.toml``,
``c.toml``).  Its rules are written exactly as they would be in
``computepods.toml``, so they go through the same checks as the user's own
rules; pack rule names carry the pack's name ("c.compile"), so a project can
name its own rule "compile" beside them.  These keys of a pack's rule are
the pack's own and are taken out before the rule is checked:

* ``tools``: the programs the rule runs, so a chef can say which packs it
  can build (:func:`available_packs`) before anyone asks it to;
* ``when``: the settings under which the rule exists at all
  (``when = { bib = "biber" }``), for rules whose inputs differ by setting;
* ``each`` (with ``key``): the rule is made once per entry of a per-target
  setting, a table of targets (:mod:`computepods.project.packs.entries`).
* ``on_demand``: true for a rule whose step joins a build only when another
  step finds it needs the rule's output (the latex pack's makeindex, once a
  document's run looked for its ``.ind``: :mod:`computepods.planning.needs`).
  Its tools are not needed to use the pack at all: a machine without biber
  builds every document that does not ask for it.  It stays on the
  ``Rule`` (``on_demand``): its first input counts only when a step makes
  it, never because a file of that name lies in the tree
  (:mod:`computepods.planning.resolve`).

A pack declares its settings (``[settings.engine]`` with a ``default`` and,
for most, the ``choices``); a project picks them in ``[pack.latex]``.  The
settings are filled into the rule tables here, as ``{engine}`` in any string,
before the rules reach the ordinary checks: what comes out is a plain rule,
and a changed setting is simply a changed command.  ``{in}``, ``{out}`` and
the other command placeholders are left for :mod:`computepods.planning.commands`.

A project's own rule of the same name as a pack's replaces it, and one
with ``extend = true`` adds inputs to it (:func:`computepods.project.packs.own.with_own_rules`).

A pack file is part of this package: a mistake in one is a bug here, raised
as :class:`PackFileError` when this module is imported (tests load them all).
A pack of the user's own, in the same format, joins them through
:func:`register_pack` (public) or a directory named in ``CP_PACKS``; a
mistake in one is a :class:`~computepods.errors.PackError` naming its file.
"""
from __future__ import annotations

import os
import re
import shutil
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from computepods.errors import PackError, ProjectError
from computepods.project.checks import as_table

from computepods.project import stems
from computepods.project.packs.entries import (SETTING_TYPES, TEXT,
                                               entry_table, placeholder_problem,
                                               table_problem)
from computepods.project.packs.fill import fill, fill_table

PACK_SUFFIX = ".toml"
PACKS_ENV = "CP_PACKS"     # directories (':'-separated) of the user's own pack files
PACK_KEYS = frozenset({"description", "settings", "rule"})
SETTING_KEYS = frozenset({"description", "default", "choices", "type"})
PACK_RULE_KEYS = frozenset({"tools", "when", "each", "key", "on_demand"})   # the pack's own
# Names the command templates own; a setting may not shadow them.
RESERVED_NAMES = frozenset({"in", "out", "stem", "dir", "scratch"})

_SETTING_NAME = re.compile(r"[a-z][a-z0-9_]*")


class PackFileError(ValueError):
    """A pack file shipped with computepods is malformed (a bug here)."""


@dataclass(frozen=True)
class Setting:
    """One ``[settings.NAME]`` of a pack."""
    name: str
    default: str                              # "" for a table type
    choices: tuple[str, ...] | None = None    # None: any text
    description: str = ""
    type: str = TEXT

    @property
    def per_target(self) -> bool:
        """A table of targets (``[pack.c.flags]``), not one string."""
        return self.type != TEXT


@dataclass(frozen=True)
class Pack:
    """One pack file, loaded and checked, its rules not yet specialised."""
    name: str
    description: str
    settings: dict[str, Setting]
    rules: tuple[dict[str, Any], ...]         # rule tables with tools/when

    def setting_problem(self, key: str, value: Any) -> str | None:
        """Why ``key = value`` is not a setting of this pack, or None."""
        setting = self.settings.get(key)
        if setting is None:
            return ("unknown key; expected one of: "
                    + (", ".join(sorted(self.settings)) or "none"))
        if setting.per_target:
            keys = [rule.get("key", stems.STEM) for rule in self.rules
                    if rule.get("each") == key]
            return table_problem(self.name, key, setting.type, keys, value)
        if not isinstance(value, str):
            return f"must be a string, got {value!r}"
        if setting.choices is not None and value not in setting.choices:
            return (f"must be one of {', '.join(setting.choices)}, "
                    f"got {value!r}")
        return None

    def settings_for(self, given: Mapping[str, Any] | None = None,
                     ) -> dict[str, Any]:
        """Every setting: the given ones, checked, then the defaults (a
        string, or for a table of targets a dict, empty by default).

        Raises ValueError naming the key; ``computepods.toml`` is checked
        earlier, with the file in the message (project.py).
        """
        given = dict(given or {})
        for key, value in given.items():
            problem = self.setting_problem(key, value)
            if problem is not None:
                raise ValueError(f"pack {self.name!r}: setting {key!r}: "
                                 + problem)
        return {name: (dict(given.get(name, {})) if s.per_target
                       else given.get(name, s.default))
                for name, s in self.settings.items()}

    def rule_tables(self, given: Mapping[str, Any] | None = None,
                    ) -> list[dict[str, Any]]:
        """The rules for these settings, as plain rule tables: an ``each``
        rule once per entry of its setting, in the order written."""
        settings = self.settings_for(given)
        text = {name: value for name, value in settings.items()
                if not self.settings[name].per_target}
        tables = []
        for rule in self.rules:
            if not _applies(rule, settings):
                continue
            plain = {k: v for k, v in rule.items() if k not in PACK_RULE_KEYS}
            each = rule.get("each")
            if each is None:
                tables.append(fill_table(plain, text))
                continue
            for target, value in settings[each].items():
                tables.append(entry_table(plain, rule.get("key", stems.STEM),
                                           each, target, value, text))
        return tables

    def tools(self, given: Mapping[str, Any] | None = None,
              on_demand: bool = False) -> list[str]:
        """The programs the rules for these settings run, in order: those
        every build of the pack needs, and with ``on_demand`` those of the
        rules that join only when a document asks for them too."""
        settings = self.settings_for(given)
        found: dict[str, None] = {}
        for rule in self.rules:
            if _applies(rule, settings) and (
                    "each" not in rule or settings[rule["each"]]) and (
                    on_demand or not rule.get("on_demand")):
                found.update(dict.fromkeys(
                    fill(t, settings, escape=False)
                    for t in rule.get("tools", [])))
        return list(found)

# --- using packs --------------------------------------------------------------

def rule_tables(pack: str, settings: Mapping[str, Any] | None = None,
                ) -> list[dict[str, Any]]:
    """The rule tables pack ``pack`` gives for ``settings`` (None: defaults)."""
    return _pack(pack).rule_tables(settings)


def missing_tools(pack: str, settings: Mapping[str, Any] | None = None,
                  ) -> list[str]:
    """The tools of ``pack`` (with ``settings``) that are not on PATH now."""
    return [tool for tool in _pack(pack).tools(settings)
            if shutil.which(tool) is None]


def on_demand_rules(pack: str) -> frozenset[str]:
    """The names of ``pack``'s ``on_demand`` rules (under any settings)."""
    return frozenset(rule["name"] for rule in _pack(pack).rules if rule.get("on_demand"))


def pack_tools(pack: str, settings: Mapping[str, Any] | None = None) -> list[str]:
    """The programs every build with ``pack`` (with ``settings``) runs; a
    step of an ``on_demand`` rule also needs its own command's program."""
    return _pack(pack).tools(settings)


def available_packs(settings: Mapping[str, Mapping[str, Any]] | None = None,
                    ) -> dict[str, list[str]]:
    """Every pack and the tools it misses here: an empty list means usable.

    With default settings unless ``settings`` (pack -> its settings, as in
    ``Project.packs``) says otherwise, so a chef announces ``latex`` when it
    has pdflatex and bibtex, and can check lualatex for a project that asks.
    """
    settings = settings or {}
    return {name: missing_tools(name, settings.get(name))
            for name in sorted(PACKS)}


def load_settings(value: Any, use: Sequence[str], file: str) -> dict[str, dict[str, str]]:
    """Each used pack's settings: its ``[pack.NAME]`` table over the defaults.

    A table for a pack the project does not use is an error, not ignored:
    it is most likely a misspelt name in one of the two places.
    """
    def known(name: str, key: str) -> None:
        if name not in PACKS:
            raise ProjectError(file, f"unknown pack {name!r}; known packs: "
                               + (", ".join(sorted(PACKS)) or "none"), key=key)

    for n, name in enumerate(use):
        known(name, "project.use")
        if name in use[:n]:
            raise ProjectError(file, f"pack {name!r} is listed twice", key="project.use")
    tables = as_table(value, file, None, "pack")
    for name, table in tables.items():
        key = f"pack.{name}"
        known(name, key)
        if name not in use:
            raise ProjectError(file, f"settings for pack {name!r}, which project.use does "
                               f"not list; add it there or remove [{key}]", key=key)
        for setting, setting_value in as_table(table, file, None, key).items():
            problem = PACKS[name].setting_problem(setting, setting_value)
            if problem is not None:
                raise ProjectError(file, problem, key=f"{key}.{setting}")
    return {name: PACKS[name].settings_for(tables.get(name)) for name in use}


def _pack(name: str) -> Pack:
    try:
        return PACKS[name]
    except KeyError:
        raise ValueError(f"unknown pack {name!r}; known packs: "
                         + ", ".join(sorted(PACKS))) from None


def _applies(rule: Mapping[str, Any], settings: Mapping[str, str]) -> bool:
    return all(settings[key] in values
               for key, values in rule.get("when", {}).items())


# --- loading pack files -------------------------------------------------------

def load_pack(name: str, text: str, file: str) -> Pack:
    """Check a pack file's own structure; its rules are checked when used."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PackFileError(f"{file}: TOML syntax error: {exc}") from None
    _known(data, PACK_KEYS, file, "")
    settings = {key: _load_setting(key, table, file)
                for key, table in _dict(data.get("settings", {}), file,
                                        "settings").items()}
    rules = data.get("rule", [])
    if not isinstance(rules, list) or not rules:
        raise PackFileError(f"{file}: a pack needs [[rule]] tables")
    for n, rule in enumerate(rules, 1):
        _check_pack_rule(_dict(rule, file, f"rule #{n}"), settings, file, n)
    description = data.get("description", "")
    if not isinstance(description, str):
        raise PackFileError(f"{file}: description must be a string")
    return Pack(name, description, settings, tuple(rules))


def _load_setting(key: str, table: Any, file: str) -> Setting:
    where = f"settings.{key}"
    table = _dict(table, file, where)
    _known(table, SETTING_KEYS, file, where + ".")
    if not _SETTING_NAME.fullmatch(key) or key in RESERVED_NAMES:
        raise PackFileError(f"{file}: {where}: a setting name is lower case "
                            "and not one of "
                            + ", ".join(sorted(RESERVED_NAMES)))
    kind = table.get("type", TEXT)
    if kind not in SETTING_TYPES:
        raise PackFileError(f"{file}: {where}.type must be one of "
                            + ", ".join(SETTING_TYPES))
    if kind != TEXT:
        if "default" in table or "choices" in table:
            raise PackFileError(f"{file}: {where}: a table of targets has "
                                "no default or choices (it starts empty)")
        return Setting(key, "", None, table.get("description", ""), kind)
    default = table.get("default")
    choices = table.get("choices")
    if not isinstance(default, str):
        raise PackFileError(f"{file}: {where}.default must be a string")
    if choices is not None:
        if (not isinstance(choices, list) or not choices
                or not all(isinstance(c, str) for c in choices)):
            raise PackFileError(f"{file}: {where}.choices must be an array "
                                "of strings")
        if default not in choices:
            raise PackFileError(f"{file}: {where}.default is not one of its "
                                "choices")
        choices = tuple(choices)
    return Setting(key, default, choices, table.get("description", ""))


def _check_pack_rule(rule: dict, settings: Mapping[str, Setting], file: str,
                     n: int) -> None:
    where = f"rule #{n}"
    tools = rule.get("tools")
    if (not isinstance(tools, list) or not tools
            or not all(isinstance(t, str) and t for t in tools)):
        raise PackFileError(f"{file}: {where}: tools must name the programs "
                            "the rule runs")
    if not isinstance(rule.get("on_demand", False), bool):
        raise PackFileError(f"{file}: {where}: on_demand must be true or false")
    when = _dict(rule.get("when", {}), file, f"{where}.when")
    for key, values in list(when.items()):
        setting = settings.get(key)
        values = [values] if isinstance(values, str) else values
        if (setting is None or setting.choices is None
                or not isinstance(values, list)
                or not set(values) <= set(setting.choices)):
            raise PackFileError(f"{file}: {where}: when.{key} must name "
                                "choices of a setting with choices")
        when[key] = tuple(values)
    rule["when"] = when
    each = rule.get("each")
    if each is not None and (each not in settings
                             or not settings[each].per_target):
        raise PackFileError(f"{file}: {where}: each must name a setting "
                            "whose type is texts or lists")
    key = rule.get("key", stems.STEM)
    if ("key" in rule and each is None) or not isinstance(key, str) \
            or stems.stem_count(key) != 1:
        raise PackFileError(f"{file}: {where}: key is a pattern with one '%', "
                            "given with each")
    kinds = {name: setting.type for name, setting in settings.items()}
    problem = placeholder_problem(
        {k: v for k, v in rule.items() if k not in PACK_RULE_KEYS}, kinds, each)
    if problem is not None:
        raise PackFileError(f"{file}: {where}: {problem}")


def _dict(value: Any, file: str, where: str) -> dict:
    if not isinstance(value, dict):
        raise PackFileError(f"{file}: {where} must be a table")
    return value


def _known(table: dict, allowed: frozenset[str], file: str,
           prefix: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise PackFileError(f"{file}: unknown key {prefix + unknown[0]!r}; "
                            "expected one of: " + ", ".join(sorted(allowed)))


def _load_all() -> dict[str, Pack]:
    # The files sit beside this module (setup.cfg ships packs/*.toml); a
    # plain path is enough and much cheaper to import than importlib.resources.
    packs = {}
    for path in sorted(Path(__file__).parent.glob("*" + PACK_SUFFIX)):
        packs[path.stem] = load_pack(path.stem, path.read_text("utf-8"),
                                     f"computepods/packs/{path.name}")
    return packs


def register_pack(path: Path | str) -> str:
    """Load the pack file at ``path`` for this process and return its name,
    the file's stem (``graphviz.toml``: ``use = ["graphviz"]``).  Its tools
    then count as any pack's: a Chef made after it fingerprints them and
    announces the pack.  A shipped pack's name, or a malformed file, is a
    PackError naming the file."""
    path = Path(path)
    name = path.name.removesuffix(PACK_SUFFIX)
    if name in SHIPPED:
        raise PackError(f"{path}: a pack named {name!r} ships with computepods; rename it")
    try:
        pack = load_pack(name, path.read_text("utf-8"), str(path))
        tables = pack.rule_tables()
    except (OSError, ValueError) as exc:     # PackFileError, a bad setting, UTF-8
        raise PackError(str(exc) if str(exc).startswith(str(path)) else f"{path}: {exc}") from None
    PACKS[name], KNOWN_PACKS[name] = pack, tables
    return name


PACKS: dict[str, Pack] = _load_all()
SHIPPED = frozenset(PACKS)
# name -> its rule tables with default settings: what `use` adds when the
# project has no [pack.NAME] table.
KNOWN_PACKS: dict[str, list[dict[str, Any]]] = {
    name: pack.rule_tables() for name, pack in PACKS.items()}
for _dir in filter(None, os.environ.get(PACKS_ENV, "").split(os.pathsep)):
    for _file in sorted(Path(_dir).glob("*" + PACK_SUFFIX)):     # a user's own packs
        register_pack(_file)
