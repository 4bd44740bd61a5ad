"""``[vars]`` and ``{pack.NAME.SETTING}``: names a project's own rules use
(docs/architecture.md §3).

A var is a string (text: ``cflags = "-O2 -g"``) or a list (paths, globs,
words: ``objs = ["build/parse.o", "build/eval.o"]``); a table is a glob
with a mapping, ``{ glob = "src/*.c", as = "build/%.o" }``, which is a list
of one.  A var's value may use other vars.  A pack's settings are string
vars named ``pack.c.cflags``.

They are filled into the project's own rule tables before those are
checked, so what comes out is a plain rule:

- in ``inputs`` and ``outputs`` an item that is exactly ``{objs}`` gives
  one item per element of the list; a string var may stand inside a path
  (``build/{arch}/x.o``), a list may not;
- in a string ``command`` a string var is text, as written, and a list is
  its items, each shell-quoted, joined by spaces; in an argv command an
  item that is exactly ``{libs}`` gives one item per element;
- ``cwd``, ``depfile`` and the keys of ``parts`` take string vars only.

``{{`` and ``}}`` are literal braces, in paths and values as in commands.

``{in}``, ``{out}`` and the other command placeholders are left for the
template language (:mod:`computepods.project.templates`); a var may not
take their names.  Globs are found later, when a rule is planned, so a
list holding a glob serves inputs only: a command names those files with
``{in}``.
"""
from __future__ import annotations

import re
import shlex
from typing import Any, Mapping

from computepods.errors import ProjectError
from computepods.project.checks import as_table, describe, no_nul
from computepods.project.globs import input_item, is_glob
from computepods.project.templates import PLACEHOLDERS

Item = str | dict                   # a list var's element: a path or word, or a glob table
Value = str | tuple[Item, ...]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# "{{" and "}}" are literal braces; " {name}" keeps the space before it, so
# that an empty string can take it away ("cc {cflags} -c"), as a pack does.
_REF = re.compile(r"\{\{|\}\}|( ?)\{([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*)\}")
PATH_KEYS = ("inputs", "outputs")
SINGLE_KEYS = ("cwd", "depfile")


