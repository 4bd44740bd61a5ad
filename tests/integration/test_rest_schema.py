"""Schemathesis, driven by the live server's own /v1/openapi.json, with all
its checks: no request it generates from the document, valid or not, finds
the server and the document disagreeing (a 5xx, a valid request refused, an
invalid one taken, a status, header or body the document does not list).

(Schemathesis' pytest plugin needs a pytest older than this one, so each
operation's Hypothesis strategy is run here directly.)"""
from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.generation import GenerationMode

from computepods.bus.natsd import NatsServer
from computepods.api.openapi import document
from computepods.bus.auth import MAJORDOMO
from restlive import gated_project, live_pod

MAX_EXAMPLES = 25      # per operation: the suite must stay fast
OPERATIONS = [(method.upper(), path) for path, item in document()["paths"].items()
              for method in item if method != "parameters"]
# What schemathesis can make invalid: a body or a query parameter.  A path
# parameter (a string, NUL refused) has no invalid form a URL can carry, and
# an operation with no input has none at all; those are tested valid only.
def _invalidable(item: dict, op: dict) -> bool:
    params = item.get("parameters", []) + op.get("parameters", [])
    return "requestBody" in op or any(p["in"] == "query" for p in params)


INVALIDABLE = [(method.upper(), path) for path, item in document()["paths"].items()
               for method, op in item.items() if method != "parameters" and _invalidable(item, op)]
CASES = ([(m, p, GenerationMode.POSITIVE) for m, p in OPERATIONS]
         + [(m, p, GenerationMode.NEGATIVE) for m, p in INVALIDABLE])


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("schema")
    server = NatsServer(store_dir=tmp / "nats")
    server.start()
    root = gated_project(tmp / "p")
    (root / "gate").write_text("open\n")      # generated builds must end
    try:
        with pytest.MonkeyPatch.context() as env:     # the pod logs in as the majordomo
            for name, value in server.users.env(MAJORDOMO).items():
                env.setenv(name, value)
            with live_pod(root, server.url) as live:
                yield live
    finally:
        server.stop()
        server.close()


@pytest.fixture(scope="module")
def api(live):
    return schemathesis.openapi.from_url(f"{live.url}/v1/openapi.json")


def test_the_served_document_is_the_one_tested(live, api):
    assert live.get("/v1/openapi.json").json == document(bearer=False)     # no token
    served = {(m, p) for p, item in api.raw_schema["paths"].items() for m in item
              if m != "parameters"}
    assert {(m.lower(), p) for m, p in OPERATIONS} == served


@pytest.mark.parametrize("method, path, mode", CASES, ids=[
    f"{m} {p}-{'valid' if mode is GenerationMode.POSITIVE else 'invalid'}" for m, p, mode in CASES])
def test_the_server_and_its_document_agree_on_every_generated_request(live, api, method, path,
                                                                      mode):
    operation = api[path][method]

    @given(case=operation.as_strategy(mode))
    @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    def check(case):
        case.call_and_validate(base_url=live.url, timeout=30)     # every check
    check()
