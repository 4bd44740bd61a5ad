"""What a chef knows of its tools: their names and fingerprints, learnt as runs come.

A chef fingerprints every rule pack's tools from the start, and a program
once a run first starts it (a chef cannot know beforehand every program a
project runs).  Another pod's step whose program this chef's PATH lacks
is refused, naming it: it would only exit 127 here.
"""
from __future__ import annotations

from typing import Callable, Iterable

Fingerprint = Callable[[Iterable[str]], dict[str, str]]


class ChefTools:
    def __init__(self, extra: Iterable[str] = (), fingerprint: Fingerprint | None = None):
        self.names: set[str] = {*pack_tools(), *extra}
        self._fingerprint = fingerprint or _toolprints
        self.fingerprints: dict[str, str] = {}

    def fingerprint_all(self) -> None:
        self.fingerprints = self._fingerprint(self.names)

    def learn(self, rules) -> None:
        """Fingerprint the programs these rules start, once each."""
        from computepods.federation.toolprints import step_tools
        new = set().union(*(step_tools((), r.command) for r in rules)) - self.names
        if new:
            self.names |= new
            self.fingerprints = {**self.fingerprints, **self._fingerprint(new)}

    @staticmethod
    def lacking(rules) -> dict[str, str]:
        """Rule -> the program it starts that this PATH lacks."""
        from computepods.federation.toolprints import missing_program
        return {r.name: program for r in rules if (program := missing_program(r.command))}


def pack_tools() -> set[str]:
    """Every tool of every rule pack, with its default settings."""
    from computepods.project.packs import PACKS
    return {tool for pack in PACKS.values() for tool in pack.tools(on_demand=True)}


def _toolprints(tools: Iterable[str]) -> dict[str, str]:
    from computepods.federation.toolprints import fingerprints
    return fingerprints(tools)


def packs_announcement(chef: str) -> dict:
    """rules.announce: which rule packs this chef has the tools for.  Nothing
    receives it yet: with federation (issue 12) and embedded charts (issue
    16) a pod learns a remote chef's packs from it."""
    from computepods.project.packs import available_packs
    packs = available_packs()
    return {"chef": chef, "packs": [p for p, missing in packs.items() if not missing],
            "missing": {p: missing for p, missing in packs.items() if missing}}
