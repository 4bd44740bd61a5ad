"""File names that are not UTF-8 (issue 11, break 5): refused where they
enter, naming the file with its bytes escaped, never a traceback or a hang.

Also paths that work as documented: `-x` and `%%`.  Each door: a target on the command line (`cpod build`, `cpod explain`, a
build handed to a pod), a depfile entry, and the watcher of `cpod up`.
"""
from __future__ import annotations

import os
from pathlib import Path

import uppod
from cpodrun import cpod, write
from helpers import wait_for

up = uppod.up       # the fixture

BAD = "bad\udcff.txt"              # b"bad\xff.txt" on the disk
SHOWN = r"'src/bad\xff.txt'"
ADVICE = "is not a UTF-8 file name"
NO_HANG_S = 60


def project(root: Path, extra: str = "") -> Path:
    write(root, {"computepods.toml": f"""
        [project]
        default = ["build/ok.txt"]

        [[rule]]
        name = "copy"
        inputs = ["src/%.txt"]
        outputs = ["build/%.txt"]
        command = "cp {{in}} {{out}}"
        {extra}
        """, "src/ok.txt": "ok\n"})
    (root / "src" / BAD).write_bytes(b"bad\n")
    assert os.fsencode(root / "src" / BAD).endswith(b"bad\xff.txt")
    return root


def clear(run, code: int, *words: str) -> None:
    assert run.code == code, run.err
    assert "Traceback" not in run.err, run.err
    for word in words:
        assert word in run.err, run.err


def test_a_target_that_is_not_utf8_is_refused_by_build_and_explain(tmp_path):
    root = project(tmp_path / "p")
    for command in ("build", "explain"):
        run = cpod(root, command, "build/" + BAD, timeout=NO_HANG_S)
        clear(run, 2, r"'build/bad\xff.txt'", ADVICE, "rename")
    assert not (root / "build").exists()
    clear(cpod(root, "build", timeout=NO_HANG_S), 0)   # the rest of the tree still builds


def test_a_depfile_entry_that_is_not_utf8_fails_its_step_naming_it(tmp_path):
    root = project(tmp_path / "p", extra=r"""
        [[rule]]
        name = "deps"
        inputs = ["src/ok.txt"]
        outputs = ["build/deps.o", "build/deps.d"]
        depfile = "build/deps.d"
        command = "cp {in} {out[0]} && printf '%s: src/ok.txt src/bad\\377.txt\\n' {out[0]} > {out[1]}"
        """)
    run = cpod(root, "build", "build/deps.o", timeout=NO_HANG_S)
    clear(run, 1, "FAILED deps:build/deps.o", "build/deps.d", SHOWN, ADVICE)


def test_the_watcher_of_cpod_up_names_such_a_file_and_the_pod_builds_on(tmp_path, up):
    root = project(tmp_path / "p")
    (root / "src" / BAD).unlink()
    pod = up(root)
    # the first build may end before the test's bridge listens: wait on its output
    wait_for(lambda: (root / "build/ok.txt").exists(), what="first build")
    (root / "src" / BAD).write_bytes(b"bad\n")
    wait_for(lambda: SHOWN in pod.text(), what="the pod to name the file")
    assert ADVICE in pod.text() and "Traceback" not in pod.text(), pod.text()
    (root / "src/ok.txt").write_text("edited\n")
    wait_for(lambda: pod.builds_done() >= 1 and (root / "build/ok.txt").read_text() == "edited\n",
             what="the build after an edit")
    assert all(done["ok"] for done in pod.done), pod.text()
    handed = cpod(root, "build", "build/" + BAD, timeout=NO_HANG_S)
    clear(handed, 2, r"'build/bad\xff.txt'", ADVICE)
    assert pod.proc.poll() is None, pod.text()


def test_a_source_named_dash_x_and_a_percent_path_build(tmp_path):
    """`-x` reaches cp as `./-x`, not an option; `50%%.txt` is the file
    `50%.txt` (issue 11, break 8)."""
    root = write(tmp_path / "p", {"computepods.toml": """
        [project]
        default = ["out/x", "out/50%.txt"]

        [[rule]]
        name = "dash"
        inputs = ["-x"]
        outputs = ["out/x"]
        command = "cp {in} {out}"

        [[rule]]
        name = "pct"
        inputs = ["src/50%%.txt"]
        outputs = ["out/50%%.txt"]
        command = ["cp", "{in}", "{out}"]
        """, "-x": "dash\n", "src/50%.txt": "half\n"})
    clear(cpod(root, "build", timeout=NO_HANG_S), 0)
    assert (root / "out/x").read_text() == "dash\n"
    assert (root / "out/50%.txt").read_text() == "half\n"
    again = cpod(root, "build", timeout=NO_HANG_S)
    clear(again, 0, "nothing to do")
