"""Battery row: seeded random file changes under an FSWatcher (real files,
real inotify, a SimClock), with its invariants (tests/sequences.py): it never
leaves its tree, nothing stays in its quiet period once time has moved past
the longest delay, and its last word on each file still there is not that
the file was deleted.

The reader thread reads inotify on its own time, so which batch an event
lands in varies from run to run; the moves do not (the seed fixes them),
and the drain waits for a marker file's event, behind which every earlier
one has been read (inotify keeps order).
"""
from __future__ import annotations

import logging
import os
import random

import pytest

from computepods.bus import messages as m
from computepods.bus.loopback import LoopbackBus
from computepods.charts.watcher import FSWatcher
from computepods.clock import SimClock
from helpers import wait_for
from sequences import FULL, SHORT, in_its_tree, play
from stepped import NO_TRACE, settle, start_stepped, state_of

QUIET_S, MAX_DELAY_S = 0.5, 5.0
NAMES = ["a.txt", "b.txt", "d/c.txt", "d/e/f.txt"]


@pytest.fixture(autouse=True)
def quiet_logs(caplog):
    with caplog.at_level(logging.CRITICAL, "computepods"):
        yield


class WatchWorld:
    def __init__(self, root, rng: random.Random):
        self.root, self.clock, self.bus = root, SimClock(), LoopbackBus(name="w")
        for rel in rng.sample(NAMES, rng.randint(0, 2)):          # there before it watches
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_text("old\n")
        self.reports: list[tuple[str, str]] = []
        self.bus.listen(m.FS_CHANGED, self)
        self.fs = FSWatcher(self.bus, root, pod="p", quiet_s=QUIET_S, max_delay_s=MAX_DELAY_S,
                            clock=self.clock, **NO_TRACE)
        start_stepped(self.fs)
        self.touched: set[str] = set()
        self.markers = 0

    def put(self, msg: m.Message) -> None:
        self.reports.append((msg.data["path"], msg.data["kind"]))

    def settle(self) -> None:
        settle(self.fs)

    def check(self) -> None:
        in_its_tree(self.fs)

    def drain(self) -> None:
        if state_of(self.fs) == "fs_stopped":
            return
        self.markers += 1
        marker = f"zz-marker-{self.markers}"
        (self.root / marker).write_text("m\n")
        wait_for(lambda: (settle(self.fs), marker in self.fs.pending_paths()
                          or state_of(self.fs) != "fs_live")[1],
                 what="the watcher to read up to the marker")
        for _ in range(3):
            self.clock.advance(MAX_DELAY_S)
            settle(self.fs)

    def check_end(self) -> None:
        if state_of(self.fs) != "fs_live":
            return
        assert self.fs.pending_paths() == [], f"still quiet after the drain: " \
                                              f"{self.fs.pending_paths()}"
        last = dict(self.reports)
        for rel in sorted(self.touched):
            if (self.root / rel).is_file():
                assert last.get(rel) != "deleted", f"{rel} is there, last reported deleted"

    def stop(self) -> None:
        self.fs.post(m.HALT)
        settle(self.fs)
        self.fs.stop()
        self.bus.stop()


def watch_write(w: WatchWorld, rng: random.Random) -> str:
    rel = rng.choice(NAMES)
    path = w.root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        f.write(f"{rng.random()}\n")
    w.touched.add(rel)
    return f"write {rel}"


def watch_delete(w: WatchWorld, rng: random.Random) -> str:
    rel = rng.choice(NAMES)
    try:
        (w.root / rel).unlink()
    except FileNotFoundError:
        return f"delete {rel} (not there)"
    w.touched.add(rel)
    return f"delete {rel}"


def watch_rename(w: WatchWorld, rng: random.Random) -> str:
    src, dst = rng.sample(NAMES, 2)
    if not (w.root / src).is_file():
        return f"rename {src} (not there)"
    (w.root / dst).parent.mkdir(parents=True, exist_ok=True)
    os.replace(w.root / src, w.root / dst)
    w.touched.update((src, dst))
    return f"rename {src} {dst}"


def watch_time(w: WatchWorld, rng: random.Random) -> str:
    dt = rng.choice([0.1, QUIET_S, 1.0, MAX_DELAY_S])
    w.clock.advance(dt)
    return f"+{dt:g} s"


def watch_stray(w: WatchWorld, rng: random.Random) -> str:
    signal = rng.choice([m.TICK, m.TICK, m.HALT]) if rng.random() < 0.3 else m.TICK
    w.fs.post(signal)
    return f"a {signal}"


def test_watcher_sequences(chaos, tmp_path_factory):
    for rnd in chaos.rounds("FSWatcher: random writes, deletes, renames and time", full=FULL,
                            short=SHORT, must_hold="nothing left quiet; deleted only if gone"):
        with rnd:
            play(rnd, lambda rng: WatchWorld(tmp_path_factory.mktemp("watch"), rng),
                 [watch_write, watch_write, watch_delete, watch_rename, watch_time, watch_stray],
                 15)
