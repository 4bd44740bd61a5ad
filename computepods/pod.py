"""A pod in one process: NATS (embedded or joined), the bridge, the charts.

``cpod build`` runs one of these for the length of a build (the embedded
default), ``cpod up`` for as long as the user wants.  The charts talk over
NATS through the bridge even here, so the same charts work when a chef is
on another machine.
"""
from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path

from . import commit
from .bus.bridge import NatsBridge
from .bus.natsd import NatsServer
from .charts.base import Chart, reset_fabric, stop_all
from .charts.chef import Chef
from .charts.majordomo import MajorDomo
from .charts.store import Store
from .kitchen import kill_leftover_steps, read_commit_logs, recovered_records
from .state import StateDB
from .planning import STATE_DB, prepare_state_dir
from .project import STATE_DIR

log = logging.getLogger("computepods.pod")


def default_slots() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@dataclass
class PodOptions:
    nats_url: str | None = None          # None: start an embedded nats-server
    namespace: str = "cp"
    slots: int = field(default_factory=default_slots)
    trace: bool = False
    chefs: int = 1


class Pod:
    """Start with :meth:`start`, stop with :meth:`stop` (or use ``with``)."""

    def __init__(self, root: Path, options: PodOptions | None = None):
        self.root = Path(root)
        self.options = options or PodOptions()
        self.server: NatsServer | None = None
        self.bridge: NatsBridge | None = None
        self.charts: list[Chart] = []
        self.chefs: list[Chef] = []
        self.url = ""
        self.rolled_forward: list[dict] = []

    def start(self) -> "Pod":
        state = prepare_state_dir(self.root)
        # Order matters: a crashed run's steps must be dead before their
        # scratch is judged, and journals rolled forward before any new
        # scratch dir replaces an old one.
        self.killed = kill_leftover_steps(self.root)
        logged = read_commit_logs(self.root)              # before the scratch is cleared
        self.rolled_forward = commit.roll_forward(self.root)
        self.recovered = recovered_records(self.root, logged)
        if self.recovered:
            with StateDB(self.root / STATE_DB) as db:
                db.write(steps=self.recovered)
        opts = self.options
        try:
            if opts.nats_url:
                self.url = opts.nats_url
            else:
                self.server = NatsServer(store_dir=state / "nats")
                self.url = self.server.start()
            self.bridge = NatsBridge(self.url, namespace=opts.namespace,
                                     name=f"cpod@{socket.gethostname()}:{os.getpid()}").start()
            trace = {"live_trace": opts.trace}
            self._add(Store(self.root / STATE_DB, **trace))
            self._add(MajorDomo(self.bridge, self.root, **trace))
            for i in range(opts.chefs):
                chef = Chef(f"{socket.gethostname()}-{os.getpid()}-{i}", self.bridge, self.root,
                            opts.slots, **trace)
                self.chefs.append(chef)
                self._add(chef)
        except BaseException:
            self.stop()
            raise
        return self

    def _add(self, chart: Chart) -> None:
        chart.start()
        self.charts.append(chart)

    def cancel(self) -> None:
        """Kill running steps now (Ctrl-C): their scratch is discarded."""
        for chef in self.chefs:
            chef.pool.cancel_running()

    def stop(self) -> None:
        try:
            stop_all(self.charts)
        finally:
            self.charts = []
            reset_fabric()
            if self.bridge:
                self.bridge.stop()
            if self.server:
                self.server.stop()
                self.server.close()

    def __enter__(self) -> "Pod":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
