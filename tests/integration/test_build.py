"""`cpod build` end to end: real nats-server, real files, real processes."""
from __future__ import annotations

import os
import shutil
import stat
import signal
import threading
from pathlib import Path

import pytest

from cpodrun import cpod, start_cpod, wide_project, write
from helpers import pid_is_gone, wait_for

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

CHAIN = {
    "computepods.toml": """
        [project]
        name = "chain"
        default = ["out/all.txt"]

        [[rule]]
        name = "upper"
        inputs = ["src/%.txt"]
        outputs = ["build/%.up"]
        command = "tr a-z A-Z < {in} > {out}"

        [[rule]]
        name = "join"
        inputs = ["build/a.up", "build/b.up"]
        outputs = ["out/all.txt"]
        command = "cat {in} > {out}"
    """,
    "src/a.txt": "alpha\n",
    "src/b.txt": "beta\n",
}


@pytest.fixture
def chain(tmp_path) -> Path:
    return write(tmp_path / "chain", CHAIN)


def test_hello_example_builds_and_second_run_runs_nothing(tmp_path):
    root = tmp_path / "hello"
    shutil.copytree(EXAMPLES / "hello", root,
                    ignore=shutil.ignore_patterns("out", "build", ".computepods"))
    first = cpod(root, "build")
    assert first.code == 0, first.err
    assert (root / "out/hello.txt").read_text() == "HELLO\nWORLD\n"
    assert '"words": 2' in (root / "out/stats.json").read_text()
    assert sorted(first.ran) == ["join:out/hello.txt", "stats:out/stats.json",
                                 "upper:build/greeting.up", "upper:build/name.up"]
    second = cpod(root, "build")
    assert second.code == 0 and second.ran == [], second.err
    assert "nothing to do: 4 steps up to date" in second.err