class Vars:
    """The project's vars and its packs' settings; each var is resolved
    (the vars it uses filled in) when first looked up."""

    def __init__(self, raw: dict[str, Value], packs: Mapping[str, Mapping[str, str]],
                 file: str):
        self._raw = raw
        self._values: dict[str, Value] = {}
        self._chain: list[str] = []               # the vars being resolved
        self._packs = packs
        self._file = file

    def lookup(self, name: str, rule: str | None, key: str) -> Value:
        if name.startswith("pack."):
            return self._setting(name, rule, key)
        if name in self._values:
            return self._values[name]
        if name in self._raw:
            return self._resolve(name)
        known = ", ".join(sorted(self._raw)) or "none"
        raise ProjectError(self._file, f"unknown var {{{name}}}; [vars] defines: {known}",
                           rule, key)

    def _resolve(self, name: str) -> Value:
        if name in self._chain:
            loop = self._chain[self._chain.index(name):] + [name]
            raise ProjectError(self._file, "var cycle: " + " -> ".join(loop),
                               key=f"vars.{self._chain[-1]}")
        self._chain.append(name)
        key = f"vars.{name}"
        value = self._raw[name]
        if isinstance(value, str):
            done: Value = self.text(value, None, key)
        else:
            items = self._items(list(value), None, key)
            for item in items:
                if isinstance(item, dict):
                    input_item(item, self._file, None, key)    # a bad glob table fails here
            done = tuple(items)
        self._chain.pop()
        self._values[name] = done
        return done

    def _setting(self, name: str, rule: str | None, key: str) -> str:
        parts = name.split(".")
        pack = parts[1] if len(parts) > 1 else ""
        if len(parts) != 3 or pack not in self._packs:
            used = ", ".join(sorted(self._packs)) or "none"
            raise ProjectError(self._file, f"{{{name}}}: write {{pack.NAME.SETTING}} for a "
                               f"pack in project.use (used: {used})", rule, key)
        settings = self._packs[pack]
        if parts[2] not in settings:
            raise ProjectError(self._file, f"{{{name}}}: pack {pack!r} has no setting "
                               f"{parts[2]!r}; its settings: "
                               + (", ".join(sorted(settings)) or "none"), rule, key)
        return settings[parts[2]]

    # -- filling a rule table --------------------------------------------------------
    def fill_rule(self, table: dict, rule: str) -> dict:
        """A copy of one of the project's rule tables with its vars filled in."""
        out = dict(table)
        for key in PATH_KEYS:
            if isinstance(table.get(key), list):
                out[key] = self._items(table[key], rule, key)
        command = table.get("command")
        if isinstance(command, str):
            out["command"] = self.text(command, rule, "command", template=True, lists=True)
        elif isinstance(command, list):
            out["command"] = self._argv(command, rule)
        for key in SINGLE_KEYS:
            if isinstance(table.get(key), str):
                out[key] = self.text(table[key], rule, key, template=key == "cwd")
        if isinstance(table.get("parts"), dict):
            out["parts"] = {self.text(k, rule, f"parts.{k}") if isinstance(k, str) else k:
                            self.text(v, rule, f"parts.{k}") if isinstance(v, str) else v
                            for k, v in table["parts"].items()}
        return out

    def text(self, text: str, rule: str | None, key: str, template: bool = False,
             lists: bool = False) -> str:
        """``text`` with each var in it: a string as written, a list (where
        ``lists``: a command) as shell-quoted words.  In a ``template`` the
        placeholders stay, and what is filled in is escaped."""
        def replace(m: re.Match) -> str:
            space, name = m.group(1), m.group(2)
            if name is None:                      # {{ or }}: the template undoubles it
                return m.group(0) if template else m.group(0)[0]
            if template and name in PLACEHOLDERS:
                return m.group(0)
            if name in PLACEHOLDERS:
                raise ProjectError(self._file, f"{{{name}}} is a command placeholder; here "
                                   "only vars can be used", rule, key)
            value = self.lookup(name, rule, key)
            if not isinstance(value, str):
                if not lists:
                    raise ProjectError(self._file, f"var {name!r} is a list, where {key} "
                                       "needs a single string or path (a list stands alone "
                                       f'as an item of a list: "{{{name}}}")', rule, key)
                value = " ".join(shlex.quote(w) for w in self._words(name, value, rule, key))
            if template:
                value = value.replace("{", "{{").replace("}", "}}")
            return space + value if value else ""
        return _REF.sub(replace, text)

    def _items(self, items: list, rule: str, key: str) -> list:
        out: list = []
        for item in items:
            if isinstance(item, str) and (name := _whole(item)) is not None \
                    and name not in PLACEHOLDERS:
                value = self.lookup(name, rule, key)
                if isinstance(value, str):
                    out.append(value)
                    continue
                if key == "outputs":
                    for v in value:
                        if isinstance(v, dict) or is_glob(v):
                            raise ProjectError(self._file, f"var {name!r} holds a glob; "
                                               "outputs are paths a rule makes", rule, key)
                out.extend(value)
            elif isinstance(item, str):
                out.append(self.text(item, rule, key))
            elif isinstance(item, dict):
                out.append({k: self.text(v, rule, key) if isinstance(v, str) else v
                            for k, v in item.items()})
            else:
                out.append(item)          # the rule's checks name the wrong type
        return out

    def _argv(self, argv: list, rule: str) -> list:
        out: list = []
        for item in argv:
            if not isinstance(item, str):
                out.append(item)
                continue
            name = _whole(item)
            if name is None or name in PLACEHOLDERS:
                out.append(self.text(item, rule, "command", template=True))
                continue
            value = self.lookup(name, rule, "command")
            words = [value] if isinstance(value, str) else self._words(name, value, rule,
                                                                       "command")
            out.extend(w.replace("{", "{{").replace("}", "}}") for w in words)
        return out

    def _words(self, name: str, value: tuple[Item, ...], rule: str | None,
               key: str) -> list[str]:
        for v in value:
            if isinstance(v, dict) or is_glob(v):
                raise ProjectError(self._file, f"var {name!r} holds a glob, which is found "
                                   "only when the rule is planned; name the files it finds "
                                   "with {in}", rule, key)
        return list(value)


def _whole(item: str) -> str | None:
    """The var name when ``item`` is exactly one ``{name}``."""
    m = _REF.fullmatch(item)
    return m.group(2) if m is not None and not m.group(1) else None


def load_vars(value: Any, packs: Mapping[str, Mapping[str, str]], file: str) -> Vars:
    """Check ``[vars]`` and resolve each var's own references (a cycle is an error)."""
    table = as_table(value, file, None, "vars")
    raw: dict[str, Value] = {}
    for name, v in table.items():
        key = f"vars.{name}"
        if not _NAME.fullmatch(name) or name in PLACEHOLDERS:
            raise ProjectError(file, "a var name is letters, digits and '_', and not one "
                               "of " + ", ".join(PLACEHOLDERS), key=key)
        if isinstance(v, dict):
            v = [v]
        if isinstance(v, str):
            raw[name] = no_nul(v, file, None, key)
        elif isinstance(v, list) and all(isinstance(i, (str, dict)) for i in v):
            raw[name] = tuple(no_nul(i, file, None, key) if isinstance(i, str) else i
                              for i in v)
        else:
            raise ProjectError(file, "must be a string, an array of strings or a glob "
                               f"table, got {describe(v)}", key=key)
    found = Vars(raw, packs, file)
    for name in raw:
        found.lookup(name, None, f"vars.{name}")      # every var's mistakes fail now
    return found
