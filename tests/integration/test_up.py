"""`cpod up` end to end: a real pod process watching a real tree.

The pod runs as a user would run it (a subprocess, its own nats-server);
the test edits files, hands builds to it with `cpod build`, and listens on
its bus to count what it did.
"""
from __future__ import annotations

import json
import queue
import urllib.request
import signal
import subprocess
from pathlib import Path

from computepods.bus import messages as m
from computepods.bus.natsd import free_port
from helpers import pid_is_gone
import uppod
from cpodrun import CPOD, cpod, write
from uppod import STOP_TIMEOUT_S
from helpers import wait_for

up = uppod.up       # the fixture


def project(root: Path, extra: str = "", command: str = "cat {in} > {out}") -> Path:
    return write(root, {
        "computepods.toml": f"""
            [project]
            name = "t"
            default = ["out/all.txt"]
            {extra}

            [[rule]]
            name = "upper"
            inputs = ["src/%.txt"]
            outputs = ["build/%.up"]
            command = "tr a-z A-Z < {{in}} > {{out}}"

            [[rule]]
            name = "all"
            inputs = ["build/a.up", "build/b.up"]
            outputs = ["out/all.txt"]
            command = "{command}"
            """,
        "src/a.txt": "alpha\n",
        "src/b.txt": "beta\n",
    })


def test_up_keeps_the_tree_built_hands_off_builds_and_stops_on_down(tmp_path, up):
    root = project(tmp_path / "p")
    pod = up(root)
    out = root / "out/all.txt"
    wait_for(lambda: out.exists() and out.read_text() == "ALPHA\nBETA\n", what="first build")

    (root / "src/a.txt").write_text("gamma\n")
    wait_for(lambda: out.read_text() == "GAMMA\nBETA\n", what="rebuild after an edit")
    wait_for(lambda: pod.builds_done() == 2, what="the edit's build to finish")

    # The chefs' own commits are not changes: the next request is answered
    # from what the watcher heard, with no build.
    handed = cpod(root, "build")
    assert handed.code == 0, handed.err
    assert "nothing changed since" in handed.err
    assert handed.ran == []

    st = cpod(root, "status")
    assert st.code == 0 and f"pid {pod.proc.pid}" in st.out, st.out + st.err

    # A failing build handed to the pod fails the same way, same exit code.
    (root / "src/b.txt").unlink()
    wait_for(lambda: pod.builds_done() >= 4, what="the build after a deletion")
    failed = cpod(root, "build")
    assert failed.code == 2, failed.err
    assert "src/b.txt" in failed.err

    pod.stop()
    assert not (root / ".computepods/pod.json").exists()
    assert cpod(root, "status").code == 1
    assert "pod up for" in pod.text() and "pod stopped" in pod.text()


def test_changes_during_a_build_make_exactly_one_follow_up(tmp_path, up):
    gate = tmp_path / "gate"
    runs = tmp_path / "runs"
    root = project(tmp_path / "p", command=(
        f"sh -c 'echo started >> {runs}; while [ -e {gate} ]; do sleep 0.01; done; "
        "cat build/a.up build/b.up > out/all.txt'"))
    pod = up(root)
    out = root / "out/all.txt"
    wait_for(lambda: pod.builds_done() == 1 and out.exists(), what="first build")
    seen = len(pod.plans)        # its plan may have gone out before we listened
    changes: "queue.Queue[m.Message]" = queue.Queue()
    pod.bridge.listen(m.FS_CHANGED, changes)

    gate.write_text("")
    (root / "src/a.txt").write_text("one\n")
    wait_for(lambda: runs.read_text().count("started") == 2, what="the edit's build to block")
    for n in range(1, 6):                    # five settled changes while it runs
        (root / "src/b.txt").write_text("b" * n + "\n")
        wait_for(lambda: _heard(changes, "src/b.txt", "b" * n + "\n"), what=f"change {n}")
    gate.unlink()

    wait_for(lambda: out.exists() and out.read_text() == "ONE\nBBBBB\n", what="the follow-up")
    wait_for(lambda: pod.builds_done() == 3, what="the follow-up build to finish")
    handed = cpod(root, "build")            # a barrier: it queues after anything pending
    assert handed.code == 0 and "nothing changed since" in handed.err, handed.err
    pod.drain()
    assert [p.get("fresh", False) for p in pod.plans[seen:]] == [False, False, True]
    assert runs.read_text().count("started") == 3


