"""The MajorDomo <-> chef payloads: typed, round-tripped, checked as the bridge checks."""
from __future__ import annotations

import pytest

from computepods.bus import chefwire
from computepods.errors import MalformedMessage


def test_a_run_step_round_trips_and_omits_what_is_empty():
    step = chefwire.RunStep("cc:a.o", 2, "cc", "a", {"a.c": "h1"}, ("a.toc",), {"a.aux": "h2"}, "cc#1")
    assert chefwire.RunStep.from_dict(step.to_dict()) == step
    assert set(chefwire.RunStep("x", 1, "r", None, {}).to_dict()) == {"id", "attempt", "rule", "stem",
                                                                "inputs"}


@pytest.mark.parametrize("item, says", [
    ("cc:a.o", "step must be an object, got str"),
    ({"id": "cc:a.o", "attempt": "1", "rule": "cc", "inputs": {}}, "field 'attempt' missing"),
    ({"id": "cc:a.o", "attempt": 1, "rule": "cc", "inputs": {}, "copy_in": ["a.aux"]},
     "copy_in must be an object"),
])
def test_a_bad_run_step_is_refused_naming_what_is_wrong(item, says):
    with pytest.raises(MalformedMessage, match=says):
        chefwire.RunStep.from_dict(item)


def test_a_run_message_is_checked_at_the_top_like_the_bridge_does():
    msg = chefwire.RunMessage("b1", "chef-1", {"cc": {"name": "cc"}}, [{"id": "x"}])
    assert chefwire.RunMessage.from_dict(msg.to_dict()) == msg
    with pytest.raises(MalformedMessage, match="missing field 'steps'"):
        chefwire.RunMessage.from_dict({"build": "b1", "chef": "c", "rules": {}})


def test_a_result_carries_content_apart_from_the_chefs_stat():
    result = chefwire.StepResult("cc:a.o", 1, True, "cc a.c", 0, "", 0.5,
                          {"a.o": chefwire.Output("h", 10, chefwire.LocalStat(5, 7, 3))}, ["a.h"])
    wire = result.to_dict()
    assert wire["outputs"] == {"a.o": {"sha256": "h", "size": 10,
                                       "local": {"mtime_ns": 5, "ino": 7, "checked_ns": 3}}}
    assert "stdout_tail" not in wire
    assert chefwire.StepResult.from_dict(wire) == result


def test_an_executable_output_says_so_and_a_plain_one_says_nothing():
    result = chefwire.StepResult("ld:bin/x", 1, True, "cc", 0, "", 0.1,
                                 {"bin/x": chefwire.Output("h", 10, executable=True),
                                  "x.map": chefwire.Output("g", 3)})
    wire = result.to_dict()
    assert wire["outputs"] == {"bin/x": {"sha256": "h", "size": 10, "x": True},
                               "x.map": {"sha256": "g", "size": 3}}
    assert chefwire.StepResult.from_dict(wire) == result


def test_a_failed_result_carries_its_tails_and_defaults_fill_the_gaps():
    failed = chefwire.StepResult.from_dict({"id": "s", "attempt": 1, "ok": False,
                                     "stderr_tail": "boom"})
    assert (failed.reason, failed.stderr_tail, failed.outputs) == ("failed", "boom", {})
    assert failed.to_dict()["stderr_tail"] == "boom"


def test_a_bad_output_is_malformed():
    with pytest.raises(MalformedMessage, match="output 'a.o': size must be int"):
        chefwire.StepResult.from_dict({"id": "s", "attempt": 1, "ok": True,
                                "outputs": {"a.o": {"sha256": "h", "size": "10"}}})


def test_a_chef_status_and_its_goodbye():
    hello = chefwire.ChefStatus("c", "pod", 2, lease_s=15.0)
    assert chefwire.ChefStatus.from_dict(hello.to_dict()) == hello
    assert chefwire.chef_status("c", "pod", 2, gone="stopped")["gone"] == "stopped"
    with pytest.raises(MalformedMessage, match="field 'slots' must be int"):
        chefwire.ChefStatus.from_dict({"chef": "c", "pod": "p", "slots": "2", "running": 0,
                                "queued": 0})
    assert chefwire.ChefsCancel.from_dict(chefwire.ChefsCancel("b1").to_dict()).build == "b1"
