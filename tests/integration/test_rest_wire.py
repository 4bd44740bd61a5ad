"""The REST app under a real gunicorn, spoken to by hand-framed requests:
chunked bodies, and clients that are slow or never finish (issue 11, break 8)."""
from __future__ import annotations

import json
import random

import pytest

from computepods.api.resources import FINISHED
from helpers import wait_for
from restlive import SlowCrowd, chunked, gated_project, live_pod, raw_exchange, timed_health

HANG_S = 10.0     # seconds: a hang detector, not the 1 s target (bench/rest_slow_clients.py)


@pytest.fixture
def live(tmp_path, nats_url):
    with live_pod(gated_project(tmp_path / "p"), nats_url) as live:
        yield live


def post_chunked(live, framed: bytes, content_type: str = "application/json"):
    host = live.url.split("//", 1)[1]
    head = (f"POST /v1/builds HTTP/1.1\r\nHost: {host}\r\nContent-Type: {content_type}\r\n"
            "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n").encode()
    return raw_exchange(live.url, head + framed)


def test_a_chunked_body_is_read_and_builds_the_target_it_names(live):
    # The gate stays shut: the default target would never finish.
    body = json.dumps({"targets": ["build/b.txt"]}).encode()
    resp = post_chunked(live, chunked(body, [3, 1, 9]))
    assert resp.status == 202, resp.body
    build_id = json.loads(resp.body)["id"]
    summary = live.get(f"/v1/builds/{build_id}").json
    assert summary["targets"] == ["build/b.txt"], summary       # not the default
    wait_for(lambda: live.get(f"/v1/builds/{build_id}").json["state"] in FINISHED,
             timeout=60, what="the chunked build to finish")
    assert live.get(f"/v1/builds/{build_id}").json["state"] == "done"
    assert (live.root / "build/b.txt").read_text() == "b\n"
    assert not (live.root / "build/a.txt").exists()


def test_chunked_bodies_that_are_wrong_are_4xx(live):
    cases = [
        (chunked(b'{"targets": ["nowhere.txt"]}', [5]), "application/json", 409),
        (chunked(b'{"targets": [', [2]), "application/json", 400),
        (chunked(b"x" * (70 * 1024), [30000]), "application/json", 413),
        (b"zz\r\nnot a chunk\r\n0\r\n\r\n", "application/json", 400),
        (b"ffffffffff\r\n{}", "application/json", 413),     # says it is huge, then waits
        (chunked(b"{}", []), "text/plain", 415),
    ]
    for framed, content_type, status in cases:
        resp = post_chunked(live, framed, content_type)
        assert resp.status == status, (framed[:40], resp.status, resp.body[:300])
    assert live.get("/v1/builds").json["builds"] == []


def test_slow_and_idle_clients_beyond_the_threads_leave_healthz_answering(live):
    # 140 connections that never finish a request, against 2 workers of 8
    # threads (live_pod's): every kind of slow client at once.
    build_id = live.post_build().json["id"]          # stays running: the gate is shut
    rng = random.Random(11)
    with SlowCrowd(live.url) as crowd:
        crowd.kept_alive(20)
        crowd.slowloris(60, rng)
        crowd.idle(50)
        crowd.event_streams(10, build_id)
        status, seconds = timed_health(live.url, timeout=HANG_S)
        print(f"/healthz with 140 slow connections open: {seconds * 1000:.0f} ms")
        assert status == 200, f"/healthz did not answer within {HANG_S} s"
        # each worker holds max_streams(8) == 4 at most, and refuses the rest with a 503
        assert len(crowd.streams) >= 4 and len(crowd.streams) + crowd.refused_streams == 10
        assert live.post_build(["build/b.txt"]).status == 202      # and work goes on
    live.open_gate()
