"""A chef's own view of its lease: whether its MajorDomo may have given up on it.

A MajorDomo forgets a chef that sent no status for its lease (``lease_s``,
three heartbeats) and gives its unfinished steps to another chef, or fails
them.  A chef frozen that long (SIGSTOP, a paused VM, a debugger) wakes with
steps whose commands ended meanwhile; committing them would put outputs into
the tree for steps already reported failed, or run by someone else.  So the
chef measures its own silence on the monotonic clock, which runs on while a
process is stopped: a step taken before a silence longer than the lease is
not committed.
"""
from __future__ import annotations

from computepods.clock import Clock


class Lease:
    """Renewed at each status the chef sends; asked before each commit."""

    def __init__(self, lease_s: float, clock: Clock):
        self.lease_s = lease_s
        self.clock = clock
        self._renewed = clock.monotonic()
        self._lapsed = float("-inf")      # when a silence past the lease was last found

    def renew(self) -> None:
        """A status is sent now (on the chart's thread)."""
        now = self.clock.monotonic()
        if now - self._renewed > self.lease_s:
            self._lapsed = now            # before _renewed: holds() reads them the other way
        self._renewed = now

    def now(self) -> float:
        """The time to note when a step is taken."""
        return self.clock.monotonic()

    def holds(self, taken_at: float) -> bool:
        """Whether a step taken at ``taken_at`` is still this chef's to
        commit (asked from any thread)."""
        renewed = self._renewed
        return (self.clock.monotonic() - renewed <= self.lease_s
                and taken_at >= self._lapsed)

    def lapse(self) -> str:
        """Why a step it no longer holds is not committed."""
        return (f"not committed: the chef was silent for longer than its lease "
                f"({self.lease_s:.0f} s; stopped or frozen?), so its MajorDomo has given "
                "the step up")
