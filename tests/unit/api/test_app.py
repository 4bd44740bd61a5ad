"""The Falcon app's own logic, with falcon.testing and a stand-in for the bus
(the real bus, pod and gunicorn are in tests/integration/test_rest.py)."""
from __future__ import annotations

import re

import falcon
import falcon.inspect
import pytest
from falcon import testing

from computepods import errors
from computepods.bus import messages as m
from computepods.api.app import create_app
from computepods.api.podbus import EventHub, remote_error
from computepods.api.openapi import document
from computepods.api.resources import MAX_BODY_BYTES

TOKEN = "t0ken"


class FakeBus:
    """Answers queries from a table; a callable answer gets the arguments,
    an exception is raised."""
    url = "nats://fake:1"

    def __init__(self, **answers):
        self.answers = {"health": {"ok": True, "pod": "fake"}, **answers}
        self.calls: list[tuple[str, dict]] = []
        self.builds: list[tuple[list, bool]] = []
        self.cancels: list[str] = []
        self.hub = EventHub()

    def query(self, what, timeout=None, attempts=None, **args):
        self.calls.append((what, args))
        answer = self.answers[what]
        if isinstance(answer, Exception):
            raise answer
        return answer(args) if callable(answer) else answer

    def request_build(self, targets, keep_going):
        self.builds.append((targets, keep_going))
        return {"build": "b1", "queued": False}

    def cancel(self, build_id):
        self.cancels.append(build_id)
        return {"build": build_id, "state": "cancelling"}

    def follow(self, build_id):
        return self.hub.follow(build_id)


HOST = "localhost:8765"         # what a browser on the page sends
JSON = {"Content-Type": "application/json"}


def client(bus=None, token=None, ui_dir=None, hosts=("127.0.0.1", "localhost")
           ) -> testing.TestClient:
    return testing.TestClient(create_app(bus or FakeBus(), token=token, ui_dir=ui_dir,
                                         hosts=hosts), headers={"Host": HOST})


def test_the_openapi_document_has_exactly_falcons_routes():
    app = create_app(FakeBus())
    routes = {(re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path), method.method)
              for route in falcon.inspect.inspect_routes(app)
              for method in route.methods if not method.internal}
    documented = {(path, method.upper()) for path, item in document()["paths"].items()
                  for method in item if method != "parameters"}
    assert routes == documented
    for path, item in document()["paths"].items():
        for name in re.findall(r"\{(\w+)\}", path):
            params = item.get("parameters", [])
            assert any(p["name"] == name and p["in"] == "path" for p in params), (path, name)


def test_errors_are_json_with_the_right_status():
    bus = FakeBus(build=errors.NotFound("no build 'x'"),
                  artefact=errors.PathEscapesWorkspace("path '../x' is outside"),
                  explain=errors.UnknownTarget("'x' does not exist"),
                  graph=errors.ProjectError("computepods.toml", "bad key"),
                  pods=errors.BusError("no answer on cp.api.query"),
                  builds=RuntimeError("a bug"))
    c = client(bus)
    for path, status, title in [("/v1/builds/x", 404, "Not found"),
                                ("/v1/artefacts/..%2Fx", 400, "Bad request"),
                                ("/v1/explain/x", 404, "Unknown target"),
                                ("/v1/graph", 409, "Project file error"),
                                ("/v1/pods", 503, "Pod unavailable"),
                                ("/v1/builds", 500, "Internal error"),
                                ("/v1/nowhere", 404, None)]:
        resp = c.simulate_get(path, headers={"Accept": "text/html"})
        assert resp.status_code == status, path
        assert resp.headers["content-type"].startswith("application/json"), path
        assert title is None or resp.json["title"] == title, (path, resp.json)
    assert "no build 'x'" in c.simulate_get("/v1/builds/x").json["description"]
    assert c.simulate_get("/v1/builds").json["description"] == "RuntimeError: a bug"


def test_a_build_request_the_project_cannot_build_is_a_409():
    bus = FakeBus(check=errors.UnknownTarget("'nowhere' does not exist"))
    resp = client(bus).simulate_post("/v1/builds", json={"targets": ["nowhere"]})
    assert resp.status_code == 409 and resp.json["title"] == "Cannot build"
    assert bus.builds == []


