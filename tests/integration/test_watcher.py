"""The FSWatcher on real inotify, publishing on a real nats-server: each way
of saving a file is one change, temporaries none, bursts and overflows lose
nothing, ignored paths say nothing."""
from __future__ import annotations

import os
import queue
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import pytest

from computepods.bus import messages as m
from computepods.bus.bridge import NatsBridge
from computepods.charts.watcher import FSWatcher
from computepods.clock import SimClock
from helpers import wait_for

# Longer than the 50 ms default: on a loaded 2-core machine an editor can
# stall between the steps of a save (vim renames the file to file~, writes
# the new one, deletes file~) for longer than 50 ms, and then its backup
# (rightly) shows as created and deleted.  bench/watch_latency.py measures
# the default.
QUIET_S = 0.2


class Watched:
    """An FSWatcher on `root` and the cp.fs.changed messages it sent."""

    def __init__(self, bridge: NatsBridge, root: Path, **kw):
        self.bridge = bridge
        self.root = root
        self.inbox: queue.Queue = queue.Queue()
        self.messages: list[dict] = []
        kw.setdefault("quiet_s", QUIET_S)
        self.watcher = FSWatcher(bridge, root, pod="test", **kw).start()

    def drain(self) -> list[dict]:
        while True:
            try:
                self.messages.append(self.inbox.get_nowait().data)
            except queue.Empty:
                return self.messages

    def settled(self, timeout: float = 30) -> list[dict]:
        """Every message, once nothing is settling and all that was sent arrived."""
        assert self.watcher.wait_settled(timeout), "the watcher did not settle"
        wait_for(lambda: len(self.drain()) >= self.watcher.published, timeout,
                 what=f"{self.watcher.published} cp.fs.changed messages")
        assert len(self.messages) == self.watcher.published
        return self.messages

    def changes(self, timeout: float = 30) -> Counter:
        """(path, kind) -> how many times it was reported."""
        return Counter((d["path"], d["kind"]) for d in self.settled(timeout))


@pytest.fixture
def watch(nats_url):
    bridge = NatsBridge(nats_url, name="watch-test").start()
    made: list[Watched] = []

    def make(root: Path, **kw) -> Watched:
        w = Watched(bridge, root, **kw)
        bridge.listen(m.FS_CHANGED, w.inbox)
        made.append(w)
        return w

    yield make
    for w in made:
        w.watcher.stop()
    bridge.stop()


def run_python(code: str, cwd: Path) -> None:
    """Write files from another process, as an editor or a tool would."""
    subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, check=True)


def files(root: Path, n: int, prefix: str = "f", text: str = "x") -> list[str]:
    names = [f"{prefix}{i}.txt" for i in range(n)]
    for name in names:
        (root / name).write_text(text)
    return names


# -- editor save patterns -------------------------------------------------------------

def test_write_temp_then_rename_is_one_change_and_no_temporary(tmp_path, watch):
    (tmp_path / "out.txt").write_text("old")
    w = watch(tmp_path)
    run_python("""
        import os
        for name in ("out.txt", "new.txt"):
            with open(name + ".tmp", "w") as f:
                f.write("fresh content")
            os.replace(name + ".tmp", name)
    """, tmp_path)
    assert w.changes() == {("out.txt", "modified"): 1, ("new.txt", "created"): 1}
    msg = next(d for d in w.messages if d["path"] == "out.txt")
    st = os.lstat(tmp_path / "out.txt")
    assert (msg["size"], msg["mtime_ns"]) == (st.st_size, st.st_mtime_ns)
    assert msg["pod"] == "test" and msg["root"] == str(tmp_path.resolve())


def test_vims_save_is_one_change(tmp_path, watch):
    # Real vim: the 4913 probe, the original renamed to notes.txt~, a new
    # notes.txt written, the backup deleted.  (backupskip is emptied because
    # vim skips backups under /tmp.)
    notes = tmp_path / "notes.txt"
    notes.write_text("hello\n")
    w = watch(tmp_path, ignore=["*.swp", "*.swx"])
    subprocess.run(["vim", "--clean", "-es", "-i", "NONE", "-c", "set backupskip=",
                    "-c", "normal Goworld", "-c", "wq", str(notes)],
                   check=True, stdin=subprocess.DEVNULL, timeout=60)
    assert notes.read_text() == "hello\nworld\n"
    assert w.changes() == {("notes.txt", "modified"): 1}


def test_sed_in_place_is_one_change(tmp_path, watch):
    (tmp_path / "a.c").write_text("int x = 1;\n")
    (tmp_path / "b.c").write_text("int y = 1;\n")
    w = watch(tmp_path)
    subprocess.run(["sed", "-i", "s/1/2/", "a.c", "b.c"], cwd=tmp_path, check=True)
    assert w.changes() == {("a.c", "modified"): 1, ("b.c", "modified"): 1}