def _heard(changes: "queue.Queue[m.Message]", path: str, text: str) -> bool:
    while True:
        try:
            msg = changes.get_nowait()
        except queue.Empty:
            return False
        if msg.data["path"] == path and msg.data.get("size") == len(text):
            return True


def test_a_second_up_is_refused_and_ctrl_c_stops_cleanly(tmp_path, up):
    root = project(tmp_path / "p")
    pod = up(root)
    again = cpod(root, "up", "--no-http", timeout=60)
    assert again.code == 2
    assert f"already up for {root} (pid {pod.proc.pid})" in again.err
    pod.proc.send_signal(signal.SIGINT)
    assert pod.proc.wait(STOP_TIMEOUT_S) == 0
    assert not (root / ".computepods/pod.json").exists()


def test_cpod_down_with_no_pod_says_so(tmp_path):
    root = project(tmp_path / "p")
    run = cpod(root, "down")
    assert run.code == 0 and "no pod is up" in run.err


def test_ctrl_c_on_a_handed_off_build_cancels_it_in_the_pod(tmp_path, up):
    gate, runs = tmp_path / "gate", tmp_path / "runs"
    root = project(tmp_path / "p", extra="")
    with open(root / "computepods.toml", "a") as f:
        f.write(f"""
[[rule]]
name = "slow"
inputs = ["out/all.txt"]
outputs = ["out/slow.txt"]
command = "sh -c 'echo started >> {runs}; while [ -e {gate} ]; do sleep 0.01; done; cp out/all.txt out/slow.txt'"
""")
    pod = up(root)
    wait_for(lambda: pod.builds_done() == 1, what="first build")
    gate.write_text("")
    client = subprocess.Popen([*CPOD, "-C", str(root), "build", "out/slow.txt"],
                              stderr=subprocess.PIPE, text=True)
    wait_for(lambda: runs.exists(), what="the handed-off step to start")
    client.send_signal(signal.SIGINT)
    _, err = client.communicate(timeout=30)
    assert client.returncode == 130
    assert "the pod (pid" in err and "cancels the build" in err
    wait_for(lambda: "went away: cancelling it" in pod.text(), what="the pod to cancel")
    gate.unlink()                        # the running step finishes; nothing more starts
    wait_for(lambda: any(d.get("cancelled") for d in (pod.drain() or pod.done)),
             what="the build to end cancelled")
    assert [d["code"] for d in pod.done if d.get("cancelled")] == [130]


def test_a_broken_project_file_while_up_is_named_and_the_pod_stays_up(tmp_path, up):
    root = project(tmp_path / "p")
    pod = up(root)
    wait_for(lambda: pod.builds_done() == 1, what="first build")
    toml = root / "computepods.toml"
    good = toml.read_text()
    toml.write_text(good + "\n[[rule]]\nname = 'x'\nbogus = 1\n")
    wait_for(lambda: "computepods.toml" in pod.text() and "bogus" in pod.text(),
             what="the pod to name the broken file")
    handed = cpod(root, "build")
    assert handed.code == 2 and "bogus" in handed.err, handed.err

    toml.write_text(good + '\n[[schedule]]\ncron = "0 3 * * *"\ntargets = ["out/all.txt"]\n')
    wait_for(lambda: "schedules reloaded: 1" in pod.text(), what="the schedules to reload")
    wait_for(lambda: pod.builds_done() >= 3 and pod.done[-1]["ok"], what="a good build again")
    assert cpod(root, "status").code == 0


