"""The federation's rows: a pod's hello, our MajorDomo's chefs and our
ownership map joined per pod, ours first."""
from __future__ import annotations

import dataclasses

from computepods.bus.chefwire import ChefStatus
from computepods.coordinator.chefs import ChefInfo
from computepods.federation.podview import census, own_row, pod_rows
from podhellos import hello_of


def chef(name: str, pod: str, slots: int = 2, running: int = 0, queued: int = 0,
         outstanding: tuple[str, ...] = (), prints: dict | None = None) -> ChefInfo:
    return ChefInfo(name, slots, set(outstanding),
                    status=ChefStatus(name, pod, slots, running, queued,
                                      fingerprints=prints or {}))


def test_ours_first_then_the_pods_heard_each_with_the_chefs_our_majordomo_knows():
    own = dataclasses.replace(hello_of("a", role="majordomo", slots=4), chefs=("a-0",),
                              moved={"in": 10, "out": 2000})
    b = dataclasses.replace(hello_of("b", tools={"tr": "f1", "cc": "f2"}),
                            moved={"in": 2000, "out": 10})
    chefs = [chef("b-c0", "b", running=1, queued=3, outstanding=("s1", "s2")),
             chef("a-0", "a", slots=4, prints={"make": "f3"})]
    rows = pod_rows(own, [b, own], chefs, {"b": (9, 4200)})
    assert [(r.pod, r.role, r.ours) for r in rows] == [("a", "majordomo", True),
                                                        ("b", "chef", False)]
    a_row, b_row = rows
    assert a_row.names == ("a-0",) and a_row.slots == 4 and a_row.tools == ("make",)
    assert (a_row.moved_in, a_row.moved_out, a_row.held_files) == (10, 2000, 0)
    assert b_row.names == ("b-c0",) and b_row.host == "b.example"
    assert (b_row.running, b_row.queued) == (1, 3)            # from its chef's status
    assert b_row.chefs[0].outstanding == 2
    assert b_row.tools == ("cc", "tr")
    assert (b_row.held_files, b_row.held_bytes) == (9, 4200)


def test_a_pods_load_comes_from_its_hello_when_we_know_none_of_its_chefs():
    b = dataclasses.replace(hello_of("b"), load={"running": 2, "queued": 5})
    _, b_row = pod_rows(hello_of("a", role="majordomo"), [b], [], {})
    assert (b_row.running, b_row.queued) == (2, 5) and b_row.chefs == ()


def test_silent_pods_that_hold_our_files_and_chefs_of_unheard_pods_are_listed():
    rows = pod_rows(hello_of("a", role="majordomo"), [], [chef("x-c", "x")],
                    {"old": (3, 30), "a": (1, 5)})
    assert [(r.pod, r.role, r.host) for r in rows] == [("a", "majordomo", "a.example"),
                                                        ("old", "gone", "?"), ("x", "chef", "?")]
    assert rows[0].held_files == 1 and rows[1].held_bytes == 30 and rows[2].slots == 2


def test_a_pod_that_is_not_federated_is_one_row_with_all_its_chefs():
    view = census("local", "here", [chef("c1", "local", slots=3, running=1),
                                    chef("c0", "local", slots=1, queued=2)])
    assert view["federated"] is False
    [row] = view["pods"]
    assert row["pod"] == "local" and row["ours"] and row["chef_names"] == ["c0", "c1"]
    assert row["slots"] == 4 and row["load"] == {"running": 1, "queued": 2}
    assert row["moved"] == {"in": 0, "out": 0} and row["held"] == {"files": 0, "bytes": 0}


def test_a_federated_census_gives_dicts_as_the_rest_schema_says():
    view = census("a", "here", [], own=hello_of("a", role="majordomo"),
                  heard=[hello_of("b")], held={"b": (1, 2)})
    assert view["federated"] is True
    assert [p["pod"] for p in view["pods"]] == ["a", "b"]
    assert view["pods"][1]["held"] == {"files": 1, "bytes": 2}
    assert own_row("p", "h", []).to_dict()["chefs"] == []


def test_a_pod_whose_hello_was_refused_is_marked_untrusted():
    view = census("a", "here", [], own=hello_of("a", role="majordomo"),
                  heard=[hello_of("b"), hello_of("c")], trusts=lambda pod: pod != "c")
    assert [(p["pod"], p["trusted"]) for p in view["pods"]] == [("a", True), ("b", True),
                                                                 ("c", False)]
