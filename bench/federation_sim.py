"""Simulated chef pods against a real MajorDomo on the real nats-server.

    python bench/federation_sim.py                       # 50 and 200 pods
    python bench/federation_sim.py --pods 50 200 --steps-per-pod 16 --step-s 0.5

One process.  A real pod (``Pod`` with no chef of its own: embedded
nats-server, Store, MajorDomo) holds a project of ``pods × steps-per-pod``
independent steps.  A fleet of simulated chef pods joins its bus as the
chef role, on a few nats-py connections in one asyncio thread; each pod:

* announces a ``pods.hello`` every ``--hello-every-s`` (3 s, the Herald's
  HELLO_EVERY_S), with a realistic payload (SFTP endpoint, keys, tools),
  and listens to everyone's hellos, as a Roster does;
* heartbeats ``chefs.status`` every ``--heartbeat-s`` (5 s) and when it
  turns idle;
* accepts the run messages of its chef, runs each step as an
  ``asyncio.sleep(--step-s)`` on one of its ``--slots`` and reports
  results in batches, as charts/chef.py does.

Each size runs twice, with the two placements a MajorDomo has:

``least-loaded``
    a MajorDomo without federation (coordinator/placement.py: the least
    loaded chef, in windows of 16 steps per slot), every chef counted as its
    own;
``cost``
    the federated MajorDomo (coordinator/dispatch.py with a ``Federation``:
    placement by cost, federation/cost.py), every simulated chef another
    pod's.  Its run messages carry each step's files by hash; a simulated
    pod reports its output by sha256, and the Federation's ``fetch`` hands
    the landing a file of the project with that content, so no byte moves
    (the landing still copies and commits each output into the tree).  The
    pod has no Member (no SFTP server, no Herald): the roster's cost of the
    hellos is not in its CPU figures.

Per fleet size and placement it prints: queue balance (steps per pod min/mean/max and
standard deviation; the makespan against the ideal one), the MajorDomo's
CPU per placed step (``time.pthread_getcpuclockid`` of its chart thread,
and of the pod's bridge and Store threads with it), and the traffic heard
on the server: hello and status messages/s and bytes/s, idle (before the
build) and during the build, and the hello deliveries that fan out to
every pod; the two placements side by side.  Everything started is
stopped before the next run.
"""
from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import logging
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import nats

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from computepods.bus.auth import CHEF, MAJORDOMO  # noqa: E402  (bench/ is not a package)
from computepods.bus.client import request_build  # noqa: E402
from computepods.federation.federation import Federation  # noqa: E402
from computepods.pod.pod import Pod, PodOptions  # noqa: E402
from computepods.state.owners import OwnerMap  # noqa: E402

DEFAULT_PODS = (50, 200)
STEPS_PER_POD = 16               # steps in the project per simulated pod
SLOTS = 2                        # slots per simulated pod
STEP_S = 0.5                     # seconds each fake step sleeps
HELLO_EVERY_S = 3.0              # the Herald's period (federation/hello.py)
HEARTBEAT_S = 5.0                # the Chef's default heartbeat
CONNECTIONS = 4                  # nats-py connections the fleet shares
RESULTS_EVERY_S = 0.1            # a pod sends its finished steps this often
IDLE_WINDOW_S = 6.0              # traffic measured before the build, seconds
JOIN_TIMEOUT_S = 60.0            # every pod's chef heard by the MajorDomo
BUILD_TIMEOUT_S = 600.0
NS = "cp"
PLACEMENTS = ("least-loaded", "cost")
SIM_MD_POD = "sim-majordomo"     # the federated MajorDomo's pod id


def content(i: int) -> bytes:
    """Source i, and (the command is a cp) its output."""
    return f"{i}\n".encode()


def output_of(step_id: str) -> tuple[str, dict]:
    """A step's output as a simulated chef reports it: its path, sha256 and size."""
    path = step_id.split(":", 1)[1]                  # "sim:out/s00042.txt"
    data = content(int(Path(path).stem[1:]))
    return path, {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}