def test_touch_without_change_runs_nothing(chain):
    assert cpod(chain, "build").code == 0
    src = chain / "src/a.txt"
    st = src.stat()
    os.utime(src, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    again = cpod(chain, "build")
    assert again.code == 0 and again.ran == [], again.err


def test_changing_a_source_rebuilds_exactly_its_dependants(chain):
    assert cpod(chain, "build").code == 0
    (chain / "src/b.txt").write_text("gamma\n")
    again = cpod(chain, "build")
    assert again.code == 0, again.err
    assert sorted(again.ran) == ["join:out/all.txt", "upper:build/b.up"]
    assert (chain / "out/all.txt").read_text() == "ALPHA\nGAMMA\n"


def test_early_cutoff_when_a_rebuilt_output_is_unchanged(chain):
    assert cpod(chain, "build").code == 0
    before = (chain / "out/all.txt").stat()
    (chain / "src/b.txt").write_text("BETA\n")          # upper-cases to the same bytes
    again = cpod(chain, "build")
    assert again.ran == ["upper:build/b.up"], again.err
    after = (chain / "out/all.txt").stat()              # not run at all: not even sent ahead
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_failing_step_leaves_no_partial_output_and_stops_dependants(chain):
    write(chain, {"computepods.toml": CHAIN["computepods.toml"].replace(
        'command = "cat {in} > {out}"',
        'command = "echo partial > {out}; echo to-stdout; echo to-stderr >&2; exit 3"')})
    (chain / "src/a.txt").write_text("alpha\n")
    run = cpod(chain, "build")
    assert run.code == 1
    assert not (chain / "out/all.txt").exists()
    assert "FAILED join:out/all.txt: exit 3" in run.err
    assert "command: echo partial" in run.err
    assert "to-stdout" in run.err and "to-stderr" in run.err
    assert "1 failed" in run.err


def test_failure_stops_dependants_and_keep_going_builds_the_rest(tmp_path):
    root = write(tmp_path / "p", {
        "computepods.toml": """
            [project]
            default = ["out/bad2", "out/good"]
            [[rule]]
            name = "bad"
            outputs = ["out/bad"]
            command = "exit 1"
            [[rule]]
            name = "bad2"
            inputs = ["out/bad"]
            outputs = ["out/bad2"]
            command = "cp {in} {out}"
            [[rule]]
            name = "good"
            inputs = ["src/x"]
            outputs = ["out/good"]
            command = "cp {in} {out}"
        """, "src/x": "x\n"})
    run = cpod(root, "build", "-k")
    assert run.code == 1
    assert "bad2:out/bad2" not in run.ran
    assert (root / "out/good").exists()
    assert "1 not run" in run.err


def test_a_failure_among_more_steps_than_the_chef_holds_ends_the_build(tmp_path):
    """Without -k a failure stops the build: the steps still waiting to be
    sent are not run, and it ends at once (it waited for them forever)."""
    root = wide_project(tmp_path / "p", 300, copy="test {in} != src/f2.txt && cp {in} {out}")
    run = cpod(root, "build", "-j", "1", timeout=60)
    assert run.code == 1, run.err
    assert "FAILED copy:build/f2.txt" in run.err
    built = len(list((root / "build").iterdir()))
    assert 0 < built < 299 and f"{300 - built} not run" in run.err


def test_many_slots_build_more_steps_than_one_run_message_holds(tmp_path):
    """-j 8: half a chef's window is more than a run message's 32 steps; the
    build of 100 steps waited forever for a refill that never came."""
    root = wide_project(tmp_path / "p", 100, copy="cp {in} {out}")
    run = cpod(root, "build", "-j", "8", timeout=60)
    assert run.code == 0, run.err
    assert len(run.ran) == 101
    assert (root / "out/all.txt").read_text() == "".join(f"{i}\n" for i in range(100))


def test_dry_run_runs_nothing(chain):
    run = cpod(chain, "build", "-n")
    assert run.code == 0, run.err
    assert "would run upper:build/a.up" in run.err
    assert not (chain / "out").exists()


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL])
def test_killed_mid_step_leaves_the_tree_as_before_the_step(tmp_path, how):
    root = write(tmp_path / "p", {
        "computepods.toml": """
            [project]
            default = ["out/slow"]
            [[rule]]
            name = "slow"
            inputs = ["src/x"]
            outputs = ["out/slow"]
            command = "echo started > started.flag; echo partial > {out}; sleep 30; cp {in} {out}"
        """, "src/x": "x\n", "out/slow": "old\n"})
    proc = start_cpod(root, "build")
    try:
        wait_for(lambda: (root / "started.flag").exists(), timeout=30, what="the step to start")
        proc.send_signal(how)
        code = proc.wait(timeout=30)
    finally:
        proc.kill()
    assert (root / "out/slow").read_text() == "old\n"
    if how == signal.SIGTERM:
        assert code == 130
    # the next build kills nothing of ours, replaces the output atomically
    (root / "started.flag").unlink()
    write(root, {"computepods.toml": (root / "computepods.toml").read_text().replace("sleep 30; ", "")})
    again = cpod(root, "build")
    assert again.code == 0, again.err
    assert (root / "out/slow").read_text() == "x\n"
    assert not any((root / ".computepods/scratch").iterdir())


def test_no_nats_server_outlives_a_sigkilled_cpod(tmp_path):
    root = write(tmp_path / "p", {
        "computepods.toml": """
            [project]
            default = ["out/slow"]
            [[rule]]
            name = "slow"
            outputs = ["out/slow"]
            command = "touch started.flag; sleep 30; touch {out}"
        """})
    proc = start_cpod(root, "build")
    wait_for(lambda: (root / "started.flag").exists(), timeout=30, what="the step to start")
    servers = [int(p) for p in os.listdir("/proc") if p.isdigit() and _is_nats_of(int(p), root)]
    assert servers, "the embedded nats-server was not found"
    proc.kill()
    proc.wait(timeout=10)
    for pid in servers:
        wait_for(lambda: pid_is_gone(pid), timeout=10, what=f"nats-server {pid} to die")


def _is_nats_of(pid: int, root: Path) -> bool:
    try:
        cmd = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
    except OSError:
        return False
    return any(c.endswith(b"nats-server") for c in cmd) and str(root).encode() in b" ".join(cmd)


