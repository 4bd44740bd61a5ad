"""The MajorDomo and real Chefs together, in one process, on the loopback bus
and a SimClock: a chef that goes silent, a late result, a cancel, a Store
that cannot write.  Each test reads what ``cpod build`` would show."""
from __future__ import annotations

import io

import pytest

from computepods.bus import messages as m
from computepods.charts.chef import HEARTBEAT_S, LEASE_FACTOR, STARTED_HOLD_S
from computepods.cli.progress import Progress
from computepods.state.db import StateDB
from helpers import wait_for
from loopbackpod import LONG_HEARTBEAT_S, DiskFull, Locked, LoopbackPod, write_project

LEASE_S = LEASE_FACTOR * HEARTBEAT_S       # a chef's lease, at the default heartbeat

TWO_LEVELS = {
    "computepods.toml": """
        [project]
        name = "two-levels"
        default = ["out/all.txt", "out/rev.txt"]

        [[rule]]
        name = "up"
        inputs = ["src/%.txt"]
        outputs = ["build/%.up"]
        command = "tr a-z A-Z < {in} > {out}"

        [[rule]]
        name = "join"
        inputs = ["build/a.up", "build/b.up"]
        outputs = ["out/all.txt"]
        command = "cat {in} > {out}"

        [[rule]]
        name = "rev"
        inputs = ["build/b.up", "build/a.up"]
        outputs = ["out/rev.txt"]
        command = "cat {in} > {out}"
    """,
    "src/a.txt": "alpha\n",
    "src/b.txt": "beta\n",
}
UPS = ["up:build/a.up", "up:build/b.up"]
LAST = ["join:out/all.txt", "rev:out/rev.txt"]      # both wait for both ups

SLOW = {
    "computepods.toml": """
        [project]
        name = "slow"
        default = ["out/1.txt", "out/2.txt", "out/3.txt"]

        [[rule]]
        name = "slow"
        inputs = ["src/%.txt"]
        outputs = ["out/%.txt"]
        command = "sleep 5 && cp {in} {out}"
    """,
    "src/1.txt": "1\n", "src/2.txt": "2\n", "src/3.txt": "3\n",
}


@pytest.fixture
def pod(tmp_path, request, monkeypatch):
    """A pod on the loopback bus; `db` (indirect) opens its state database.
    No step goes ahead (CP_AHEAD=0): these tests cut a chef off after its
    n-th run message, and steps sent ahead would come in fewer of them."""
    monkeypatch.setenv("CP_AHEAD", "0")
    pod = LoopbackPod(tmp_path, db=getattr(request, "param", StateDB))
    yield pod.start()
    pod.stop()


def finished_results(link, attempt: int) -> list[str]:
    """The steps whose end a chef has reported, for one attempt, while cut off."""
    return sorted(r["id"] for r in link.held_results()
                  if r.get("event") == "finished" and r.get("attempt") == attempt)


def attempts_sent(pod, chef: str) -> dict[str, int]:
    """Which steps of which attempt went to `chef` in run messages."""
    return {s["id"]: s["attempt"] for subject, data in pod.bus.log
            if subject == pod.bus.subject(m.CHEF_RUN, chef=chef) for s in data["steps"]}


def results_heard(pod, chef: str, attempt: int) -> list[str]:
    """The steps whose end the MajorDomo heard from `chef`, for one attempt."""
    return sorted(r["id"] for subject, data in pod.bus.log
                  if subject == pod.bus.subject(m.STEP_RESULTS) and data["chef"] == chef
                  for r in data["results"]
                  if r.get("event") == "finished" and r.get("attempt") == attempt)


def two_chefs_one_goes_silent(tmp_path, pod):
    """Chef b takes the first steps and, as it gets the last two, drops off
    the bus; chef a keeps its lease however far the clock goes.  Returns
    the build, once b has finished the last two unheard."""
    write_project(tmp_path, TWO_LEVELS)
    b = pod.add_chef("b", down_after_runs=2)          # first known: it gets the first steps
    pod.add_chef("a", heartbeat_s=LONG_HEARTBEAT_S)
    build = pod.build()
    wait_for(lambda: finished_results(b, 1) == LAST, what="chef b to finish, unheard")
    return build, b