def test_git_checkout_of_two_thousand_files_reports_each_once(tmp_path, watch):
    n = 2000

    def git(*args):
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
                       cwd=tmp_path, check=True, capture_output=True)

    for d in range(20):
        (tmp_path / f"d{d}").mkdir()
    paths = [f"d{i % 20}/f{i}.txt" for i in range(n)]
    for p in paths:
        (tmp_path / p).write_text("one\n")
    (tmp_path / "same.txt").write_text("same\n")
    git("init", "-q", "-b", "main")
    git("add", "-A")
    git("commit", "-q", "-m", "one")
    git("checkout", "-q", "-b", "two")
    for p in paths:
        (tmp_path / p).write_text("two, longer\n")
    git("commit", "-q", "-am", "two")
    git("checkout", "-q", "main")
    w = watch(tmp_path)
    git("checkout", "-q", "two")
    assert w.changes(60) == {(p, "modified"): 1 for p in paths}


# -- new directories, bursts, overflow ------------------------------------------------

def test_files_made_in_a_new_directory_before_its_watch_are_reported(tmp_path, watch):
    w = watch(tmp_path)
    run_python("""
        import os
        for top in range(5):
            d = f"new{top}/a/b/c"
            os.makedirs(d)
            for i in range(20):
                with open(f"{d}/f{i}", "w") as f:
                    f.write("x")
    """, tmp_path)
    expected = {(f"new{t}/a/b/c/f{i}", "created"): 1 for t in range(5) for i in range(20)}
    assert w.changes() == expected


def test_a_burst_of_ten_thousand_files_reports_each_once(tmp_path, watch):
    w = watch(tmp_path)
    run_python("""
        import os
        os.mkdir("burst")
        for i in range(10_000):
            with open(f"burst/f{i}.txt", "w") as f:
                f.write("x")
    """, tmp_path)
    assert w.changes(60) == {(f"burst/f{i}.txt", "created"): 1 for i in range(10_000)}


def test_an_overflowing_kernel_queue_is_rescanned_and_every_file_reported(tmp_path, watch):
    limit = int(Path("/proc/sys/fs/inotify/max_queued_events").read_text())
    n = limit // 2 + 1000          # create, modify and close-write: 3 events a file
    (tmp_path / "before.txt").write_text("old")
    (tmp_path / "doomed.txt").write_text("old")
    w = watch(tmp_path)
    w.watcher.reader.pause()       # nobody drains the queue: the kernel drops events
    names = files(tmp_path, n)
    (tmp_path / "before.txt").write_text("changed, longer")
    (tmp_path / "doomed.txt").unlink()
    w.watcher.reader.resume()
    expected = {(name, "created"): 1 for name in names}
    expected[("before.txt", "modified")] = 1
    expected[("doomed.txt", "deleted")] = 1
    assert w.changes(60) == expected
    assert w.watcher.rescans == 1


# -- what is never reported, and what is reported as it happens -------------------------

def test_ignored_paths_git_and_the_state_directory_are_never_reported(tmp_path, watch):
    for d in (".git", ".computepods/scratch", "tmp", "src/tmp", "src"):
        (tmp_path / d).mkdir(parents=True, exist_ok=True)
    w = watch(tmp_path, ignore=["*.swp", "tmp/"])
    for p in ("a.swp", "src/.b.swp", "tmp/x", "src/tmp/y", ".git/index", ".computepods/state.db",
              ".computepods/scratch/out.o", "src/main.c"):
        (tmp_path / p).write_text("x")
    (tmp_path / "tmp" / "deep").mkdir()
    (tmp_path / "tmp" / "deep" / "z").write_text("x")
    # A chef's commit: an output renamed from the scratch space into the tree.
    os.replace(tmp_path / ".computepods/scratch/out.o", tmp_path / "src/main.o")
    assert w.changes() == {("src/main.c", "created"): 1, ("src/main.o", "created"): 1}
    msg = next(d for d in w.messages if d["path"] == "src/main.o")
    st = os.lstat(tmp_path / "src/main.o")
    assert (msg["size"], msg["mtime_ns"]) == (st.st_size, st.st_mtime_ns)


