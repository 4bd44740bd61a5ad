"""The NatsBridge against a real nats-server: routing, malformed input,
request/reply both ways, and a server restart in the middle of a request."""
from __future__ import annotations

import queue

import pytest
from miros import return_status, spy_on

from computepods.bus import messages as m
from computepods.bus.bridge import NatsBridge
from computepods.charts.base import Chart
from computepods.errors import BusError
from helpers import wait_for


@spy_on
def recording(chart, e):
    name = e.signal_name
    if name in (m.CHEF_RUN, m.CHEF_STATUS, m.REPLY, m.REQUEST_FAILED):
        chart.got.put((name, e.payload))
        if name == m.CHEF_RUN:
            chart.runs += 1
            chart.bridge.respond(e.payload, {"accepted": [s["id"] for s in e.payload.data["steps"]],
                                             "runs": chart.runs})
        return return_status.HANDLED
    chart.temp.fun = chart.top
    return return_status.SUPER


class Recorder(Chart):
    initial_state = recording

    def __init__(self, bridge, name="rec"):
        super().__init__(name)
        self.bridge = bridge
        self.got: queue.Queue = queue.Queue()
        self.runs = 0


@pytest.fixture
def bridge(nats_url):
    b = NatsBridge(nats_url, name="test").start()
    yield b
    b.stop()


def run_payload(steps=("s1",)):
    return {"build": "b1", "chef": "c1", "rules": {}, "steps": [{"id": s} for s in steps]}


def test_routed_message_reaches_the_chart_as_an_event(bridge):
    chart = Recorder(bridge).start()
    bridge.route(m.CHEF_STATUS, chart)
    bridge.publish(m.CHEF_STATUS, {"chef": "c1", "pod": "p", "slots": 2, "running": 0, "queued": 0})
    name, msg = chart.got.get(timeout=5)
    assert name == m.CHEF_STATUS
    assert msg.subject == "cp.chefs.status" and msg.data["slots"] == 2 and msg.data["v"] == 1
    chart.stop()


@pytest.mark.parametrize("raw, problem", [
    (b"{not json", "not JSON"),
    (b'{"chef": "c1"}', "missing schema version"),
    (b'{"v": 1, "chef": "c1", "pod": "p", "slots": "two", "running": 0, "queued": 0}',
     "'slots' must be int"),
    (b'[1, 2]', "must be a JSON object"),
])
def test_malformed_message_is_reported_dropped_and_the_chart_goes_on(bridge, raw, problem):
    chart = Recorder(bridge).start()
    bridge.route(m.CHEF_STATUS, chart)
    errors: queue.Queue = queue.Queue()
    bridge.listen(m.BUS_ERROR, errors)
    bridge.publish_raw("cp.chefs.status", raw)
    report = errors.get(timeout=5)
    assert report.data["subject"] == "cp.chefs.status"
    assert problem in report.data["problem"]
    # the chart never saw it, and still handles the next good message
    bridge.publish(m.CHEF_STATUS, {"chef": "c1", "pod": "p", "slots": 1, "running": 0, "queued": 0})
    name, msg = chart.got.get(timeout=5)
    assert msg.data["slots"] == 1
    assert chart.got.empty()
    assert bridge.stats.malformed == 1
    chart.stop()


def test_malformed_request_gets_an_error_reply(bridge):
    chart = Recorder(bridge).start()
    bridge.route(m.CHEF_RUN, chart, chef="c1")
    with pytest.raises(BusError, match="missing field 'steps'"):
        bridge.request_sync(m.CHEF_RUN, {"build": "b", "chef": "c1", "rules": {}}, chef="c1")
    assert chart.runs == 0
    chart.stop()