@pytest.mark.parametrize("toml, words", [
    ("[project]\nnme = 'x'\n", ["computepods.toml", "nme"]),
    ("[[rule]]\nname = 'r'\noutputs = ['a']\ncommand = 'x {nope}'\n",
     ["computepods.toml", "'r'", "command", "nope"]),
    ("[[rule]]\nname = 'r'\noutputs = ['a']\ncommand = 'x'\ncolour = 1\n",
     ["computepods.toml", "'r'", "colour"]),
    ("[[rule]]\nname = 'r'\noutputs = ['a']\ncommand = 'x'\n[[rule]]\nname = 's'\n"
     "outputs = ['a']\ncommand = 'y'\n", ["computepods.toml", "'r'", "'s'"]),
    ("[[rule]]\nname = 'r'\noutputs = ['../a']\ncommand = 'x'\n",
     ["computepods.toml", "'r'", "outputs"]),
    ("[project]\nuse = ['fortran77']\n", ["computepods.toml", "use", "fortran77"]),
    ("[project\n", ["computepods.toml", "line 1"]),
])
def test_broken_project_file_exits_2_naming_file_rule_and_key(tmp_path, toml, words):
    (tmp_path / "computepods.toml").write_text(toml)
    run = cpod(tmp_path, "build", "a")
    assert run.code == 2, run.err
    for word in words:
        assert word in run.err, (word, run.err)
    assert "Traceback" not in run.err
    # The nats-server launched before the file was read is stopped with it.
    assert servers_of(tmp_path) == []
    assert (tmp_path / ".computepods/.gitignore").read_text() == "*\n"


def servers_of(root: Path) -> list[int]:
    """Pids of running nats-servers started for the project at ``root``."""
    store = str(root / ".computepods" / "nats")
    found = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except (OSError, ValueError):
            continue                     # not a process, or gone meanwhile
        if b"nats-server" in b" ".join(argv[:3]) and store.encode() in argv:
            found.append(int(entry))
    return found


def test_unknown_target_and_missing_source_exit_2(chain):
    run = cpod(chain, "build", "nothing/makes/this")
    assert run.code == 2 and "nothing/makes/this" in run.err
    (chain / "src/b.txt").unlink()
    run = cpod(chain, "build")
    assert run.code == 2 and "src/b.txt" in run.err and "Traceback" not in run.err


def test_builds_and_no_ops_stop_their_server_and_leave_one_log(chain):
    # A server the pod did not need (a no-op judged from the records) is
    # stopped too, and shuts down cleanly: not killed with cpod at exit.
    log = chain / ".computepods/nats/nats.log"
    for _ in range(2):
        assert cpod(chain, "build").code == 0
        assert servers_of(chain) == []
        assert log.read_text().count("Server Exiting") == 1
    shutil.rmtree(chain / ".computepods/plans")
    run = cpod(chain, "build")        # judged from the records, not a stored verdict
    assert run.code == 0 and "nothing to do" in run.err, run.err
    assert servers_of(chain) == [] and log.read_text().count("Server Exiting") == 1
    assert sorted(p.name for p in log.parent.iterdir()) == ["nats.conf", "nats.log",
                                                           "nats.pid", "users.json"]
    # the config and the users file hold the bus's passwords: the owner's alone
    for name in ("nats.conf", "users.json"):
        assert stat.S_IMODE((log.parent / name).stat().st_mode) == 0o600, name
    assert chef_processes_of(chain) == []          # nor its chef process, which stopped
    assert scratch_left(chain) == []               # cleanly: it removes its slots' scratch


def test_no_project_file_exits_2(tmp_path):
    run = cpod(tmp_path, "build")
    assert run.code == 2 and "computepods.toml" in run.err


def test_clean_removes_outputs_and_state_never_sources(chain):
    assert cpod(chain, "build").code == 0
    run = cpod(chain, "clean")
    assert run.code == 0, run.err
    assert not (chain / "out").exists() and not (chain / "build").exists()
    assert not (chain / ".computepods").exists()
    assert (chain / "src/a.txt").read_text() == "alpha\n"
    assert run.err == "cpod: removed 3 outputs and .computepods/\n"
    again = cpod(chain, "clean")                   # .computepods/ was gone already
    assert again.code == 0 and again.err == "cpod: nothing to clean: no .computepods/ here\n"
    assert not (chain / ".computepods").exists()


