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
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from . import commit
from .bus.bridge import NatsBridge
from .bus.natsd import NatsServer, _pdeathsig_prefix
from .charts.base import Chart, reset_fabric, stop_all
from .charts.chef import Chef
from .charts.majordomo import MajorDomo
from .charts.store import Store
from .kitchen import kill_leftover_steps, read_commit_logs, recovered_records
from .state import StateDB
from .planning import STATE_DB
from .where import prepare_state_dir

log = logging.getLogger("computepods.pod")

CHEF_STOP_S = 10.0          # seconds a chef process gets to stop before SIGKILL


def default_slots() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@dataclass
class PodOptions:
    nats_url: str | None = None          # None: start an embedded nats-server
    namespace: str = "cp"
    slots: int = field(default_factory=default_slots)
    trace: bool = False
    chefs: int = 1
    chef_process: bool = False           # chefs in a child `cpod chef` (their own GIL)
    watch_targets: list[str] | None = None   # `cpod up`: rebuild these on every change


class Pod:
    """Start with :meth:`start`, stop with :meth:`stop` (or use ``with``)."""

    def __init__(self, root: Path, options: PodOptions | None = None,
                 server: NatsServer | None = None):
        """``server``: an embedded nats-server already launched (not yet
        answering), which the pod then waits for and stops with itself."""
        self.root = Path(root)
        self.options = options or PodOptions()
        self.server: NatsServer | None = server
        self.bridge: NatsBridge | None = None
        self.charts: list[Chart] = []
        self.chefs: list[Chef] = []
        self.chef_procs: list[subprocess.Popen] = []
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
                if self.server is None:
                    self.server = NatsServer(store_dir=state / "nats")
                self.url = self.server.start()
            self.bridge = NatsBridge(self.url, namespace=opts.namespace,
                                     name=f"cpod@{socket.gethostname()}:{os.getpid()}").start()
            trace = {"live_trace": opts.trace}
            self._add(Store(self.root / STATE_DB, **trace))
            self._add(MajorDomo(self.bridge, self.root, watch_targets=opts.watch_targets,
                                **trace))
            for i in range(opts.chefs):
                name = f"{socket.gethostname()}-{os.getpid()}-{i}"
                if opts.chef_process:
                    self.chef_procs.append(self._spawn_chef(name))
                    continue
                chef = Chef(name, self.bridge, self.root, opts.slots, **trace)
                self.chefs.append(chef)
                self._add(chef)
        except BaseException:
            self.stop()
            raise
        return self

    def _spawn_chef(self, name: str) -> subprocess.Popen:
        """A `cpod chef` child that dies with this process (pdeathsig)."""
        argv = [*_pdeathsig_prefix(), sys.executable, "-m", "computepods.cli", "-C",
                str(self.root), "chef", "--nats", self.url, "--namespace",
                self.options.namespace, "-j", str(self.options.slots), "--name", name]
        if self.options.trace:
            argv.append("--trace")
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL)

    def _add(self, chart: Chart) -> None:
        chart.start()
        self.charts.append(chart)

    def cancel(self) -> None:
        """Kill running steps now (Ctrl-C): their scratch is discarded."""
        for chef in self.chefs:
            chef.pool.cancel_running()
        for proc in self.chef_procs:
            proc.terminate()             # the chef kills its running steps

    def stop(self) -> None:
        try:
            for proc in self.chef_procs:
                proc.terminate()
            for proc in self.chef_procs:
                try:
                    proc.wait(CHEF_STOP_S)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            stop_all(self.charts)
        finally:
            self.chef_procs = []
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
