"""How long ``GET /healthz`` takes with 140 slow connections open (issue 11, break 8).

    python bench/rest_slow_clients.py
    python bench/rest_slow_clients.py --connections 300 --probes 50

One run starts a nats-server, a pod whose build waits on a gate file (so
event streams stay open), and gunicorn as ``cpod up`` serves it
(:func:`computepods.api.serve.start_http`: 2 workers of 128 threads).  For
each kind of slow client in turn (slowloris: part of the headers, then
nothing; idle: connected, silent; kept-alive: one request, then idle; SSE:
an open event stream; then a mix of all four) it opens ``--connections``
of them, then times ``--probes`` health checks, each on a fresh
connection, one after another.  It prints the median and worst latency of
each, and exits 1 if any probe failed or took over the 1 s target.
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent / "tests"))
from computepods.bus.auth import MAJORDOMO  # noqa: E402
from computepods.bus.natsd import NatsServer, free_port  # noqa: E402
from computepods.charts.desk import Desk  # noqa: E402
from computepods.pod.pod import Pod, PodOptions  # noqa: E402
from computepods.api.serve import start_http  # noqa: E402
from restlive import SlowCrowd, gated_project, request, timed_health  # noqa: E402

TARGET_S = 1.0


def crowd_of(kind: str, n: int, crowd: SlowCrowd, build_id: str, rng: random.Random) -> None:
    if kind == "slowloris":
        crowd.slowloris(n, rng)
    elif kind == "idle":
        crowd.idle(n)
    elif kind == "kept-alive":
        crowd.kept_alive(n)
    elif kind == "sse":
        crowd.event_streams(n, build_id)
    else:
        for i, part in enumerate(("slowloris", "idle", "kept-alive", "sse")):
            crowd_of(part, n // 4 + (i < n % 4), crowd, build_id, rng)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--connections", type=int, default=140, help="slow ones (default 140)")
    ap.add_argument("--probes", type=int, default=20, help="health checks per kind (default 20)")
    args = ap.parse_args()
    os.environ.pop("CP_API_TOKEN", None)
    os.environ["PYTHONPATH"] = os.pathsep.join(        # gunicorn imports this tree
        [str(HERE.parent), *filter(None, [os.environ.get("PYTHONPATH")])])
    rng = random.Random(140)
    worst_all, failed = 0.0, 0
    with tempfile.TemporaryDirectory(prefix="cp-rest-slow-") as tmp:
        root = gated_project(Path(tmp) / "p")
        nats = NatsServer(store_dir=Path(tmp) / "nats")
        url = nats.start()
        os.environ.update(nats.users.env(MAJORDOMO))   # the bench logs in as the pod would
        pod = Pod(root, PodOptions(nats_url=url, slots=2)).start()
        server = None
        try:
            desk = Desk(pod.bridge, root).start()
            pod.charts.append(desk)
            server = start_http(root, url, "cp", f"127.0.0.1:{free_port()}", token="")
            build = request(server.url, "POST", "/v1/builds", {"targets": []})
            build_id = build.json["id"]
            print(f"/healthz latency with {args.connections} slow connections open "
                  f"(gunicorn 2 workers x 128 threads), {args.probes} probes each:")
            for kind in ("slowloris", "idle", "kept-alive", "sse", "mixed"):
                with SlowCrowd(server.url) as crowd:
                    crowd_of(kind, args.connections, crowd, build_id, rng)
                    results = [timed_health(server.url) for _ in range(args.probes)]
                    refused = crowd.refused_streams
                bad = sum(1 for status, _ in results if status != 200)
                times = [s for _, s in results]
                worst = max(times)
                worst_all = max(worst_all, worst)
                failed += bad
                print(f"  {kind:11} median {statistics.median(times) * 1000:6.1f} ms  "
                      f"worst {worst * 1000:6.1f} ms"
                      + (f"  ({refused} streams refused: 503)" if refused else "")
                      + (f"  {bad} FAILED" if bad else ""), flush=True)
            (root / "gate").write_text("open\n")
        finally:
            if server is not None:
                server.stop()
            pod.stop()
            nats.stop()
            nats.close()
    print(f"worst /healthz: {worst_all * 1000:.0f} ms (target {TARGET_S * 1000:.0f} ms)")
    if failed or worst_all > TARGET_S:
        print(f"rest_slow_clients: {failed} probes failed; worst {worst_all:.2f} s",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
