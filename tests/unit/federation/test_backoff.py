"""The retry delays of a blocked access: random, growing, capped at 5 s."""
from __future__ import annotations

import random

from computepods.federation import backoff as b
from computepods.federation.backoff import Backoff


def test_the_backoff_ceiling_doubles_up_to_five_seconds_and_resets():
    backoff = Backoff(random.Random(3))
    ceilings = []
    for _ in range(10):
        ceilings.append(backoff.ceiling_s)
        assert b.RETRY_MIN_S <= backoff.next() <= ceilings[-1]
    assert ceilings[:3] == [0.05, 0.1, 0.2] and ceilings[-1] == b.RETRY_MAX_S == 5.0
    backoff.reset()
    assert backoff.ceiling_s == b.RETRY_FIRST_S