def test_body_checks():
    bus = FakeBus(check={"targets": ["out/x"]})
    c = client(bus)
    too_big = b'{"targets": ["' + b"x" * MAX_BODY_BYTES + b'"]}'
    cases = [(too_big, 413), (b"{not json", 400), (b"[1, 2]", 400), (b"\xff\xfe", 400),
             (b'{"targets": "x"}', 400), (b'{"targets": [1]}', 400), (b'{"targets": [""]}', 400),
             (b'{"targets": ["a\\u0000b"]}', 400), (b'{"targets": ["\\ud800"]}', 400),
             (b'{"keep_going": "yes"}', 400), (b'{"jobs": 2}', 400)]
    for body, status in cases:
        resp = c.simulate_post("/v1/builds", body=body, headers=JSON)
        assert resp.status_code == status, (body[:40], resp.json)
        assert resp.json["title"]
    assert bus.builds == []
    ok = c.simulate_post("/v1/builds", body=b"")       # no body: the project's default
    assert ok.status_code == 202 and ok.json == {"id": "b1", "joined": False, "url": "/v1/builds/b1"}
    assert ok.headers["location"].endswith("/v1/builds/b1")
    c.simulate_post("/v1/builds", json={"targets": ["out/x"], "keep_going": True})
    assert bus.builds == [([], False), (["out/x"], True)]


def test_a_token_guards_only_mutating_routes():
    bus = FakeBus(builds={"builds": []}, check={"targets": []},
                  build={"id": "b1", "state": "running"})
    c = client(bus, token=TOKEN)
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": f"Basic {TOKEN}"}):
        for resp in (c.simulate_post("/v1/builds", headers=headers),
                     c.simulate_delete("/v1/builds/b1", headers=headers)):
            assert resp.status_code == 401
            assert resp.headers["www-authenticate"] == 'Bearer realm="computepods"'
            assert resp.json["title"] == "Token required"
    assert bus.builds == [] and bus.cancels == []
    assert c.simulate_get("/v1/builds").status_code == 200
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert c.simulate_post("/v1/builds", headers=auth).status_code == 202
    assert c.simulate_delete("/v1/builds/b1", headers=auth).json == {
        "id": "b1", "state": "cancelling"}


def test_cancel_of_a_finished_build_is_a_conflict():
    bus = FakeBus(build={"id": "b1", "state": "done"})
    resp = client(bus).simulate_delete("/v1/builds/b1")
    assert resp.status_code == 409 and "already finished" in resp.json["description"]
    assert bus.cancels == []


def test_encoded_slashes_stay_in_their_path_field():
    bus = FakeBus(log=lambda a: {"step": a["step"]}, artefact=lambda a: {"path": a["path"]},
                  explain=lambda a: {"target": a["target"], "lines": []})
    c = client(bus)
    assert c.simulate_get("/v1/steps/compile:build%2Fsub%2Fa.o/log").json == {
        "step": "compile:build/sub/a.o"}
    assert c.simulate_get("/v1/artefacts/build/sub/a.o").json == {"path": "build/sub/a.o"}
    assert c.simulate_get("/v1/artefacts/build%2Fsub/a.o").json == {"path": "build/sub/a.o"}
    assert c.simulate_get("/v1/explain/docs%2Fpaper.pdf").json["target"] == "docs/paper.pdf"
    assert c.simulate_get("/v1/steps/compile:build/a.o/log").status_code == 404


def test_graph_formats_and_targets():
    bus = FakeBus(graph=lambda a: {"dot": "digraph {}\n"} if a["format"] == "dot" else
                  {"targets": a["targets"], "nodes": [], "edges": [], "cycles": []})
    c = client(bus)
    assert c.simulate_get("/v1/graph", params={"target": ["a", "b"]}).json["targets"] == ["a", "b"]
    dot = c.simulate_get("/v1/graph", params={"format": "dot"})
    assert dot.headers["content-type"].startswith("text/vnd.graphviz") and dot.text == "digraph {}\n"
    assert c.simulate_get("/v1/graph", params={"format": "png"}).status_code == 400


