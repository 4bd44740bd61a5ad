"""Debounce timing on a simulated clock: when each file is reported, and that
temporaries never are.  The file system here is a dict (pure logic); the
watcher's tests drive the same rules with real inotify."""
from __future__ import annotations

import itertools

import pytest

from computepods.clock import SimClock
from computepods.watch.debounce import HOLD_S, Debouncer, FileStat

QUIET = 0.05
MAX = 1.0


class FakeFS:
    """Files as (size, mtime_ns, inode); mtime comes from the simulated clock."""

    def __init__(self, clock: SimClock):
        self.clock = clock
        self.files: dict[str, FileStat] = {}
        self._ino = itertools.count(100)

    def stat(self, path: str) -> FileStat | None:
        return self.files.get(path)

    def write(self, path: str, size: int | None = None, append: int = 0) -> None:
        old = self.files.get(path)
        ino = old.ino if old else next(self._ino)
        size = size if size is not None else (old.size if old else 0) + append
        self.files[path] = FileStat(size, int(self.clock.monotonic() * 1e9), ino)

    def rename(self, src: str, dst: str) -> None:
        self.files[dst] = self.files.pop(src)

    def delete(self, path: str) -> None:
        del self.files[path]


class Watch:
    """A debouncer driven the way the chart drives it: one alarm for every file."""

    def __init__(self, *, stream=(), existing: dict[str, int] | None = None,
                 quiet_s: float = QUIET, max_delay_s: float = MAX):
        self.clock = SimClock(start=0.0)
        self.fs = FakeFS(self.clock)
        for path, size in (existing or {}).items():
            self.fs.write(path, size)
        self.deb = Debouncer(self.fs.stat, quiet_s=quiet_s, max_delay_s=max_delay_s,
                             stream=stream)
        self.deb.scanned(dict(self.fs.files))
        self.reports: list[tuple[float, str, str, object]] = []   # (t, path, kind, extra)
        self.alarm = self.clock.alarm(self.tick)

    def tick(self) -> None:
        now = self.clock.monotonic()
        for r in self.deb.due(now):
            extra = r.moved_from or (tuple(r.range) if r.range else None)
            self.reports.append((round(now, 4), r.path, r.kind, extra))
        self.rearm()

    def rearm(self) -> None:
        deadline = self.deb.next_deadline()
        if deadline is None:
            self.alarm.cancel()
        else:
            self.alarm.set(deadline)

    def event(self, kind: str, *paths: str) -> None:
        self.batch((kind, *paths))

    def batch(self, *events: tuple[str, ...]) -> None:
        """Events read from inotify in one go, then what is due now is reported
        now, as the chart does."""
        for kind, *paths in events:
            if kind == "written":             # IN_CREATE of a file, IN_MODIFY: held open
                self.deb.changed(*paths, self.clock.monotonic(), writing=True)
            else:
                getattr(self.deb, kind)(*paths, self.clock.monotonic())
        self.rearm()
        self.clock.advance(0)

    def at(self, t: float) -> None:
        self.clock.advance(t - self.clock.monotonic())

    # editor actions: what they do to the disk, then what inotify says
    def create(self, path: str, size: int = 10) -> None:
        self.fs.write(path, size)
        self.event("written", path)

    def close(self, path: str) -> None:
        self.event("closed", path)

    def save(self, path: str, size: int = 10) -> None:
        self.create(path, size)
        self.close(path)

    def delete(self, path: str) -> None:
        self.fs.delete(path)
        self.event("removed", path)

    def rename(self, src: str, dst: str) -> None:
        self.fs.rename(src, dst)
        self.event("removed", src)
        self.event("moved", src, dst)


def test_a_new_file_is_reported_once_its_quiet_period_ends():
    w = Watch()
    w.save("a.txt")
    w.at(0.049)
    assert w.reports == []
    assert not w.deb.idle
    w.at(0.2)
    assert w.reports == [(0.05, "a.txt", "created", None)]
    assert w.deb.idle