def test_a_silent_chefs_steps_move_to_the_other_chef_when_its_lease_runs_out(tmp_path, pod):
    build, _ = two_chefs_one_goes_silent(tmp_path, pod)
    assert build.of("chef_lost") == [] and build.of("done") == []     # it waits for the lease

    pod.clock.advance(LEASE_S + 1)

    done = build.done()
    lost = build.of("chef_lost")
    assert [(ev["chef"], ev["steps"], ev["rescheduled"]) for ev in lost] == [("b", LAST, True)]
    assert "chef b stopped answering" in lost[0]["reason"]
    assert build.chef_of() == {**dict.fromkeys(UPS, "b"), **dict.fromkeys(LAST, "a")}
    assert attempts_sent(pod, "a") == dict.fromkeys(LAST, 2)          # new attempts
    assert build.finished() == sorted(UPS + LAST)
    assert (done["ok"], done["code"], done["ran"], done["failed"]) == (True, 0, 4, 0)
    assert (tmp_path / "out/all.txt").read_text() == "ALPHA\nBETA\n"
    assert (tmp_path / "out/rev.txt").read_text() == "BETA\nALPHA\n"
    assert sorted(pod.records()) == sorted(UPS + LAST)


def test_a_late_result_of_the_old_attempt_is_ignored(tmp_path, pod):
    build, b = two_chefs_one_goes_silent(tmp_path, pod)
    a = pod.links["a"]
    a.go_down()                   # so that b's old results arrive while a's new ones wait
    pod.clock.advance(LEASE_S + 1)
    build.wait("chef_lost")
    wait_for(lambda: finished_results(a, 2) == LAST, what="chef a to finish the new attempts")

    b.come_back()                 # attempt 1 of both: late
    a.come_back()                 # attempt 2 of both

    done = build.done()
    assert results_heard(pod, "b", 1) == sorted(UPS + LAST)           # the late ones heard
    assert build.chef_of() == {**dict.fromkeys(UPS, "b"), **dict.fromkeys(LAST, "a")}
    assert build.finished() == sorted(UPS + LAST)                     # each once
    assert build.of("fail") == []
    assert (done["ok"], done["ran"], done["failed"]) == (True, 4, 0)
    assert sorted(pod.ear.steps) == sorted(UPS + LAST)                 # each recorded once
    assert sorted(pod.records()) == sorted(UPS + LAST)
    assert (tmp_path / "out/all.txt").read_text() == "ALPHA\nBETA\n"


def shown_running(pod: LoopbackPod, build, chef: str, n: int) -> None:
    """Wait for ``n`` steps to run on ``chef``, then for the build to show
    them: a start note is held ``STARTED_HOLD_S`` of the pod's clock."""
    wait_for(lambda: len(pod.chefs[chef].began) == n, what=f"{n} steps running on {chef}")
    pod.clock.advance(STARTED_HOLD_S)
    wait_for(lambda: len(build.of("start")) == n, what=f"{n} steps shown running")


def test_a_cancel_drops_queued_steps_kills_running_ones_and_ends_with_130(tmp_path, pod):
    write_project(tmp_path, SLOW)
    pod.add_chef("a", slots=2)
    build = pod.build()
    shown_running(pod, build, "a", 2)
    running = sorted(ev["step"] for ev in build.of("start"))

    answer = pod.cancel(build.of("accepted")[0]["build"])

    done = build.done()
    assert answer["state"] == "cancelling"
    assert (done["ok"], done["code"], done["cancelled"], done["ran"]) == (False, 130, True, 0)
    # What ran was cancelled, what waited was not run: nothing failed.
    assert build.of("fail") == [] and done["failed"] == 0
    assert sorted(ev["step"] for ev in build.of("cancelled")) == running
    assert (done["cancelled_steps"], done["not_run"] + done["blocked"]) == (2, 1)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("pod", [Locked], indirect=True)
