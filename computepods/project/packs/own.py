"""A project's own rules beside its packs': a rule of the project's with a
pack rule's name replaces it, or with ``extend = true`` adds inputs to it
(docs/architecture.md §3, "A project's rule and a pack's of the same name")."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from computepods.errors import ProjectError

EXTEND_KEYS = frozenset({"name", "extend", "inputs"})   # what a rule extending a pack's has


@dataclass(frozen=True)
class RuleSource:
    """A rule table to check, and where it came from."""
    table: Any
    pack: str | None = None           # the pack whose rule it is
    overrides: str | None = None      # the pack whose rule of this name it replaces
    added: int = 0                    # inputs the project added at the end (extend)


def with_own_rules(own: Sequence[Any], packs: Sequence[tuple[Any, str]],
                   file: str) -> list[RuleSource]:
    """The project's rule tables, then the packs' (``(table, pack)``), where
    a rule of the project's with a pack rule's name replaces it, or, with
    ``extend = true``, adds its ``inputs`` to the pack rule's."""
    by_name = {t.get("name"): (t, pack) for t, pack in packs}
    taken: set[str] = set()
    out: list[RuleSource] = []
    for n, table in enumerate(own, 1):
        named = table.get("name") if isinstance(table, dict) else None
        if not isinstance(table, dict) or ("extend" not in table and (
                not isinstance(named, str) or named not in by_name)):     # checked later
            out.append(RuleSource(table))
            continue
        name = table.get("name")
        label = name if isinstance(name, str) else f"#{n}"
        extend = table.get("extend", False)
        if not isinstance(extend, bool):
            raise ProjectError(file, f"must be true or false, got {extend!r}", label, "extend")
        table = {k: v for k, v in table.items() if k != "extend"}
        if not isinstance(name, str) or name not in by_name:
            if extend:
                names = ", ".join(sorted(by_name)) or "none (no pack in project.use)"
                raise ProjectError(file, f"extend = true, but no used pack has a rule "
                                   f"{name!r}; pack rules: {names}", label, "extend")
            out.append(RuleSource(table))
            continue
        if name in taken:
            raise ProjectError(file, f"pack rule {name!r} is replaced or extended twice; "
                               "keep one", label, "name")
        taken.add(name)
        theirs, pack = by_name[name]
        if not extend:
            out.append(RuleSource(table, overrides=pack))
            continue
        extra = sorted(set(table) - EXTEND_KEYS)
        if extra:
            raise ProjectError(file, "a rule with extend = true only adds inputs; to change "
                               f"{extra[0]!r}, leave out extend and write the whole rule, "
                               "which then replaces the pack's", label, extra[0])
        added = table.get("inputs", [])
        if not isinstance(added, list):
            raise ProjectError(file, "must be an array of paths", label, "inputs")
        merged = {**theirs, "inputs": [*theirs.get("inputs", []), *added]}
        out.append(RuleSource(merged, pack, added=len(added)))
    out.extend(RuleSource(t, pack) for t, pack in packs if t.get("name") not in taken)
    return out