class CostPod(Pod):
    """A pod whose MajorDomo places by cost: it joins a Federation whose
    fetch finds every output's content in the project's sources."""

    def _join_federation(self, state: Path, trace: dict) -> Federation:
        by_sha = {}
        for src in sorted((self.root / "src").iterdir()):
            by_sha.setdefault(hashlib.sha256(src.read_bytes()).hexdigest(), src)
        self.pod_id = SIM_MD_POD
        self.federation = Federation(SIM_MD_POD, lambda pod, sha: by_sha[sha], OwnerMap(),
                                     prints=lambda tools: {})
        return self.federation


@dataclass
class SimPod:
    name: str
    chef: str
    slots: int
    queue: "asyncio.Queue[dict]" = field(default_factory=asyncio.Queue)
    running: int = 0
    ran: int = 0
    pending: list = field(default_factory=list)
    hellos_heard: int = 0
    report_outputs: bool = False     # say what it made (a remote chef must: it is fetched)

    def hello(self, every_s: float) -> dict:
        return {"pod": self.name, "host": f"host-{self.name}", "role": "chef",
                "chefs": [self.chef], "slots": self.slots,
                "load": {"running": self.running, "queued": self.queue.qsize()},
                "tools": {t: "sha256:" + "ab" * 32 for t in ("cc", "sh", "pdflatex", "bibtex")},
                "sftp": {"pod": self.name, "host": "10.0.0.1", "port": 2222,
                         "host_key": "ssh-ed25519 " + "A" * 68},
                "client_key": "ssh-ed25519 " + "B" * 68, "moved": {"in": 0, "out": 0},
                "every_s": every_s, "v": 1}

    def status(self) -> dict:
        return {"chef": self.chef, "pod": self.name, "slots": self.slots,
                "running": self.running, "queued": self.queue.qsize(), "tools": [],
                "lease_s": 3 * HEARTBEAT_S, "v": 1}


class Fleet:
    """The simulated pods, on one asyncio loop in a thread of their own."""

    def __init__(self, url: str, login: dict, pods: list[SimPod], args):
        self.url, self.login, self.pods, self.args = url, login, pods, args
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="fleet", daemon=True)
        self.conns: list = []
        self.tasks: list[asyncio.Task] = []
        self.stopping = False

    def start(self) -> "Fleet":
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(60)
        return self

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self.loop).result(60)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    async def _start(self) -> None:
        for _ in range(self.args.connections):
            self.conns.append(await nats.connect(self.url, **self.login))
        for i, pod in enumerate(self.pods):
            pod.queue = asyncio.Queue()
            nc = self.conns[i % len(self.conns)]
            await nc.subscribe(f"{NS}.chef.{pod.chef}.run", cb=self._on_run(pod, nc))
            if self.args.hello_fanout:
                await nc.subscribe(f"{NS}.pods.hello", cb=self._on_hello(pod))
            for _ in range(pod.slots):
                self.tasks.append(asyncio.create_task(self._slot(pod, nc)))
            self.tasks.append(asyncio.create_task(self._every(
                self.args.hello_every_s, i / len(self.pods),
                lambda p=pod, c=nc: c.publish(f"{NS}.pods.hello", _enc(
                    p.hello(self.args.hello_every_s))))))
            self.tasks.append(asyncio.create_task(self._every(
                self.args.heartbeat_s, i / len(self.pods),
                lambda p=pod, c=nc: c.publish(f"{NS}.chefs.status", _enc(p.status())))))
            self.tasks.append(asyncio.create_task(self._results(pod, nc)))
        for nc in self.conns:
            await nc.flush()

    async def _stop(self) -> None:
        self.stopping = True
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for nc in self.conns:
            await nc.close()

    async def _every(self, period: float, phase: float, send) -> None:
        await asyncio.sleep(period * phase)          # spread the pods over the period
        while True:
            await send()
            await asyncio.sleep(period)

    def _on_hello(self, pod: SimPod):
        async def heard(msg) -> None:
            pod.hellos_heard += 1
        return heard

    def _on_run(self, pod: SimPod, nc):
        async def run(msg) -> None:
            data = json.loads(msg.data)
            ids = []
            for step in data["steps"]:
                ids.append(step["id"])
                pod.queue.put_nowait({"build": data["build"], "id": step["id"],
                                      "attempt": step["attempt"]})
            await msg.respond(_enc({"accepted": ids, "rejected": [], "v": 1}))
        return run

    async def _slot(self, pod: SimPod, nc) -> None:
        while True:
            step = await pod.queue.get()
            pod.running += 1
            await asyncio.sleep(self.args.step_s)
            pod.running -= 1
            pod.ran += 1
            outputs = dict([output_of(step["id"])]) if pod.report_outputs else {}
            pod.pending.append({"event": "finished", **step, "ok": True, "command": "sleep",
                                "exit_code": 0, "reason": "", "duration_s": self.args.step_s,
                                "outputs": outputs, "discovered": []})
            if pod.queue.empty() and pod.running == 0:     # turned idle: say so now
                await nc.publish(f"{NS}.chefs.status", _enc(pod.status()))

    async def _results(self, pod: SimPod, nc) -> None:
        while True:
            await asyncio.sleep(RESULTS_EVERY_S)
            if pod.pending:
                results, pod.pending = pod.pending, []
                try:
                    await nc.request(f"{NS}.steps.results",
                                     _enc({"chef": pod.chef, "results": results, "v": 1}),
                                     timeout=10)
                except nats.errors.TimeoutError:
                    pod.pending[:0] = results                # sent again with the next batch


