"""tests/sequences.py, the seeded sequences' runner: a broken invariant is
reported with its seed and the moves that led to it, a seed always makes
the same moves, and a chart out of its tree is caught."""
from __future__ import annotations

import random

import pytest

from computepods.charts.cron import cron_firing
from computepods.charts.store import Store
from sequences import in_its_tree, play
from stepped import NO_TRACE, start_stepped


class Round:
    def __init__(self, seed: int):
        self.seed, self.rng = seed, random.Random(seed)


class Counting:
    """A world whose invariant holds until it has been poked `limit` times."""

    def __init__(self, limit: int):
        self.pokes, self.limit, self.stopped = 0, limit, False

    def settle(self) -> None:
        pass

    def check(self) -> None:
        assert self.pokes < self.limit, f"poked {self.pokes} times"

    def drain(self) -> None:
        pass

    def check_end(self) -> None:
        pass

    def stop(self) -> None:
        self.stopped = True


def poke(world: Counting, rng: random.Random) -> str:
    world.pokes += 1
    return f"poke {rng.randint(0, 9)}"


def test_a_broken_invariant_names_the_seed_and_the_moves_that_broke_it():
    worlds = []
    for seed in range(20):                  # some sequence pokes 3 times
        try:
            play(Round(seed), lambda rng: worlds.append(Counting(3)) or worlds[-1], [poke])
        except AssertionError as exc:
            text = str(exc)
            break
    else:
        pytest.fail("no sequence of 20 poked three times")
    assert text.startswith(f"seed {seed}, after 3 moves: poke ")
    assert text.count("poke ") == 3 and text.endswith("AssertionError: poked 3 times")
    assert all(w.stopped for w in worlds)


def test_a_seed_makes_the_same_moves_every_time():
    def moves(seed: int) -> str:
        try:
            play(Round(seed), lambda rng: Counting(0), [poke])
        except AssertionError as exc:
            return str(exc)
        return ""
    assert moves(7) == moves(7) and moves(7) != moves(8)


def test_a_chart_in_a_state_of_another_tree_is_caught(tmp_path):
    store = Store(tmp_path / "state.db", **NO_TRACE)
    start_stepped(store)
    in_its_tree(store)
    store.state.fun = cron_firing           # as a bad transition would leave it
    with pytest.raises(AssertionError, match="store left its tree: it is in 'cron_firing'"):
        in_its_tree(store)
    store.stop()
