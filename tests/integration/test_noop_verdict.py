"""The stored no-op verdict (computepods.planning.plancache) never hides a change.

A cold no-op stores "all up to date while these stats hold"; the next one
answers from it.  Each change that could make a step stale, or change the
plan, must make the next build see it: a source, a discovered dependency,
the project file, a new or removed source a pattern rule depends on.
"""
from __future__ import annotations

import sqlite3
from pathlib import Path

from cpodrun import cpod, write

PROJECT = """
[project]
default = ["out/all.txt", "docs/readme.html"]

[[rule]]
name = "copy"
inputs = ["src/%.txt"]
outputs = ["out/%.txt", "out/%.d"]
# Reads inc/shared.h without declaring it; the depfile tells.
command = "cat {in} inc/shared.h > {out[0]} && echo 'x: inc/shared.h' > {out[1]}"
depfile = "out/%.d"

[[rule]]
name = "html"
inputs = ["%.md"]
outputs = ["%.html"]
command = "cp {in} {out}"

[[rule]]
name = "all"
inputs = ["out/a.txt", "out/b.txt"]
outputs = ["out/all.txt"]
command = "cat {in} > {out}"
"""


def verdicts(root: Path) -> int:
    conn = sqlite3.connect(root / ".computepods/state.db")
    try:
        return conn.execute("SELECT count(*) FROM verdicts").fetchone()[0]
    finally:
        conn.close()


def assert_noop_twice(root: Path, *args: str) -> None:
    """The first no-op judges and stores a verdict; the second answers from it."""
    for _ in range(2):
        run = cpod(root, "build", *args)
        assert run.code == 0 and run.ran == [] and "nothing to do" in run.err, run.err
        assert verdicts(root) == 1


def test_every_change_gets_past_a_stored_verdict(tmp_path):
    root = write(tmp_path / "p", {"computepods.toml": PROJECT, "src/a.txt": "a\n",
                                  "src/b.txt": "b\n", "inc/shared.h": "h1\n",
                                  "docs/readme.html": "<p>by hand</p>\n"})
    first = cpod(root, "build")
    assert first.code == 0, first.err
    assert sorted(first.ran) == ["all:out/all.txt", "copy:out/a.txt", "copy:out/b.txt"]
    assert_noop_twice(root)

    # A source.
    (root / "src/a.txt").write_text("a2\n")
    run = cpod(root, "build")
    assert sorted(run.ran) == ["all:out/all.txt", "copy:out/a.txt"], run.err
    assert_noop_twice(root)

    # A discovered dependency (named only by the depfiles).
    (root / "inc/shared.h").write_text("h2\n")
    run = cpod(root, "build")
    assert sorted(run.ran) == ["all:out/all.txt", "copy:out/a.txt", "copy:out/b.txt"]
    assert (root / "out/all.txt").read_text() == "a2\nh2\nb\nh2\n"
    assert_noop_twice(root)

    # The project file.
    text = (root / "computepods.toml").read_text()
    (root / "computepods.toml").write_text(text.replace("cat {in} > {out}",
                                                        "cat {in} {in} > {out}"))
    run = cpod(root, "build")
    assert run.ran == ["all:out/all.txt"], run.err
    assert_noop_twice(root)

    # A source a pattern rule can now use: the hand-made page gets a rule.
    (root / "docs/readme.md").write_text("# made\n")
    run = cpod(root, "build")
    assert run.ran == ["html:docs/readme.html"], run.err
    assert (root / "docs/readme.html").read_text() == "# made\n"
    assert_noop_twice(root, "out/b.txt")

    # A source removed: its output is one no rule makes any more.
    (root / "src/b.txt").unlink()
    run = cpod(root, "build", "out/b.txt")
    assert run.code == 0 and "removed" in run.err and "out/b.txt" in run.err, run.err
    assert not (root / "out/b.txt").exists()
    run = cpod(root, "build", "out/b.txt")
    assert run.code == 2 and "out/b.txt" in run.err and "does not exist" in run.err


def test_a_missing_pack_tool_is_named_even_when_a_verdict_holds(tmp_path):
    root = write(tmp_path / "c", {
        "computepods.toml": """
            [project]
            default = ["src/x.o"]
            use = ["c"]
        """,
        "src/x.c": "int x;\n"})
    first = cpod(root, "build")
    assert first.code == 0, first.err
    assert_noop_twice(root)
    run = cpod(root, "build", env={"PATH": str(tmp_path / "empty")})
    assert run.code == 2 and "needs cc" in run.err, run.err


def test_a_stored_verdict_answers_before_any_server_code_is_imported(tmp_path):
    """What makes a cold no-op cheap: it reads the verdict and stops, with
    none of the bus, the pod, the charts or the graph library imported."""
    import subprocess
    import sys
    root = write(tmp_path / "p", {"computepods.toml": PROJECT, "src/a.txt": "a\n",
                                  "src/b.txt": "b\n", "inc/shared.h": "h1\n",
                                  "docs/readme.html": "<p>by hand</p>\n"})
    assert cpod(root, "build").code == 0
    assert_noop_twice(root)
    traced = subprocess.run([sys.executable, "-X", "importtime", "-m", "computepods.cli", "-C",
                             str(root), "build", "--no-pod"], capture_output=True, text=True,
                            timeout=60)
    assert traced.returncode == 0 and "nothing to do" in traced.stderr, traced.stderr
    loaded = {line.split("|")[-1].strip() for line in traced.stderr.splitlines()
              if line.startswith("import time:")}
    assert "computepods.planning.plancache" in loaded
    light = {"computepods.pod", "computepods.pod.handoff", "computepods.pod.background"}
    assert not {m for m in loaded - light if m.split(".")[0] in ("nats", "miros", "networkx")
                or m.startswith(("computepods.bus", "computepods.pod", "computepods.charts"))}
