"""The REST app under a real gunicorn, in front of a real pod on a real
nats-server: errors, auth, builds joined, events streamed, cancels."""
from __future__ import annotations

import hashlib
import threading

import pytest

from helpers import wait_for
from restlive import gated_project, live_pod, request, sse_events

TOKEN = "s3cret-token"


@pytest.fixture
def live(tmp_path, nats_url):
    with live_pod(gated_project(tmp_path / "p"), nats_url) as live:
        yield live


def state_of(live, build_id: str) -> str:
    return live.get(f"/v1/builds/{build_id}").json["state"]


def test_health_page_and_document(live):
    health = live.get("/healthz")
    assert health.status == 200 and health.json["ok"] is True
    assert health.json["nats"] == live.pod.url
    page = live.get("/")
    assert page.status == 200 and page.headers["content-type"].startswith("text/html")
    doc = live.get("/v1/openapi.json").json
    assert doc["openapi"].startswith("3.1") and "/v1/builds/{id}/events" in doc["paths"]


def test_bad_input_is_a_json_4xx(live):
    cases = [
        ("POST", "/v1/builds", b'{"targets": [', 400),            # malformed JSON
        ("POST", "/v1/builds", b'["out/all.txt"]', 400),          # not an object
        ("POST", "/v1/builds", b'{"targets": "out/all.txt"}', 400),
        ("POST", "/v1/builds", b'{"targets": ["nowhere.txt"]}', 409),   # unknown target
        ("POST", "/v1/builds", b'{"targets": ["../../etc/passwd"]}', 409),
        ("POST", "/v1/builds", b'{"targets": [], "jobs": 4}', 400),
        ("POST", "/v1/builds", b'{"targets": ["' + b"x" * (70 * 1024) + b'"]}', 413),
        ("GET", "/v1/artefacts/..%2F..%2Fetc%2Fpasswd", None, 400),
        ("GET", "/v1/artefacts/%2E%2E/%2E%2E/etc/passwd", None, 400),
        ("GET", "/v1/artefacts?prefix=../", None, 400),
        ("GET", "/v1/explain/..%2F..%2Fetc%2Fpasswd", None, 404),   # no target of ours
        ("GET", "/v1/graph?format=svg", None, 400),
        ("GET", "/v1/graph?format=json&offset=x&offset=1", None, 400),   # falcon kept the last
        ("GET", "/v1/steps?limit=0&limit=5", None, 400),
        ("GET", "/v1/builds/0123abcd", None, 404),
        ("GET", "/v1/builds/0123abcd/events", None, 404),
        ("DELETE", "/v1/builds/0123abcd", None, 404),
        ("GET", "/v1/steps/copy:build%2Fnothing.txt/log", None, 404),
        ("GET", "/v1/artefacts/build/nothing.txt", None, 404),
        ("GET", "/v1/explain/nowhere.txt", None, 404),
        ("GET", "/v1/no/such/route", None, 404),
    ]
    for method, path, body, status in cases:
        resp = live.request(method, path, body)
        assert resp.status == status, (method, path, resp.status, resp.body[:300])
        assert resp.headers["content-type"].startswith("application/json"), path
        assert resp.json["title"], path
    # `target` alone takes a list: given twice, it is two targets
    assert live.get("/v1/graph?target=out/all.txt&target=out/all.txt").status == 200
    # an unencoded `..` in the raw request line does not escape either
    assert live.request("GET", "/v1/artefacts/../../etc/passwd").status in (400, 404)
    assert "passwd" not in live.get("/v1/artefacts").body.decode()


def test_a_token_guards_builds_and_cancels(tmp_path, nats_url):
    with live_pod(gated_project(tmp_path / "p"), nats_url, token=TOKEN) as live:
        (live.root / "gate").write_text("open\n")
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
            resp = live.request("POST", "/v1/builds", {"targets": []}, headers)
            assert resp.status == 401, headers
            assert resp.headers["www-authenticate"] == 'Bearer realm="computepods"'
            assert resp.json["title"]
        assert live.request("DELETE", "/v1/builds/0123abcd").status == 401
        assert live.get("/v1/builds").status == 200            # reading needs no token
        accepted = live.post_build(token=TOKEN)
        assert accepted.status == 202, accepted.body
        events = sse_events(live.url, accepted.json["url"] + "/events")
        assert events[-1][2]["ok"] is True


