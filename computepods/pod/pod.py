"""A pod in one process: NATS (embedded or joined), the bridge, the charts.

``cpod build`` runs one of these for the length of a build (the embedded
default), ``cpod up`` for as long as the user wants.  The charts talk over
NATS through the bridge even here, so the same charts work when a chef is
on another machine.
"""
from __future__ import annotations

import logging
import os
import queue
import socket
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from computepods.chef import commit
from computepods.clock import prompt_switching
from computepods.bus import messages as m
from computepods.bus import chefwire
from computepods.bus.auth import CHEF, MAJORDOMO, BusUsers, Credentials, insecure_env
from computepods.bus.bridge import NatsBridge
from computepods.bus.natsd import NatsServer
from computepods.charts.base import Chart, Fabric, stop_all
from computepods.charts.majordomo import MajorDomo
from computepods.charts.store import Store
from computepods.chef.recovery import (kill_leftover_steps, read_commit_logs, recovered_records,
                                       settle_commit_logs)
from computepods.pod.natskeeper import ServerKeeper
from computepods.pod.localchef import LocalChef, chef_name, default_slots
from computepods.state.db import StateDB
from computepods.paths import BUS_USERS, STATE_DB
from computepods.planning.plan import BuildPlan
from computepods.planning.request import HandedPlans
from computepods.chef.scratch import scratch_name
from computepods.paths import prepare_state_dir

if TYPE_CHECKING:
    from computepods.bus.natscluster import NatsJoin
    from computepods.charts.chef import Chef
    from computepods.transfer.sshd import SshdServing

log = logging.getLogger("computepods.pod.pod")

__all__ = ["Pod", "PodOptions", "default_slots"]

RELAUNCHES_MAX = 5         # chef children relaunched per pod, when one dies
CHEF_UP_S = 30.0           # seconds a relaunched chef gets to be heard on the bus


@dataclass
class PodOptions:
    nats_url: str | None = None          # None: start an embedded nats-server
    namespace: str = "cp"
    slots: int = field(default_factory=default_slots)
    trace: bool = False
    chefs: int = 1
    chef_process: bool = False           # chefs in a child `cpod chef` (their own GIL)
    watch_targets: list[str] | None = None   # `cpod up`: rebuild these on every change
    watching: bool = False               # an FSWatcher feeds the MajorDomo: keep plans hot
    insecure_bus: bool = False           # join a nats_url that asks for no authentication
    nats_join: NatsJoin | None = None    # the embedded server joins a cluster or a hub
    federate: bool = False               # take part in the federation on this bus (§6)
    sftp_listen: str | None = None       # "HOST[:PORT]" of our store's SFTP server
    sftp_sshd: "SshdServing | None" = None   # the system sshd serves our store instead