@pytest.mark.parametrize("depth", [m.MAX_DEPTH + 1, 100_000])
def test_deeply_nested_json_gets_an_error_reply_and_the_bridge_goes_on(nats_url, bridge, depth):
    """100,000 levels is a RecursionError in json's parser: it must be
    answered as any malformed message is, not lost in the bridge's loop."""
    chart = Recorder(bridge).start()
    bridge.route(m.CHEF_RUN, chart, chef="c1")
    asker = NatsBridge(nats_url, name="asker").start()
    try:
        answers: queue.Queue = queue.Queue()
        asker.listen(m.BUS_ERROR, answers)
        deep = b'{"v": 1, "build": "b", "chef": "c1", "rules": {}, "steps": ' + \
            b"[" * depth + b"]" * depth + b"}"
        with pytest.raises(BusError, match=f"nested more than {m.MAX_DEPTH} levels deep"):
            asker.request_raw_sync(asker.subject(m.CHEF_RUN, chef="c1"), deep)
        report = answers.get(timeout=5)
        assert report.data["subject"] == "cp.chef.c1.run"
        assert chart.runs == 0
        assert asker.request_sync(m.CHEF_RUN, run_payload(["ok"]), chef="c1")["accepted"] == ["ok"]
    finally:
        asker.stop()
        chart.stop()


def test_request_reply_both_ways_between_charts(nats_url, bridge):
    other = NatsBridge(nats_url, name="other").start()
    try:
        chef = Recorder(other, "chef").start()
        other.route(m.CHEF_RUN, chef, chef="c1")
        asker = Recorder(bridge, "asker").start()
        bridge.request(m.CHEF_RUN, run_payload(["a", "b"]), chart=asker, token=("batch", 7), chef="c1")
        name, reply = asker.got.get(timeout=5)
        assert name == m.REPLY
        assert reply.token == ("batch", 7)
        assert reply.data["accepted"] == ["a", "b"]
        # and the other way round: the chef side asks the asker's side
        bridge.route(m.CHEF_RUN, asker, chef="c2")
        assert other.request_sync(m.CHEF_RUN, run_payload(["x"]), chef="c2")["accepted"] == ["x"]
        chef.stop()
        asker.stop()
    finally:
        other.stop()


def test_request_without_responder_fails_with_a_clear_reply(bridge):
    asker = Recorder(bridge, "asker").start()
    bridge.request(m.CHEF_RUN, run_payload(), chart=asker, token=1, timeout=0.1, attempts=3,
                   chef="nobody")
    name, reply = asker.got.get(timeout=10)
    assert name == m.REQUEST_FAILED
    assert "cp.chef.nobody.run" in reply.error and "3 attempts" in reply.error
    asker.stop()


def test_request_survives_a_nats_restart(nats_server, nats_url):
    """The server dies with a request outstanding; after it comes back the
    retried request is answered, and the handler ran at most twice for one
    request (idempotency is the handler's job, counted here)."""
    asker_bridge = NatsBridge(nats_url, name="asker").start()
    chef_bridge = NatsBridge(nats_url, name="chef").start()
    try:
        chef = Recorder(chef_bridge, "chef").start()
        chef_bridge.route(m.CHEF_RUN, chef, chef="c1")
        asker = Recorder(asker_bridge, "asker").start()
        nats_server.stop()
        wait_for(lambda: not asker_bridge.connected.is_set(), what="bridge notices the outage")
        asker_bridge.request(m.CHEF_RUN, run_payload(["s"]), chart=asker, token="t",
                             timeout=0.5, attempts=40, chef="c1")
        nats_server.restart()
        name, reply = asker.got.get(timeout=30)
        assert name == m.REPLY, reply
        assert reply.data["accepted"] == ["s"]
        assert asker_bridge.stats.reconnects >= 1 and chef_bridge.stats.reconnects >= 1
        # subscriptions came back: a fresh request is answered at once
        assert asker_bridge.request_sync(m.CHEF_RUN, run_payload(["t"]), chef="c1")["accepted"] == ["t"]
        chef.stop()
        asker.stop()
    finally:
        asker_bridge.stop()
        chef_bridge.stop()


