"""The chef directory: leases on a simulated clock, goodbyes, what each chef holds."""
from __future__ import annotations

from computepods.bus import chefwire
from computepods.clock import SimClock
from computepods.coordinator.chefs import WINDOW_PER_SLOT, ChefDirectory


def status(name: str, slots: int = 2, lease_s: float | None = 3.0, gone: str | None = None):
    return chefwire.ChefStatus(name, "pod", slots, lease_s=lease_s, gone=gone)


def test_a_chef_silent_past_its_lease_expires_and_says_why():
    clock = SimClock()
    chefs = ChefDirectory(clock)
    chefs.heard(status("a"))
    chefs.heard(status("b", lease_s=10.0))
    clock.advance(2.0)
    chefs.heard(status("a"))                 # a renews its lease
    clock.advance(2.5)
    assert chefs.expire() == []
    clock.advance(1.0)                       # a: 3.5 s silent, b: 5.5 s of 10
    [(info, why)] = chefs.expire()
    assert info.name == "a" and "no status for 3.5 s; its lease is 3.0 s" in why
    assert [c.name for c in chefs] == ["b"] and len(chefs) == 1


def test_a_goodbye_forgets_the_chef_at_once():
    chefs = ChefDirectory(SimClock())
    chefs.heard(status("a"))
    lost = chefs.heard(status("a", gone="stopped"))
    assert lost is not None and lost[1] == "chef a is gone (stopped)"
    assert len(chefs) == 0
    assert chefs.heard(status("a", gone="stopped")) is None     # unknown by now


def test_outstanding_steps_and_space():
    chefs = ChefDirectory(SimClock())
    chefs.heard(status("a", slots=2))
    chefs.assign("a", ["s1", "s2"])
    a = chefs.get("a")
    assert a.space == 2 * WINDOW_PER_SLOT - 2
    chefs.settled("a", "s1")
    chefs.settled(None, "s2")               # no chef named: whichever held it
    assert a.outstanding == set() and a.space == 2 * WINDOW_PER_SLOT


def test_a_listing_keeps_a_chef_at_least_the_minimum_lease():
    clock = SimClock()
    chefs = ChefDirectory(clock, min_lease_s=15.0)
    chefs.heard(status("a", lease_s=3.0))
    clock.advance(10.0)
    assert [c.name for c in chefs.live()] == ["a"]
    clock.advance(6.0)
    assert chefs.live() == []
    assert chefs.get("a").status.pod == "pod"          # its last status