def test_graph_groups_pages_of_steps_and_one_step_ask_the_pod_so():
    bus = FakeBus(graph={"groups": []}, steps={"steps": []}, step={"id": "x"})
    c = client(bus)
    assert c.simulate_get("/v1/graph").status_code == 200
    assert bus.calls[-1] == ("graph", {"targets": [], "format": "groups", "offset": 0,
                                       "limit": 1000})
    c.simulate_get("/v1/steps", params={"group": "copy", "state": "failed", "ran": "true",
                                        "q": "src/a", "offset": "50", "limit": "25",
                                        "target": "out/all.txt"})
    assert bus.calls[-1] == ("steps", {"targets": ["out/all.txt"], "offset": 50, "limit": 25,
                                       "ran": True, "group": "copy", "state": "failed",
                                       "q": "src/a"})
    assert c.simulate_get("/v1/steps/copy:build%2Fa.txt").status_code == 200
    assert bus.calls[-1] == ("step", {"id": "copy:build/a.txt", "targets": [], "limit": 1000})
    bad = c.simulate_get("/v1/steps", params={"limit": "100000"})
    assert bad.status_code == 400 and "limit" in bad.json["description"]
    assert c.simulate_get("/v1/steps", params={"offset": "-1"}).status_code == 400


def test_events_stream_the_replay_and_a_reconnect_after_the_end_gets_204():
    replay = {"build": "b1", "first": 0, "next": 2, "complete": True, "state": "done",
              "events": [{"t": "plan", "steps": 1}, {"t": "done", "ok": True, "code": 0}]}
    bus = FakeBus(events=lambda a: replay if a["after"] == 0 else
                  {**replay, "first": a["after"], "next": a["after"], "events": []})
    c = client(bus)
    resp = c.simulate_get("/v1/builds/b1/events")
    assert resp.headers["content-type"].startswith("text/event-stream")
    assert "id: 0\nevent: plan\n" in resp.text and "id: 1\nevent: done\n" in resp.text
    assert c.simulate_get("/v1/builds/b1/events", headers={"Last-Event-ID": "1"}).status_code == 204
    assert len(bus.hub) == 0, "a finished stream stops following its build"


def test_health_and_pods_and_the_page(tmp_path):
    (tmp_path / "index.html").write_text("<!doctype html><title>MajorDomo</title>")
    (tmp_path / "app.js").write_text("export {};")
    bus = FakeBus(pods={"pods": [{"pod": "p", "http": None}]})
    c = client(bus, ui_dir=tmp_path)
    assert c.simulate_get("/healthz").json == {"ok": True, "pod": "fake", "nats": FakeBus.url}
    assert c.simulate_get("/v1/pods").json["pods"][0]["http"] == f"http://{HOST}"
    page = c.simulate_get("/")
    assert page.headers["content-type"].startswith("text/html") and "MajorDomo" in page.text
    assert c.simulate_get("/app.js").text == "export {};"
    assert c.simulate_get("/../setup.cfg").status_code == 404


def test_remote_errors_keep_their_class():
    exc = remote_error({"error": "ProjectError", "message": "computepods.toml: bad"})
    assert isinstance(exc, errors.ProjectError) and str(exc) == "computepods.toml: bad"
    assert type(remote_error({"error": "os.system", "message": "x"})) is errors.ComputePodsError
    assert type(remote_error({"error": "Exception"})) is errors.ComputePodsError


def test_the_hub_fans_one_subscription_out_to_followers():
    hub = EventHub()
    a, b, other = hub.follow("b1"), hub.follow("b1"), hub.follow("b2")
    msg = m.Message("cp.build.b1.events", {"build": "b1", "seq": 0, "events": []})
    hub.put(msg)
    assert a.get(1) is msg and b.get(1) is msg and other.queue.empty()
    a.close()
    hub.close()
    assert b.get(1) is None and other.get(1) is None
    assert len(hub) == 2
    assert hub.follow("b3").get(1) is None, "a stopping hub ends new streams at once"


@pytest.mark.parametrize("method", ["PUT", "PATCH"])
def test_other_methods_are_refused_saying_which_are_taken(method):
    resp = client(token=TOKEN).simulate_request(method, "/v1/builds",
                                                headers={"Authorization": f"Bearer {TOKEN}"})
    assert resp.status_code == 405
    assert resp.json["description"] == f"{method} is not allowed on /v1/builds; it takes GET, POST, OPTIONS"


def test_an_unescaped_slash_in_a_step_id_is_a_404_that_says_how_to_send_it():
    resp = client(FakeBus(log={})).simulate_get("/v1/steps/compile:build/a.o/log")
    assert resp.status_code == 404 and "%2F" in resp.json["description"]
    assert "/v1/openapi.json" in client().simulate_get("/v1/nowhere").json["description"]