def test_a_request_over_the_servers_max_payload_fails_clearly(bridge):
    asker = Recorder(bridge, "asker").start()
    limit = bridge._nc.max_payload
    big = run_payload(["x" * (limit + 10)])
    bridge.request(m.CHEF_RUN, big, chart=asker, token="big", chef="c1")
    name, reply = asker.got.get(timeout=10)
    assert name == m.REQUEST_FAILED
    assert "over the NATS server's max_payload" in reply.error and "cp.chef.c1.run" in reply.error
    asker.stop()


def test_embedded_server_takes_messages_of_many_megabytes(bridge):
    assert bridge._nc.max_payload >= 32 * 1024 * 1024


def test_a_reply_with_headers_loads_jetstream_on_use(bridge):
    """nats.js stands in until used: a no-responders status (a reply with
    headers) must still be read as one, in this process, where the bridge
    deferred nats-py's JetStream package."""
    import sys
    with pytest.raises(BusError, match="NoRespondersError"):
        bridge.request_sync(m.CHEFS_QUERY, {}, timeout=0.5, attempts=2)
    assert type(sys.modules["nats.js"]).__name__ == "module"   # the real one now


def test_nats_py_gets_its_true_version_without_importlib_metadata():
    """The bridge hands nats-py its version from the dist-info name while it
    imports (importlib.metadata costs a cold start ~14 ms); the client still
    reports the installed version, and the real importlib.metadata is there
    for whoever imports it next.  A fresh interpreter: pytest imported it."""
    import subprocess
    import sys
    code = ("import sys, computepods.bus.bridge, nats.aio.client as c\n"
            "assert 'importlib.metadata' not in sys.modules, 'imported after all'\n"
            "import importlib.metadata as md\n"
            "assert c.__version__ == md.version('nats-py') != '0.0.0', c.__version__\n"
            "assert md.distribution('nats-py').name == 'nats-py'\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr


def test_a_malformed_message_two_charts_listen_for_is_reported_and_logged_once(bridge, caplog):
    """The MajorDomo and the Desk both route chefs.status: one NATS
    subscription serves both, so a bad status is one warning, one report
    and one answer, and a good one reaches each chart once."""
    one, two = Recorder(bridge, "one").start(), Recorder(bridge, "two").start()
    bridge.route(m.CHEF_STATUS, one)
    bridge.route(m.CHEF_STATUS, two)
    errors: queue.Queue = queue.Queue()
    bridge.listen(m.BUS_ERROR, errors)
    bad = {"chef": "c1", "pod": "p", "slots": 1, "running": 0, "queued": 0, "lease_s": -5}
    with pytest.raises(BusError, match="field 'lease_s' must be over 0"):
        bridge.request_sync(m.CHEF_STATUS, bad, attempts=1)
    errors.get(timeout=5)
    bridge.publish(m.CHEF_STATUS, {**bad, "lease_s": 15})
    assert one.got.get(timeout=5)[1].data["lease_s"] == two.got.get(timeout=5)[1].data["lease_s"]
    assert errors.empty() and bridge.stats.malformed == 1
    assert [r.getMessage() for r in caplog.records if "lease_s" in r.getMessage()] == [
        "malformed message on 'cp.chefs.status': chefs.status: field 'lease_s' must be over 0 "
        "and at most 3600, got -5"]
    assert one.got.empty() and two.got.empty()
    one.stop()
    two.stop()


def test_a_nats_value_may_list_several_servers_and_a_dead_one_is_passed_over(nats_url):
    dead = "nats://127.0.0.1:1"            # nothing listens on port 1
    bridge = NatsBridge(f"{dead}, {nats_url}", name="several").start()
    try:
        heard: queue.Queue = queue.Queue()
        bridge.listen(m.BUS_ERROR, heard)
        bridge.publish(m.BUS_ERROR, {"subject": "x", "problem": "ping"})
        assert heard.get(timeout=10).data["problem"] == "ping"
    finally:
        bridge.stop()
