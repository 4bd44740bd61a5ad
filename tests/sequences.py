"""Seeded random event sequences with invariants, as sismic's contracts are.

A *world* is one chart (or a pod's charts) stepped on the test's thread
(tests/stepped.py) with what it talks to; a *move* is one thing that can
happen to it: an event of those the chart handles, with a payload that is
well typed or malformed where the bus would pass it, the clock moving, a
disk filling.  :func:`play` makes one sequence of moves from a seed,
bounded in steps, steps the world after each and checks its invariants
(the chart never leaves its tree, and each world's own), then drains it
(time moves on, nothing is left to answer) and checks what must hold at
the end (a build has ended, every request was answered once).

The sequences are rows of the reliability battery (tests/battery.py): a
few per chart in ``make test``, 1,000 per chart in ``make chaos``; a row
names the seed of each sequence that failed, with its moves, and
``CP_CHAOS_SEED=<seed>`` plays exactly that one again.
"""
from __future__ import annotations

import random
from typing import Callable, Protocol, Sequence

from computepods.charts.base import Chart
from computepods.tools.charts import read_chart
from stepped import state_of

SHORT = 30                 # sequences per chart in `make test`
FULL = 1_000               # sequences per chart in `make chaos`
MAX_MOVES = 25             # moves in one sequence at most

_TREES: dict[type, frozenset[str]] = {}


class World(Protocol):
    def settle(self) -> None: ...
    def check(self) -> None: ...
    def drain(self) -> None: ...
    def check_end(self) -> None: ...
    def stop(self) -> None: ...


Move = Callable[[World, random.Random], str]     # does it; says what it did


def tree(chart: Chart) -> frozenset[str]:
    """The states of the chart's drawing (read from its code, as charts/ is)."""
    kind = type(chart)
    if kind not in _TREES:
        _TREES[kind] = frozenset(read_chart(kind).states)
    return _TREES[kind]


def in_its_tree(*charts: Chart) -> None:
    for chart in charts:
        states = tree(chart)
        assert state_of(chart) in states, (
            f"{chart.name} left its tree: it is in {state_of(chart)!r}, "
            f"not one of {', '.join(sorted(states))}")
        assert not chart.crashes, f"{chart.name}: a handler raised: {chart.crashes[0]!r}"


def play(rnd, make: Callable[[random.Random], World], moves: Sequence[Move],
         max_moves: int = MAX_MOVES) -> None:
    """One sequence of the battery round `rnd` (its seed, its rng)."""
    rng = rnd.rng
    world = make(rng)
    played: list[str] = []
    try:
        for _ in range(rng.randint(1, max_moves)):
            move = rng.choice(moves)
            played.append(move(world, rng))
            world.settle()
            world.check()
        played.append("(drained)")
        world.drain()
        world.check()
        world.check_end()
    except Exception as exc:
        why = (str(exc).splitlines() or [""])[0]     # not pytest's explanation of it
        raise AssertionError(f"seed {rnd.seed}, after {len(played)} moves: "
                             f"{' ; '.join(played)}\n  -> {type(exc).__name__}: {why}") from exc
    finally:
        world.stop()