def test_an_empty_target_or_before_is_refused_as_the_document_says():
    bus = FakeBus(graph={"targets": [], "nodes": [], "edges": [], "cycles": []},
                  builds={"builds": [], "next": None})
    c = client(bus)
    for query in ("target=", "target=a&target=", "format="):
        resp = c.simulate_get("/v1/graph", query_string=query)
        assert resp.status_code == 400 and resp.json["description"], query
    assert c.simulate_get("/v1/builds", query_string="before=").status_code == 400
    assert c.simulate_get("/v1/builds", query_string="limit=0").status_code == 400
    assert c.simulate_get("/v1/builds", query_string="limit=5&before=b1").status_code == 200
    assert bus.calls[-1] == ("builds", {"limit": 5, "before": "b1"})
    assert c.simulate_get("/v1/graph", query_string="target=a,b&format=json").status_code == 200
    assert bus.calls[-1] == ("graph", {"targets": ["a,b"], "format": "json"})


def test_bearer_security_is_declared_only_by_a_server_with_a_token():
    plain = client().simulate_get("/v1/openapi.json").json
    guarded = client(token=TOKEN).simulate_get("/v1/openapi.json").json
    assert "securitySchemes" not in plain["components"]
    assert "security" not in plain["paths"]["/v1/builds"]["post"]
    assert "401" not in plain["paths"]["/v1/builds"]["post"]["responses"]
    assert guarded["paths"]["/v1/builds"]["post"]["security"] == [{"bearer": []}]
    assert guarded["paths"]["/v1/builds/{id}"]["delete"]["security"] == [{"bearer": []}]
    assert "security" not in guarded["paths"]["/v1/builds"]["get"]


def test_other_pages_and_other_host_names_are_refused_on_every_route():
    # With no token (the default): a page of another site, or one that
    # reached us through DNS rebinding, can neither build nor read.
    bus = FakeBus(check={"targets": []}, builds={"builds": []}, log={"log": "secret"})
    c = client(bus)
    evil = {"Origin": "http://evil.example"}
    for resp in (c.simulate_post("/v1/builds", body=b"{}", headers={**evil, **JSON}),
                 c.simulate_get("/v1/builds", headers=evil),
                 c.simulate_get("/v1/steps/s/log", headers=evil),
                 c.simulate_get("/v1/builds", headers={"Origin": "null"}),
                 c.simulate_get("/v1/builds", headers={"Origin": "http://localhost:9999"})):
        assert resp.status_code == 403 and resp.json["title"] == "Cross-origin request"
        assert "refused" in resp.json["description"]
    for host in ("evil.example", "evil.example:8765", "127.0.0.2:8765"):
        for resp in (c.simulate_get("/v1/steps/s/log", headers={"Host": host}),
                     c.simulate_post("/v1/builds", headers={"Host": host})):
            assert resp.status_code == 403 and resp.json["title"] == "Unknown host"
            assert "--http-host" in resp.json["description"]
    assert bus.builds == [] and ("log", {"step": "s"}) not in bus.calls

    # The server's own page, and clients that send no Origin, still work.
    own = {"Origin": f"http://{HOST}", **JSON}
    assert c.simulate_post("/v1/builds", body=b"{}", headers=own).status_code == 202
    assert c.simulate_get("/v1/builds", headers={"Host": "127.0.0.1:8765"}).status_code == 200
    named = client(bus, hosts=("127.0.0.1", "localhost", "build.lan"))
    assert named.simulate_get("/v1/builds", headers={"Host": "build.lan:8765"}).status_code == 200


def test_a_body_must_be_json():
    bus = FakeBus(check={"targets": []})
    c = client(bus)
    for headers in ({"Content-Type": "text/plain"}, {"Content-Type": "application/x-www-form-urlencoded"},
                    {"Content-Type": "multipart/form-data; boundary=x"}, {}):
        resp = c.simulate_post("/v1/builds", body=b'{"targets": []}', headers=headers)
        assert resp.status_code == 415 and resp.json["title"] == "JSON required"
    assert c.simulate_post("/v1/builds", headers={"Content-Type": "text/plain"}).status_code == 415
    assert bus.builds == []
    ok = c.simulate_post("/v1/builds", body=b'{"targets": []}',
                         headers={"Content-Type": "application/json; charset=utf-8"})
    assert ok.status_code == 202
