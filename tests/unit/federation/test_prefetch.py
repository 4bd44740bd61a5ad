"""The Prefetcher pulls the files of queued steps on its own threads: each
sha once while it waits, a failure forgotten, nothing after close, and no
thread left once closed."""
from __future__ import annotations

import threading
from pathlib import Path

from computepods.chef.step import StepJob
from computepods.errors import TransferError
from computepods.federation.prefetch import Prefetcher
from computepods.federation.remotesteps import RemoteSteps
from computepods.federation.workspace import Workspace
from computepods.planning.resolve import bind
from computepods.project.model import Rule
from tests.helpers import wait_for

SHAS = [f"{i:x}" * 64 for i in range(1, 6)]
HOLD_S = 10.0              # seconds a held fetch waits to be let go (a bound, never reached)
UP = Rule(name="up", inputs=("src/%.txt",), outputs=("out/%.txt",), command=("true",))


class Fetches:
    """A fetch that notes what it was asked; ``hold`` makes it wait until released."""

    def __init__(self, hold: bool = False, failing: tuple[str, ...] = ()):
        self.lock = threading.Lock()
        self.asked: list[tuple[str, str]] = []
        self.release = threading.Event()
        if not hold:
            self.release.set()
        self.failing = failing

    def __call__(self, pod: str, sha: str) -> Path:
        with self.lock:
            self.asked.append((pod, sha))
        self.release.wait(HOLD_S)
        if sha in self.failing:
            raise TransferError(f"pod {pod!r} does not hold {sha} in its store")
        return Path("/nonexistent") / sha


def prefetch_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("prefetch-")]


def test_what_is_asked_is_fetched_from_its_pod_on_threads_that_end_at_close():
    fetch = Fetches()
    p = Prefetcher(fetch)
    assert p.ask("far", SHAS[:3]) == 3
    wait_for(lambda: len(fetch.asked) == 3, what="three prefetches")
    assert sorted(fetch.asked) == sorted(("far", sha) for sha in SHAS[:3])
    p.close()
    assert prefetch_threads() == []


def test_a_sha_waiting_or_being_fetched_is_not_asked_again():
    fetch = Fetches(hold=True)
    p = Prefetcher(fetch, threads=1)
    try:
        assert p.ask("far", [SHAS[0], SHAS[0], SHAS[1]]) == 2
        wait_for(lambda: fetch.asked, what="the first prefetch")
        assert p.ask("far", SHAS[:2]) == 0
        fetch.release.set()
        wait_for(lambda: len(fetch.asked) == 2, what="the second prefetch")
    finally:
        fetch.release.set()
        p.close()
    assert fetch.asked == [("far", SHAS[0]), ("far", SHAS[1])]


def test_a_failed_prefetch_is_forgotten_and_the_next_is_still_fetched():
    fetch = Fetches(failing=(SHAS[0],))
    p = Prefetcher(fetch, threads=1)
    try:
        p.ask("far", SHAS[:2])
        wait_for(lambda: len(fetch.asked) == 2, what="both prefetches")
        # forgotten: asking again fetches again (the slot's own fetch would too)
        wait_for(lambda: p.ask("far", [SHAS[0]]) == 1, what="the failed sha asked anew")
        wait_for(lambda: len(fetch.asked) == 3, what="the failed sha fetched anew")
    finally:
        p.close()


def test_at_most_max_waiting_shas_wait():
    fetch = Fetches(hold=True)
    p = Prefetcher(fetch, threads=1, max_waiting=2)
    try:
        assert p.ask("far", SHAS) == 2
    finally:
        fetch.release.set()
        p.close()
    assert len(fetch.asked) <= 2


def test_close_drops_what_waits_and_nothing_is_fetched_after():
    fetch = Fetches(hold=True)
    p = Prefetcher(fetch, threads=1)
    p.ask("far", SHAS[:3])
    wait_for(lambda: fetch.asked, what="the first prefetch")
    closing = threading.Thread(target=p.close, name="test-close")
    closing.start()
    wait_for(lambda: p.ask("far", SHAS[3:]) == 0, what="the prefetcher closed")
    fetch.release.set()
    closing.join(HOLD_S)
    assert not closing.is_alive()
    assert fetch.asked == [("far", SHAS[0])]
    assert prefetch_threads() == []


def test_remote_steps_prefetch_the_files_of_queued_steps_from_their_origin(tmp_path: Path):
    fetch = Fetches()
    remote = RemoteSteps(Workspace(tmp_path / "ws"), fetch, prefetch=True)
    jobs = [StepJob("b1", bind(UP, f"s{i}"), 1, {}, origin="podA",
                    files={f"src/s{i}.txt": SHAS[i]}) for i in range(3)]
    own = StepJob("b1", bind(UP, "own"), 1, {})
    try:
        assert remote.prefetch([*jobs, own]) == 3
        wait_for(lambda: len(fetch.asked) == 3, what="the queued steps' files")
    finally:
        remote.close()
    assert sorted(fetch.asked) == [("podA", SHAS[i]) for i in range(3)]
    assert prefetch_threads() == []


def test_remote_steps_without_prefetch_fetch_only_in_a_slot(tmp_path: Path):
    fetch = Fetches()
    remote = RemoteSteps(Workspace(tmp_path / "ws"), fetch)
    job = StepJob("b1", bind(UP, "s0"), 1, {}, origin="podA", files={"src/s0.txt": SHAS[0]})
    assert remote.prefetch([job]) == 0
    remote.close()
    assert fetch.asked == [] and prefetch_threads() == []
