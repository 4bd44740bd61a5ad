"""The battery's bookkeeping: a failed round is tallied, named by seed, and
does not stop the other rounds."""
from __future__ import annotations

import pytest

from battery import Battery


def test_a_failed_round_names_its_seed_and_the_others_still_run():
    battery = Battery()
    seen = []
    with pytest.raises(AssertionError) as failure:
        for rnd in battery.rounds("row", full=4, short=4, must_hold="x"):
            with rnd:
                seen.append(rnd.index)
                assert rnd.index != 1, "round one breaks"
    assert seen == [0, 1, 2, 3]
    row = battery.rows["row"]
    assert (row.tries, row.holds) == (4, 3)
    assert "1 of 4 rounds failed" in str(failure.value)
    assert "round one breaks" in str(failure.value)
    assert '"row", "4 tried, 3 held", "x"' in battery.table()


def test_rounds_of_a_row_get_distinct_reproducible_seeds():
    battery = Battery()
    seeds = [rnd.seed for rnd in battery.rounds("a", full=3, short=3)]
    assert len(set(seeds)) == 3
    again = [rnd.rng.random() for rnd in battery.rounds("a", full=3, short=3)]
    import random
    assert again == [random.Random(s).random() for s in seeds]
