"""Time a request round trip through the NatsBridge against raw nats-py.

    python bench/bridge_rtt.py
    python bench/bridge_rtt.py --n 5000 --payload-bytes 1024

One run starts one embedded nats-server (:class:`NatsServer`, free loopback
port) and, against it, times N sequential request → reply round trips, each
after a warm-up of its own, in three ways:

(a) raw
    nats-py alone: an asyncio responder subscribed to the subject, and a
    client awaiting ``nc.request(...)`` one after the other; two connections
    on one event loop.  Both ends parse and write the JSON, as any real
    handler would, so what (b) and (c) add is the bridge and the charts.
(b) bridge, sync
    a responder :class:`Chart` routed with ``bridge.route(CHEF_RUN, chart,
    chef="bench")`` that answers with ``bridge.respond``, and plain code on the
    main thread calling ``bridge.request_sync`` (as the CLI does).
(c) chart to chart
    a requesting :class:`Chart` that calls ``bridge.request(..., chart=self,
    token=i)`` and sends the next request when REPLY arrives (as the MajorDomo
    does); its figure is the whole sequence's time / N.

The request is a valid ``chef.run`` message padded to ``--payload-bytes``
(the same bytes in all three); the reply is the same small JSON object.  In
(b) and (c) the requester and the responder each have their own bridge (own
connection, own loop thread), all in this one process.

For each way the per-request median and p99 (µs, ``time.perf_counter_ns``)
are printed, with the ratios (b)/(a) and (c)/(a).  A request that needed a
retry would distort the figures: the run reports it and exits 1.
"""
from __future__ import annotations

import argparse
import os
import asyncio
import concurrent.futures
import contextlib
import json
import math
import statistics
import sys
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from miros import return_status, spy_on

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from computepods.bus import messages as m  # noqa: E402  (bench/ is not a package)
from computepods.bus.bridge import NatsBridge  # noqa: E402
from computepods.bus.auth import MAJORDOMO, Credentials  # noqa: E402
from computepods.bus.natsd import NatsServer  # noqa: E402
from computepods.charts.base import Chart  # noqa: E402

DEFAULT_N = 2000                 # timed requests per way
DEFAULT_PAYLOAD_BYTES = 256      # size of the encoded request
WARMUP = 200                     # untimed requests before each way's timed ones
SEQUENCE_TIMEOUT_S = 120.0       # seconds (c) may take before the run gives up
CHEF = "bench"                   # the {chef} of the CHEF_RUN subject
REPLY = {"ok": True, "accepted": 1}


@dataclass
class Timing:
    name: str
    samples_ns: list[int]        # one per request
    total_ns: int                # the whole timed sequence

    @property
    def median_us(self) -> float:
        return statistics.median(self.samples_ns) / 1e3

    @property
    def p99_us(self) -> float:
        return percentile(self.samples_ns, 99) / 1e3

    @property
    def mean_us(self) -> float:
        return self.total_ns / len(self.samples_ns) / 1e3