def test_post_joins_the_running_build_and_events_replay_then_go_live(live):
    first = live.post_build()
    assert first.status == 202 and first.json["joined"] is False
    build_id = first.json["id"]
    assert first.headers["location"].endswith(f"/v1/builds/{build_id}")
    wait_for(lambda: "gate:build/gated.txt" in live.get(f"/v1/builds/{build_id}").json["running"],
             what="the gated step to run")
    second = live.post_build()
    assert second.status == 202 and second.json == {**first.json, "joined": True}

    seen: list = []
    opened = threading.Event()

    def on_event(ev):
        # Open the gate only once the replay has reached the gated step: what
        # follows can only arrive live.
        if ev[2].get("step") == "gate:build/gated.txt" and not opened.is_set():
            opened.set()
            live.open_gate()
    events = sse_events(live.url, f"/v1/builds/{build_id}/events", on_event=on_event)
    seen = [t for _, t, _ in events]
    assert [seq for seq, _, _ in events] == list(range(len(events))), "ids are 0, 1, 2, ..."
    assert seen[:2] == ["queued", "plan"] and seen[-1] == "done"
    assert events[-1][2]["ok"] is True and events[-1][2]["code"] == 0
    assert {e[2].get("step") for e in events if e[1] in ("ok", "ran")} >= {
        "gate:build/gated.txt", "all:out/all.txt"}
    summary = live.get(f"/v1/builds/{build_id}").json
    assert summary["state"] == "done" and summary["ok"] is True and summary["code"] == 0
    assert summary["steps_done"] == summary["steps_total"] == 4
    assert summary["finished"] and summary["running"] == [] and summary["failed"] == []
    assert [b["id"] for b in live.get("/v1/builds").json["builds"]] == [build_id]
    # a browser reconnecting after the end is told to stop (204), not fed again
    again = live.get(f"/v1/builds/{build_id}/events",
                     headers={"Last-Event-ID": str(events[-1][0])})
    assert again.status == 204
    # the whole replay of a finished build, from the start
    assert [t for _, t, _ in sse_events(live.url, f"/v1/builds/{build_id}/events")] == seen


def test_cancel_a_running_build_and_a_queued_one(live):
    running = live.post_build().json["id"]
    wait_for(lambda: "gate:build/gated.txt" in live.get(f"/v1/builds/{running}").json["running"],
             what="the gated step to run")
    queued = live.post_build(["broken"])
    assert queued.status == 202 and queued.json["joined"] is False
    assert state_of(live, queued.json["id"]) == "queued"

    dropped = live.request("DELETE", f"/v1/builds/{queued.json['id']}")
    assert dropped.status == 202 and dropped.json["state"] == "cancelled"
    tail = sse_events(live.url, f"/v1/builds/{queued.json['id']}/events")
    assert tail[-1][2] == {"t": "done", "ok": False, "code": 130, "cancelled": True}

    cancel = live.request("DELETE", f"/v1/builds/{running}")
    assert cancel.status == 202 and cancel.json == {"id": running, "state": "cancelling"}
    live.open_gate()                      # the step a chef already runs finishes
    events = sse_events(live.url, f"/v1/builds/{running}/events")
    done = events[-1][2]
    assert done["t"] == "done" and done["code"] == 130 and done["cancelled"] is True
    assert "cancel" in [t for _, t, _ in events]
    assert not (live.root / "out/all.txt").exists(), "a step started after the cancel"
    summary = live.get(f"/v1/builds/{running}").json
    assert summary["state"] == "cancelled" and summary["code"] == 130
    counts = summary["counts"]            # nothing failed: the gated step ran or was stopped
    assert counts["failed"] == 0 and counts["ran"] + counts["cancelled"] == 3
    assert counts["not_run"] == 1 and summary["started_by"] == "rest"
    late = live.request("DELETE", f"/v1/builds/{running}")
    assert late.status == 409 and "already finished" in late.json["description"]


