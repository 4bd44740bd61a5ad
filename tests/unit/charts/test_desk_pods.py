"""The Desk's answer to GET /v1/pods: our pod with its process and REST
app, the others with those fields null, every field the OpenAPI schema
requires present."""
from __future__ import annotations

import os

from computepods.api.openapi import SCHEMAS
from computepods.bus.chefwire import ChefStatus
from computepods.charts.desk import Desk
from computepods.federation.podview import census
from podhellos import hello_of


class Bridge:
    url = "nats://127.0.0.1:7001"


def missing(schema: dict, value) -> list[str]:
    """Required fields `value` lacks, by path (objects and arrays of them)."""
    if schema.get("type") == "object" and isinstance(value, dict):
        out = [k for k in schema.get("required", []) if k not in value]
        for key, sub in schema.get("properties", {}).items():
            if key in value:
                out += [f"{key}.{m}" for m in missing(sub, value[key])]
        return out
    if schema.get("type") == "array" and isinstance(value, list):
        return [f"[{i}].{m}" for i, item in enumerate(value)
                for m in missing(schema.get("items", {}), item)]
    return []


def test_a_federation_answer_has_ours_first_with_its_process(tmp_path):
    view = census("a", "here", [], own=hello_of("a", role="majordomo"), heard=[hello_of("b")])
    desk = Desk(Bridge(), tmp_path, pod="here:1", http="http://127.0.0.1:9", census=lambda: view)
    answer = desk.pods({})
    assert answer["federated"] is True and missing(SCHEMAS["Pods"], answer) == []
    ours, b = answer["pods"]
    assert ours["pod"] == "a" and ours["pid"] == os.getpid() and ours["http"] == "http://127.0.0.1:9"
    assert ours["root"] == str(tmp_path) and ours["nats"] == Bridge.url
    assert b["pod"] == "b" and (b["pid"], b["root"], b["http"], b["nats"]) == (None,) * 4


def test_without_a_census_the_desk_lists_itself_and_the_chefs_it_hears(tmp_path):
    desk = Desk(Bridge(), tmp_path, pod="here:1")
    desk.heard_chef(ChefStatus("c0", "local", 2, running=1).to_dict())
    answer = desk.pods({})
    assert answer["federated"] is False and missing(SCHEMAS["Pods"], answer) == []
    [ours] = answer["pods"]
    assert ours["pod"] == "here:1" and ours["chefs"][0]["chef"] == "c0"
    assert ours["slots"] == 2 and ours["load"] == {"running": 1, "queued": 0}