def test_every_event_restarts_the_quiet_period():
    w = Watch()
    w.save("a.txt")
    for t in (0.03, 0.06, 0.09):              # utime, chmod: nobody holds it open
        w.at(t)
        w.fs.write("a.txt", append=0)
        w.event("changed", "a.txt")
    w.at(0.13)
    assert w.reports == []
    w.at(0.5)
    assert w.reports == [(0.14, "a.txt", "created", None)]


def test_a_file_held_open_is_not_settled_by_a_pause_but_by_its_close():
    # A writer that stalls between its open and its close (a loaded machine).
    w = Watch(existing={"old.txt": 3})
    w.create("new.txt", 0)
    w.fs.write("old.txt", 0)
    w.event("written", "old.txt")
    w.at(0.6)
    assert w.reports == []
    w.fs.write("new.txt", 5)
    w.fs.write("old.txt", 5)
    w.batch(("written", "new.txt"), ("closed", "new.txt"), ("written", "old.txt"),
            ("closed", "old.txt"))
    w.at(1.5)
    assert w.reports == [(0.6, "old.txt", "modified", None), (0.65, "new.txt", "created", None)]


def test_a_writer_idle_with_its_file_open_is_reported_once_a_window_passes_quiet():
    w = Watch()
    w.create("db.sqlite", 4096)
    w.at(1.5)
    assert w.reports == [] and not w.deb.idle        # held open: not settled by a pause
    w.at(2.5)
    assert w.reports == [(2.0, "db.sqlite", "created", None)] and w.deb.idle


def test_close_write_ends_the_quiet_period_of_a_known_file_at_once():
    w = Watch(existing={"a.txt": 3})
    w.at(1.0)
    w.fs.write("a.txt", 7)
    w.event("changed", "a.txt")
    w.at(1.01)
    w.close("a.txt")
    assert w.reports == [(1.01, "a.txt", "modified", None)]


def test_a_known_file_written_then_deleted_in_one_batch_is_reported_deleted():
    # The close would end its quiet period, but the delete came first.
    w = Watch(existing={"a.txt": 3})
    w.fs.write("a.txt", 9)
    w.fs.delete("a.txt")
    w.batch(("changed", "a.txt"), ("closed", "a.txt"), ("removed", "a.txt"))
    w.at(1.0)
    assert w.reports == [(0.05, "a.txt", "deleted", None)]


def test_a_closed_temporary_renamed_away_within_its_quiet_period_is_never_reported():
    w = Watch(existing={"out.txt": 3})
    w.save("out.txt.tmp", 8)
    w.at(0.04)                      # a slow writer: the rename comes 40 ms after the close
    w.rename("out.txt.tmp", "out.txt")
    w.at(1.0)
    assert w.reports == [(0.04, "out.txt", "modified", None)]


def test_a_closed_temporary_deleted_within_its_quiet_period_is_never_reported():
    w = Watch()
    w.save("4913", 0)
    w.at(0.049)
    w.delete("4913")
    w.at(1.0)
    assert w.reports == []


def test_a_temporary_renamed_twice_onto_a_new_path_is_one_creation():
    w = Watch()
    w.save("a.tmp")
    w.rename("a.tmp", "b.tmp")
    w.rename("b.tmp", "b.txt")
    w.at(1.0)
    assert w.reports == [(0.05, "b.txt", "created", None)]


def test_renaming_a_reported_file_is_one_move():
    w = Watch(existing={"a.txt": 3})
    w.rename("a.txt", "b.txt")
    w.at(1.0)
    assert w.reports == [(0.05, "b.txt", "moved", "a.txt")]
    assert "a.txt" not in w.deb.known and w.deb.known["b.txt"].size == 3


def test_renaming_onto_a_known_file_reports_at_once():
    w = Watch(existing={"a.txt": 3, "b.txt": 4})
    w.at(0.5)
    w.rename("a.txt", "b.txt")
    w.at(1.0)
    assert w.reports == [(0.5, "b.txt", "moved", "a.txt")]


