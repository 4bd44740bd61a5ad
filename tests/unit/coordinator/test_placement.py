"""Which chef gets the next steps, and how many at once."""
from __future__ import annotations

from computepods.coordinator.chefs import WINDOW_PER_SLOT, ChefInfo
from computepods.coordinator.placement import MAX_BATCH, RunBatches, place


def chef(name: str, slots: int, holding: int = 0) -> ChefInfo:
    return ChefInfo(name, slots, outstanding={f"{name}{i}" for i in range(holding)})


def test_the_least_loaded_chef_gets_a_full_batch():
    busy, free = chef("busy", 1, holding=8), chef("free", 4, holding=8)
    assert place([busy, free], 100) == (free, MAX_BATCH)


def test_no_chef_or_nothing_waiting_places_nothing():
    assert place([], 5) is None
    assert place([chef("a", 1)], 0) is None


def test_a_chef_is_refilled_only_once_half_its_window_is_free():
    almost_full = chef("a", 1, holding=WINDOW_PER_SLOT - 2)      # room for 2
    assert place([almost_full], 10) is None
    assert place([almost_full], 2) == (almost_full, 2)       # but never hold back the last


def test_a_run_message_is_answered_with_its_chef_and_steps():
    batches = RunBatches()
    token = batches.sent("a", ["s1", "s2"])
    assert batches.answered("not a run") is None
    assert batches.answered(token) == ("a", ["s1", "s2"])
    assert batches.answered(token) == (None, [])             # answered once


def test_a_chef_of_many_slots_is_refilled_a_full_batch_at_a_time():
    """Half the window of 8 slots is more than a run message holds: a chef
    was then never refilled while more steps waited (-j 8 hung)."""
    big = chef("big", 8, holding=8 * WINDOW_PER_SLOT - MAX_BATCH)
    assert place([big], 1000) == (big, MAX_BATCH)