class Meter:
    """Messages and bytes per subject heard by one majordomo-role client."""

    SUBJECTS = ("pods.hello", "chefs.status", "steps.results", "build.*.events", "chef.*.run")

    def __init__(self, url: str, login: dict):
        self.url, self.login = url, login
        self.msgs: Counter = Counter()
        self.bytes: Counter = Counter()

    async def start(self) -> None:
        self.nc = await nats.connect(self.url, **self.login)
        for subject in self.SUBJECTS:
            await self.nc.subscribe(f"{NS}.{subject}", cb=self._count(subject))
        await self.nc.flush()

    def _count(self, subject: str):
        async def count(msg) -> None:
            self.msgs[subject] += 1
            self.bytes[subject] += len(msg.data) + len(msg.subject)
        return count

    def snapshot(self) -> tuple[Counter, Counter]:
        return Counter(self.msgs), Counter(self.bytes)


def _enc(payload: dict) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


def project(root: Path, steps: int) -> Path:
    (root / "src").mkdir(parents=True)
    for i in range(steps):
        (root / "src" / f"s{i:05d}.txt").write_bytes(content(i))
    (root / "computepods.toml").write_text(
        '[project]\ndefault = [' + ", ".join(f'"out/s{i:05d}.txt"' for i in range(steps)) +
        ']\n\n[[rule]]\nname = "sim"\ninputs = ["src/%.txt"]\noutputs = ["out/%.txt"]\n'
        'command = "cp {in} {out}"\n')
    return root


def thread_cpu_s(*threads: threading.Thread | None) -> float:
    return sum(time.clock_gettime(time.pthread_getcpuclockid(t.ident))
               for t in threads if t is not None and t.ident is not None)