def test_failed_step_log_graph_and_artefacts(live):
    live.open_gate()
    failed = live.post_build(["broken"]).json["id"]
    done = sse_events(live.url, f"/v1/builds/{failed}/events")[-1][2]
    assert done["ok"] is False and done["code"] == 1
    summary = live.get(f"/v1/builds/{failed}").json
    assert summary["state"] == "failed" and summary["failed"] == ["broken:out/broken.txt"]

    log = live.get("/v1/steps/broken:out%2Fbroken.txt/log")
    assert log.status == 200, log.body
    assert log.json["exit_code"] == 3 and log.json["status"] == "failed"
    assert "error: no such thing" in log.json["stderr"]
    assert "compiling src/a.txt" in log.json["stdout"]
    assert log.json["command"].startswith("echo compiling src/a.txt")

    ok = live.post_build().json["id"]
    assert sse_events(live.url, f"/v1/builds/{ok}/events")[-1][2]["ok"] is True
    graph = live.get("/v1/graph?target=out/all.txt&target=broken&format=json").json
    states = {n["id"]: n["state"] for n in graph["nodes"]}
    assert states == {"all:out/all.txt": "up_to_date", "gate:build/gated.txt": "up_to_date",
                      "copy:build/a.txt": "up_to_date", "copy:build/b.txt": "up_to_date",
                      "broken:out/broken.txt": "failed"}
    assert ["copy:build/a.txt", "gate:build/gated.txt"] in graph["edges"]
    groups = live.get("/v1/graph?target=out/all.txt&target=broken").json
    assert {g["name"]: g["counts"] for g in groups["groups"]} == {
        "copy": {"up_to_date": 2}, "gate": {"up_to_date": 1}, "all": {"up_to_date": 1},
        "broken": {"failed": 1}}
    (live.root / "src/b.txt").write_text("b, edited\n")
    stale = live.get("/v1/steps?state=stale").json
    assert [s["id"] for s in stale["steps"]] == ["all:out/all.txt", "copy:build/b.txt"]
    why = live.get("/v1/steps/copy:build%2Fb.txt/why").json
    old, new = (hashlib.sha256(text).hexdigest() for text in (b"b\n", b"b, edited\n"))
    assert why["now"] == f"would run: input src/b.txt changed ({old[:12]} -> {new[:12]})"
    assert why["changed"] == [{"path": "src/b.txt", "how": "changed", "old": old, "new": new}]
    assert why["last_run"]["status"] == "ok"
    [made] = why["artefacts"]
    assert (made["path"], made["size"], made["step"]) == ("build/b.txt", 2, "copy:build/b.txt")
    assert made["sha256"] == old                     # a copy: its hash is its input's
    assert live.get("/v1/steps/copy:nowhere/why").status == 404
    step = live.get("/v1/steps/all:out%2Fall.txt").json
    assert {i["path"]: i["step"] for i in step["inputs"]} == {
        "build/gated.txt": "gate:build/gated.txt", "build/b.txt": "copy:build/b.txt"}
    dot = live.get("/v1/graph?format=dot")
    assert dot.headers["content-type"].startswith("text/vnd.graphviz")
    assert b'"copy:build/b.txt" -> "all:out/all.txt";' in dot.body

    listed = live.get("/v1/artefacts?prefix=build/").json["artefacts"]
    assert [a["path"] for a in listed] == ["build/a.txt", "build/b.txt", "build/gated.txt"]
    one = live.get("/v1/artefacts/out/all.txt").json
    assert one["step"] == "all:out/all.txt" and one["size"] == len("a\nb\n")
    assert live.get("/v1/artefacts/src%2Fa.txt").json["step"] is None      # a source
    pods = live.get("/v1/pods").json["pods"]
    assert pods[0]["http"] == live.url and pods[0]["chefs"][0]["slots"] == 2
    lines = live.get("/v1/explain/out/all.txt").json["lines"]
    assert "all:out/all.txt" in lines and any("up to date" in line for line in lines)


def profile_of(live, build_id: str) -> dict:
    """The build's trace, once the Store has written the build's end."""
    got: dict = {}

    def written() -> bool:
        resp = live.get(f"/v1/builds/{build_id}/profile")
        assert resp.status in (200, 409), resp.body        # 409: still being written
        got.update(resp.json if resp.status == 200 else {})
        return resp.status == 200
    wait_for(written, what="the build's profile")
    return got


