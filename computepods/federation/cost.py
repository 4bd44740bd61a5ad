"""Which chef a step costs least on, in seconds (issue 12, item 6).

The cost of a step on a chef is the wait before it starts there, its queue
length × the typical step time the chef *publishes* in its status (never
polled), plus the time to move the bytes of its inputs that the chef's pod
lacks (the ownership map), at the rate measured to that pod.  Ties go to
the pod that owns most of the step's input bytes, then to our own chefs.

A chef that lacks one of the step's tools is never chosen, nor one whose
fingerprint of it differs from the one the step needs (the user's pod's
own, or the one the step was last built with), unless the project lists
the tool in ``[project] interchangeable``: :func:`unfit` says why.
"""
from __future__ import annotations

import bisect
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping

from computepods.coordinator.chefs import ChefInfo
from computepods.state.owners import OwnerMap

DEFAULT_TYPICAL_S = 1.0        # seconds a step takes on a chef that has not said
DEFAULT_RATE_BPS = 50e6        # bytes/s to a pod no transfer has been measured to yet

Rate = Callable[[str], "float | None"]      # pod -> measured bytes/s


@dataclass(frozen=True)
class Need:
    """What a step needs of the chef it runs on."""
    tools: frozenset[str] = frozenset()
    prints: Mapping[str, str] = field(default_factory=dict)   # tool -> fingerprint it must be
    contents: Mapping[str, int] = field(default_factory=dict)  # sha256 -> bytes it reads
    avoid: frozenset[str] = frozenset()       # pods it must not go to (a fetch failed there)
    # programs a remote chef may run unlisted: no chef has announced them yet,
    # and a chef fingerprints a program once a run starts it (pack tools: never)
    unannounced: frozenset[str] = frozenset()
    only: frozenset[str] | None = None        # chefs it may go to (None: any)
    programs: frozenset[str] = frozenset()    # its tools that are programs, not pack tools


@dataclass(frozen=True)
class Candidate:
    """A chef as placement sees it: its pod, and whether that pod is ours."""
    chef: ChefInfo
    pod: str
    local: bool
    offers: Mapping[str, str | None] = field(default_factory=dict)   # tool -> fingerprint
    # the programs runs sent to this remote chef started, which it has learnt
    # and lists if it has them (None: not known; then only unannounced ones go)
    taught: frozenset[str] | None = None
    room: int | None = None       # steps it may be given now (None: its window's space)

    @property
    def space(self) -> int:
        return self.chef.space if self.room is None else self.room


def offers_of(chef: ChefInfo) -> dict[str, str | None]:
    """The tools a chef's last status offers, with their fingerprints when known."""
    status = chef.status
    if status is None:
        return {}
    return {**dict.fromkeys(status.tools), **status.fingerprints}


def unfit(c: Candidate, need: Need) -> str | None:
    """Why the step may not run on this chef, or None."""
    if c.pod in need.avoid:
        return f"pod {c.pod} failed to hand back its outputs"
    if need.only is not None and c.chef.name not in need.only:
        return "its group runs on another chef"
    for tool in sorted(need.tools):
        if tool not in c.offers:
            if not c.local and (tool in need.unannounced or untaught(c, need, tool)):
                continue
            return f"chef {c.chef.name} lacks {tool}"
        want, got = need.prints.get(tool), c.offers[tool]
        if want is not None and got is not None and got != want:
            return (f"chef {c.chef.name} has another {tool} (fingerprint {got[:19]}, "
                    f"the build needs {want[:19]})")
    return None


def untaught(c: Candidate, need: Need, tool: str) -> bool:
    """A program of the step no run has told this chef of yet: it cannot
    list it, so it is not known to lack it (another chef listing it says
    nothing of this one)."""
    return c.taught is not None and tool in need.programs and tool not in c.taught


def queue_s(c: Candidate, extra: int = 0) -> float:
    """The seconds before a step sent now would start on this chef."""
    chef, status = c.chef, c.chef.status
    published = (status.running + status.queued) if status is not None else 0
    queued = max(len(chef.outstanding) + extra, published)
    typical = status.typical_s if status is not None and status.typical_s else None
    return queued / max(1, chef.slots) * (typical or DEFAULT_TYPICAL_S)


def cost_s(c: Candidate, need: Need, owners: OwnerMap, rate: Rate, extra: int = 0) -> float:
    """The step's cost on this chef, in seconds (`extra`: steps given it in this pass)."""
    wait = queue_s(c, extra)
    if c.local:
        return wait
    lacking = owners.lacking_bytes(c.pod, need.contents)
    return wait + (lacking / (rate(c.pod) or DEFAULT_RATE_BPS) if lacking else 0.0)


