"""Discovery on a real nats-server: two pods' Heralds, a Scout, real SFTP probes.

Pod A logs in as the majordomo, pod B (chef-only) as the chef role, each
with its own bridge; B's store endpoint is a real paramiko SSH server
(tests/sftpstub.py) that lets in the client keys of live hellos, B's
Roster deciding.  A's Scout probes it with paramiko and RejectPolicy.
"""
from __future__ import annotations

import queue

import pytest

from computepods.bus import messages as m
from computepods.bus.auth import CHEF
from computepods.bus.bridge import NatsBridge
from computepods.charts.herald import Herald
from computepods.federation.hello import PodHello
from computepods.federation.roster import Roster
from computepods.federation.search import ScoutFound, ScoutNotFound, Search, Want
from helpers import wait_for
from sftpstub import StubSftpServer, new_key, public_line, sftp_probe

EVERY_S = 0.5          # seconds between hellos here (3 in a pod), so the test is short
WINDOW_S = 0.5         # seconds a search listens
TIMEOUT_S = 10


def hello(pod, role, endpoint, client_key, tools=None) -> PodHello:
    return PodHello(pod, "127.0.0.1", role, (f"{pod}-c0",), 2, endpoint, public_line(client_key),
                    {"running": 0, "queued": 0}, tools or {}, {"in": 0, "out": 0}, EVERY_S)


@pytest.fixture
def federation(nats_server):
    """Start pods with `pod(...)`; everything is stopped after the test."""
    started = []

    def pod(name, role, endpoint, client_key, *, roster=None, answers=None, tools=None):
        creds = nats_server.users.credentials(CHEF) if role == "chef" else None
        bridge = NatsBridge(nats_server.url, name=name, credentials=creds).start()
        started.append(bridge)
        herald = Herald(bridge, lambda: hello(name, role, endpoint, client_key, tools),
                        roster=roster or Roster(), every_s=EVERY_S, probe=sftp_probe(client_key),
                        on_search=(answers.put if answers else None), name=f"herald:{name}")
        started.append(herald.start())
        return herald
    yield pod
    for thing in reversed(started):
        thing.stop()


def test_two_pods_hear_each_other_and_a_scout_finds_the_chef_pod(federation):
    key_a, key_b, host_b = new_key(), new_key(), new_key()
    roster_b = Roster()
    answers: "queue.Queue[ScoutFound | ScoutNotFound]" = queue.Queue()
    with StubSftpServer(host_b, roster_b.client_authorized) as sftp_b, \
            StubSftpServer(new_key(), lambda key: False) as sftp_a:
        a = federation("a", "majordomo", sftp_a.endpoint("a"), key_a, answers=answers)
        b = federation("b", "chef", sftp_b.endpoint("b"), key_b, roster=roster_b,
                       tools={"cc": "sha256:1"})
        wait_for(lambda: a.roster.is_live("b") and b.roster.is_live("a"),
                 what="each pod to hear the other's hello")
        assert a.roster.pods()[0].role == "chef"           # a hello from the chef role
        assert a.roster.endpoint("b").host_key == public_line(host_b)
        a.post(m.SEARCH, Search("cc", Want(role="chef", tool="cc"), WINDOW_S))
        found = answers.get(timeout=TIMEOUT_S)
        assert isinstance(found, ScoutFound), found
        assert [h.pod for h in found.pods] == ["b"] and found.pods[0].sftp.port == sftp_b.port


def test_a_pod_that_announces_but_does_not_answer_is_not_found(federation, nats_server):
    answers: "queue.Queue[ScoutFound | ScoutNotFound]" = queue.Queue()
    with StubSftpServer(new_key(), lambda key: True) as sftp:
        a = federation("a", "majordomo", sftp.endpoint("a"), new_key(), answers=answers)
        mute = NatsBridge(nats_server.url, name="mute",
                          credentials=nats_server.users.credentials(CHEF)).start()
        try:
            mute.publish(m.PODS_HELLO, hello("mute", "chef", sftp.endpoint("mute"),
                                             new_key()).to_dict())
            wait_for(lambda: a.roster.is_live("mute"), what="a to hear the mute pod")
            a.post(m.SEARCH, Search("mute", Want(pod="mute"), WINDOW_S))
            answer = answers.get(timeout=TIMEOUT_S)
        finally:
            mute.stop()
    assert isinstance(answer, ScoutNotFound)
    assert answer.reason.startswith("no pod answered pods.discover within 0.5 s")


@pytest.mark.parametrize("case", ["host key", "client key"])
def test_an_endpoint_that_is_not_what_its_pod_announced_is_not_found(federation, case):
    announced, presented = new_key(), new_key()
    answers: "queue.Queue[ScoutFound | ScoutNotFound]" = queue.Queue()
    host_key = presented if case == "host key" else announced
    with StubSftpServer(host_key, lambda key: case != "client key") as sftp_b, \
            StubSftpServer(new_key(), lambda key: False) as sftp_a:
        a = federation("a", "majordomo", sftp_a.endpoint("a"), new_key(), answers=answers)
        federation("b", "chef", sftp_b.endpoint("b", public_line(announced)), new_key())
        a.post(m.SEARCH, Search("b", Want(pod="b"), WINDOW_S))
        answer = answers.get(timeout=TIMEOUT_S)
    assert isinstance(answer, ScoutNotFound)
    expected = {"host key": "presented another host key than its pod announced",
                "client key": "refused our client key"}[case]
    assert answer.reason == (f"1 pod answered, none is pod b: b: its SFTP endpoint "
                             f"127.0.0.1:{sftp_b.port} {expected}")


def test_a_gather_on_nats_hears_every_pod_in_one_event(federation, nats_server):
    with StubSftpServer(new_key(), lambda key: False) as sftp:
        for name in ("b", "c", "d"):
            federation(name, "chef", sftp.endpoint(name), new_key())
        asker = NatsBridge(nats_server.url, name="asker").start()
        got: "queue.Queue" = queue.Queue()

        class Chart:
            def post(self, signal, payload):
                got.put((signal, payload))
        try:
            token = asker.gather(m.PODS_DISCOVER, {"search": "all"}, 2.0, 3, chart=Chart())
            signal, gathered = got.get(timeout=TIMEOUT_S)      # early: three answers
            assert signal == m.GATHERED and gathered.token == token
            assert sorted(r["pod"] for r in gathered.replies) == ["b", "c", "d"]
            asker.gather(m.PODS_DISCOVER, {"search": "none", "want": {"tool": "tex"}}, 0.3, 3,
                         chart=Chart())
            assert got.get(timeout=TIMEOUT_S)[1].replies == ()
        finally:
            asker.stop()
