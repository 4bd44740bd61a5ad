"""What a MajorDomo needs to place steps on other pods (the Pod builds it).

``MajorDomo(..., federation=Federation(pod, fetch, owners, ...))``: without
one, every chef is the pod's own, as on one machine.  With one, a chef is
our own when its status names our pod id; the rest are remote, and their
steps carry their files by hash (:mod:`computepods.federation.manifest`),
are placed by cost (:mod:`computepods.federation.cost`) and have their
outputs fetched back (:mod:`computepods.federation.landing`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from computepods.federation.offer import OfferIndex
from computepods.state.owners import BuiltWith, OwnerMap

Fetch = Callable[[str, str], Path]          # fetch(pod, sha) -> a local file with that content
Rate = Callable[[str], "float | None"]      # pod -> bytes/s measured to it (None: not yet)
Offered = Callable[[], "dict[str, set[str]]"]   # tool -> fingerprints some live pod offers
Prints = Callable[[Iterable[str]], "dict[str, str]"]   # our own tool fingerprints


def _own_prints(tools: Iterable[str]) -> dict[str, str]:
    from computepods.federation.toolprints import fingerprints
    return fingerprints(tools)


def _no_rate(pod: str) -> float | None:
    return None


def _trust_all(pod: str) -> bool:
    return True


@dataclass
class Federation:
    """Our pod id and the federation's services, as the MajorDomo uses them."""
    pod: str
    fetch: Fetch                           # outputs of remote steps, by hash
    owners: OwnerMap                       # which pods hold which sha256
    rates: Rate = _no_rate                 # Puller.rate
    offered: Offered = dict                # Roster.tools: for planning's tool check
    offers: OfferIndex | None = None       # what our StoreServer may serve from the tree
    built_with: BuiltWith = field(default_factory=BuiltWith)
    prints: Prints = _own_prints           # toolprints.fingerprints on our PATH
    trusts: Callable[[str], bool] = _trust_all   # Roster.trusts: steps go to those pods only