def _rank(c: Candidate, need: Need, owners: OwnerMap, rate: Rate, extra: int,
          total: int) -> tuple:
    """The order of preference: cost, then most input bytes owned, ours, name."""
    owned = total if c.local else total - owners.lacking_bytes(c.pod, need.contents)
    return (round(cost_s(c, need, owners, rate, extra), 6), -owned, not c.local, c.chef.name)


def choose(candidates: Iterable[Candidate], need: Need, owners: OwnerMap, rate: Rate,
           extra: Mapping[str, int] | None = None) -> Candidate | None:
    """The fit chef of least cost (ties: the pod owning most input bytes,
    then ours, then by name), or None when no chef is fit."""
    extra = extra or {}
    total = sum(need.contents.values())
    ranked = [(_rank(c, need, owners, rate, extra.get(c.chef.name, 0), total), c)
              for c in candidates if unfit(c, need) is None]
    return min(ranked, key=lambda kc: kc[0])[1] if ranked else None


class Board:
    """The chefs with room in one dispatch pass, by their queue time: a lower
    bound of any step's cost there.  :meth:`choose` stops at the first chef
    whose queue alone costs more than the best found, so placing a step looks
    at the chefs about as cheap as its best, not at every chef of every pod;
    :meth:`took` moves a chef down as it is given steps."""

    def __init__(self, candidates: Iterable[Candidate], rate: Rate = lambda pod: None):
        self._extra: Counter = Counter()
        self._order = sorted(candidates, key=self._bound)
        self._keys = [self._bound(c) for c in self._order]
        self._room = {id(c) for c in self._order}
        self._locals = [c for c in self._order if c.local]
        self._by_pod: dict[str, list[Candidate]] = {}
        for c in self._order:
            self._by_pod.setdefault(c.pod, []).append(c)
        # the fastest link: a step's bytes take at least total / this to any pod lacking them
        self._fastest = max((rate(p) or DEFAULT_RATE_BPS for p in self._by_pod),
                            default=DEFAULT_RATE_BPS)

    def _bound(self, c: Candidate) -> float:
        return round(queue_s(c, self._extra[c.chef.name]), 6)

    def __bool__(self) -> bool:
        return bool(self._order)

    @property
    def given(self) -> Mapping[str, int]:
        """Steps given to each chef in this pass."""
        return self._extra

    def choose(self, need: Need, owners: OwnerMap, rate: Rate) -> Candidate | None:
        """As :func:`choose`, over the chefs that still have room (exact ties:
        the first by queue, not by name)."""
        total = sum(need.contents.values())
        moving = total / self._fastest      # the least a pod lacking the inputs adds
        best, best_rank = None, None
        for c, bound in zip(self._order, self._keys):
            if best_rank is not None and bound + moving >= best_rank[0]:
                break          # the rest cost as much, but ours and holders: looked at below
            if unfit(c, need) is None:
                rank = _rank(c, need, owners, rate, self._extra[c.chef.name], total)
                if best_rank is None or rank < best_rank:
                    best, best_rank = c, rank
        if best is None:
            return None
        # At the best cost, only one of ours or a pod holding some input is preferred.
        holders = owners.pods_holding(need.contents) if total else set()
        for c in [*self._locals, *(c for p in holders for c in self._by_pod.get(p, ()))]:
            if id(c) in self._room and self._bound(c) <= best_rank[0] and unfit(c, need) is None:
                rank = _rank(c, need, owners, rate, self._extra[c.chef.name], total)
                if rank[:3] < best_rank[:3]:
                    best, best_rank = c, rank
        return best

    def took(self, c: Candidate) -> None:
        """`c` was given one step: its queue grows (it leaves once full)."""
        i = bisect.bisect_left(self._keys, self._bound(c))
        while self._order[i] is not c:
            i += 1
        del self._order[i], self._keys[i]
        self._extra[c.chef.name] += 1
        if c.space <= self._extra[c.chef.name]:
            self._room.discard(id(c))
        else:
            key = self._bound(c)
            j = bisect.bisect_right(self._keys, key)
            self._order.insert(j, c)
            self._keys.insert(j, key)


def why_none(candidates: Iterable[Candidate], need: Need) -> str:
    """Why no chef is fit for the step (one reason per chef)."""
    reasons = [unfit(c, need) for c in candidates]
    return "; ".join(r for r in reasons if r) or "no chef is known"
