"""Placement by cost: queue × typical time + missing bytes ÷ rate; tools and fingerprints."""
from __future__ import annotations

from computepods.bus.chefwire import ChefStatus
from computepods.coordinator.chefs import ChefInfo
from computepods.federation.cost import (DEFAULT_RATE_BPS, Board, Candidate, Need, choose,
                                         cost_s, offers_of, why_none)
from computepods.state.owners import OwnerMap

BIG = "b" * 64          # a 100 MB input
MB = 1_000_000


def cand(name: str, pod: str, *, local: bool = False, slots: int = 1, queued: int = 0,
         typical_s: float | None = 1.0, outstanding: int = 0, prints: dict | None = None,
         tools: list | None = None) -> Candidate:
    status = ChefStatus(name, pod, slots, queued=queued, typical_s=typical_s,
                        tools=tools or [], fingerprints=prints or {})
    info = ChefInfo(name, slots, outstanding={f"s{i}" for i in range(outstanding)},
                    status=status)
    return Candidate(info, pod, local, offers_of(info))


def no_rate(pod: str):
    return None


def test_cost_is_queue_times_typical_plus_missing_bytes_over_the_rate():
    owners = OwnerMap()
    c = cand("b1", "pod-b", queued=4, typical_s=2.5, slots=2)
    need = Need(contents={BIG: 100 * MB})
    assert cost_s(c, need, owners, lambda pod: 10 * MB) == 4 / 2 * 2.5 + 10.0
    owners.add("pod-b", {BIG: 100 * MB})
    assert cost_s(c, need, owners, lambda pod: 10 * MB) == 5.0      # it holds it: no transfer
    assert cost_s(c, need, OwnerMap(), no_rate) == 5.0 + 100 * MB / DEFAULT_RATE_BPS


def test_the_queue_counts_what_we_sent_since_its_last_status():
    c = cand("b1", "pod-b", queued=1, outstanding=6, typical_s=1.0)
    assert cost_s(c, Need(), OwnerMap(), no_rate) == 6.0
    assert cost_s(c, Need(), OwnerMap(), no_rate, extra=2) == 8.0


def test_a_busy_chef_that_holds_the_inputs_beats_an_idle_one_that_must_pull_them():
    owners = OwnerMap()
    owners.add("pod-c", {BIG: 100 * MB})
    idle = cand("b1", "pod-b", queued=0)
    busy = cand("c1", "pod-c", queued=3)
    need = Need(contents={BIG: 100 * MB})
    assert choose([idle, busy], need, owners, lambda pod: 10 * MB).chef.name == "c1"
    # a fast link makes the pull cheaper than the wait
    assert choose([idle, busy], need, owners, lambda pod: 1000 * MB).chef.name == "b1"


def test_ties_go_to_the_pod_owning_most_input_bytes():
    owners = OwnerMap()
    owners.add("pod-c", {BIG: 100})
    need = Need(contents={BIG: 100})
    b, c = cand("b1", "pod-b"), cand("c1", "pod-c")
    assert choose([b, c], need, owners, lambda pod: float("inf")).chef.name == "c1"


def test_a_chef_lacking_a_tool_is_never_chosen_however_cheap():
    has = cand("c1", "pod-c", queued=50, prints={"pdflatex": "SHA256:x"})
    lacks = cand("b1", "pod-b", prints={"cc": "SHA256:y"})
    need = Need(tools=frozenset({"pdflatex"}))
    assert choose([lacks, has], need, OwnerMap(), no_rate).chef.name == "c1"
    assert choose([lacks], need, OwnerMap(), no_rate) is None
    assert why_none([lacks], need) == "chef b1 lacks pdflatex"


def test_a_chef_with_another_fingerprint_is_avoided():
    same = cand("c1", "pod-c", queued=9, prints={"cc": "SHA256:ours"})
    other = cand("b1", "pod-b", prints={"cc": "SHA256:theirs"})
    need = Need(tools=frozenset({"cc"}), prints={"cc": "SHA256:ours"})
    assert choose([other, same], need, OwnerMap(), no_rate).chef.name == "c1"
    assert "another cc" in why_none([other], need)
    # an interchangeable tool carries no fingerprint to match: the cheaper chef wins
    assert choose([other, same], Need(tools=frozenset({"cc"})), OwnerMap(),
                  no_rate).chef.name == "b1"


