"""How long a blocked access waits before it is tried again.

The seeds' CacheFile chart re-posted a blocked access after a random delay
whose ceiling grows with each failure, to at most 5 s: random, so that
processes blocked together do not come back together; growing, so that a
long hold is not hammered.  Both the chart (on its clock) and plain code
(:meth:`computepods.federation.cachefile.CacheFile.acquire`) draw from one.
"""
from __future__ import annotations

import random

RETRY_MIN_S = 0.001      # seconds: the shortest wait before a blocked try again
RETRY_FIRST_S = 0.05     # seconds: the longest wait after the first blocked try
RETRY_MAX_S = 5.0        # seconds: the longest wait, however often blocked


class Backoff:
    """Delays between ``RETRY_MIN_S`` and a ceiling that doubles with each
    blocked try, from ``RETRY_FIRST_S`` up to ``RETRY_MAX_S``; ``reset``
    once the access went through."""

    def __init__(self, rng: random.Random | None = None):
        self._rng = rng or random.Random()
        self.ceiling_s = RETRY_FIRST_S

    def next(self) -> float:
        delay = self._rng.uniform(RETRY_MIN_S, self.ceiling_s)
        self.ceiling_s = min(self.ceiling_s * 2, RETRY_MAX_S)
        return delay

    def reset(self) -> None:
        self.ceiling_s = RETRY_FIRST_S
