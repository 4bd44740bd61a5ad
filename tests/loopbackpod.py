"""A pod's charts in one test process: Store, MajorDomo and real Chefs on the
loopback bus and one SimClock.

The chefs run real commands in a real tree; only time is simulated, so a
lease runs out when the test says (``pod.clock.advance``), not after 15 s.
A test follows its build as ``cpod build`` does (:class:`BuildWatch`), and
cuts a chef off the bus with its :class:`Link`.
"""
from __future__ import annotations

import sqlite3
import textwrap
import threading
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Callable, Mapping

from miros import return_status, signals, spy_on

from computepods.bus import messages as m
from computepods.bus.client import request_build
from computepods.bus.loopback import LoopbackBus
from computepods.charts.base import Chart, Fabric
from computepods.charts.chef import HEARTBEAT_S, Chef
from computepods.charts.majordomo import MajorDomo
from computepods.charts.store import Store
from computepods.clock import SimClock
from computepods.paths import prepare_state_dir
from computepods.planning.plan import STATE_DB
from computepods.state.db import StateDB
from helpers import wait_for

LONG_HEARTBEAT_S = 1000.0      # a chef that stays within its lease however far the test goes


def write_project(root: Path, files: Mapping[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


class DiskFull(StateDB):
    """A state database whose disk is full until ``full`` is set False."""

    def __init__(self, path):
        super().__init__(path)
        self.full = True

    def write(self, **kw) -> None:
        if self.full:
            raise sqlite3.OperationalError("database or disk is full")
        super().write(**kw)


class Locked(DiskFull):
    """A state database another process keeps locked until ``full`` is set
    False: a failure that passes, so the build waits for it."""

    def write(self, **kw) -> None:
        if self.full:
            raise sqlite3.OperationalError("database is locked")
        StateDB.write(self, **kw)


class Link:
    """A chef's connection to the bus, which the test can take down.

    While it is down, what the chef sends is held, as a NATS client holds
    what it publishes while it reconnects, and :meth:`come_back` sends it, in
    order; what is sent to the chef still arrives.  ``down_after_runs=n``
    takes it down as the chef receives its n-th run message.
    """

    def __init__(self, bus: LoopbackBus, *, down_after_runs: int | None = None):
        self.bus = bus
        self.ns, self.name = bus.ns, bus.name
        self.down = threading.Event()
        self.runs = 0
        self._down_after_runs = down_after_runs
        self._held: list[tuple[str, dict, Callable[[], None]]] = []
        self._lock = threading.Lock()

    # -- what the chart asks of its bus -----------------------------------------
    def subject(self, signal: str, **params: str) -> str:
        return self.bus.subject(signal, **params)

    def route(self, signal: str, chart, **params: str) -> None:
        self.bus.route(signal, _Inbound(self, chart), **params)

    def listen(self, signal: str, into, **params: str) -> None:
        self.bus.listen(signal, into, **params)

    def unlisten(self, into) -> None:
        self.bus.unlisten(into)

    def publish(self, signal: str, payload: Mapping[str, Any], **params: str) -> None:
        self._out(signal, payload, lambda: self.bus.publish(signal, payload, **params))

    def publish_subject(self, subject: str, payload: Mapping[str, Any]) -> None:
        self._out(subject, payload, lambda: self.bus.publish_subject(subject, payload))

    def respond(self, msg: m.Message, payload: Mapping[str, Any]) -> None:
        self._out(m.REPLY, payload, lambda: self.bus.respond(msg, payload))

    def request(self, signal: str, payload: Mapping[str, Any], *, chart, token: Any,
                **params: str) -> None:
        self._out(signal, payload, lambda: self.bus.request(signal, payload, chart=chart,
                                                            token=token, **params))

    def request_sync(self, signal: str, payload: Mapping[str, Any], **kw: Any) -> dict:
        return self.bus.request_sync(signal, payload, **kw)

    def offline_s(self) -> float:
        return self.bus.offline_s()

    def stop(self) -> None:
        pass

    # -- the test's side ------------------------------------------------------------
    def go_down(self) -> None:
        self.down.set()

    def come_back(self) -> None:
        """Send what was held, in order, then everything as it comes."""
        with self._lock:
            held, self._held = self._held, []
            self.down.clear()
        for _, _, send in held:
            send()

    def held(self, signal: str) -> list[dict]:
        """The payloads of `signal` held so far."""
        with self._lock:
            return [payload for sig, payload, _ in self._held if sig == signal]

    def held_results(self) -> list[dict]:
        """Every step result held so far (started and finished notes)."""
        return [r for msg in self.held(m.STEP_RESULTS) for r in msg["results"]]

    def _out(self, signal: str, payload: Mapping[str, Any], send: Callable[[], None]) -> None:
        with self._lock:
            if self.down.is_set():
                self._held.append((signal, dict(payload), send))
                return
        send()

    def _arrived(self, signal: str) -> None:
        if signal == m.CHEF_RUN:
            self.runs += 1
            if self.runs == self._down_after_runs:
                self.go_down()


class _Inbound:
    """Delivers to the chef, and lets the link count what arrives."""

    def __init__(self, link: Link, chart):
        self._link, self._chart = link, chart

    def post(self, signal: str, payload=None) -> None:
        self._chart.post(signal, payload)
        self._link._arrived(signal)


@spy_on
def _recording(ear: "RecordEar", e):
    if e.signal == signals.RECORD:
        ear.steps.extend(r.step_id for r in e.payload.steps)
        return return_status.HANDLED
    ear.temp.fun = ear.top
    return return_status.SUPER


class RecordEar(Chart):
    """Hears every write the MajorDomo asks of the Store: which step records."""
    initial_state = _recording
    subscriptions = (m.RECORD,)

    def __init__(self, **kw):
        super().__init__("record-ear", **kw)
        self.steps: list[str] = []


class BuildWatch:
    """A build followed as ``cpod build`` follows it: every event in order."""

    def __init__(self, bus: LoopbackBus, targets: list[str], cwd: Path):
        self.events: list[dict] = []
        self._lock = threading.Lock()
        self.code: Future = Future()
        self._thread = threading.Thread(target=self._follow, args=(bus, targets, cwd),
                                        name="build-watch", daemon=True)
        self._thread.start()

    def _follow(self, bus, targets, cwd) -> None:
        try:
            self.code.set_result(request_build(bus, targets, cwd, on_event=self._heard))
        except BaseException as exc:
            self.code.set_exception(exc)

    def _heard(self, ev: dict) -> None:
        with self._lock:
            self.events.append(ev)

    def of(self, t: str) -> list[dict]:
        with self._lock:
            return [ev for ev in self.events if ev.get("t") == t]

    def wait(self, t: str) -> dict:
        """The first event of type `t`, once it came."""
        return wait_for(lambda: next(iter(self.of(t)), None), what=f"a {t!r} event")

    def done(self) -> dict:
        self.code.result(timeout=10)
        return self.of("done")[0]

    def chef_of(self) -> dict[str, str]:
        """Which chef each step started on, as the user sees it."""
        return {ev["step"]: ev["chef"] for ev in self.of("start") + self.of("ran")}

    def finished(self) -> list[str]:
        """The steps reported done, one entry per report."""
        return sorted(ev["step"] for ev in self.of("ok") + self.of("ran"))


class LoopbackPod:
    """Store, MajorDomo and chefs of one pod, on one loopback bus and SimClock."""

    def __init__(self, root: Path, *, db: Callable[[Path], StateDB] = StateDB):
        """`db` opens the state database (DiskFull: one that fails to write)."""
        self.root = Path(root)
        prepare_state_dir(self.root)
        self.clock = SimClock()
        self.bus = LoopbackBus(name="test-pod")
        self.fabric = Fabric()
        self.db_path = self.root / STATE_DB
        self.db = db(self.db_path)
        self.ear = RecordEar(fabric=self.fabric)
        self.store = Store(self.db_path, clock=self.clock, db=self.db, fabric=self.fabric)
        self.majordomo = MajorDomo(self.bus, self.root, clock=self.clock, fabric=self.fabric)
        self.chefs: dict[str, Chef] = {}
        self.links: dict[str, Link] = {}

    def start(self) -> "LoopbackPod":
        self.ear.start()
        self.store.start()
        self.majordomo.start()
        return self

    def add_chef(self, name: str, *, slots: int = 1, heartbeat_s: float = HEARTBEAT_S,
                 down_after_runs: int | None = None) -> Link:
        """A real chef building in the pod's tree; the link between it and the bus."""
        link = self.links[name] = Link(self.bus, down_after_runs=down_after_runs)
        self.chefs[name] = Chef(name, link, self.root, slots, heartbeat_s=heartbeat_s,
                                clock=self.clock, fabric=self.fabric).start()
        wait_for(lambda: self.majordomo.chefs.get(name), what=f"the MajorDomo to know chef {name}")
        return link

    def build(self, *targets: str) -> BuildWatch:
        return BuildWatch(self.bus, list(targets), self.root)

    def cancel(self, build_id: str) -> dict:
        return self.bus.request_sync(m.BUILD_CANCEL, {"build": build_id})

    def records(self) -> dict:
        with StateDB(self.db_path, readonly=True) as db:
            return db.steps()

    def stop(self) -> None:
        charts = [*self.chefs.values(), self.majordomo, self.store, self.ear]
        for chart in charts:
            chart.stop()
        self.bus.stop()
        crashed = {c.name: c.crashes for c in charts if c.crashes}
        assert not crashed, f"charts crashed: {crashed}"
