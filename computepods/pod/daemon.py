"""`cpod up`: a pod that stays up, watches its tree and keeps it built.

It runs what ``cpod build`` runs (NATS, Store, MajorDomo, chefs) and adds
the FSWatcher, the Cron chart, the control socket for the thin client, and
(when asked) the REST app under gunicorn.  The MajorDomo is told the watch
targets, so every settled change rebuilds them, changes during a build
make one follow-up build, and a request nothing has changed for is answered
from what the watcher heard (:mod:`computepods.watch.freshness`).

While it is up it holds the project lock: a ``cpod build`` in the project
hands its request to this pod (:mod:`computepods.pod.handoff`) instead of
starting charts of its own.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, TextIO

from computepods.words import counted
from computepods.pod import handoff
from computepods.bus import messages as m
from computepods.bus import payloads
from computepods.bus.auth import API
from computepods.bus.client import request_build
from computepods.pod.control import ControlServer
from computepods.pod.idle import IdleGuard
from computepods.codestamp import code_hash
from computepods.errors import ComputePodsError, UsageError
from computepods.paths import POD_ADDRESS, POD_FILE, atomic_write
from computepods.state.lock import ProjectLock
from computepods.pod.localchef import chef_process
from computepods.pod.pod import Pod, PodOptions, default_slots
from computepods.cli.progress import Progress

if TYPE_CHECKING:
    from computepods.bus.natscluster import NatsJoin
    from computepods.transfer.sshd import SshdServing

log = logging.getLogger("computepods.pod.daemon")

STOP_WAIT_S = 30.0         # `cpod down` waits this long for the pod to exit


@dataclass
class UpOptions:
    targets: list[str] = field(default_factory=list)    # [] is project.default
    nats_url: str | None = None
    namespace: str = m.DEFAULT_NAMESPACE
    slots: int = field(default_factory=default_slots)
    http: str | None = None                             # "ADDR:PORT", None for none
    quiet_s: float | None = None                        # the watcher's quiet period
    trace: bool = False
    insecure_bus: bool = False                          # nats_url may ask for no login
    nats_join: NatsJoin | None = None                   # the pod's server joins a cluster/hub
    sftp: str | None = None                             # "HOST[:PORT]" of our store's server
    sftp_sshd: "SshdServing | None" = None              # the system sshd serves it instead
    background: bool = False        # started by `cpod build`: builds only when asked, no
    #                                 HTTP, no Cron; stops when idle (pod/background.py)


class PodDaemon:
    """Start with :meth:`start`, wait with :meth:`wait`, end with :meth:`stop`."""

    def __init__(self, root: Path, options: UpOptions, out: TextIO = sys.stderr):
        self.root = Path(root)
        self.options = options
        self.out = out
        self.lock = ProjectLock(self.root)
        self.pod: Pod | None = None
        self.extra: list = []                 # charts and servers beside the pod's
        self.control: ControlServer | None = None
        self.http_url = ""
        self.watcher = None
        self.started = time.time()
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        self.last_build: dict | None = None
        self.builds = 0
        self._stop = threading.Event()
        self._events: "queue.Queue[m.Message]" = queue.Queue()
        self._changes: "queue.Queue[m.Message]" = queue.Queue()
        self._progress: dict[str, Progress] = {}
        self._queued: dict[str, dict] = {}       # build -> its queued event, until it starts
        self.project = None
        self.cron = None
        self._parts_lock = threading.Lock()
        self.idle: IdleGuard | None = None

    # -- life cycle ----------------------------------------------------------------
    def start(self) -> "PodDaemon":
        from computepods.project.load import load_project

        project = load_project(self.root)          # a broken project file: exit 2 now
        if not self.lock.try_acquire():
            raise UsageError(f"{self.root}: {self.lock.holder()} holds this project; "
                             "stop it first (cpod down, or wait for the build)")
        try:
            self._start(project)
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self, project) -> None:
        from computepods.charts.watcher import FSWatcher
        from computepods.planning.hot import watched_by

        opts = self.options
        self.pod = Pod(self.root, PodOptions(nats_url=opts.nats_url, namespace=opts.namespace,
                                             slots=opts.slots, trace=opts.trace,
                                             watch_targets=None if opts.background
                                             else list(opts.targets), watching=True,
                                             insecure_bus=opts.insecure_bus,
                                             nats_join=opts.nats_join,
                                             federate=bool(opts.nats_url or opts.nats_join),
                                             sftp_listen=opts.sftp,
                                             sftp_sshd=opts.sftp_sshd,
                                             chef_process=chef_process())).start()
        bridge = self.pod.bridge
        bridge.listen(m.BUILD_EVENTS, self._events)
        threading.Thread(target=self._report_builds, name="up:report", daemon=True).start()
        kw = {"quiet_s": opts.quiet_s} if opts.quiet_s is not None else {}
        self.watcher = self._add(FSWatcher(bridge, self.root, pod=self.name, ignore=project.ignore,
                                           stream=project.stream, live_trace=opts.trace,
                                           fabric=self.pod.fabric, **kw))
        # Its watches are set: from now on it hears every change, so plans stay hot.
        self.pod.majordomo.planner.trust(watched_by(self.watcher.tree.ignored))
        self.project = project
        if opts.background:
            self.control = ControlServer(handoff.socket_path(self.root), self).start()
            self._write_pod_file()
            self.idle = IdleGuard(self.root, project.pod_idle_s, self.request_stop, self.say)
            self.idle.start()
            self.say(f"background pod up for {self.root} (pid {os.getpid()}); NATS "
                     f"{self.pod.url}; stops after {project.pod_idle_s:.0f} s idle")
            return
        self.cron = self._add(self._cron(project))
        bridge.listen(m.FS_CHANGED, self._changes)
        threading.Thread(target=self._follow_project_file, name="up:project", daemon=True).start()
        if opts.http:
            self._start_http(opts.http)
        self.control = ControlServer(handoff.socket_path(self.root), self).start()
        self._write_pod_file()
        # Start up to date: one build of the watch targets, as after a change.
        bridge.publish(m.BUILD_REQUEST, payloads.BuildRequest(list(opts.targets), str(self.root),
                                                       client="watch").to_dict())
        self.say(f"pod up for {self.root} (pid {os.getpid()}); NATS {self.pod.url}"
                 + (f"; {self.http_url}/" if self.http_url else "")
                 + "; watching for changes (Ctrl-C or `cpod down` to stop)")

    def _start_http(self, bind: str) -> None:
        from computepods.charts.desk import Desk
        from computepods.api.serve import start_http

        desk = self._add(Desk(self.pod.bridge, self.root, pod=self.name, census=self.census,
                              live_trace=self.options.trace, fabric=self.pod.fabric))
        server = start_http(self.root, self.pod.url, self.options.namespace, bind=bind,
                            bus_env=self.pod.client_env(API))
        self.extra.append(server)
        self.http_url = desk.http = server.url

    def _add(self, chart):
        chart.start()
        self.extra.append(chart)
        return chart

    def _cron(self, project):
        from computepods.charts.cron import Cron
        return Cron(self.pod.bridge, self.root, project.schedules, live_trace=self.options.trace,
                    fabric=self.pod.fabric)

    def _follow_project_file(self) -> None:
        """computepods.toml changed: builds read it anew by themselves; the
        schedules are reloaded here, and a change the watcher cannot take
        while running (its ignore and stream patterns) is said."""
        from computepods.project.load import load_project
        from computepods.paths import PROJECT_FILE

        while True:
            change = payloads.FsChanged.from_dict(self._changes.get().data)
            if change.path != PROJECT_FILE or change.root != str(self.root):
                continue
            try:
                project = load_project(self.root)
            except ComputePodsError as exc:
                self.say(f"{exc}; schedules and watch patterns stay as they were")
                continue
            with self._parts_lock:
                old, self.project = self.project, project
                if not self.extra:
                    return                        # stopping
                if project.schedules != old.schedules:
                    self.extra.remove(self.cron)
                    self.cron.stop()
                    self.cron = self._add(self._cron(project))
                    self.say(f"schedules reloaded: {len(project.schedules)}")
            if (project.ignore, project.stream) != (old.ignore, old.stream):
                self.say("the ignore or stream patterns changed: they apply after "
                         "`cpod down` and `cpod up`")

    def wait(self) -> None:
        """Until `cpod down` (or a signal, which raises in the main thread)."""
        while not self._stop.wait(3600):
            pass

    def request_stop(self) -> None:
        self._stop.set()

    def stop(self) -> None:
        try:
            if self.idle:
                self.idle.stop()
            if self.control:
                self.control.stop()
            (self.root / POD_ADDRESS).unlink(missing_ok=True)
            (self.root / POD_FILE).unlink(missing_ok=True)
            with self._parts_lock:
                parts, self.extra = self.extra, []
            for part in reversed(parts):
                part.stop()
            if self.pod:
                self.pod.stop()
        finally:
            self.extra = []
            self.control = None
            self.pod = None
            self.lock.release()

    def _write_pod_file(self) -> None:
        atomic_write(self.root / POD_FILE, json.dumps({
            "pid": os.getpid(), "root": str(self.root), "socket": self.control.path,
            "nats": self.pod.url, "http": self.http_url, "started": self.started,
            "background": self.options.background, "code": code_hash(),
            "slots": self.options.slots}).encode())
        # The thin client reads no JSON (json imports re: 10 ms of a 30 ms build).
        fields = [str(os.getpid()), self.control.path, code_hash(), str(self.options.slots),
                  "1" if self.options.background else "0"]
        if not any("\n" in f for f in fields):
            atomic_write(self.root / POD_ADDRESS, ("\n".join(["cpod-pod 1", *fields]) + "\n").encode())

    # -- what the control socket asks ----------------------------------------------
    def status(self) -> dict:
        if self.idle:
            self.idle.touch()
        return {"background": self.options.background,
                "idle_s": self.idle.idle_s if self.idle else None,
                "pid": os.getpid(), "root": str(self.root), "nats": self.pod.url,
                "http": self.http_url, "started": self.started,
                "uptime_s": round(time.time() - self.started, 1),
                "targets": self.options.targets, "builds": self.builds,
                "last_build": self.last_build, "federation": self.census()}

    def census(self) -> dict:
        """The pods of our federation, their chefs, load, tools and bytes
        (:mod:`computepods.federation.podview`), for `cpod status` and the Desk."""
        from computepods.federation.podview import census
        pod = self.pod
        if pod is None or pod.majordomo is None:
            return {"federated": False, "pods": []}
        chefs, member, fed = list(pod.majordomo.chefs), pod.member, pod.federation
        host = socket.gethostname()
        if member is None or member.server is None:
            return census(pod.pod_id, host, chefs)
        return census(pod.pod_id, host, chefs, own=member.hello(), heard=member.roster.pods(),
                      held=fed.owners.by_pod() if fed is not None else {},
                      trusts=member.roster.trusts)

    def build(self, request: dict, emit: Callable[[dict], None]) -> int:
        """A handed-off build: ask the MajorDomo like any client, naming the
        files still settling, and stream its events back."""
        targets = request.get("targets") or []
        if not isinstance(targets, list) or not all(isinstance(t, str) for t in targets):
            raise UsageError("build request: 'targets' must be a list of strings")
        with self.idle.busy() if self.idle else contextlib.nullcontext():
            return self._build(targets, request, emit)

    def _build(self, targets: list[str], request: dict, emit: Callable[[dict], None]) -> int:
        # What changed before this request is built, even if the watcher has
        # not yet reported it (its quiet period): those files are judged afresh.
        dirty = self.watcher.pending_now() if self.watcher else []
        return request_build(self.pod.bridge, targets, Path(request.get("cwd") or self.root),
                             keep_going=bool(request.get("keep_going")),
                             dry_run=bool(request.get("dry_run")), on_event=emit, dirty=dirty)

    def abandoned(self, accepted: dict) -> None:
        """The client of a handed-off build is gone (Ctrl-C): cancel the build,
        unless it had joined one that someone else asked for."""
        if accepted.get("joined"):
            return
        self.say(f"the client of build {accepted['build']} went away: cancelling it")
        try:
            self.pod.bridge.request_sync(m.BUILD_CANCEL, payloads.BuildCancel(accepted["build"]).to_dict(),
                                         timeout=5.0, attempts=2)
        except ComputePodsError as exc:
            log.warning("could not cancel build %s: %s", accepted["build"], exc)

    # -- the pod's own console -------------------------------------------------------
    def _report_builds(self) -> None:
        """Print what each build did, as `cpod build` would (plain lines),
        whoever asked for it, and a build that could not be planned too."""
        while True:
            batch = payloads.BuildEvents.from_dict(self._events.get().data)
            build = batch.build
            for ev in batch.dicts():
                if ev.get("t") == "queued":
                    self._queued[build] = ev         # who asked, for what: said as it starts
                elif ev.get("t") in ("plan", "done") and build not in self._progress:
                    self._progress[build] = Progress(self.out, tty=False)
                    self.say(build_heading(build, {**self._queued.pop(build, {}), **ev}))
                progress = self._progress.get(build)
                if progress:
                    progress.handle(ev)
                if ev.get("t") == "done":
                    self._progress.pop(build, None)
                    self.builds += 1
                    self.last_build = {"id": build, "ok": ev.get("ok"), "code": ev.get("code"),
                                       "ran": ev.get("ran"), "error": ev.get("error"),
                                       "finished": time.time()}

    def say(self, text: str) -> None:
        print(f"cpod: {text}", file=self.out, flush=True)


def build_heading(build: str, ev: dict) -> str:
    """The line that starts a build in the pod's log (``ev``: its plan, or
    the done of one that could not be planned)."""
    targets = " ".join(str(t) for t in ev.get("targets") or []) or "the default targets"
    by = {"cli": "cpod build", "rest": "REST", "watcher": "a change",
          "cron": "a schedule"}.get(str(ev.get("by")), "a bus client")
    steps = f", {counted(ev['steps'], 'step')}" if ev.get("t") == "plan" and "steps" in ev else ""
    return f"build {build} of {targets}, asked by {by}{steps}"


def stop_running_pod(root: Path, out: TextIO = sys.stderr) -> int:
    """`cpod down`: ask the pod to stop and wait until its process is gone."""
    info = handoff.running_pod(root)
    if info is None:
        print(f"cpod: no pod is up for {root}", file=out)
        return 0
    if handoff.stop_pod(info, STOP_WAIT_S):
        print(f"cpod: pod {info['pid']} stopped", file=out)
        return 0
    raise UsageError(f"the pod (pid {info['pid']}) did not stop within {STOP_WAIT_S:.0f} s")