def percentile(samples: list[int], q: float) -> int:
    """Nearest-rank percentile: the smallest sample with q % of them at or below it."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def request_payload(size: int) -> dict:
    """A valid CHEF_RUN payload whose encoding is exactly `size` bytes."""
    payload = {"build": "bench", "chef": CHEF, "rules": {}, "steps": [], "pad": ""}
    bare = len(m.encode(payload))
    if size < bare:
        raise SystemExit(f"--payload-bytes {size} is too small: the smallest valid "
                         f"chef.run request is {bare} bytes")
    payload["pad"] = "x" * (size - bare)
    assert len(m.encode(payload)) == size
    return payload


# --- (a) raw nats-py --------------------------------------------------------------

async def raw_rtt(url: str, data: bytes, n: int) -> Timing:
    import nats

    reply = dict(REPLY, v=m.SCHEMA_VERSION)
    # Logged in as the bridges are (the server has users), on the same subject.
    login = Credentials.from_env().connect_options()
    responder = await nats.connect(url, name="bench-raw-responder", **login)
    client = await nats.connect(url, name="bench-raw-client", **login)
    try:
        async def answer(msg) -> None:
            json.loads(msg.data)
            await msg.respond(json.dumps(reply, separators=(",", ":")).encode())

        subject = m.ROUTES[m.CHEF_RUN].subject(m.DEFAULT_NAMESPACE, chef=CHEF)
        await responder.subscribe(subject, cb=answer)
        await responder.flush()          # the server has the interest before we ask

        for _ in range(WARMUP):
            json.loads((await client.request(subject, data, timeout=2)).data)
        samples = []
        clock = time.perf_counter_ns
        start = clock()
        for _ in range(n):
            t0 = clock()
            json.loads((await client.request(subject, data, timeout=2)).data)
            samples.append(clock() - t0)
        total = clock() - start
    finally:
        await client.close()
        await responder.close()
    return Timing("(a) raw nats-py", samples, total)


# --- the charts -----------------------------------------------------------------------

@spy_on
def answering(chart: "Responder", e):
    if e.signal_name == m.CHEF_RUN:
        chart.bridge.respond(e.payload, REPLY)
        return return_status.HANDLED
    chart.temp.fun = chart.top
    return return_status.SUPER


class Responder(Chart):
    """Answers every CHEF_RUN at once, like a chef with nothing to do."""

    initial_state = answering

    def __init__(self, bridge: NatsBridge):
        super().__init__("bench:responder")
        self.bridge = bridge

    def start(self) -> "Responder":
        super().start()
        self.bridge.route(m.CHEF_RUN, self, chef=CHEF)
        return self


@dataclass
class Sequence:
    """One run of (c): how many requests, and where to hand back the timing."""
    n: int
    done: concurrent.futures.Future
    samples_ns: list[int] = field(default_factory=list)
    sent: int = 0
    sent_at_ns: int = 0
    start_ns: int = 0


@spy_on
def requesting(chart: "Requester", e):
    sig = e.signal_name
    if sig == m.ADVANCE:
        chart.begin(e.payload)
        return return_status.HANDLED
    if sig == m.REPLY:
        chart.answered(e.payload)
        return return_status.HANDLED
    if sig == m.REQUEST_FAILED:
        chart.failed(e.payload)
        return return_status.HANDLED
    chart.temp.fun = chart.top
    return return_status.SUPER


class Requester(Chart):
    """Sends one request, and the next when its REPLY comes (the MajorDomo's way)."""

    initial_state = requesting

    def __init__(self, bridge: NatsBridge, payload: dict):
        super().__init__("bench:requester")
        self.bridge = bridge
        self.payload = payload
        self.seq: Sequence | None = None

    def run(self, n: int, timeout: float = SEQUENCE_TIMEOUT_S) -> Sequence:
        """Post a sequence of n requests to the chart and wait for its end."""
        seq = Sequence(n, concurrent.futures.Future())
        self.post(m.ADVANCE, seq)
        seq.done.result(timeout)
        return seq

    def begin(self, seq: Sequence) -> None:
        self.seq = seq
        seq.start_ns = time.perf_counter_ns()
        self._send()

    def answered(self, reply: m.Reply) -> None:
        seq = self.seq
        now = time.perf_counter_ns()
        if reply.token != seq.sent - 1:
            seq.done.set_exception(RuntimeError(
                f"reply for request {reply.token}, expected {seq.sent - 1}"))
            return
        seq.samples_ns.append(now - seq.sent_at_ns)
        if seq.sent < seq.n:
            self._send()
        else:
            seq.done.set_result(now - seq.start_ns)

    def failed(self, reply: m.Reply) -> None:
        self.seq.done.set_exception(RuntimeError(f"request {reply.token}: {reply.error}"))

    def _send(self) -> None:
        seq = self.seq
        seq.sent_at_ns = time.perf_counter_ns()
        self.bridge.request(m.CHEF_RUN, self.payload, chart=self, token=seq.sent, chef=CHEF)
        seq.sent += 1


# --- (b) and (c) ------------------------------------------------------------------------

def bridge_sync_rtt(client: NatsBridge, payload: dict, n: int) -> Timing:
    for _ in range(WARMUP):
        client.request_sync(m.CHEF_RUN, payload, chef=CHEF)
    samples = []
    clock = time.perf_counter_ns
    start = clock()
    for _ in range(n):
        t0 = clock()
        client.request_sync(m.CHEF_RUN, payload, chef=CHEF)
        samples.append(clock() - t0)
    return Timing("(b) bridge request_sync", samples, clock() - start)


def chart_rtt(requester: Requester, n: int) -> Timing:
    requester.run(WARMUP)
    seq = requester.run(n)
    return Timing("(c) chart to chart", seq.samples_ns, seq.done.result())


# --- the run ------------------------------------------------------------------------------

def report(timings: list[Timing], out=sys.stdout) -> None:
    base = timings[0]
    print(f"{'':26} {'median µs':>10} {'p99 µs':>10} {'total/N µs':>11} "
          f"{'median×':>8} {'p99×':>6}", file=out)
    for t in timings:
        print(f"{t.name:26} {t.median_us:10.1f} {t.p99_us:10.1f} {t.mean_us:11.1f} "
              f"{t.median_us / base.median_us:8.2f} {t.p99_us / base.p99_us:6.2f}", file=out)
    print("(the × columns are each way over (a) raw nats-py)", file=out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=DEFAULT_N, help="timed requests per way")
    parser.add_argument("--payload-bytes", type=int, default=DEFAULT_PAYLOAD_BYTES,
                        help="size of the encoded request")
    args = parser.parse_args(argv)
    if args.n < 1:
        parser.error("--n must be at least 1")
    payload = request_payload(args.payload_bytes)
    data = m.encode(payload)

    with contextlib.ExitStack() as stack:
        # Undone in reverse: charts, then bridges, then the server (each chart
        # has its own fabric, nothing process-wide to reset); ExitStack runs every step even when one of them raises.
        server = NatsServer()
        stack.callback(warn_if_killed, server)
        stack.callback(server.close)
        url = server.start()
        os.environ.update(server.users.env(MAJORDOMO))   # the bench logs in as the pod would
        print(f"nats-server {url}; nats-py {metadata.version('nats-py')}; "
              f"Python {sys.version.split()[0]}")
        print(f"{args.n} sequential requests per way after {WARMUP} warm-up; "
              f"request {len(data)} B, reply {len(m.encode(REPLY))} B")
        print("all in this one process: (a) responder and client are two connections on one "
              "asyncio loop; (b), (c) requester and responder each have their own bridge")
        print()

        timings = [asyncio.run(raw_rtt(url, data, args.n))]

        bridges = []
        for name in ("bench-responder", "bench-requester"):
            bridge = NatsBridge(url, name=name)
            stack.callback(bridge.stop)
            bridges.append(bridge.start())
        responder_bridge, client_bridge = bridges
        responder = Responder(responder_bridge)
        stack.callback(responder.stop)
        responder.start()
        timings.append(bridge_sync_rtt(client_bridge, payload, args.n))

        requester = Requester(client_bridge, payload)
        stack.callback(requester.stop)
        requester.start()
        timings.append(chart_rtt(requester, args.n))

        report(timings)
        retries = sum(b.stats.retries for b in bridges)
        if retries:
            print(f"\n{retries} request(s) were sent again after a timeout or no "
                  f"responders: the bridge figures include those waits", file=sys.stderr)
            return 1
        return 0


def warn_if_killed(server: NatsServer) -> None:
    if server.was_killed:
        print(f"nats-server {server.name} ignored SIGTERM and had to be killed",
              file=sys.stderr)

if __name__ == "__main__":
    sys.exit(main())
