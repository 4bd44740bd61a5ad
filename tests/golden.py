"""Golden traces kept in files, for the charts whose traces are long and
whose dispatch is still changing (the Chef, the MajorDomo).

A test records each step of its scenario (:meth:`Golden.step`: a label and
the chart's spy lines for it) and ends with :meth:`Golden.check`, which
compares them with ``tests/unit/charts/golden/<module>.json``.  The file is
made from the chart, never typed: run the tests with ``CP_GOLDEN=write``
and each one rewrites its entry with what the chart did, then review the
diff (``git diff tests/unit/charts/golden``) as you would a change of
code: each changed line is a change of what the chart does or in what
order.
"""
from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

GOLDEN_DIR = Path(__file__).parent / "unit" / "charts" / "golden"
WRITING = os.environ.get("CP_GOLDEN") == "write"
_lock = threading.Lock()


class Golden:
    """One test's scenario: its steps, each (label, spy lines)."""

    def __init__(self, module: str, test: str):
        self.path = GOLDEN_DIR / f"{module}.json"
        self.test = test
        self.steps: list[tuple[str, list[str]]] = []

    def step(self, label: str, lines: list[str]) -> list[str]:
        """Keep one step's lines; they are returned, for the test to read."""
        self.steps.append((label, list(lines)))
        return lines

    def check(self) -> None:
        with _lock:
            kept = json.loads(self.path.read_text()) if self.path.exists() else {}
            if WRITING:
                kept[self.test] = [[label, lines] for label, lines in self.steps]
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self.path.write_text(json.dumps(dict(sorted(kept.items())), indent=1) + "\n")
                return
        if self.test not in kept:
            pytest.fail(f"{self.path.name}: no golden trace for {self.test}; make it with "
                        "CP_GOLDEN=write and review it")
        expected = [(label, lines) for label, lines in kept[self.test]]
        for n, (got, want) in enumerate(zip(self.steps, expected)):
            assert got == want, (f"{self.path.name}: {self.test}, step {n} ({want[0]!r}) differs "
                                 "(if the change is meant, CP_GOLDEN=write and review the diff)")
        assert len(self.steps) == len(expected), (
            f"{self.path.name}: {self.test}: {len(self.steps)} steps, {len(expected)} kept")