def test_clean_keeps_an_edited_output_of_a_rule_that_left(chain):
    assert cpod(chain, "build").code == 0
    (chain / "out/all.txt").write_text("mine now\n")
    toml = CHAIN["computepods.toml"]
    write(chain, {"computepods.toml": toml[:toml.index("[[rule]]\n        name = \"join\"")]
                  .replace('"out/all.txt"', '"build/a.up"')})
    run = cpod(chain, "clean")
    assert run.code == 0, run.err
    assert "keeping out/all.txt: changed since it was built, and no rule makes it now" in run.err
    assert "removed 2 outputs" in run.err
    assert (chain / "out/all.txt").read_text() == "mine now\n" and not (chain / "build").exists()


def test_second_build_waits_for_the_first_and_names_it(tmp_path):
    root = write(tmp_path / "p", {
        "computepods.toml": """
            [project]
            default = ["out/slow"]
            [[rule]]
            name = "slow"
            inputs = ["src/x"]
            outputs = ["out/slow"]
            command = "touch started.flag; sleep 1; cp {in} {out}"
        """, "src/x": "x\n"})
    first = start_cpod(root, "build")
    wait_for(lambda: (root / "started.flag").exists(), timeout=30, what="the first build to start")
    second = cpod(root, "build")
    assert first.wait(timeout=60) == 0
    assert second.code == 0, second.err
    assert f"waiting for the build of process {first.pid}" in second.err
    assert second.ran == []


def test_verbose_echoes_each_command_with_project_paths(chain):
    run = cpod(chain, "build", "-v")
    assert run.code == 0, run.err
    assert "tr a-z A-Z < src/a.txt > build/a.up" in run.err
    assert "cat build/a.up build/b.up > out/all.txt" in run.err
    assert ".computepods/scratch" not in run.err          # never scratch paths


def test_trace_prints_the_charts_transitions(chain):
    run = cpod(chain, "build", "--trace")
    assert run.code == 0, run.err
    assert "md_idle->md_dispatching" in run.err
    assert "chef_idle->chef_busy" in run.err


def test_version():
    run = cpod(Path("."), "--version")
    assert run.code == 0 and run.out.startswith("cpod 0.")


def test_explain_says_which_input_changed_with_old_and_new_hash(chain):
    assert cpod(chain, "build").code == 0
    (chain / "src/b.txt").write_text("gamma\n")
    run = cpod(chain, "explain", "out/all.txt")
    assert run.code == 0, run.err
    assert "upper:build/b.up\n  now: would run: input src/b.txt changed (" in run.out
    assert "upper:build/a.up" not in run.out and "last run" not in run.out   # brief
    assert run.out.endswith("2 of 3 steps would run (`cpod explain --all` shows every step)\n")
    text = cpod(chain, "explain", "--all", "out/all.txt").out
    assert "upper:build/b.up\n  now: would run: input src/b.txt changed (" in text
    assert "upper:build/a.up\n  now: up to date" in text
    assert "it ran because: never built" in text
    built = cpod(chain, "build", "--explain")
    assert "run  upper:build/b.up: input src/b.txt changed" in built.err


def test_explain_says_a_step_runs_when_an_input_of_it_will_be_rebuilt(chain):
    assert cpod(chain, "build").code == 0
    (chain / "src/b.txt").write_text("gamma\n")
    text = cpod(chain, "explain", "out/all.txt").out
    assert ("join:out/all.txt\n  now: may run: input build/b.up will be rebuilt by "
            "upper:build/b.up (it runs unless build/b.up comes out unchanged)") in text
    dry = cpod(chain, "build", "-n")
    assert "would run join:out/all.txt" in dry.err
    assert "dry run: 2 would run, 1 up to date; nothing ran" in dry.err, dry.err


def test_explain_names_a_command_change_and_a_hand_edited_output(chain):
    assert cpod(chain, "build").code == 0
    (chain / "out/all.txt").write_text("edited by hand\n")
    assert "output out/all.txt was changed outside the build" in cpod(chain, "explain").out
    write(chain, {"computepods.toml": CHAIN["computepods.toml"].replace("cat {in}", "cat -- {in}")})
    assert "join:out/all.txt\n  now: would run: rule 'join' changed" in cpod(chain, "explain").out