def test_up_serves_the_rest_api_and_the_page_until_down(tmp_path, up):
    root = project(tmp_path / "p")
    pod = up(root, "--http", f"127.0.0.1:{free_port()}")
    wait_for(lambda: pod.builds_done() == 1, what="first build")
    url = pod.info()["http"]
    with urllib.request.urlopen(url + "/healthz", timeout=10) as resp:
        assert json.load(resp)["ok"] is True
    with urllib.request.urlopen(url + "/", timeout=10) as resp:
        assert b"<html" in resp.read().lower()
    request = urllib.request.Request(url + "/v1/builds", data=b'{"targets": ["out/all.txt"]}',
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as resp:
        rest_build = json.load(resp)["id"]
    wait_for(lambda: f"build {rest_build} of out/all.txt, asked by REST" in pod.text(),
             what="the REST build in the pod's log")
    wait_for(lambda: pod.lines[-1].startswith("nothing to do") or "build ok" in pod.lines[-1],
             what="its outcome in the pod's log")
    status = cpod(root, "status")
    assert url in status.out
    gunicorn = [int(p) for p in subprocess.run(["pgrep", "-f", "gunicorn --bind " + url.split("//")[1]],
                                               capture_output=True, text=True).stdout.split()]
    assert gunicorn, "no gunicorn process serves the pod's address"
    pod.stop()
    wait_for(lambda: all(pid_is_gone(p) for p in gunicorn), what="gunicorn to stop with the pod")


def test_an_output_dir_swapped_for_a_symlink_under_up_writes_nothing_outside(tmp_path, up):
    root = project(tmp_path / "p")
    pod = up(root)
    wait_for(lambda: pod.builds_done() == 1 and (root / "out/all.txt").exists(),
             what="first build")
    outside = tmp_path / "outside"
    outside.mkdir()
    for f in (root / "out").iterdir():
        f.unlink()
    (root / "out").rmdir()
    (root / "out").symlink_to(outside)

    (root / "src/a.txt").write_text("gamma\n")
    wait_for(lambda: pod.builds_done() >= 2, what="the build after the edit")
    assert not pod.done[-1]["ok"]
    assert list(outside.iterdir()) == []
    handed = cpod(root, "build")
    assert handed.code != 0
    assert "'out/all.txt' would be written outside the project" in handed.err, handed.err
    assert "'out' is a symlink" in handed.err, handed.err
    assert list(outside.iterdir()) == []


def test_a_pod_whose_plan_failed_still_hears_the_file_that_mends_it(tmp_path, up):
    """The deaf pod: a default target whose source is missing fails to plan;
    creating that source (and editing another) must build, without touching
    computepods.toml."""
    root = write(tmp_path / "p", {
        "computepods.toml": """
            [project]
            default = ["out/a.txt", "out/b.txt"]

            [[rule]]
            name = "copy"
            inputs = ["src/%.txt"]
            outputs = ["out/%.txt"]
            command = "cp {in} {out}"
            """,
        "src/a.txt": "a\n"})
    pod = up(root)
    # Its first build fails to plan (no src/b.txt); its events may have gone
    # out before this test listened, so ask the pod.
    wait_for(lambda: "builds    1" in cpod(root, "status").out, timeout=20,
             what="the first build (it fails to plan)")
    assert "src/b.txt" in cpod(root, "status").out
    # ... and its log says so, naming the build and who asked for it
    wait_for(lambda: "of the default targets, asked by a change" in pod.text(),
             what="the failed build in the pod's log")
    assert any("src/b.txt" in line for line in pod.lines if line.startswith("cpod: "))
    (root / "src/b.txt").write_text("b\n")
    (root / "src/a.txt").write_text("a, edited\n")
    wait_for(lambda: (root / "out/b.txt").exists() and (root / "out/a.txt").exists()
             and (root / "out/a.txt").read_text() == "a, edited\n",
             timeout=20, what="the build the new source makes possible")


def test_sources_deleted_and_made_again_in_a_burst_lose_no_output(tmp_path, up):
    """Issue 13: deleting and re-creating sources under `cpod up` (a git
    checkout does it) deleted wanted outputs as orphans, judged from probes
    taken while their sources were missing.  An output goes only on proof."""
    n = 1000
    names = [f"s{i:03d}" for i in range(n)]
    root = write(tmp_path / "p", {
        "computepods.toml": f"""
            [project]
            default = {json.dumps([f"out/{s}.txt" for s in names])}

            [[rule]]
            name = "copy"
            inputs = ["src/%.txt"]
            outputs = ["out/%.txt"]
            command = "cp {{in}} {{out}}"
            """,
        **{f"src/{s}.txt": f"{s}\n" for s in names}})
    pod = up(root)
    wait_for(lambda: pod.builds_done() >= 1, timeout=60, what="the first build")
    # Each source deleted and made again 2 ms later, one after another, by a
    # shell, as a checkout does: the pod plans in the middle of the burst.
    burst = " ".join(names[::5])
    script = ('for s in ' + burst + '; do rm src/$s.txt; sleep 0.002; '
              'echo $s > src/$s.txt; done')
    for rounds in range(3):
        subprocess.run(["sh", "-c", script], cwd=root, check=True, timeout=120)
        run = cpod(root, "build")                 # sees every change made before it
        assert run.code == 0, run.err
        missing = [s for s in names if not (root / f"out/{s}.txt").exists()]
        assert missing == [], f"round {rounds}: {len(missing)} outputs gone, e.g. {missing[:3]}"
    assert "no rule makes it" not in pod.text(), pod.text()


def test_a_slow_writer_holding_its_file_open_builds_once_after_the_close(tmp_path, up):
    """Issue 13: a file written in chunks 0.2 s apart, held open, made a
    build from partial content every max_delay_s.  It is one change, built
    once its writer closes it."""
    root = write(tmp_path / "p", {
        "computepods.toml": """
            [project]
            default = ["out/big.txt"]

            [[rule]]
            name = "copy"
            inputs = ["src/big.txt"]
            outputs = ["out/big.txt"]
            command = "cp {in} {out}"
            """,
        "src/big.txt": "start\n"})
    pod = up(root)
    wait_for(lambda: pod.builds_done() >= 1, timeout=30, what="the first build")
    before = pod.builds_done()
    # 12 chunks, 0.25 s apart, through one descriptor held open: 3 s of writing,
    # three times the watcher's window.
    script = "exec 3>>src/big.txt; for i in $(seq 1 12); do echo chunk$i >&3; sleep 0.25; done"
    subprocess.run(["sh", "-c", script], cwd=root, check=True, timeout=60)
    whole = "start\n" + "".join(f"chunk{i}\n" for i in range(1, 13))
    wait_for(lambda: (root / "out/big.txt").read_text() == whole, timeout=30,
             what="the build after the close")
    wait_for(lambda: pod.builds_done() > before, what="the build to be done")
    assert pod.builds_done() == before + 1, pod.text()      # one build, not one a second


def test_a_git_checkout_of_hundreds_of_files_is_one_build(tmp_path, up):
    """Issue 13: a checkout between branches that differ in 1,000 files
    built two or three times (15 steps, then 600, then 390, `all` each
    time), since the watcher's first reports came while git still wrote the
    rest.  A burst of changes is built once, when it is over."""
    n = 300
    names = [f"s{i:03d}" for i in range(n)]
    root = write(tmp_path / "p", {
        "computepods.toml": """
            [project]
            default = ["out/all.txt"]

            [[rule]]
            name = "copy"
            inputs = ["src/%.txt"]
            outputs = ["build/%.txt"]
            command = "cp {in} {out}"

            [[rule]]
            name = "all"
            inputs = [{glob = "src/*.txt", as = "build/%.txt"}]
            outputs = ["out/all.txt"]
            command = "cat build/*.txt > {out}"
            """,
        ".gitignore": "build/\nout/\n.computepods/\n",
        **{f"src/{s}.txt": f"{s} on main\n" for s in names}})
    git = ["git", "-c", "user.email=t@example.com", "-c", "user.name=t"]
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "main"],
                 ["checkout", "-qb", "other"]):
        subprocess.run(git + args, cwd=root, check=True, timeout=60)
    for s in names:
        (root / f"src/{s}.txt").write_text(f"{s} on other\n")
    subprocess.run(git + ["commit", "-qam", "other"], cwd=root, check=True, timeout=60)
    pod = up(root)
    wait_for(lambda: pod.builds_done() >= 1, timeout=60, what="the first build")
    for branch in ("main", "other", "main"):
        before = pod.builds_done()
        subprocess.run(git + ["checkout", "-q", branch], cwd=root, check=True, timeout=60)
        whole = "".join(f"{s} on {branch}\n" for s in names)
        wait_for(lambda: (root / "out/all.txt").read_text() == whole
                 and pod.builds_done() > before, timeout=60, what=f"the build of {branch}")
        first = pod.done[before]
        assert first["ok"] and first["ran"] == n + 1, (branch, pod.done[before:])
        handed = cpod(root, "build")             # and nothing is left for a follow-up
        assert handed.code == 0 and "nothing changed since" in handed.err, handed.err
        wait_for(lambda: pod.builds_done() > before + 1, what="the handed build's answer")
    built = [d for d in pod.done if not d.get("fresh")]
    assert [d["ran"] for d in built] == [n + 1] * 4, pod.done