def test_builds_and_their_profiles_are_kept_across_a_pod_restart(tmp_path, nats_url):
    root = gated_project(tmp_path / "p")
    (root / "gate").write_text("open\n")
    with live_pod(root, nats_url) as live:
        first = live.post_build().json["id"]
        done = sse_events(live.url, f"/v1/builds/{first}/events")[-1][2]
        assert done["ok"] is True and done["ran"] == 4
        trace = profile_of(live, first)
        runs = [e for e in trace["traceEvents"] if e["ph"] == "X" and e["cat"].startswith("step")]
        assert sorted(e["name"] for e in runs) == ["all:out/all.txt", "copy:build/a.txt",
                                                   "copy:build/b.txt", "gate:build/gated.txt"]
        assert all(e["dur"] > 0 and e["ts"] >= 0 for e in runs)
        timeline = live.get(f"/v1/builds/{first}/timeline").json
        assert timeline["build"]["id"] == first and len(timeline["runs"]) == 4
        assert {(chef, slot) for _, chef, slot, *_ in timeline["runs"]} == {
            (lane["chef"], lane["slot"]) for lane in timeline["lanes"]}
        # a -> gate -> all, or b -> all: a chain of the graph's edges, ending at the target
        critical = timeline["critical_path"]["steps"]
        assert critical[-1] == "all:out/all.txt" and critical[0].startswith("copy:"), critical
        assert critical in (["copy:build/a.txt", "gate:build/gated.txt", "all:out/all.txt"],
                            ["copy:build/b.txt", "all:out/all.txt"])
        on_path = [timeline["runs"][i] for i in timeline["critical_path"]["runs"]]
        assert timeline["critical_path"]["duration_s"] == pytest.approx(
            sum(end - start for _, _, _, start, end, *_ in on_path), abs=1e-5)
        second = live.post_build(["broken"]).json["id"]
        sse_events(live.url, f"/v1/builds/{second}/events")
    with live_pod(root, nats_url) as live:           # a new pod: the history is on disk
        page = live.get("/v1/builds?limit=1").json
        assert [b["id"] for b in page["builds"]] == [second] and page["next"] == second
        older = live.get(f"/v1/builds?limit=1&before={page['next']}").json
        assert [b["id"] for b in older["builds"]] == [first] and older["next"] is None
        kept = live.get(f"/v1/builds/{first}").json
        assert (kept["state"], kept["started_by"], kept["targets"]) == (
            "done", "rest", ["out/all.txt"])
        assert kept["counts"] == {"ran": 4, "up_to_date": 0, "failed": 0, "not_run": 0,
                                  "cancelled": 0}
        assert kept["duration_s"] > 0 and kept["finished"] > kept["started"]
        failed = live.get(f"/v1/builds/{second}").json
        assert failed["state"] == "failed" and failed["failed"] == ["broken:out/broken.txt"]
        assert profile_of(live, first) == trace
        assert live.get("/v1/builds/0123abcd/profile").status == 404


def test_healthz_is_503_when_the_pod_does_not_answer(tmp_path, nats_url):
    with live_pod(gated_project(tmp_path / "p"), nats_url) as live:
        live.desk.stop()
        live.pod.charts.remove(live.desk)
        resp = request(live.url, "GET", "/healthz")
        assert resp.status == 503 and resp.json["title"] == "Pod unavailable"


def test_sigterm_ends_open_event_streams_cleanly(tmp_path, nats_url):
    # A graceful timeout longer than stop() waits: a worker that waited for
    # its open stream instead of ending it would have to be killed.
    with live_pod(gated_project(tmp_path / "p"), nats_url, graceful_s=600) as live:
        build_id = live.post_build().json["id"]
        following = threading.Event()
        result: dict = {}

        def follow():
            try:
                result["events"] = sse_events(
                    live.url, f"/v1/builds/{build_id}/events",
                    on_event=lambda ev: ev[2].get("step") == "gate:build/gated.txt"
                    and following.set())
            except Exception as exc:          # a reset instead of a clean end
                result["error"] = exc
        reader = threading.Thread(target=follow)
        reader.start()
        assert following.wait(30), "the stream never showed the gated step"
        assert live.server.stop() is False, live.server.log_tail()
        reader.join(30)
        live.open_gate()
        assert "error" not in result, result
        assert result["events"][-1][1] != "done", "the build cannot have finished"


def test_other_sites_and_rebinding_pages_can_neither_build_nor_read(live):
    # No token (the default): what a web page the user happens to open
    # could send to the loopback server.
    (live.root / "gate").write_text("open\n")
    port = live.url.rsplit(":", 1)[1]
    attacks = [
        ("POST", "/v1/builds", b"{}", {"Origin": "http://evil.example",
                                       "Content-Type": "text/plain"}, 403),
        ("POST", "/v1/builds", b"{}", {"Origin": "http://evil.example"}, 403),
        ("POST", "/v1/builds", b"{}", {"Content-Type": "text/plain"}, 415),
        ("POST", "/v1/builds", b"{}", {"Host": f"evil.example:{port}"}, 403),
        ("GET", "/v1/builds", None, {"Host": f"evil.example:{port}"}, 403),
        ("GET", "/v1/graph", None, {"Origin": "http://evil.example"}, 403),
        ("GET", "/healthz", None, {"Host": "evil.example"}, 403),
    ]
    for method, path, body, headers, status in attacks:
        resp = live.request(method, path, body, headers)
        assert resp.status == status, (method, path, headers, resp.body[:300])
        assert resp.headers["content-type"].startswith("application/json")
        assert resp.json["title"] and resp.json["description"]
    assert live.get("/v1/builds").json["builds"] == []
    assert not (live.root / "out").exists()

    # The server's own page (same origin) and tools that send no Origin build.
    own = live.request("POST", "/v1/builds", {"targets": []},
                       {"Origin": live.url, "Host": live.url.split("//", 1)[1]})
    assert own.status == 202, own.body
    assert sse_events(live.url, own.json["url"] + "/events")[-1][2]["ok"] is True
    assert live.request("GET", "/v1/builds", None,
                        {"Host": f"localhost:{port}"}).status == 200
