"""The build requests a MajorDomo holds, and (a watching pod) what is fresh.

Requests wait in order; a request for the targets of the running build
joins it.  A watching pod (``cpod up``) keeps :class:`Freshness`: a request
that nothing changed since it last succeeded is answered at once, and
settled changes queue one build of the watch targets, once a burst of them
(a ``git checkout``) is over (:mod:`computepods.coordinator.burst`).
"""
from __future__ import annotations

import secrets
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from computepods.bus import messages as m
from computepods.clock import Clock, SystemClock
from computepods.coordinator.burst import BurstHold, vcs_locks
from computepods.planning.resolve import Step
from computepods.planning.staleness import input_paths
from computepods.watch.freshness import Freshness, RequestKey, request_key


@dataclass
class Intake:
    """What became of a request: joined the running build, fresh (with its
    step count), or queued."""
    build_id: str
    joined: bool = False
    fresh_steps: int | None = None

    def fresh_events(self, names: list[str]) -> list[dict]:
        """A fresh request's whole build: planned, and done with nothing to do."""
        steps = self.fresh_steps
        return [{"t": "plan", "steps": steps, "targets": names, "fresh": True},
                {"t": "done", "ok": True, "code": 0, "ran": 0, "skipped": steps, "failed": 0,
                 "blocked": 0, "not_run": 0, "duration_s": 0.0, "fresh": True}]


class RequestQueue:
    def __init__(self, root: Path, watch_targets: list[str] | None = None, *,
                 watching: bool | None = None, clock: Clock | None = None,
                 wake: Callable[[], None] = lambda: None):
        """`watch_targets`: what a change rebuilds (None: nothing, a change only
        ends freshness); `watching` (default: whether there are watch targets):
        a watcher reports every change, so freshness is kept.  `wake` is
        called on `clock` when a burst of changes may be over (:mod:`.burst`)."""
        self._root = root
        self._watch_targets = watch_targets
        if watching is None:
            watching = watch_targets is not None
        self.freshness = Freshness() if watching else None
        self._waiting: deque[tuple[str, m.Message]] = deque()
        clock = clock or SystemClock()
        self.burst = BurstHold(clock, locks=vcs_locks(root)) if watch_targets is not None else None
        self._wake, self._clock, self._alarm = wake, clock, None

    def __len__(self) -> int:
        return len(self._waiting)

    def add(self, msg: m.Message, running: tuple[str, list[str]] | None) -> Intake:
        """A build.request; `running` is the running build's (id, targets)."""
        names = [str(n) for n in msg.data["targets"]]
        if running and names == running[1] and not msg.data.get("dry_run"):
            return Intake(running[0], joined=True)
        intake = Intake(secrets.token_hex(4))
        if self.freshness and not running and not self._waiting:
            intake.fresh_steps = self.freshness.fresh_steps(self.key(msg.data))
        if intake.fresh_steps is None:
            self._waiting.append((intake.build_id, msg))
        return intake

    def pop(self) -> tuple[str, m.Message] | None:
        return self._waiting.popleft() if self._waiting else None

    def cancel(self, build_id: str) -> bool:
        """Drop a queued request; False when none has this id."""
        queued = [r for r in self._waiting if r[0] == build_id]
        if queued:
            self._waiting.remove(queued[0])
        return bool(queued)

    def key(self, data: dict) -> RequestKey:
        return request_key(str(data.get("cwd") or self._root), data["targets"])

    # -- a watching pod ------------------------------------------------------------
    def heard_change(self, data: dict) -> None:
        """A cp.fs.changed: how many files were still settling, for the burst."""
        if self.burst is not None:
            self.burst.heard(data.get("settling"))
            self._arm()

    def follow_up(self, building: bool) -> bool:
        """Queue one build of the watch targets if changes arrived that no
        build has seen yet, and no burst of them is still arriving (then
        `wake` is called when it may be over); True when one was queued."""
        if not self.freshness or building:
            return False
        if self.burst is not None and self.burst.holding():
            self._arm()
            return False
        if not self.freshness.want_follow_up():
            return False
        if self._watch_targets is None:
            return False            # a background pod builds only when asked
        if any(msg.data.get("client") == "watch" for _, msg in self._waiting):
            return False
        self._waiting.append((secrets.token_hex(4), m.Message("", {
            "targets": list(self._watch_targets), "cwd": str(self._root), "client": "watch"})))
        return True

    def _arm(self) -> None:
        at = self.burst.recheck_at()
        if at is None:
            if self._alarm is not None:
                self._alarm.cancel()
            return
        if self._alarm is None:             # a thread: only a pod that follows up makes one
            self._alarm = self._clock.alarm(self._wake, name="majordomo:burst")
        self._alarm.set(at)

    def close(self) -> None:
        if self._alarm is not None:
            self._alarm.close()

    def build_started(self, steps: Iterable[Step], records, basis=None) -> int:
        """The Freshness generation a build sees (0 when not watching);
        `basis`: its plan's (plancache.Basis), for the globs its inputs were found by."""
        if not self.freshness:
            return 0
        steps = list(steps)
        return self.freshness.build_started(
            (p for step in steps for p in step.outputs),
            (p for step in steps for p in input_paths(step, records.get(step.id))),
            basis.globs if basis is not None else ())

    def recorded_outputs(self, files: list, discovered: Iterable[str]) -> bool:
        """A result's outputs, as the pod recorded them (FileRecords), and the
        inputs it was found to read; True when a watcher's echo of them is to
        be expected (a watching pod), so it may be told not to report them."""
        if not self.freshness:
            return False
        self.freshness.recorded_outputs({f.path: (f.size, f.mtime_ns) for f in files},
                                        discovered)
        return bool(files)

    def plan_failed(self) -> None:
        if self.freshness:
            self.freshness.plan_failed()

    def build_finished(self, key: RequestKey | None, generation: int, ok: bool,
                       steps: int = 0) -> None:
        if self.freshness:
            self.freshness.build_finished(key, generation, ok, steps)
