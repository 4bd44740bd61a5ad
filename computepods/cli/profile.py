"""`cpod build --profile FILE`: where the build's time went, for Perfetto.

The build's timeline is the one ``GET /v1/builds/{id}/profile`` serves:
the MajorDomo keeps it in the Store's history (:mod:`computepods.state.history`)
when the build ends.  :class:`ProfileFile` learns the build's id from the
``accepted`` event, and once the build is over reads its entry from the
state database: at once for a build of this process's pod (stopped, so its
Store has written everything), after a short wait for a pod that is up
(its Store writes the end just after the client hears it).
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Callable

from computepods.paths import STATE_DB, atomic_write

WAIT_S = 10.0          # seconds a pod that is up may take to write a build's end
POLL_S = 0.05          # seconds between looks at the history meanwhile
PERFETTO = "https://ui.perfetto.dev"


class ProfileFile:
    def __init__(self, root: Path, path: Path):
        self.root = root
        self.path = path
        self.build_id: str | None = None
        self.dry_run = False

    def watching(self, on_event: Callable[[dict], None]) -> Callable[[dict], None]:
        """``on_event``, noting the build's id on the way."""
        def heard(ev: dict) -> None:
            if ev.get("t") == "accepted":
                self.build_id = str(ev.get("build"))
            elif ev.get("t") == "done" and ev.get("dry_run"):
                self.dry_run = True
            on_event(ev)
        return heard

    def write(self, wait_s: float = WAIT_S) -> bool:
        """Write the trace; False (and say why) when there is none to write."""
        from computepods.coordinator.timeline import trace_events
        from computepods.state.db import StateDB

        if self.build_id is None or self.dry_run:
            why = "a dry run" if self.dry_run else "nothing was built"
            return self._say(f"no profile written to {self.path}: {why}")
        deadline = time.monotonic() + wait_s
        while True:
            with StateDB(self.root / STATE_DB, readonly=True) as db:
                entry = db.build(self.build_id, with_profile=True)
            if entry is not None and entry.finished and entry.profile is not None:
                break
            if time.monotonic() >= deadline:
                return self._say(f"no profile written to {self.path}: the pod did not record "
                                 f"the end of build {self.build_id} within {wait_s:.0f} s")
            time.sleep(POLL_S)
        trace = trace_events(entry.to_dict(), entry.profile)
        try:
            atomic_write(self.path, json.dumps(trace, separators=(",", ":")).encode(),
                         what=f"the profile of build {self.build_id}")
        except OSError as exc:           # a full disk too: the build's own code stands
            return self._say(f"cannot write the profile to {self.path}: {exc.strerror or exc}")
        runs = sum(1 for e in trace["traceEvents"] if e["ph"] == "X" and e["cat"] != "build")
        return self._say(f"profile of build {self.build_id} ({runs} runs) written to "
                         f"{self.path}; open it in {PERFETTO} or chrome://tracing", True)

    @staticmethod
    def _say(text: str, ok: bool = False) -> bool:
        print(f"cpod: {text}", file=sys.stderr)
        return ok
