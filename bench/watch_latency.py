"""Time write-and-close → report: ``cpod watch`` on NATS against watchfiles.

    python bench/watch_latency.py
    python bench/watch_latency.py --n 200 --quiet-ms 50

One run starts an embedded nats-server (free loopback port) and, on one
directory, two watchers in their own processes:

cp
    ``cpod watch DIR --nats URL`` (the FSWatcher chart, default 50 ms quiet
    period); its ``cp.fs.changed`` messages are received here by a nats-py
    subscriber, so the figure includes the publish and the NATS hop.
watchfiles
    ``watchfiles.watch(DIR)`` with its defaults (it yields once changes have
    stopped for ``step`` = 50 ms); the child stamps each yield with
    ``CLOCK_MONOTONIC`` itself, so the figure has no pipe in it.

This process then writes files one at a time (open, write, close, stamp),
waiting for both watchers to report each before the next, in two series:

edit
    an existing file rewritten in place (the edit a build cares about): its
    close-write ends cp's quiet period at once.
new
    a new file: cp waits its whole quiet period (a new file may be a
    temporary about to be renamed away).

For each series and watcher it prints the median and p99 latency (ms) and
the ratio cp / watchfiles, and for cp "reported within X ms after its quiet
period" (the latency less the quiet period: 0 for an edit, ``--quiet-ms``
for a new file), whose target is 5 ms.  A report that never comes fails the
run (exit 1).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import queue
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import nats

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from computepods.bus.auth import MAJORDOMO, BusUsers, Credentials  # noqa: E402
from computepods.bus.natsd import NatsServer  # noqa: E402  (bench/ is not a package)

DEFAULT_N = 100                 # timed writes per series
WARMUP = 5                      # untimed writes before the first series
REPORT_TIMEOUT_S = 10.0         # seconds a report may take before the run fails
TARGET_AFTER_QUIET_MS = 5.0     # the target for cp
NAMESPACE = "bench"

WATCHFILES_CHILD = r"""
import json, sys, time, watchfiles
root = sys.argv[1]
print(json.dumps({"ready": True}), flush=True)
for changes in watchfiles.watch(root):
    t = time.monotonic_ns()
    for _, path in changes:
        print(json.dumps({"path": path, "t": t}), flush=True)
"""


def percentile(samples: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(samples)
    return ordered[max(0, min(len(ordered) - 1, -(-len(ordered) * q // 100) - 1))]


class Arrivals:
    """First arrival time (monotonic ns) of each path, from any thread."""

    def __init__(self):
        self.first: dict[str, int] = {}
        self.cond = threading.Condition()

    def add(self, path: str, t: int) -> None:
        with self.cond:
            self.first.setdefault(path, t)
            self.cond.notify_all()

    def wait(self, path: str, timeout: float) -> int | None:
        with self.cond:
            self.cond.wait_for(lambda: path in self.first, timeout)
            return self.first.pop(path, None)

    def forget(self) -> None:
        with self.cond:
            self.first.clear()


class NatsListener:
    """nats-py on its own loop thread, stamping each cp.fs.changed on arrival."""

    def __init__(self, url: str, root: Path, arrivals: Arrivals):
        self.url, self.root, self.arrivals = url, root, arrivals
        self.loop = asyncio.new_event_loop()
        self.ready: queue.Queue = queue.Queue()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.stop_event: asyncio.Event | None = None

    def start(self) -> None:
        self.thread.start()
        problem = self.ready.get(timeout=10)
        if problem:
            raise SystemExit(f"watch_latency: {problem}")

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._listen())

    async def _listen(self) -> None:
        try:
            self.nc = await nats.connect(self.url, **Credentials.from_env().connect_options())

            async def got(msg) -> None:
                t = time.monotonic_ns()
                self.arrivals.add(json.loads(msg.data)["path"], t)

            await self.nc.subscribe(f"{NAMESPACE}.fs.changed", cb=got)
            await self.nc.flush()
        except Exception as exc:
            self.ready.put(f"cannot listen on NATS at {self.url}: {exc}")
            return
        self.stop_event = asyncio.Event()
        self.ready.put(None)
        await self.stop_event.wait()
        await self.nc.close()

    def stop(self) -> None:
        if self.stop_event is not None:          # None: it never got to listen
            self.loop.call_soon_threadsafe(self.stop_event.set)
        self.thread.join(5)


def start_cp(root: Path, url: str, quiet_ms: float) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "computepods.cli", "watch", str(root),
                             "--nats", url, "--namespace", NAMESPACE,
                             "--quiet-ms", str(quiet_ms), "--pod", "bench"],
                            stderr=subprocess.PIPE, text=True)
    line = proc.stderr.readline()
    if "watching" not in line:
        raise SystemExit(f"watch_latency: cpod watch did not start: {line}{proc.stderr.read()}")
    threading.Thread(target=proc.stderr.read, daemon=True).start()    # keep the pipe drained
    return proc


def start_watchfiles(root: Path, arrivals: Arrivals) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", WATCHFILES_CHILD, str(root)],
                            stdout=subprocess.PIPE, text=True)
    if "ready" not in proc.stdout.readline():
        raise SystemExit("watch_latency: the watchfiles child did not start")
    prefix = str(root) + os.sep

    def read() -> None:
        for line in proc.stdout:
            d = json.loads(line)
            arrivals.add(d["path"].removeprefix(prefix), d["t"])

    threading.Thread(target=read, daemon=True).start()
    return proc


def write(path: Path, text: str) -> int:
    with open(path, "w") as f:
        f.write(text)
    return time.monotonic_ns()


def timed_series(root: Path, names: list[str], watchers: dict[str, Arrivals]) \
        -> dict[str, list[float]]:
    """Write each file, wait for every watcher's report; latencies in ms."""
    lat: dict[str, list[float]] = {w: [] for w in watchers}
    for i, name in enumerate(names):
        t0 = write(root / name, f"content {i}\n" * (1 + i % 7))
        for who, arrivals in watchers.items():
            t1 = arrivals.wait(name, REPORT_TIMEOUT_S)
            if t1 is None:
                raise SystemExit(f"watch_latency: {who} never reported {name}")
            lat[who].append((t1 - t0) / 1e6)
        for arrivals in watchers.values():
            arrivals.forget()             # a late second report of this file is not the next's
    return lat


