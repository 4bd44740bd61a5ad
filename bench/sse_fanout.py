"""Event delivery latency to 100 SSE clients following one build.

    python bench/sse_fanout.py
    python bench/sse_fanout.py --clients 100 --events 200 --interval-ms 10

One run starts a nats-server, a pod's Desk chart and the REST app under
gunicorn (2 gthread workers with a thread for every stream,
:func:`computepods.api.serve.start_http`).  It announces a build on
``cp.build.<id>.events`` as the MajorDomo does (numbered events), opens
``--clients`` streams on ``/v1/builds/<id>/events`` (threads in
``--processes`` client processes, standard library), waits until every one
has its replay, then
publishes ``--events`` events one message each, ``--interval-ms`` apart,
each stamped with ``time.perf_counter_ns()`` when it was handed to NATS, and
ends the build with ``done``.

Latency is from that stamp to the moment a client has read the event, for
every (event, client) pair.  The peer, in the same run, is a plain NATS
subscriber of the same subject (a NatsBridge ``listen``) — what a client on
the bus itself would see.  It prints median and p99 of each and their
ratios, and exits 1 if a stream missed an event or got one twice.
"""
from __future__ import annotations

import argparse
import os
import http.client
import json
import multiprocessing
import queue
import secrets
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from computepods.bus import messages as m  # noqa: E402
from computepods.bus.bridge import NatsBridge  # noqa: E402
from computepods.bus.auth import MAJORDOMO  # noqa: E402
from computepods.bus.natsd import NatsServer, free_port  # noqa: E402
from computepods.charts.desk import Desk  # noqa: E402
from computepods.api.serve import start_http  # noqa: E402


def _split(n: int, parts: int) -> list[range]:
    return [range(i * n // parts, (i + 1) * n // parts) for i in range(parts)]


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


class Client(threading.Thread):
    """One SSE stream: (seq, latency µs) of every tick it reads."""

    def __init__(self, port: int, build_id: str, replayed: threading.Barrier):
        super().__init__(daemon=True)
        self.port, self.build_id, self.replayed = port, build_id, replayed
        self.got: list[tuple[int, float]] = []
        self.error = ""

    def run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        try:
            conn.request("GET", f"/v1/builds/{self.build_id}/events")
            resp = conn.getresponse()
            if resp.status != 200:
                self.error = f"HTTP {resp.status}"
                self.replayed.abort()
                return
            seq = None
            while True:
                line = resp.readline()
                if not line:
                    return
                if line.startswith(b"id: "):
                    seq = int(line[4:])
                elif line.startswith(b"data: "):
                    now = time.perf_counter_ns()
                    ev = json.loads(line[6:])
                    if ev["t"] == "queued":
                        self.replayed.wait()
                    elif ev["t"] == "tick":
                        self.got.append((seq, (now - ev["sent_ns"]) / 1000))
                    elif ev["t"] == "done":
                        return
        except Exception as exc:          # reported, and the run fails
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            conn.close()


def _clients(port: int, build_id: str, n: int, ready, out) -> None:
    """One process of `n` streams (perf_counter_ns is the same clock in every
    process); says when all have their replay, then returns what they read."""
    replayed = threading.Barrier(n + 1)
    clients = [Client(port, build_id, replayed) for _ in range(n)]
    for c in clients:
        c.start()
    try:
        replayed.wait(timeout=60)
    except threading.BrokenBarrierError:
        pass
    ready.put(True)
    for c in clients:
        c.join(120)
    out.put([(c.got, c.error) for c in clients])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, default=100)
    ap.add_argument("--events", type=int, default=200)
    ap.add_argument("--interval-ms", type=float, default=10.0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--processes", type=int, default=4, help="client processes (default 4)")
    args = ap.parse_args()
    threads = args.clients // args.workers + 16        # a thread for every stream, and spare
    with tempfile.TemporaryDirectory(prefix="cp-sse-fanout-") as tmp:
        root = Path(tmp) / "p"
        root.mkdir()
        (root / "computepods.toml").write_text('[project]\nname = "fanout"\n')
        nats = NatsServer(store_dir=Path(tmp) / "nats")
        url = nats.start()
        os.environ.update(nats.users.env(MAJORDOMO))   # the bench logs in as the pod would
        pod_bridge = NatsBridge(url, name="bench-pod").start()
        pub = NatsBridge(url, name="bench-publisher").start()
        desk = Desk(pod_bridge, root).start()
        server = None
        try:
            server = start_http(root, url, "cp", f"127.0.0.1:{free_port()}", args.workers,
                                threads=threads, token="")
            port = int(server.url.rsplit(":", 1)[1])
            build_id = secrets.token_hex(4)
            peer: "queue.Queue[m.Message]" = queue.Queue()
            pub.listen(m.BUILD_EVENTS, peer, build=build_id)
            pub.publish(m.BUILD_EVENTS, {"build": build_id, "seq": 0,
                                         "events": [{"t": "queued", "targets": []}]},
                        build=build_id)
            peer.get(timeout=10)
            ctx = multiprocessing.get_context("spawn")
            ready, out = ctx.Queue(), ctx.Queue()
            split = [len(r) for r in _split(args.clients, args.processes)]
            procs = [ctx.Process(target=_clients, args=(port, build_id, n, ready, out))
                     for n in split]
            for p in procs:
                p.start()
            for _ in procs:
                ready.get(timeout=120)
            peer_lat: list[float] = []
            for i in range(1, args.events + 1):
                sent = time.perf_counter_ns()
                pub.publish(m.BUILD_EVENTS, {"build": build_id, "seq": i,
                                             "events": [{"t": "tick", "sent_ns": sent}]},
                            build=build_id)
                msg = peer.get(timeout=10)
                peer_lat.append((time.perf_counter_ns() - msg.data["events"][0]["sent_ns"]) / 1000)
                time.sleep(args.interval_ms / 1000)
            pub.publish(m.BUILD_EVENTS, {"build": build_id, "seq": args.events + 1,
                                         "events": [{"t": "done", "ok": True, "code": 0}]},
                        build=build_id)
            results = [r for _ in procs for r in out.get(timeout=120)]
            for p in procs:
                p.join(60)
        finally:
            killed = server.stop() if server else False
            desk.stop()
            pub.stop()
            pod_bridge.stop()
            nats.stop()
            nats.close()
    problems = [error for _, error in results if error]
    expected = list(range(1, args.events + 1))
    problems += [f"a stream got seqs {[s for s, _ in got][:5]}…, not 1..{args.events}"
                 for got, _ in results if [s for s, _ in got] != expected]
    if killed:
        problems.append("gunicorn had to be killed")
    sse = [lat for got, _ in results for _, lat in got]
    print(f"{args.clients} SSE clients following one build, {args.events} events "
          f"{args.interval_ms:g} ms apart (gunicorn {args.workers} gthread workers, "
          f"{threads} threads each):")
    if sse:
        med, p99 = statistics.median(sse), percentile(sse, 0.99)
        pmed, pp99 = statistics.median(peer_lat), percentile(peer_lat, 0.99)
        print(f"  NATS subscriber (peer)  median {pmed:8.0f} µs   p99 {pp99:8.0f} µs")
        print(f"  SSE clients             median {med:8.0f} µs   p99 {p99:8.0f} µs")
        print(f"  ratio SSE/NATS: median {med / pmed:.1f}, p99 {p99 / pp99:.1f}")
    for problem in problems[:5]:
        print(f"sse_fanout: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
