"""Typed payloads: what is sent is what is read back, and bad ones are refused
with the same words as on the bus."""
from __future__ import annotations

import json

import pytest

from computepods.bus import messages as m
from computepods.bus import payloads
from computepods.errors import MalformedMessage


@pytest.mark.parametrize("payload", [
    payloads.BuildRequest(["out/app"], "/p", keep_going=True, dry_run=False, client="cpod@h:1"),
    payloads.BuildRequest(["all"], "/p", client="cron"),
    payloads.BuildAccepted("b7", joined=True),
    payloads.BuildEvents("b7", [{"t": "plan", "steps": 3}], seq=0),
    payloads.BuildCancel("b7"),
    payloads.FsChanged("host", "/p", "src/a.c", "modified", size=10, mtime_ns=5),
    payloads.ApiQuery("graph", {"target": "out/app"}),
    payloads.ChefsQuery(),
    payloads.ErrorReport("cp.build.request", "not JSON", "cpod"),
    payloads.CronEvent("missed", "0 * * * *", ["all"], count=2, more=False, first="a", last="b"),
])
def test_a_payload_survives_the_wire(payload):
    wire = json.loads(m.encode(payload.to_dict()))
    subject = "cp.test"
    assert type(payload).from_dict(m.decode(subject, m.encode(wire), payload.signal)) == payload


def test_only_what_was_given_is_sent_except_fs_changed_which_sends_nulls():
    assert payloads.BuildRequest(["all"], "/p", client="cron").to_dict() == \
        {"targets": ["all"], "cwd": "/p", "client": "cron"}
    assert payloads.FsChanged("h", "/p", "a", "deleted").to_dict()["size"] is None


@pytest.mark.parametrize("cls, data, problem", [
    (payloads.BuildRequest, {"targets": "out/app"}, "field 'targets' must be list"),
    (payloads.BuildAccepted, {"queued": False}, "missing field 'build'"),
    (payloads.BuildEvents, {"build": "b1"}, "missing field 'events'"),
    (payloads.FsChanged, {"pod": "h", "root": "/p", "path": "a", "kind": "modified", "size": "10"},
     "field 'size' must be int/NoneType"),
    (payloads.BuildRequest, {"targets": [], "v": 99}, "newer than this pod's"),
])
def test_a_bad_payload_is_refused_naming_the_field(cls, data, problem):
    with pytest.raises(MalformedMessage, match=problem) as caught:
        cls.from_dict(data, "cp.x")
    assert caught.value.subject == "cp.x"


def test_unknown_fields_from_a_newer_sender_are_ignored():
    assert payloads.BuildCancel.from_dict({"v": 1, "build": "b1", "reason": "user"}) == payloads.BuildCancel("b1")
