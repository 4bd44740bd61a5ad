"""What a chef's results bring a running build: records to write, outputs
to tell the watcher of.  :meth:`BuildRun.take` makes one per message; the
MajorDomo ships it (its records to the Store, its commits to the watcher),
or gathers those of a chain run ahead into one (:meth:`Taken.add`).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from computepods.bus.chefwire import Output, StepResult
from computepods.state.db import StepRecord


@dataclass
class Taken:
    """What a steps.results message brought: records to write, and the
    outputs of the steps that succeeded."""
    records: list[StepRecord] = field(default_factory=list)
    drops: list[str] = field(default_factory=list)
    outputs: dict[str, Output] = field(default_factory=dict)
    settled: list[str] = field(default_factory=list)      # steps the chef no longer holds
    discovered: list[str] = field(default_factory=list)

    @property
    def anything(self) -> bool:
        return bool(self.records or self.outputs or self.drops)

    def add(self, *others: "Taken") -> None:
        """Gather other messages': shipped together, as one record."""
        for other in others:
            self.records += other.records
            self.drops += other.drops
            self.outputs.update(other.outputs)
            self.settled += other.settled
            self.discovered += other.discovered


def ran_on(result: StepResult) -> dict:
    """The chef's slot and start time of a run, for the build's timeline."""
    return {} if result.slot is None else {"slot": result.slot, "started_ns": result.started_ns}
