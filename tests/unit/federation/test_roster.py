"""The Roster: pods heard, host keys pinned on the first hello, expiry."""
from __future__ import annotations

import logging

from computepods.federation.hello import fingerprint_of
from computepods.federation.roster import Roster
from podhellos import fake_key, hello_of


def test_a_pods_host_key_is_pinned_on_its_first_hello_and_a_changed_one_refused(caplog):
    roster = Roster()
    first, second = fake_key("first"), fake_key("second")
    assert roster.heard(hello_of("b", host_key=first), now=0.0)
    with caplog.at_level(logging.WARNING, "computepods.federation"):
        assert not roster.heard(hello_of("b", host_key=second, port=2999), now=1.0)
    assert roster.endpoint("b").host_key == first and roster.endpoint("b").port == 2222
    message = caplog.messages[-1]
    assert "'b'" in message and fingerprint_of(first) in message
    assert fingerprint_of(second) in message and "forget" in message and "restart" in message
    assert roster.refused == 1


def test_the_same_key_with_another_comment_is_the_same_pin():
    roster = Roster()
    assert roster.heard(hello_of("b", host_key=fake_key("k", "one")), now=0.0)
    assert roster.heard(hello_of("b", host_key=fake_key("k", "two")), now=1.0)


def test_a_pin_outlives_the_pods_silence_until_it_is_forgotten():
    roster = Roster()
    roster.heard(hello_of("b", host_key=fake_key("old")), now=0.0)
    assert roster.expire(now=100.0) == ["b"]
    assert roster.endpoint("b") is None
    assert not roster.heard(hello_of("b", host_key=fake_key("new")), now=101.0)
    assert roster.forget("b")
    assert roster.heard(hello_of("b", host_key=fake_key("new")), now=102.0)


def test_a_pod_expires_after_three_of_its_own_hello_periods():
    roster = Roster()
    roster.heard(hello_of("fast", every_s=1.0), now=0.0)
    roster.heard(hello_of("slow", every_s=3.0), now=0.0)
    assert roster.expire(now=3.0) == []
    assert roster.expire(now=3.1) == ["fast"]
    assert roster.expire(now=9.0) == []
    assert roster.expire(now=9.1) == ["slow"]
    assert roster.pods() == []


def test_client_keys_authorised_are_those_of_live_hellos():
    roster = Roster()
    roster.heard(hello_of("b", client_key=fake_key("b-client", "chef@b")), now=0.0)
    assert roster.client_authorized(fake_key("b-client"))
    assert not roster.client_authorized(fake_key("someone-else"))
    assert not roster.client_authorized("not a key")
    roster.expire(now=60.0)
    assert not roster.client_authorized(fake_key("b-client"))


def test_pods_and_tools_are_those_of_live_pods():
    roster = Roster()
    roster.heard(hello_of("c", tools={"cc": "sha256:1", "tex": "sha256:t"}), now=0.0)
    roster.heard(hello_of("b", tools={"cc": "sha256:2"}, every_s=1.0), now=0.0)
    assert [h.pod for h in roster.pods()] == ["b", "c"]
    assert roster.tools() == {"cc": {"sha256:1", "sha256:2"}, "tex": {"sha256:t"}}
    roster.expire(now=5.0)
    assert roster.tools() == {"cc": {"sha256:1"}, "tex": {"sha256:t"}}


def test_a_pin_known_from_elsewhere_is_held_to():
    roster = Roster()
    roster.pin("b", fake_key("cached"))
    assert roster.refusal(hello_of("b", host_key=fake_key("cached"))) is None
    assert "pinned" in roster.refusal(hello_of("b", host_key=fake_key("other")))


def test_a_pod_whose_hello_was_refused_is_not_trusted_with_steps_until_forgotten():
    roster = Roster()
    assert roster.trusts("b")                    # not heard yet: its run waits for its hello
    roster.heard(hello_of("b", host_key=fake_key("old")), now=0.0)
    assert roster.trusts("b")
    roster.heard(hello_of("b", host_key=fake_key("new")), now=1.0)
    assert roster.is_live("b") and not roster.trusts("b")
    roster.heard(hello_of("b", host_key=fake_key("old")), now=2.0)   # two keys claim it
    roster.expire(now=100.0)
    assert not roster.trusts("b")
    roster.forget("b")
    assert roster.trusts("b")
