"""Requests per second of ``GET /v1/builds/{id}`` against a bare Falcon route.

    python bench/rest_rps.py
    python bench/rest_rps.py --seconds 5 --clients 16 --rounds 3

One run starts a nats-server, a pod (its Desk chart answers the REST app)
on a small project, builds it once (so the build id is real), and then, in
turns for ``--rounds`` rounds, serves under gunicorn with the same settings
(2 gthread workers, :func:`computepods.api.serve.start_http`):

(a) bare
    bench/rest_bare.py: the same route answering a fixed summary from memory;
(b) computepods
    the real app: each request is a query to the pod's Desk over NATS.

The load is ``--clients`` threads split over two processes (one keep-alive
HTTP/1.1 connection each, standard library only), for ``--seconds`` per
turn.  It prints the best round's requests/s of each and the ratio (b)/(a),
and exits 1 if any request failed.  Everything shares the machine's cores,
so the ratio, not the absolute figures, is the result.
"""
from __future__ import annotations

import argparse
import http.client
import multiprocessing
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from computepods.bus.auth import MAJORDOMO  # noqa: E402
from computepods.bus.natsd import NatsServer, free_port  # noqa: E402
from computepods.charts.desk import Desk  # noqa: E402
from computepods.bus.client import request_build  # noqa: E402
from computepods.pod.pod import Pod, PodOptions  # noqa: E402
from computepods.api.serve import start_http  # noqa: E402

PROJECT = """
[project]
default = ["out/all.txt"]

[[rule]]
name = "copy"
inputs = ["src/%.txt"]
outputs = ["build/%.txt"]
command = "cp {in} {out}"

[[rule]]
name = "all"
inputs = ["build/a.txt", "build/b.txt"]
outputs = ["out/all.txt"]
command = "cat {in} > {out}"
"""


def _client(port: int, path: str, threads: int, seconds: float, ready, go, out) -> None:
    """One load process: `threads` keep-alive connections hammering `path`
    for `seconds` once `go` is set."""
    counts, errors = [0] * threads, [0] * threads
    conns = [http.client.HTTPConnection("127.0.0.1", port, timeout=30) for _ in range(threads)]
    ready.put(True)
    go.wait()
    deadline = time.monotonic() + seconds

    def run(i: int) -> None:
        conn = conns[i]
        while time.monotonic() < deadline:
            try:
                conn.request("GET", path)
                resp = conn.getresponse()
                resp.read()
                if resp.status == 200:
                    counts[i] += 1
                else:
                    errors[i] += 1
            except (OSError, http.client.HTTPException):
                errors[i] += 1
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.close()
    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    out.put((sum(counts), sum(errors)))


def load(port: int, path: str, clients: int, seconds: float) -> tuple[float, int]:
    """(requests/s, failed requests) with `clients` connections in two
    processes (spawned: this one has threads), started together."""
    ctx = multiprocessing.get_context("spawn")
    ready, out, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    split = [clients // 2, clients - clients // 2]
    procs = [ctx.Process(target=_client, args=(port, path, n, seconds, ready, go, out))
             for n in split]
    for p in procs:
        p.start()
    for _ in procs:
        ready.get()
    go.set()
    results = [out.get() for _ in procs]
    for p in procs:
        p.join()
    return sum(r[0] for r in results) / seconds, sum(r[1] for r in results)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=4.0, help="load per turn (default 4)")
    ap.add_argument("--clients", type=int, default=16, help="connections (default 16)")
    ap.add_argument("--rounds", type=int, default=2, help="turns of each (default 2)")
    ap.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2)")
    args = ap.parse_args()
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [str(HERE), *filter(None, [os.environ.get("PYTHONPATH")])])
    os.environ.pop("CP_API_TOKEN", None)
    best = {"bare": 0.0, "computepods": 0.0}
    failed = 0
    with tempfile.TemporaryDirectory(prefix="cp-rest-rps-") as tmp:
        root = Path(tmp) / "p"
        (root / "src").mkdir(parents=True)
        (root / "computepods.toml").write_text(PROJECT)
        for name in "ab":
            (root / f"src/{name}.txt").write_text(f"{name}\n")
        nats = NatsServer(store_dir=Path(tmp) / "nats")
        url = nats.start()
        os.environ.update(nats.users.env(MAJORDOMO))   # the bench logs in as the pod would
        pod = Pod(root, PodOptions(nats_url=url, slots=2)).start()
        try:
            desk = Desk(pod.bridge, root).start()
            pod.charts.append(desk)
            events: list[dict] = []
            code = request_build(pod.bridge, [], root, on_event=events.append)
            build_id = desk.registry.summaries()[0]["id"]
            assert code == 0, events[-1:]
            for rnd in range(args.rounds):
                for name, app in (("bare", "rest_bare:app"),
                                  ("computepods", "computepods.api.wsgi:app")):
                    port = free_port()
                    server = start_http(root, url, "cp", f"127.0.0.1:{port}", args.workers,
                                        token="", app=app)
                    try:
                        load(port, f"/v1/builds/{build_id}", 2, 0.5)        # warm up
                        rps, errors = load(port, f"/v1/builds/{build_id}", args.clients,
                                           args.seconds)
                    finally:
                        server.stop()
                    failed += errors
                    best[name] = max(best[name], rps)
                    print(f"round {rnd + 1}: {name:12} {rps:8.0f} requests/s"
                          + (f"  ({errors} failed)" if errors else ""), flush=True)
        finally:
            pod.stop()
            nats.stop()
            nats.close()
    ratio = best["computepods"] / best["bare"] if best["bare"] else float("nan")
    print(f"GET /v1/builds/{{id}}, gunicorn {args.workers} gthread workers, "
          f"{args.clients} keep-alive clients:")
    print(f"  bare Falcon route   {best['bare']:8.0f} requests/s")
    print(f"  computepods (NATS)  {best['computepods']:8.0f} requests/s")
    print(f"  ratio computepods/bare = {ratio:.2f}")
    if failed:
        print(f"rest_rps: {failed} requests failed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
