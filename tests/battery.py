"""Bookkeeping for the reliability battery (`make chaos`): rounds, seeds, tally.

Each test under tests/chaos/ runs one row of the README's RELIABILITY table.
`make test` runs every row with its short count; `make chaos` sets
CP_CHAOS=full and runs the full counts.  A row counts what it tried and what
held; the suite prints the table at its end, ready to paste into the README.

A round gets its own seed.  A round that fails does not stop the row: the
other rounds still run, so the tally is honest, and the test then fails
naming every failed round's seed.  `CP_CHAOS_SEED=<seed>` replays exactly
one round with that seed, in every row selected:

    for rnd in chaos.rounds("chef SIGKILLed mid-build", full=20, short=1,
                            must_hold="the build completes ..."):
        with rnd:
            kill_after = rnd.rng.randrange(10, 200)
            ...

Rows driven by Hypothesis count examples themselves with `row.tried()` and
`row.held()`, and take `chaos.examples(full, short)` as max_examples and
`chaos.seed` as the Hypothesis seed.
"""
from __future__ import annotations

import os
import random
import traceback
from dataclasses import dataclass, field
from typing import Iterator

FULL = os.environ.get("CP_CHAOS") == "full"
REPLAY_SEED = os.environ.get("CP_CHAOS_SEED")


@dataclass
class Row:
    """One scenario of the RELIABILITY table, tallied over the run."""
    name: str
    must_hold: str
    count: int = 0
    tries: int = 0
    holds: int = 0
    failures: list[str] = field(default_factory=list)

    def tried(self, n: int = 1) -> None:
        self.tries += n

    def held(self, n: int = 1) -> None:
        self.holds += n

    def failed(self, what: str) -> None:
        self.failures.append(what)


class Round:
    """One round of a row: a context that tallies it and keeps its failure."""

    def __init__(self, row: Row, index: int, seed: int) -> None:
        self.row, self.index, self.seed = row, index, seed
        self.rng = random.Random(seed)

    def __enter__(self) -> "Round":
        self.row.tried()
        return self

    def __exit__(self, kind, error, tb) -> bool:
        if error is None:
            self.row.held()
            return False
        if not isinstance(error, Exception):
            return False                    # KeyboardInterrupt, pytest's exit
        last = "".join(traceback.format_exception_only(kind, error)).strip()
        self.row.failed(f"round {self.index}, seed {self.seed}: {last[-2000:]}")
        return True                         # the other rounds still run


class Battery:
    """The run's rows, in the order tests first used them."""

    def __init__(self) -> None:
        self.rows: dict[str, Row] = {}
        self.seed = int(REPLAY_SEED) if REPLAY_SEED else random.SystemRandom().randrange(2**32)

    def row(self, name: str, must_hold: str = "") -> Row:
        row = self.rows.get(name)
        if row is None:
            row = self.rows[name] = Row(name, must_hold)
        elif must_hold and not row.must_hold:
            row.must_hold = must_hold
        return row

    def examples(self, full: int, short: int = 1) -> int:
        """How many rounds or examples a row runs in this mode."""
        if REPLAY_SEED:
            return 1
        return full if FULL else short

    def rounds(self, name: str, *, full: int, short: int = 1,
               must_hold: str = "") -> Iterator[Round]:
        """Yield the row's rounds; afterwards, fail naming each failed seed."""
        row = self.row(name, must_hold)
        count = self.examples(full, short)
        row.count += count
        failed_before = len(row.failures)
        for index in range(count):
            seed = self.seed if REPLAY_SEED else (self.seed + 7919 * len(self.rows) + index) % 2**32
            yield Round(row, index, seed)
        failures = row.failures[failed_before:]
        if failures:
            raise AssertionError(
                f"chaos row {name!r}: {len(failures)} of {count} rounds failed"
                " (replay one with CP_CHAOS_SEED=<seed>):\n  " + "\n  ".join(failures))

    def table(self) -> str:
        """The RELIABILITY table, as reStructuredText for the README."""
        mode = (f"replay of seed {REPLAY_SEED}" if REPLAY_SEED
                else "make chaos" if FULL else "make test, short counts")
        lines = [f".. csv-table:: RELIABILITY ({mode})",
                 '   :header: "scenario", "result", "must hold"', ""]
        for row in self.rows.values():
            cells = (row.name, f"{row.tries} tried, {row.holds} held", row.must_hold)
            lines.append("   " + ", ".join('"' + c.replace('"', '""') + '"' for c in cells))
        return "\n".join(lines)