def test_explain_shortens_a_long_command_to_one_line_and_v_shows_it_whole(chain):
    script = "tr a-z A-Z < {in} > {out}\n" + "\n".join(f": step {i} of a long script"
                                                       for i in range(40))
    toml = CHAIN["computepods.toml"].replace('"tr a-z A-Z < {in} > {out}"',
                                             "'''" + script + "'''")
    write(chain, {"computepods.toml": toml})
    brief = cpod(chain, "explain", env={"COLUMNS": "80"}).out.splitlines()
    [command] = [line for line in brief if line.startswith("  command: tr a-z A-Z < src/a.txt")]
    assert command == ("  command: tr a-z A-Z < src/a.txt > build/a.up "
                       ": step 0 of a long script : ste…")       # 79 columns, one line
    whole = cpod(chain, "explain", "-v", env={"COLUMNS": "80"}).out
    assert ": step 39 of a long script\n" in whole


# Steps before, inside and after a cyclic group (latex and bib feed each other).
GROUPED = {
    "computepods.toml": """
        [project]
        default = ["out/final.txt"]

        [[rule]]
        name = "gen"
        inputs = ["src/paper.in"]
        outputs = ["paper.tex"]
        command = "cp {in} {out}"

        [[rule]]
        name = "latex"
        inputs = ["paper.tex", "paper.bbl"]
        outputs = ["paper.pdf", "paper.aux"]
        command = "cat {in[0]} > {out[1]}; (cat {in[1]} 2>/dev/null || echo no-bbl) > {out[0]}"

        [[rule]]
        name = "bib"
        inputs = ["paper.aux"]
        outputs = ["paper.bbl"]
        command = "sed s/cite/bib/ {in} > {out}"

        [[rule]]
        name = "final"
        inputs = ["paper.pdf", "src/notes.txt"]
        outputs = ["out/final.txt"]
        command = "cat {in} > {out}"
    """,
    "src/paper.in": "cite\n",
    "src/notes.txt": "notes\n",
}


def test_explain_lists_exactly_the_steps_a_dry_run_would_run(tmp_path):
    root = write(tmp_path / "p", GROUPED)

    def explained(*targets: str) -> set[str]:
        lines = cpod(root, "explain", *targets).out.splitlines()
        return {sid for sid, now in zip(lines, lines[1:]) if now.startswith("  now: ")}

    def dry_run(*targets: str) -> set[str]:
        run = cpod(root, "build", "-n", *targets)
        assert run.code == 0, run.err
        return {line.split()[2] for line in run.err.splitlines() if line.startswith("would run ")}

    everything = {"gen:paper.tex", "latex:paper.pdf", "bib:paper.bbl", "final:out/final.txt"}
    assert explained() == dry_run() == everything              # never built
    assert cpod(root, "build").code == 0
    assert explained() == dry_run() == set()
    assert "nothing would run: all 4 steps up to date" in cpod(root, "explain").out
    edits = [("src/notes.txt", "more notes\n", {"final:out/final.txt"}),
             ("src/paper.in", "cite again\n", everything),
             ("paper.bbl", "by hand\n", everything - {"gen:paper.tex"})]
    for path, text, expected in edits:
        (root / path).write_text(text)
        assert explained() == dry_run() == expected, path
        assert cpod(root, "build").code == 0
    # bib, asked for first, is judged before latex, whose input gen rebuilds
    (root / "src/paper.in").write_text("cite once more\n")
    assert explained("paper.bbl") == dry_run("paper.bbl") == everything - {"final:out/final.txt"}