def test_a_stream_file_is_reported_as_it_grows_with_each_appended_range(tmp_path, watch):
    (tmp_path / "logs").mkdir()
    log = tmp_path / "logs" / "run.log"
    log.write_text("")
    w = watch(tmp_path, stream=["logs/*.log"], quiet_s=0.05)
    with open(log, "a") as f:             # held open, as a running program holds its log
        for i in range(3):
            f.write(f"line {i}\n")
            f.flush()
            wait_for(lambda: len(w.drain()) > i, what=f"report {i + 1} of the log")
    ranges = [d["range"] for d in w.settled()]
    assert [d["kind"] for d in w.messages] == ["growing"] * 3
    assert ranges == [[0, 7], [7, 14], [14, 21]]


def test_renaming_and_deleting_directories_reports_their_files(tmp_path, watch):
    for p in ("a/x.txt", "a/sub/y.txt", "gone/z.txt"):
        (tmp_path / p).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / p).write_text("x")
    w = watch(tmp_path)
    os.rename(tmp_path / "a", tmp_path / "b")
    subprocess.run(["rm", "-r", "gone"], cwd=tmp_path, check=True)
    assert w.changes() == {("a/x.txt", "deleted"): 1, ("a/sub/y.txt", "deleted"): 1,
                           ("b/x.txt", "created"): 1, ("b/sub/y.txt", "created"): 1,
                           ("gone/z.txt", "deleted"): 1}
    (tmp_path / "b/sub/y.txt").write_text("moved dirs are watched too")
    assert w.changes()[("b/sub/y.txt", "modified")] == 1


def test_renaming_a_file_is_one_move(tmp_path, watch):
    (tmp_path / "a.txt").write_text("x")
    w = watch(tmp_path)
    os.rename(tmp_path / "a.txt", tmp_path / "b.txt")
    assert w.settled() == [{"v": 1, "pod": "test", "root": str(tmp_path.resolve()),
                            "path": "b.txt", "kind": "moved", "moved_from": "a.txt",
                            "size": 1, "mtime_ns": os.lstat(tmp_path / "b.txt").st_mtime_ns,
                            "range": None, "settling": 0}]


# -- the one alarm, settling, stopping ---------------------------------------------------

def test_the_quiet_period_runs_on_the_charts_clock(tmp_path, watch):
    clock = SimClock()
    w = watch(tmp_path, clock=clock, quiet_s=0.05)
    (tmp_path / "new.txt").write_text("x")

    def closed_seen():                     # IN_CREATE may come a batch before IN_CLOSE_WRITE
        p = w.watcher.debouncer.pending.get("new.txt")
        return p is not None and p.closed is not None

    wait_for(closed_seen, what="the close-write to reach the debouncer")
    clock.advance(0.049)
    assert not w.watcher.wait_settled(0)
    assert w.watcher.published == 0
    clock.advance(0.002)
    assert w.changes() == {("new.txt", "created"): 1}



def test_a_report_counts_events_not_yet_read_among_the_files_still_settling(tmp_path, watch):
    """Issue 13: a git checkout of 300 files was built in two goes (279
    steps, then the rest). Each report says how many files are still
    settling, and a burst ends on one that says none; events the kernel
    still held were not counted, so a report said none while git's last
    files waited to be read."""
    clock = SimClock()
    w = watch(tmp_path, clock=clock, quiet_s=0.05)

    def closed_seen(name):
        p = w.watcher.debouncer.pending.get(name)
        return p is not None and p.closed is not None

    (tmp_path / "a.txt").write_text("a")
    wait_for(lambda: closed_seen("a.txt"), what="a.txt's close-write to reach the debouncer")
    w.watcher.reader.pause()
    (tmp_path / "b.txt").write_text("b")
    wait_for(lambda: w.watcher.tree.unread() > 0, what="b.txt's events in the kernel's queue")
    clock.advance(0.06)
    wait_for(lambda: w.drain(), what="a.txt's report")
    assert [(d["path"], d["settling"] >= 1) for d in w.messages] == [("a.txt", True)]
    w.watcher.reader.resume()
    wait_for(lambda: closed_seen("b.txt"), what="b.txt's close-write to reach the debouncer")
    clock.advance(0.06)
    wait_for(lambda: len(w.drain()) == 2, what="b.txt's report")
    assert (w.messages[1]["path"], w.messages[1]["settling"]) == ("b.txt", 0)

def test_wait_settled_waits_for_a_file_still_in_its_quiet_period(tmp_path, watch):
    w = watch(tmp_path, quiet_s=0.3)
    assert w.watcher.wait_settled(0)
    (tmp_path / "new.txt").write_text("x")
    assert not w.watcher.wait_settled(0)      # unread, or in its quiet period
    assert w.watcher.wait_settled(10)
    assert w.watcher.published == 1