def test_vims_save_is_one_modification():
    # vim: a 4913 probe, the original renamed to a backup, the file written
    # anew, the backup deleted.
    w = Watch(existing={"notes.txt": 10})
    w.at(1.0)
    w.save("4913", 0)
    w.delete("4913")
    w.rename("notes.txt", "notes.txt~")
    w.create("notes.txt", 12)
    w.at(1.002)
    w.close("notes.txt")
    w.at(1.004)
    w.delete("notes.txt~")
    w.at(2.0)
    assert w.reports == [(1.002, "notes.txt", "modified", None)]
    assert w.deb.idle


def test_a_kept_backup_is_a_new_file_and_the_original_a_modification():
    w = Watch(existing={"notes.txt": 10})
    w.rename("notes.txt", "notes.txt~")
    w.create("notes.txt", 12)
    w.close("notes.txt")
    w.at(1.0)
    assert sorted(w.reports) == [(0.0, "notes.txt", "modified", None),
                                 (0.05, "notes.txt~", "created", None)]


def test_a_file_recreated_with_the_same_stat_is_not_reported():
    w = Watch(existing={"a.txt": 3})
    st = w.fs.files["a.txt"]
    w.event("changed", "a.txt")          # e.g. IN_ATTRIB with nothing changed
    w.close("a.txt")
    w.at(1.0)
    assert w.reports == [] and w.fs.files["a.txt"] == st


def test_a_deleted_known_file_is_reported_after_its_quiet_period():
    w = Watch(existing={"a.txt": 3})
    w.delete("a.txt")
    w.at(0.049)
    assert w.reports == []
    w.at(1.0)
    assert w.reports == [(0.05, "a.txt", "deleted", None)]


def test_a_file_written_continuously_is_one_report_after_its_close():
    w = Watch()
    t = 0.0
    while t < 2.5:
        w.at(t)
        w.fs.write("big.bin", append=100)
        w.event("written", "big.bin")
        t = round(t + 0.02, 4)
    assert w.reports == []                  # no partial content, however long it takes
    w.close("big.bin")
    w.at(4.0)
    assert w.reports == [(2.53, "big.bin", "created", None)]


def test_a_slow_writer_holding_its_file_open_is_one_change_after_the_close():
    # Issue 13: 50 chunks of 1 MB, 0.2 s apart, held open, gave 10 builds from
    # partial content.  Here: 20 chunks 0.2 s apart to a known file.
    w = Watch(existing={"data.bin": 1})
    t = 0.0
    for _ in range(20):
        w.at(t)
        w.fs.write("data.bin", append=1000)
        w.event("written", "data.bin")
        t = round(t + 0.2, 4)
    w.at(t)
    assert w.reports == []
    w.close("data.bin")
    w.at(t + 1.0)
    assert w.reports == [(t, "data.bin", "modified", None)]


def test_a_stream_file_is_reported_while_it_grows_with_each_appended_range():
    w = Watch(stream=["logs/*.log"], existing={"logs/run.log": 0})
    t = 0.0
    while t < 0.2:
        w.at(t)
        w.fs.write("logs/run.log", append=10)
        w.event("written", "logs/run.log")
        t = round(t + 0.01, 4)
    w.at(1.0)
    assert [r[2] for r in w.reports] == ["growing"] * 4
    assert [r[0] for r in w.reports] == [0.05, 0.1, 0.15, 0.2]
    ranges = [r[3] for r in w.reports]
    assert ranges[0][0] == 0 and ranges[-1][1] == 200
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))     # no gap, no overlap


def test_a_truncated_stream_file_is_a_modification_not_an_append():
    w = Watch(stream=["*.log"], existing={"a.log": 100})
    w.fs.write("a.log", 5)
    w.event("changed", "a.log")
    w.at(1.0)
    assert w.reports == [(0.05, "a.log", "modified", None)]


def test_a_new_stream_file_is_created_then_grows():
    w = Watch(stream=["*.log"])
    w.create("a.log", 10)
    w.at(0.2)
    w.fs.write("a.log", append=5)
    w.event("changed", "a.log")
    w.at(1.0)
    assert w.reports == [(0.05, "a.log", "created", None), (0.25, "a.log", "growing", (10, 15))]