def run_size(n_pods: int, args, placement: str = "least-loaded") -> dict:
    steps = n_pods * args.steps_per_pod
    cost = placement == "cost"
    with tempfile.TemporaryDirectory(prefix=f"cp-fedsim-{n_pods}-") as tmp:
        root = project(Path(tmp) / "p", steps)
        pod = (CostPod(root, PodOptions(chefs=0, federate=True)) if cost else
               Pod(root, PodOptions(chefs=0))).start()
        fleet = meter = None
        try:
            users = pod.server.users
            md = next(c for c in pod.charts if type(c).__name__ == "MajorDomo")
            store = next(c for c in pod.charts if type(c).__name__ == "Store")
            sims = [SimPod(f"pod{i:03d}", f"pod{i:03d}-c0", args.slots, report_outputs=cost)
                    for i in range(n_pods)]
            fleet = Fleet(pod.url, users.credentials(CHEF).connect_options(), sims, args).start()
            meter = Meter(pod.url, users.credentials(MAJORDOMO).connect_options())
            asyncio.run_coroutine_threadsafe(meter.start(), fleet.loop).result(30)
            deadline = time.monotonic() + JOIN_TIMEOUT_S
            while len(md.chefs) < n_pods:        # (read-only: the bench looks in)
                if time.monotonic() > deadline:
                    raise SystemExit(f"only {len(md.chefs)} of {n_pods} chefs were heard")
                time.sleep(0.05)
            m0, b0 = meter.snapshot()
            time.sleep(args.idle_s)              # idle traffic: hellos and heartbeats only
            m1, b1 = meter.snapshot()
            heard0 = sum(p.hellos_heard for p in sims)
            cpu0 = (thread_cpu_s(md.thread), thread_cpu_s(md.thread, pod.bridge._thread,
                                                          store.thread),
                    time.process_time() - thread_cpu_s(fleet.thread))
            t0 = time.monotonic()
            code = request_build(pod.bridge, [], root)
            wall = time.monotonic() - t0
            cpu1 = (thread_cpu_s(md.thread), thread_cpu_s(md.thread, pod.bridge._thread,
                                                          store.thread),
                    time.process_time() - thread_cpu_s(fleet.thread))
            m2, b2 = meter.snapshot()
            heard1 = sum(p.hellos_heard for p in sims)
        finally:
            if fleet is not None:
                if meter is not None:
                    asyncio.run_coroutine_threadsafe(meter.nc.close(), fleet.loop).result(10)
                fleet.stop()
            pod.stop()
    ran = [p.ran for p in sims]
    ideal = args.step_s * -(-steps // (n_pods * args.slots))
    rate = lambda c, s, span: c[s] / span                       # noqa: E731
    idle, busy = (m1 - m0, b1 - b0), (m2 - m1, b2 - b1)
    return {"placement": placement, "pods": n_pods, "steps": steps, "code": code,
            "wall_s": wall, "ideal_s": ideal,
            "min": min(ran), "mean": statistics.mean(ran), "max": max(ran),
            "stdev": statistics.pstdev(ran), "idle_pods": sum(1 for r in ran if r == 0),
            "md_us": (cpu1[0] - cpu0[0]) / steps * 1e6,
            "pod_us": (cpu1[1] - cpu0[1]) / steps * 1e6,
            "all_us": (cpu1[2] - cpu0[2]) / steps * 1e6,
            "hello_idle": (rate(idle[0], "pods.hello", args.idle_s),
                           rate(idle[1], "pods.hello", args.idle_s)),
            "status_idle": (rate(idle[0], "chefs.status", args.idle_s),
                            rate(idle[1], "chefs.status", args.idle_s)),
            "hello_busy": (rate(busy[0], "pods.hello", wall), rate(busy[1], "pods.hello", wall)),
            "status_busy": (rate(busy[0], "chefs.status", wall),
                            rate(busy[1], "chefs.status", wall)),
            "results_busy": (rate(busy[0], "steps.results", wall),
                             rate(busy[1], "steps.results", wall)),
            "runs": busy[0]["chef.*.run"], "events_busy": rate(busy[0], "build.*.events", wall),
            "deliveries": (heard1 - heard0) / wall if args.hello_fanout else 0.0}


def report(rs: list[dict]) -> None:
    """One fleet size, its placements side by side."""
    r0 = rs[0]
    print(f"\n== {r0['pods']} simulated chef pods, {r0['steps']} steps, "
          f"{len(rs)} placements ==")
    print(f"  {'':<28}" + "".join(f"{r['placement']:>24}" for r in rs))

    def row(label: str, cell) -> None:
        print(f"  {label:<28}" + "".join(f"{cell(r):>24}" for r in rs))
    row("exit code", lambda r: r["code"])
    row("steps per pod min/mean/max", lambda r: f"{r['min']} / {r['mean']:.1f} / {r['max']}")
    row("  stddev; pods given none", lambda r: f"{r['stdev']:.2f}; {r['idle_pods']}")
    row("makespan s (x ideal)", lambda r: f"{r['wall_s']:.2f} ({r['wall_s'] / r['ideal_s']:.2f}x)")
    row("MajorDomo CPU us/step", lambda r: f"{r['md_us']:.0f}")
    row("  + bridge, Store", lambda r: f"{r['pod_us']:.0f}")
    row("  whole pod (landing too)", lambda r: f"{r['all_us']:.0f}")
    for name in ("hello", "status"):
        row(f"{name} msg/s idle; building",
            lambda r, k=name: f"{r[k + '_idle'][0]:.1f}; {r[k + '_busy'][0]:.1f}")
        row(f"{name} KiB/s idle; building",
            lambda r, k=name: f"{r[k + '_idle'][1] / 1024:.1f}; {r[k + '_busy'][1] / 1024:.1f}")
    row("results msg/s; KiB/s", lambda r: f"{r['results_busy'][0]:.1f}; "
        f"{r['results_busy'][1] / 1024:.1f}")
    row("run messages", lambda r: r["runs"])
    row("build-event msg/s", lambda r: f"{r['events_busy']:.1f}")
    if r0["deliveries"]:
        row("hello deliveries/s (per hello)", lambda r: f"{r['deliveries']:.0f} "
            f"({r['deliveries'] / max(r['hello_busy'][0], 1e-9):.0f})")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pods", type=int, nargs="+", default=list(DEFAULT_PODS))
    p.add_argument("--placement", choices=PLACEMENTS, nargs="+", default=list(PLACEMENTS))
    p.add_argument("--steps-per-pod", type=int, default=STEPS_PER_POD)
    p.add_argument("--slots", type=int, default=SLOTS)
    p.add_argument("--step-s", type=float, default=STEP_S)
    p.add_argument("--hello-every-s", type=float, default=HELLO_EVERY_S)
    p.add_argument("--heartbeat-s", type=float, default=HEARTBEAT_S)
    p.add_argument("--connections", type=int, default=CONNECTIONS)
    p.add_argument("--idle-s", type=float, default=IDLE_WINDOW_S)
    p.add_argument("--no-hello-fanout", dest="hello_fanout", action="store_false",
                   help="the simulated pods do not listen to each other's hellos")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    sizes = [[run_size(n, args, placement) for placement in args.placement] for n in args.pods]
    for rs in sizes:
        report(rs)
    if len(sizes) > 1:
        for k, placement in enumerate(args.placement):
            first, last = sizes[0][k], sizes[-1][k]
            print(f"\n{placement}, {last['pods']} pods against {first['pods']}: MajorDomo CPU "
                  f"per step {last['md_us'] / first['md_us']:.2f}x; status msg/s "
                  f"{last['status_busy'][0] / max(first['status_busy'][0], 1e-9):.2f}x; "
                  f"hello msg/s {last['hello_idle'][0] / max(first['hello_idle'][0], 1e-9):.2f}x; "
                  f"hello deliveries/s {last['deliveries'] / max(first['deliveries'], 1e-9):.2f}x")
    return 0 if all(r["code"] == 0 for rs in sizes for r in rs) else 1


if __name__ == "__main__":
    sys.exit(main())