def test_stop_closes_the_descriptor_and_the_reader_thread(tmp_path, watch):
    w = watch(tmp_path)
    fd = w.watcher.tree.fileno()
    reader = w.watcher.reader._thread
    assert os.readlink(f"/proc/self/fd/{fd}") == "anon_inode:inotify"
    w.watcher.stop()
    assert not reader.is_alive() and not w.watcher.running
    assert not os.path.exists(f"/proc/self/fd/{fd}") \
        or os.readlink(f"/proc/self/fd/{fd}") != "anon_inode:inotify"
    assert w.watcher.wait_settled(0)
    (tmp_path / "late.txt").write_text("x")   # nobody is watching: nothing, and no error
    assert w.watcher.published == 0


def test_the_watched_directory_going_away_stops_the_chart(tmp_path, watch):
    root = tmp_path / "root"
    root.mkdir()
    w = watch(root)
    stopped = []
    w.watcher.when_stopped(lambda: stopped.append(True))
    subprocess.run(["rm", "-r", str(root)], check=True)
    wait_for(lambda: stopped, what="the watcher to stop")
    assert w.watcher.gone and w.watcher.tree.closed
    assert w.watcher.wait_settled(0)


# -- cpod watch ---------------------------------------------------------------------------

def test_cpod_watch_publishes_changes_until_sigterm(tmp_path, nats_url):
    from cpodrun import CPOD

    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "computepods.toml").write_text('[project]\nignore = ["*.swp"]\n')
    bridge = NatsBridge(nats_url, namespace="mine", name="listener").start()
    inbox: queue.Queue = queue.Queue()
    bridge.listen(m.FS_CHANGED, inbox)
    proc = subprocess.Popen([*CPOD, "watch", str(tree), "--nats", nats_url, "--namespace", "mine",
                             "--quiet-ms", "20", "--pod", "laptop"],
                            stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        assert "cpod: watching" in proc.stderr.readline()
        (tree / ".a.txt.swp").write_text("x")          # ignored by the project file
        (tree / "a.txt").write_text("hello")
        msg = inbox.get(timeout=20)                    # an .swp report would have come first
        assert msg.subject == "mine.fs.changed"
        assert {k: msg.data[k] for k in ("pod", "root", "path", "kind", "size")} == {
            "pod": "laptop", "root": str(tree.resolve()), "path": "a.txt", "kind": "created",
            "size": 5}
        proc.send_signal(subprocess.signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        assert "stopped watching" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()
        bridge.stop()


def test_cpod_watch_exits_1_when_its_directory_goes_away(tmp_path, nats_url):
    from cpodrun import CPOD

    tree = tmp_path / "tree"
    tree.mkdir()
    proc = subprocess.Popen([*CPOD, "watch", str(tree), "--nats", nats_url],
                            stderr=subprocess.PIPE, text=True)
    try:
        assert "cpod: watching" in proc.stderr.readline()
        subprocess.run(["rm", "-r", str(tree)], check=True)
        assert proc.wait(timeout=20) == 1
        assert f"{tree} went away" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()


@pytest.mark.parametrize("args, problem", [
    (["watch", "nowhere", "--nats", "nats://127.0.0.1:1"], "nowhere: not a directory"),
    (["watch", "."], "needs --nats URL"),
])
def test_cpod_watch_refuses_what_it_cannot_watch(tmp_path, args, problem):
    from cpodrun import CPOD

    env = {k: v for k, v in os.environ.items() if k != "CP_NATS_URL"}
    p = subprocess.run([*CPOD, *args], cwd=tmp_path, capture_output=True, text=True, env=env,
                       timeout=60)
    assert p.returncode == 2 and problem in p.stderr


def test_pending_now_names_every_file_written_before_it_was_asked(tmp_path, watch):
    """What a build asked for right after an edit relies on: the edit is
    either named as still settling, or was already reported, edit after edit;
    with a quiet period longer than the loop, it is named every time."""
    w = watch(tmp_path, quiet_s=30.0, max_delay_s=60.0)
    (tmp_path / "sub").mkdir()
    for i in range(50):
        name = f"sub/f{i % 5}.txt" if i % 2 else f"new{i}/f.txt"     # new directories too
        (tmp_path / name).parent.mkdir(exist_ok=True)
        with open(tmp_path / name, "a") as f:
            f.write(f"{i}\n")
        assert name in w.watcher.pending_now(), f"write {i} to {name} was not seen"
    assert w.watcher.published == 0               # nothing settled: the quiet period is long


def test_pending_now_says_anything_may_have_changed_once_the_watcher_stopped(tmp_path, watch):
    w = watch(tmp_path)
    w.watcher.stop()
    assert w.watcher.pending_now(timeout=1.0) == ["*"]
