"""How each step fared in one build, from the build's events alone.

The REST app's graph (:mod:`computepods.api.graphindex`) lays this over the
states it judged from disk: a step ran, failed, was cancelled while it ran,
or never ran because the build was cancelled first.  The events it reads
(docs/architecture.md §5, §7 "The graph"):

- ``start``: the step runs now;
- ``ok`` or ``ran``: it ran and succeeded;
- ``cancelled``: the build's cancel killed it while it ran;
- ``fail``: it failed, unless the build's ``cancel`` event came before
  it, or its ``reason`` is ``cancelled`` (or it carries ``cancelled:
  true``): then it was *cancelled* if it had started (the chef killed it:
  its reason is the signal), and *not run* if it had not (a chef drops a
  cancelled build's queued steps with the reason ``cancelled``).

Plain bookkeeping, fed by :class:`~computepods.api.registry.BuildView`.
"""
from __future__ import annotations

RAN, FAILED, CANCELLED, NOT_RUN = "ran", "failed", "cancelled", "not_run"
CANCEL_REASON = "cancelled"


def is_cancellation(ev: dict) -> bool:
    """A ``fail`` event that says the build's cancel stopped the step."""
    return ev.get("cancelled") is True or ev.get("reason") == CANCEL_REASON


class StepOutcomes:
    """Step id -> how it ended in this build (``RAN``, ``FAILED``,
    ``CANCELLED``, ``NOT_RUN``); a step not named has no outcome yet."""

    def __init__(self) -> None:
        self._outcome: dict[str, str] = {}
        self._started: set[str] = set()
        self._cancelling = False

    def fold(self, ev: dict) -> None:
        t, step = ev.get("t"), ev.get("step")
        if t == "cancel":
            self._cancelling = True
        if not isinstance(step, str):
            return
        if t == "start":
            self._started.add(step)
        elif t in ("ok", "ran"):
            self._outcome[step] = RAN
        elif t == "cancelled":              # killed while it ran (coordinator/buildrun.py)
            self._outcome[step] = CANCELLED
        elif t == "fail":
            if not (self._cancelling or is_cancellation(ev)):
                self._outcome[step] = FAILED
            else:
                self._outcome[step] = CANCELLED if step in self._started else NOT_RUN

    def of(self, step: str) -> str | None:
        return self._outcome.get(step)

    def ran(self, step: str) -> bool:
        return self._outcome.get(step) == RAN

    def __len__(self) -> int:
        return len(self._outcome)

    def clear(self) -> None:
        """Let go of them (an old build's, to bound the Desk's memory)."""
        self._outcome.clear()
        self._started.clear()