def warm_up(root: Path, watchers: dict[str, Arrivals]) -> None:
    """Write until every watcher has reported WARMUP writes: watchfiles' child
    says it is ready before its watch is in place."""
    seen = {who: 0 for who in watchers}
    for i in range(WARMUP * 20):
        write(root / "warm.txt", f"warm {i}\n")
        for who, arrivals in watchers.items():
            if arrivals.wait("warm.txt", 1.0) is not None:
                seen[who] += 1
        if min(seen.values()) >= WARMUP:
            for arrivals in watchers.values():
                arrivals.forget()
            return
    raise SystemExit(f"watch_latency: the watchers did not start reporting: {seen}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=DEFAULT_N, help="timed writes per series")
    parser.add_argument("--quiet-ms", type=float, default=50.0, help="cp's quiet period")
    args = parser.parse_args(argv)

    server = NatsServer(store_dir=Path(tempfile.mkdtemp(prefix="cp-bench-nats-")),
                        users=BusUsers.generate(NAMESPACE))
    url = server.start()
    os.environ.update(server.users.env(MAJORDOMO))   # the bench logs in as the pod would
    procs: list[subprocess.Popen] = []
    listener = None
    try:
        with tempfile.TemporaryDirectory(prefix="cp-bench-watch-") as tmp:
            root = Path(tmp).resolve()
            edits = [f"edit{i}.txt" for i in range(args.n)]
            for name in edits:
                (root / name).write_text("before\n")
            cp, wf = Arrivals(), Arrivals()
            listener = NatsListener(url, root, cp)
            listener.start()
            procs.append(start_cp(root, url, args.quiet_ms))
            procs.append(start_watchfiles(root, wf))
            watchers = {"cp": cp, "watchfiles": wf}
            warm_up(root, watchers)
            series = {"edit": timed_series(root, edits, watchers),
                      "new": timed_series(root, [f"new{i}.txt" for i in range(args.n)],
                                          watchers)}
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        if listener:
            listener.stop()
        server.stop()
        server.close()

    print(f"write-and-close -> report, {args.n} writes per series "
          f"(cp: cp.fs.changed received over NATS, quiet {args.quiet_ms:g} ms; "
          f"watchfiles: its yield, defaults)")
    print(f"{'series':8} {'watcher':11} {'median ms':>10} {'p99 ms':>8}")
    worst_after_quiet = 0.0
    for kind, lat in series.items():
        for who, samples in lat.items():
            print(f"{kind:8} {who:11} {statistics.median(samples):10.2f} "
                  f"{percentile(samples, 99):8.2f}")
        med = statistics.median(lat["cp"]) / statistics.median(lat["watchfiles"])
        p99 = percentile(lat["cp"], 99) / percentile(lat["watchfiles"], 99)
        print(f"{kind:8} cp/watchfiles: median {med:.2f}x, p99 {p99:.2f}x")
        quiet = 0.0 if kind == "edit" else args.quiet_ms
        after = [s - quiet for s in lat["cp"]]
        worst_after_quiet = max(worst_after_quiet, statistics.median(after))
        print(f"{kind:8} cp reported within {statistics.median(after):.2f} ms (median), "
              f"{percentile(after, 99):.2f} ms (p99) after its quiet period "
              f"({quiet:g} ms)")
    verdict = "met" if worst_after_quiet <= TARGET_AFTER_QUIET_MS else "MISSED"
    print(f"target: reported <= {TARGET_AFTER_QUIET_MS:g} ms after the quiet period "
          f"(median): {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