def test_a_rescan_reports_only_what_differs_from_the_known_stats():
    w = Watch(existing={"same": 1, "changed": 2, "gone": 3})
    w.fs.write("changed", 20)
    w.fs.delete("gone")
    w.fs.write("new", 4)
    w.deb.rescanned(dict(w.fs.files), "", w.clock.monotonic())
    w.rearm()
    w.at(1.0)
    assert sorted(r[1:3] for r in w.reports) == [("changed", "modified"), ("gone", "deleted"),
                                                 ("new", "created")]


def test_a_removed_directory_reports_each_file_below_it():
    w = Watch(existing={"d/a": 1, "d/e/b": 2, "dx": 3})
    for p in ("d/a", "d/e/b"):
        w.fs.delete(p)
    w.event("removed_tree", "d")
    w.at(1.0)
    assert sorted(r[1:3] for r in w.reports) == [("d/a", "deleted"), ("d/e/b", "deleted")]


def test_ten_thousand_files_share_one_alarm_and_are_each_reported_once():
    w = Watch()
    for i in range(10_000):
        w.save(f"f{i}")
    assert len(w.clock._alarms) == 1
    w.at(1.0)
    assert len(w.reports) == 10_000 and len({r[1] for r in w.reports}) == 10_000
    assert {r[0] for r in w.reports} == {0.05}


def test_the_quiet_period_and_maximum_delay_are_settable():
    w = Watch(quiet_s=0.2, max_delay_s=0.5)
    w.save("a")
    w.at(0.19)
    assert w.reports == []
    w.at(0.3)
    assert w.reports == [(0.2, "a", "created", None)]
    with pytest.raises(ValueError):
        Debouncer(w.fs.stat, quiet_s=1.0, max_delay_s=0.5)


def test_a_rescan_does_not_wait_for_a_close_write_that_may_have_been_lost():
    w = Watch()
    w.create("a.txt", 0)                 # IN_CREATE read; the rest lost in an overflow
    w.fs.write("a.txt", 5)
    w.at(0.3)
    w.deb.rescanned(dict(w.fs.files), "", w.clock.monotonic())
    w.rearm()
    w.at(1.5)
    assert w.reports == [(0.35, "a.txt", "created", None)]


def test_a_build_waits_for_a_settling_file_but_not_for_a_log_held_open():
    w = Watch(stream=["logs/*.log"], existing={"app.log": 0, "logs/run.log": 0})
    w.save("a.c")
    assert w.deb.settling(w.clock.monotonic())            # an edit in its quiet period
    w.at(0.2)
    assert not w.deb.settling(w.clock.monotonic())
    for n in range(30):                                   # a log written on and on
        w.at(0.2 + n * 0.04)
        w.fs.write("app.log", append=10)
        w.event("written", "app.log")
        w.fs.write("logs/run.log", append=10)
        w.event("written", "logs/run.log")
        if n == 1:
            assert w.deb.settling(w.clock.monotonic())    # might be a save: wait
    assert not w.deb.settling(w.clock.monotonic())        # past max_delay: a writer's


def test_a_write_that_keeps_size_mtime_and_inode_is_still_reported():
    """The racily-clean case: rewritten in place within one timestamp tick.
    A watching pod trusts the watcher instead of stat, so a write must be
    reported even when the stat cannot tell; a metadata event alone is not."""
    w = Watch(existing={"a.txt": 10})
    same = w.fs.files["a.txt"]
    w.event("written", "a.txt")                   # IN_MODIFY; the stat is as it was
    w.close("a.txt")
    assert w.fs.files["a.txt"] == same
    w.at(0.5)
    assert w.reports == [(0.0, "a.txt", "modified", None)]
    w.event("changed", "a.txt")                   # IN_ATTRIB: a chmod back, say
    w.at(1.0)
    assert len(w.reports) == 1


def commit(w: Watch, path: str, size: int = 10) -> FileStat:
    """A chef's commit as the watcher sees it: a rename from an ignored
    scratch directory onto `path`; the stat the pod records for it."""
    w.fs.write(path, size)
    w.event("moved", None, path)
    return w.fs.stat(path)


