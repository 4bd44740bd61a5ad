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


@pytest.mark.parametrize("subject, signal, body, problem", [
    ("cp.build.request", m.BUILD_REQUEST, {"targets": [5, None]},
     r"build.request: field 'targets'\[0\] must be str, got int"),
    ("cp.chef.c.run", m.CHEF_RUN, {"build": "b", "chef": "c", "rules": {}, "steps": ["x"]},
     r"chef.run: field 'steps'\[0\] must be dict, got str"),
    ("cp.chef.c.run", m.CHEF_RUN, {"build": "b", "chef": "c", "rules": {"r": 1}, "steps": []},
     r"chef.run: field 'rules'\['r'\] must be dict, got int"),
    ("cp.steps.results", m.STEP_RESULTS, {"chef": "c", "results": [True]},
     r"steps.results: field 'results'\[0\] must be dict, got bool"),
])
def test_a_list_or_object_with_a_bad_item_is_refused_naming_the_field_and_item(
        subject, signal, body, problem):
    with pytest.raises(MalformedMessage, match=problem) as caught:
        m.decode(subject, m.encode(body), signal)
    assert caught.value.subject == subject


STATUS = {"chef": "c", "pod": "p", "slots": 1, "running": 0, "queued": 0}


@pytest.mark.parametrize("lease", [-5, 0, 1e9, m.MAX_LEASE_S + 1, float("nan"), float("inf")])
def test_a_chef_status_with_a_lease_out_of_range_is_refused(lease):
    with pytest.raises(MalformedMessage, match=r"field 'lease_s' must be over 0 and at most 3600"):
        m.decode("cp.chefs.status", m.encode({**STATUS, "lease_s": lease}), m.CHEF_STATUS)


@pytest.mark.parametrize("lease", [0.5, 15, m.MAX_LEASE_S])
def test_a_chef_status_with_a_lease_in_range_is_taken(lease):
    assert m.decode("cp.chefs.status", m.encode({**STATUS, "lease_s": lease}),
                    m.CHEF_STATUS)["lease_s"] == lease


@pytest.mark.parametrize("depth", [m.MAX_DEPTH + 1, 5_000, 200_000])
def test_json_nested_too_deep_is_refused_not_a_recursion_error(depth):
    data = b'{"v": 1, "targets": ' + b"[" * depth + b"]" * depth + b"}"
    with pytest.raises(MalformedMessage, match=f"nested more than {m.MAX_DEPTH} levels deep"):
        m.decode("cp.build.request", data, m.BUILD_REQUEST)


def test_json_nested_up_to_the_limit_and_many_brackets_side_by_side_are_taken():
    nested = "[" * (m.MAX_DEPTH - 2) + "]" * (m.MAX_DEPTH - 2)
    assert m.decode("cp.x", f'{{"v": 1, "a": [{nested}]}}'.encode(), None)["v"] == 1
    wide = {"chef": "c", "results": [{"id": str(i), "outputs": {}} for i in range(1000)]}
    assert len(m.decode("cp.steps.results", m.encode(wide), m.STEP_RESULTS)["results"]) == 1000