def test_outputs_of_a_removed_rule_are_deleted_but_never_sources_or_edits(chain):
    assert cpod(chain, "build").code == 0
    (chain / "build/a.up").write_text("EDITED\n")
    text = CHAIN["computepods.toml"].split("[[rule]]\n        name = \"join\"")[0]
    write(chain, {"computepods.toml": text.replace('default = ["out/all.txt"]',
                                                   'default = ["build/b.up"]')})
    run = cpod(chain, "build")
    assert run.code == 0, run.err
    assert not (chain / "out/all.txt").exists()           # its rule left: deleted
    assert "removed 1 outputs no rule makes any more: out/all.txt" in run.err
    (chain / "src/a.txt").unlink()                          # the source of build/a.up is gone
    run = cpod(chain, "build")
    assert (chain / "build/a.up").read_text() == "EDITED\n"  # edited by hand: kept
    assert "keeping build/a.up (changed since it was built)" in run.err
    assert (chain / "src/b.txt").exists()


def start_waiting_build(tmp_path: Path):
    """`cpod build` of one step that runs until the file ``go`` appears;
    its stderr lines gather in a list as they come."""
    root = write(tmp_path / "wait", {
        "computepods.toml": """
            [[rule]]
            name = "slow"
            outputs = ["out/slow.txt"]
            command = "while [ ! -e go ]; do sleep 0.01; done; echo done > {out}"
        """})
    proc = start_cpod(root, "build", "out/slow.txt")
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)
    reader.start()
    return root, proc, lines, reader


def test_a_running_step_is_shown_while_it_runs(tmp_path):
    # Progress lines are written in batches, but never held back while cpod
    # waits: a log shows which step a long build is on.
    root, proc, lines, reader = start_waiting_build(tmp_path)
    try:
        wait_for(lambda: "run  slow:out/slow.txt\n" in lines, what="the running step's line")
        assert proc.poll() is None            # the step is still waiting for `go`
    finally:
        (root / "go").touch()
    assert proc.wait(timeout=60) == 0
    reader.join(timeout=10)
    assert (root / "out/slow.txt").read_text() == "done\n"
    assert lines[-1].startswith("build ok: 1 ran")


def chef_processes_of(root: Path) -> list[int]:
    """Pids of `cpod chef` processes serving the project at ``root``."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except (OSError, ValueError):
            continue
        if b"chef" in argv and str(root).encode() in argv:
            found.append(int(entry))
    return found


def test_the_pods_chef_process_dying_is_named_and_relaunched_and_the_build_completes(tmp_path):
    # cpod build's chef runs in a child process; if that dies, the build
    # says so, the pod launches another, and the step runs there at once,
    # instead of waiting out the dead chef's lease.
    root, proc, lines, reader = start_waiting_build(tmp_path)
    try:
        wait_for(lambda: "run  slow:out/slow.txt\n" in lines, what="the step to start")
        chefs = chef_processes_of(root)
        assert len(chefs) == 1, chefs
        os.kill(chefs[0], signal.SIGKILL)
        wait_for(lambda: any("relaunched the pod's chef" in line for line in lines),
                 timeout=60, what="the chef to be relaunched")
        (root / "go").touch()
        assert proc.wait(timeout=60) == 0
    finally:
        (root / "go").touch()              # the step the dead chef left behind ends too
    reader.join(timeout=10)
    text = "".join(lines)
    assert "is gone (its process" in text and "exited with code -9" in text, text
    assert "no other chef to run it" not in text and "stopped answering" not in text, text
    assert (root / "out/slow.txt").read_text() == "done\n"
    assert chef_processes_of(root) == []


def test_a_build_on_a_bus_of_its_own_choosing_leaves_nothing_behind(chain, nats_url):
    # --nats: no embedded server; the chef process serves that bus and is
    # gone when the build is.
    run = cpod(chain, "build", "--nats", nats_url)
    assert run.code == 0, run.err
    assert (chain / "out").is_dir() and run.ran
    assert chef_processes_of(chain) == [] and servers_of(chain) == []
    assert scratch_left(chain) == []               # the chef stopped cleanly
    assert not (chain / ".computepods/nats").exists()


def scratch_left(root: Path) -> list[str]:
    """Scratch directories under .computepods: a chef that stops cleanly
    removes its slots' (one killed with cpod leaves them to the next run)."""
    scratch = root / ".computepods" / "scratch"
    return sorted(p.name for p in scratch.iterdir()) if scratch.is_dir() else []