def test_a_store_that_cannot_write_for_a_while_shows_a_warning_and_the_build_waits(tmp_path, pod):
    write_project(tmp_path, TWO_LEVELS)
    pod.add_chef("a")
    shown = io.StringIO()
    progress = Progress(shown, tty=False)
    build = pod.build()
    retry = build.wait("store_retry")
    assert str(pod.db_path) in retry["problem"] and "database is locked" in retry["problem"]
    wait_for(lambda: set(build.chef_of()) == set(UPS), what="the ups to run")
    assert build.of("done") == [] and set(build.chef_of()) == set(UPS)   # the rest waits

    pod.db.full = False
    pod.clock.advance(retry["retry_s"])

    done = build.done()
    for ev in build.events:
        progress.handle(ev)
    assert (done["ok"], done["ran"], done["failed"]) == (True, 4, 0)
    assert f"warning: cannot write the state database {pod.db_path}: database is locked" \
        in shown.getvalue()
    assert sorted(pod.records()) == sorted(UPS + LAST)
    assert (tmp_path / "out/all.txt").read_text() == "ALPHA\nBETA\n"


@pytest.mark.parametrize("pod", [DiskFull], indirect=True)
def test_a_full_disk_ends_the_pods_build_and_loses_no_record(tmp_path, pod):
    # A pod under `cpod up` does not leave its client waiting for space (issue
    # 11, break 4): the build ends, exit 2, with the Store's error; the Store
    # keeps the records and writes them once it can.  Its first write is the
    # build's entry in the history, as it starts: so it ends at once.
    write_project(tmp_path, TWO_LEVELS)
    pod.add_chef("a")
    build = pod.build("out/all.txt", "out/rev.txt")
    assert "database or disk is full" in build.wait("store_retry")["problem"]
    done = build.done()
    assert (done["ok"], done["code"]) == (False, 2)
    assert "database or disk is full" in done["error"] and "keeps these records" in done["error"]

    assert build.of("cancel"), "the steps still to run are dropped"
    bid = build.of("accepted")[0]["build"]
    wait_for(lambda: [b.state for r in list(pod.store.pending) for b in r.builds] == [
        "running", "failed"], what="the Store to hold the build's entries")
    held = {rec.step_id for r in list(pod.store.pending) for rec in r.steps}
    assert held <= set(UPS), "the Store holds only records of committed ups"

    pod.db.full = False                              # space again: nothing was lost
    pod.clock.advance(30)
    def kept_entry():
        with StateDB(pod.db_path, readonly=True) as db:
            return db.build(bid)
    wait_for(lambda: held <= set(pod.records()) and kept_entry() is not None,
             what="the kept records written")
    entry = kept_entry()
    assert entry.state == "failed" and "database or disk is full" in entry.error


WAITING = {
    "computepods.toml": """
        [project]
        name = "waiting"
        default = ["out/x.txt"]

        [[rule]]
        name = "wait"
        outputs = ["out/%.txt"]
        command = "while [ ! -e go ]; do sleep 0.01; done; echo {out} > {out}"
    """,
}


def test_a_chef_frozen_past_its_lease_commits_nothing_of_the_steps_given_up(tmp_path, pod):
    # SIGSTOP then SIGCONT of chef b: silent past its lease, its step goes
    # to chef a; the command b had started ends meanwhile, and b, awake,
    # must not commit it (its result comes late, and says why).
    write_project(tmp_path, WAITING)
    b = pod.add_chef("b")
    pod.add_chef("a", heartbeat_s=LONG_HEARTBEAT_S)
    build = pod.build()
    shown_running(pod, build, "b", 1)
    assert build.chef_of() == {"wait:out/x.txt": "b"}
    b.go_down()                                   # stopped: nothing it sends is heard
    pod.clock.advance(LEASE_S + 1)
    build.wait("chef_lost")
    wait_for(lambda: pod.chefs["a"].in_flight, what="chef a to take the new attempt")
    (tmp_path / "go").touch()                     # both commands end
    wait_for(lambda: finished_results(b, 1), what="chef b's result, unheard")
    [late] = [r for r in b.held_results() if r.get("event") == "finished"]
    assert not late["ok"] and "silent for longer than its lease" in late["reason"], late
    b.come_back()                                 # SIGCONT: its late result is ignored
    done = build.done()
    assert (done["ok"], done["ran"], done["failed"]) == (True, 1, 0)
    assert "/scratch/a" in (tmp_path / "out/x.txt").read_text()     # a's commit, only