def test_a_tool_named_in_the_status_without_a_fingerprint_counts_as_offered():
    c = cand("b1", "pod-b", tools=["sleep"])
    assert choose([c], Need(tools=frozenset({"sleep"}), prints={"sleep": "X"}), OwnerMap(),
                  no_rate) is c


def test_local_chefs_move_nothing_and_win_ties():
    owners = OwnerMap()
    need = Need(contents={BIG: 100 * MB})
    local, remote = cand("a1", "pod-a", local=True), cand("b1", "pod-b")
    assert cost_s(local, need, owners, no_rate) == 0.0
    owners.add("pod-b", {BIG: 100 * MB})
    assert choose([remote, local], need, owners, no_rate).chef.name == "a1"


def test_avoided_pods_and_pinned_chefs():
    b, c = cand("b1", "pod-b"), cand("c1", "pod-c", queued=5)
    assert choose([b, c], Need(avoid=frozenset({"pod-b"})), OwnerMap(), no_rate) is c
    assert choose([b, c], Need(only=frozenset({"c1"})), OwnerMap(), no_rate) is c


def test_the_board_chooses_as_choose_does_and_spreads_steps_by_queue():
    import random
    rnd = random.Random(12)
    owners = OwnerMap()
    owners.add("pod-3", {BIG: 5 * MB})
    cands = [cand(f"c{i}", f"pod-{i}", queued=rnd.randrange(4), slots=rnd.choice([1, 2]),
                  typical_s=rnd.choice([0.5, 1.0, 3.0]), local=i == 0,
                  prints={"tr": "OURS" if i % 4 else "OTHER"}) for i in range(12)]
    need = Need(tools=frozenset({"tr"}), prints={"tr": "OURS"}, contents={BIG: 5 * MB})
    board = Board(cands, lambda pod: 10 * MB)
    extra: dict[str, int] = {}

    def judged(c):
        return (round(cost_s(c, need, owners, lambda pod: 10 * MB, extra.get(c.chef.name, 0)),
                      6), owners.lacking_bytes(c.pod, need.contents) if not c.local else 0,
                c.local)
    for _ in range(60):
        chosen = board.choose(need, owners, lambda pod: 10 * MB)
        fit = [c for c in cands if c.chef.space > extra.get(c.chef.name, 0)]
        best = choose(fit, need, owners, lambda pod: 10 * MB, extra)
        assert judged(chosen) == judged(best)      # as cheap, owning as much (ties: any)
        board.took(chosen)
        extra[chosen.chef.name] = extra.get(chosen.chef.name, 0) + 1
    assert sum(board.given.values()) == 60 and "c0" not in extra and "c4" not in extra
    assert "c3" in board.given                # the pod holding the input gets its share


def test_the_board_drops_a_chef_once_its_window_is_full():
    only = cand("b1", "pod-b")
    board = Board([only])
    for _ in range(only.chef.space):
        assert board.choose(Need(), OwnerMap(), no_rate) is only
        board.took(only)
    assert not board and board.choose(Need(), OwnerMap(), no_rate) is None


def test_a_program_no_chef_announced_may_go_to_a_remote_chef_but_not_to_ours():
    remote, local = cand("b1", "pod-b"), cand("a1", "pod-a", local=True)
    need = Need(tools=frozenset({"gen"}), unannounced=frozenset({"gen"}))
    assert choose([remote, local], need, OwnerMap(), no_rate) is remote
    assert why_none([local], need) == "chef a1 lacks gen"      # we looked on our PATH


def test_a_program_another_chef_lists_may_go_to_a_chef_no_run_told_of_it():
    # pod-b ran `gen` and lists it; pod-c was never sent a step that runs it,
    # so it cannot list it yet: it is not known to lack it
    lister = cand("b1", "pod-b", prints={"gen": "sha256:" + "1" * 64}, tools=["gen"])
    new = Candidate(cand("c1", "pod-c").chef, "pod-c", False, {}, taught=frozenset())
    need = Need(tools=frozenset({"gen"}), programs=frozenset({"gen"}))
    assert choose([new], need, OwnerMap(), no_rate) is new
    assert choose([lister, new], need, OwnerMap(), no_rate) is lister      # a tie: by name
    # told of it (a run that starts it was sent) and still not listing it: it lacks it
    told = Candidate(new.chef, "pod-c", False, {}, taught=frozenset({"gen"}))
    assert why_none([told], need) == "chef c1 lacks gen"
    # a chef whose runs are not tracked (taught None) lacks an unlisted program
    assert why_none([cand("d1", "pod-d")], need) == "chef d1 lacks gen"