class Pod:
    """Start with :meth:`start`, stop with :meth:`stop` (or use ``with``)."""

    def __init__(self, root: Path, options: PodOptions | None = None,
                 server: NatsServer | None = None, local_chefs: Sequence[LocalChef] = ()):
        """``server``: an embedded nats-server already launched (not yet
        answering); ``local_chefs``: chef processes already launched on it
        (chef_process mode).  The pod waits for both and stops them with
        itself.  An embedded server's users are the bus's: the pod logs in as
        the majordomo, its chef processes as chefs (docs/architecture.md §2);
        on a joined server, the environment's login is everyone's."""
        self.root = Path(root)
        self.options = options or PodOptions()
        self.server: NatsServer | None = server
        self.keeper: ServerKeeper | None = None      # restarts the embedded server
        self.local_chefs: list[LocalChef] = list(local_chefs)
        self.bridge: NatsBridge | None = None
        self.charts: list[Chart] = []
        self.fabric = Fabric()                 # this pod's charts only
        self.chefs: list[Chef] = []             # in-process chefs (chef_process=False)
        self.url = ""
        self.rolled_forward: list[dict] = []
        self.handed = HandedPlans()             # plans made here for a build.request to come
        self._chefs_lock = threading.Lock()     # local_chefs, as a dead chef is relaunched
        self._stopping = False
        self.relaunches = 0
        self.pod_id = "local"                   # our id on the bus (federated: host + hash)
        self.member = None                      # our membership of the federation
        self.federation = None                  # the MajorDomo's view of it
        self.majordomo: MajorDomo | None = None  # what `cpod status` asks of its chefs
        self._closing: list = []                # what the federation opened, to close

    def start(self) -> "Pod":
        prompt_switching()            # the MajorDomo answers a chef between two messages
        state = prepare_state_dir(self.root)
        # Order matters: a crashed run's steps must be dead before their
        # scratch is judged, and journals rolled forward before any new
        # scratch dir replaces an old one.
        self.killed = kill_leftover_steps(self.root)
        prefixes = tuple(f"{scratch_name(chef.name)}-" for chef in self.local_chefs)

        def ours(slot_dir: str) -> bool:          # the scratch of a chef launched for us
            return slot_dir.startswith(prefixes)
        logged = read_commit_logs(self.root, keep=ours)   # before the scratch is cleared
        self.rolled_forward = commit.roll_forward(self.root, keep=ours)
        self.recovered = recovered_records(self.root, logged)
        if self.recovered:
            with StateDB(self.root / STATE_DB) as db:
                db.write(steps=self.recovered)
        opts = self.options
        try:
            if opts.nats_url:
                self.url = opts.nats_url
                login = Credentials.from_env()
            else:
                if self.server is None:
                    self.server = NatsServer(store_dir=state / "nats", join=opts.nats_join,
                                             users=BusUsers.generate(opts.namespace))
                self.url = self.server.start()
                self.server.users.save(self.root / BUS_USERS)
                self.keeper = ServerKeeper(self.server).start()
                login = self.server.users.credentials(MAJORDOMO)
            self.bridge = NatsBridge(self.url, namespace=opts.namespace,
                                     name=f"cpod@{socket.gethostname()}:{os.getpid()}",
                                     credentials=login, insecure=opts.insecure_bus or None).start()
            trace = {"live_trace": opts.trace, "fabric": self.fabric}
            self._add(Store(self.root / STATE_DB, **trace))
            federation = self._join_federation(state, trace) if opts.federate else None
            self.majordomo = MajorDomo(self.bridge, self.root, watch_targets=opts.watch_targets,
                                       watching=opts.watching or opts.watch_targets is not None,
                                       handed=self.handed, federation=federation, **trace)
            self._add(self.majordomo)
            # A chef launched for another address (the server moved to a
            # free port when its first was taken) cannot serve this bus.
            # So is one launched under another pod id (it would look remote).
            for stale in [c for c in self.local_chefs
                          if c.url != self.url or c.pod != self.pod_id]:
                stale.stop()
                self.local_chefs.remove(stale)
            for i in range(opts.chefs):
                if not opts.chef_process:
                    from computepods.charts.chef import Chef    # (a chef process imports it itself)
                    chef = Chef(chef_name(i), self.bridge, self.root, opts.slots,
                                pod=self.pod_id, **trace)
                    self.chefs.append(chef)
                    self._add(chef)
                elif i >= len(self.local_chefs):
                    self.local_chefs.append(self.launch_chef(i))
            for local in self.local_chefs:
                local.watch(self._chef_died)
        except BaseException:
            self.stop()
            raise
        return self

    def _join_federation(self, state: Path, trace: dict):
        """Our keys, store, SFTP server and Herald; the MajorDomo's view of
        the federation (docs/architecture.md §6)."""
        from computepods.pod.federated import join_as_majordomo
        self.pod_id, self.member, self.federation, self._closing = join_as_majordomo(
            self.bridge, self.root, self.options, state, self.chef_names, trace)
        return self.federation

    def chef_names(self) -> list[str]:
        """Our chefs' names now (in-process and children)."""
        with self._chefs_lock:
            return [c.chef for c in self.chefs] + [c.name for c in self.local_chefs]

    def hand_plan(self, bp: BuildPlan) -> str:
        """Give the MajorDomo a plan made in this process; the token goes in
        the build.request, so that it takes the plan instead of planning."""
        return self.handed.hand(bp)

    def client_env(self, role: str) -> dict[str, str]:
        """The environment of a child process that joins this pod's bus as
        ``role``: its login on the embedded server, or ours on a joined one
        (allowed an open bus, quietly, when the pod was)."""
        if self.server is not None:
            return self.server.users.child_env(role)
        return insecure_env() if self.options.insecure_bus else dict(os.environ)

    def launch_chef(self, index: int, name: str | None = None) -> LocalChef:
        opts = self.options
        return LocalChef(self.root, self.url, namespace=opts.namespace, slots=opts.slots,
                         name=name or chef_name(index), trace=opts.trace,
                         env=self.client_env(CHEF), insecure_bus=opts.insecure_bus,
                         pod=self.pod_id)

    def _chef_died(self, chef: LocalChef, why: str) -> LocalChef | None:
        """A chef child died: launch another (on the calling thread, which
        watches it next) and wait until the MajorDomo can hear it, then say
        the dead one's goodbye for it, so that the MajorDomo gives its
        unfinished steps to the new one now instead of after its lease (or
        fails them naming it, when no chef could be relaunched)."""
        bridge = self.bridge
        if bridge is None:
            return None
        replacement = self._relaunch(chef)
        bridge.publish(m.CHEF_STATUS, chefwire.chef_status(
            chef.name, self.pod_id, self.options.slots, gone=f"{why}; see its messages above"))
        return replacement

    def _relaunch(self, dead: LocalChef) -> LocalChef | None:
        with self._chefs_lock:
            if self._stopping or self.relaunches >= RELAUNCHES_MAX or self.bridge is None:
                return None
            self.relaunches += 1
            name = f"{dead.name}r{self.relaunches}"
            heard: "queue.Queue[m.Message]" = queue.Queue()
            self.bridge.listen(m.CHEF_STATUS, heard)
            try:
                chef = self.launch_chef(0, name)
            except OSError as exc:
                self.bridge.unlisten(heard)
                log.error("could not relaunch the pod's chef: %s", exc)
                return None
            self.local_chefs.append(chef)
        log.warning("relaunched the pod's chef as %s (pid %d)", name, chef.proc.pid)
        try:
            deadline = time.monotonic() + CHEF_UP_S
            while chef.proc.poll() is None and time.monotonic() < deadline:
                try:
                    msg = heard.get(timeout=min(0.5, max(0.0, deadline - time.monotonic())))
                except queue.Empty:
                    continue
                if isinstance(msg.data, dict) and msg.data.get("chef") == name:
                    break
        finally:
            if self.bridge is not None:
                self.bridge.unlisten(heard)
        return chef

    def _add(self, chart: Chart) -> None:
        chart.start()
        self.charts.append(chart)

    def cancel(self) -> None:
        """Kill running steps now (Ctrl-C): their scratch is discarded."""
        for chef in self.chefs:
            chef.pool.cancel_running()
        for local in self.local_chefs:
            local.terminate()            # the chef kills its running steps

    def stop(self) -> None:
        with self._chefs_lock:
            self._stopping = True               # no chef is relaunched from now on
        ours = self._slot_prefixes()
        try:
            for local in self.local_chefs:
                local.terminate()        # they stop while the charts do
            stop_all(self.charts)
            for local in self.local_chefs:
                local.stop()
            if self.charts or self.local_chefs:
                self._settle(ours)
        finally:
            self.local_chefs = []
            self.charts = []
            if self.member is not None:
                self.member.stop()
                self.member = None
            for close in self._closing:
                close()
            self._closing = []
            if self.bridge:
                self.bridge.stop()
            if self.keeper:
                self.keeper.close()
                self.keeper = None
            if self.server:
                self.server.stop()
                self.server.close()

    def _slot_prefixes(self) -> tuple[str, ...]:
        """The start of the names of this pod's chefs' slot dirs."""
        names = {c.name for c in self.local_chefs} | {c.name for c in self.chefs}
        return tuple(f"{scratch_name(name)}-" for name in names)

    def _settle(self, ours: tuple[str, ...]) -> None:
        """Once the chefs and the Store have stopped: store the records their
        commit logs hold and the state database does not.  A stop during a
        build (Ctrl-C, SIGTERM, `cpod down`) comes between some steps'
        commits and their records, as a kill would; without this, their
        work would be done again."""
        if not ours:
            return
        try:
            written = settle_commit_logs(self.root, self.root / STATE_DB,
                                         lambda name: name.startswith(ours))
        except (OSError, sqlite3.Error, ValueError, KeyError, TypeError) as exc:
            log.error("could not store the records of the last steps: %s; the next "
                      "build stores them from the chefs' logs, or runs them again", exc)
            return
        if written:
            log.info("stored %d records of steps committed as the pod stopped", written)

    def __enter__(self) -> "Pod":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
