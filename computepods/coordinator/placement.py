"""Which chef gets the next steps, and how many at once.

Dispatch keeps up to ``WINDOW_PER_SLOT`` steps outstanding per chef slot,
several per run message, so a slot never idles for a round trip
(docs/architecture.md §10).
"""
from __future__ import annotations

import itertools
from typing import Any, Iterable

from computepods.coordinator.chefs import WINDOW_PER_SLOT, ChefInfo

MAX_BATCH = 32             # steps per run message


def place(chefs: Iterable[ChefInfo], waiting: int) -> tuple[ChefInfo, int] | None:
    """The least-loaded chef and how many of the `waiting` steps it gets,
    or None when none should be sent now."""
    chef = min(chefs, key=lambda c: c.load, default=None)
    if chef is None or waiting <= 0:
        return None
    n = min(chef.space, MAX_BATCH, waiting)
    # Refill a chef once half its window (or a full batch) is free, so run
    # messages carry several steps; but never hold back the last few steps.
    if n <= 0 or (n < min(MAX_BATCH, chef.slots * WINDOW_PER_SLOT // 2) and n < waiting):
        return None
    return chef, n


class RunBatches:
    """The run messages sent and not yet answered: which chef, which steps."""

    def __init__(self):
        self._numbers = itertools.count(1)
        self._sent: dict[int, tuple[str, list[str]]] = {}

    def sent(self, chef: str, steps: list[str]) -> tuple[str, int]:
        """A run message goes out: the token its answer comes back with."""
        batch = next(self._numbers)
        self._sent[batch] = (chef, steps)
        return ("run", batch)

    def answered(self, token: Any) -> tuple[str | None, list[str]] | None:
        """The (chef, steps) a run message was for; None when `token` is not a run's."""
        if not (isinstance(token, tuple) and token[0] == "run"):
            return None
        return self._sent.pop(token[1], (None, []))
