"""The chefs a pod knows of, each on a lease renewed by its status messages.

A chef says it is alive on ``chefs.status`` (a heartbeat); one silent past
its lease is presumed dead, one that says goodbye (``gone``) is dead at
once.  The MajorDomo also keeps here which steps each chef holds, so a lost
chef's steps can go elsewhere; the Desk lists the chefs from its own
directory.  Federation extends this with remote pods' chefs.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

from computepods.bus.chefwire import ChefStatus
from computepods.clock import SystemClock

WINDOW_PER_SLOT = 16       # steps outstanding per chef slot (queued at the chef)
DEFAULT_LEASE_S = 15.0     # seconds of silence after which a chef is presumed dead


@dataclass
class ChefInfo:
    name: str
    slots: int
    outstanding: set[str] = field(default_factory=set)
    seen: float = 0.0                    # monotonic seconds of its last status
    lease_s: float = DEFAULT_LEASE_S
    status: ChefStatus | None = None     # its last chefs.status

    @property
    def space(self) -> int:
        """Steps it can take now without going past its window."""
        return self.slots * WINDOW_PER_SLOT - len(self.outstanding)

    @property
    def load(self) -> float:
        return len(self.outstanding) / self.slots


class ChefDirectory:
    """Chefs by name, with leases; `min_lease_s` keeps a chef listed at least that long."""

    def __init__(self, clock=None, *, min_lease_s: float = 0.0):
        self._clock = clock or SystemClock()
        self._min_lease_s = min_lease_s
        self._chefs: dict[str, ChefInfo] = {}
        self._last_loss = ""

    @property
    def last_loss(self) -> str:
        """Why the last chef to go is gone ("" if none went)."""
        return self._last_loss

    def absent(self, waited_s: float, limit_s: float) -> str | None:
        """Why a build that waited `waited_s` for a chef gives up (None: it
        waits on): no chef is here, and none came within `limit_s`."""
        if len(self) or waited_s <= limit_s:
            return None
        lost = self._last_loss          # a chef went, and none came after it: say so
        return (f"no chef left to run it: {lost}" if lost else
                f"no chef answered within {limit_s:.0f} s; is a chef running?")

    def __len__(self) -> int:
        return len(self._chefs)

    def __iter__(self) -> Iterator[ChefInfo]:
        return iter(list(self._chefs.values()))

    def get(self, name: str | None) -> ChefInfo | None:
        return self._chefs.get(name) if name else None

    def seen(self, status: ChefStatus) -> ChefInfo:
        """A status message renews (or starts) the chef's lease."""
        name, slots = status.chef, max(1, status.slots)
        info = self._chefs.get(name)
        if info is None:
            info = self._chefs[name] = ChefInfo(name, slots)
        info.slots = slots
        info.seen = self._clock.monotonic()
        info.lease_s = max(self._min_lease_s, float(status.lease_s or DEFAULT_LEASE_S))
        info.status = status
        return info

    def heard(self, status: ChefStatus) -> tuple[ChefInfo, str] | None:
        """A chefs.status: its lease renewed; or, for a goodbye, the chef
        forgotten and returned with why it is gone (None if unknown)."""
        if not status.gone:
            self.seen(status)
            return None
        info = self.gone(status.chef)
        if info is None:
            return None
        self._last_loss = f"chef {info.name} is gone ({status.gone})"
        return info, self._last_loss

    def expire(self) -> list[tuple[ChefInfo, str]]:
        """Forget the chefs silent past their lease; each with why it is gone."""
        lost = []
        for info in self.expired():
            why = (f"chef {info.name} stopped answering (no status for "
                   f"{self.silent_s(info):.1f} s; its lease is {info.lease_s:.1f} s)")
            self.gone(info.name)
            self._last_loss = why
            lost.append((info, why))
        return lost

    def gone(self, name: str) -> ChefInfo | None:
        """The chef is gone (a goodbye, or its lease ran out): forget it."""
        return self._chefs.pop(name, None)

    def silent_s(self, info: ChefInfo) -> float:
        return self._clock.monotonic() - info.seen

    def expired(self) -> list[ChefInfo]:
        """The chefs silent past their lease (still listed: say :meth:`gone`)."""
        return [c for c in self._chefs.values() if self.silent_s(c) > c.lease_s]

    def live(self) -> list[ChefInfo]:
        """The chefs within their lease, by name."""
        return sorted((c for c in self._chefs.values() if self.silent_s(c) <= c.lease_s),
                      key=lambda c: c.name)

    def assign(self, name: str, steps: list[str]) -> None:
        self._chefs[name].outstanding.update(steps)

    def settled(self, name: str | None, sid: str) -> None:
        """A step's chef is done with it; with no (known) chef, whichever held it."""
        info = self._chefs.get(name) if name else None
        for c in [info] if info else self._chefs.values():
            c.outstanding.discard(sid)