def test_the_pods_own_commit_is_not_reported_once_it_was_told():
    w = Watch(existing={"out/a.txt": 5, "out/b.txt": 5})
    w.delete("out/a.txt")                      # rm -rf out, then a build
    w.delete("out/b.txt")
    w.at(0.2)
    deleted = [(0.05, "out/a.txt", "deleted", None), (0.05, "out/b.txt", "deleted", None)]
    assert w.reports == deleted
    a, b = commit(w, "out/a.txt"), commit(w, "out/b.txt")   # new files: a quiet period
    w.at(0.21)
    w.deb.expect({"out/a.txt": a, "out/b.txt": b})          # the pod took the results
    w.at(0.5)
    assert w.reports == deleted
    assert w.deb.own == 2 and w.deb.idle
    w.at(1.0)
    w.save("out/a.txt", size=11)               # a write after the commit is news
    w.at(1.5)
    assert w.reports == deleted + [(1.0, "out/a.txt", "modified", None)]


def test_a_deletion_a_build_request_heard_is_not_reported_again():
    """`rm -rf out && cpod build`: the request judged the deletions still
    settling (the pod heard them gone); when they settle gone they are no
    news, while a file made again before it settles is."""
    w = Watch(existing={"out/a.txt": 5, "out/b.txt": 5})
    w.delete("out/a.txt")
    w.delete("out/b.txt")
    w.at(0.01)
    w.deb.expect({"out/a.txt": None, "out/b.txt": None})    # the request heard them gone
    w.create("out/b.txt", size=3)                           # someone makes b again
    w.close("out/b.txt")
    w.at(0.5)
    assert w.reports == [(0.01, "out/b.txt", "modified", None)]     # (closed: settled)
    assert w.deb.own == 1 and w.deb.expected == {}


def test_an_output_sent_to_be_built_waits_for_the_pods_word_so_its_echo_is_no_news():
    """A chain sent ahead commits before the pod takes its results: the
    rename onto an output it sent (COMMITTING) waits for COMMITTED instead
    of settling at once (a known file's rename settles at once)."""
    w = Watch(existing={"out/a.txt": 5, "out/b.txt": 5})
    w.deb.committing(["out/a.txt", "out/b.txt"])
    told = commit(w, "out/a.txt", size=7)
    w.at(0.5)
    assert w.reports == []                                  # held for the word
    w.deb.expect({"out/a.txt": told}, now=0.5)
    w.rearm()
    w.at(0.6)
    assert w.reports == [] and w.deb.own == 1               # its own commit: no news
    commit(w, "out/b.txt", size=9)                          # the word never comes
    w.at(0.6 + HOLD_S + 0.1)
    assert w.reports == [(round(0.6 + HOLD_S, 4), "out/b.txt", "modified", None)]
    w.save("out/b.txt", size=3)                             # held once only: now at once
    w.at(3.0)
    assert w.reports[-1][1:3] == ("out/b.txt", "modified") and len(w.reports) == 2


def test_a_commit_changed_before_it_settles_is_reported():
    w = Watch()
    told = commit(w, "out/a.txt")
    w.deb.expect({"out/a.txt": told})
    w.at(0.01)
    w.fs.write("out/a.txt", append=3)          # someone else writes on it at once
    w.event("written", "out/a.txt")
    w.close("out/a.txt")
    w.at(0.5)
    assert [r[1:3] for r in w.reports] == [("out/a.txt", "created")]
    assert w.deb.own == 0
    assert w.deb.expected == {}                # spent: the next commit is told anew


def test_a_commit_told_late_is_reported_as_before():
    w = Watch()
    told = commit(w, "out/a.txt")
    w.at(0.5)                                  # it settled before the pod's word came
    w.deb.expect({"out/a.txt": told})
    assert [r[1:3] for r in w.reports] == [("out/a.txt", "created")]
    w.save("out/a.txt", size=12)
    w.at(1.0)                                  # the word of a stat gone by hides nothing
    assert [r[1:3] for r in w.reports][-1] == ("out/a.txt", "modified")
