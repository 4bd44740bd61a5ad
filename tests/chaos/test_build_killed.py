"""Battery row: `cpod build` SIGKILLed at random moments.

Each kill lands after a randomly chosen number of steps have started (the
round's seeded draw, waited on through the steps' own log, never a sleep).
The rerun must exit 0, leave every output correct, and rerun no step whose
output had already been committed before the kill.
"""
from __future__ import annotations

import signal
import sqlite3
from pathlib import Path

from cpodrun import cpod, start_cpod, write
from helpers import wait_for

WIDE = 8


def project(root: Path) -> Path:
    rules = ['[project]\ndefault = ["out/all.txt"]\n']
    for i in range(WIDE):
        rules.append(f"""
[[rule]]
name = "w{i}"
inputs = ["src/{i}.txt"]
outputs = ["build/{i}.txt"]
command = "echo w{i} >> ran.log; sleep 0.0{i}; tr a-z A-Z < {{in}} > {{out}}"
""")
    rules.append("""
[[rule]]
name = "pair"
inputs = ["build/0.txt", "build/1.txt"]
outputs = ["build/pair.a", "build/pair.b"]
command = "echo pair >> ran.log; cat {in[0]} > {out[0]}; sleep 0.03; cat {in[1]} > {out[1]}"

[[rule]]
name = "chain1"
inputs = ["build/pair.a", "build/pair.b"]
outputs = ["build/chain1.txt"]
command = "echo chain1 >> ran.log; sleep 0.02; cat {in} > {out}"

[[rule]]
name = "all"
inputs = ["build/chain1.txt", """ + ", ".join(f'"build/{i}.txt"' for i in range(2, WIDE)) + """]
outputs = ["out/all.txt"]
command = "echo all >> ran.log; cat {in} > {out}"
""")
    files = {"computepods.toml": "".join(rules)}
    files.update({f"src/{i}.txt": f"line {i}\n" for i in range(WIDE)})
    return write(root, files)


def expected() -> dict[str, str]:
    up = {i: f"LINE {i}\n" for i in range(WIDE)}
    out = {f"build/{i}.txt": up[i] for i in range(WIDE)}
    out["build/pair.a"], out["build/pair.b"] = up[0], up[1]
    out["build/chain1.txt"] = up[0] + up[1]
    out["out/all.txt"] = out["build/chain1.txt"] + "".join(up[i] for i in range(2, WIDE))
    return out


STEP_OF = {**{f"build/{i}.txt": f"w{i}" for i in range(WIDE)}, "build/pair.a": "pair",
           "build/pair.b": "pair", "build/chain1.txt": "chain1", "out/all.txt": "all"}


def committed(root: Path) -> set[str]:
    """Steps whose outputs are all in the tree, correct."""
    want = expected()
    ok = {}
    for path, step in STEP_OF.items():
        f = root / path
        ok[step] = ok.get(step, True) and f.exists() and f.read_text() == want[path]
    return {step for step, good in ok.items() if good}


def ran(root: Path) -> list[str]:
    log = root / "ran.log"
    return log.read_text().split() if log.exists() else []


def test_random_sigkills_then_rerun_finishes_without_redoing_work(tmp_path, chaos):
    total_steps = WIDE + 3
    for rnd in chaos.rounds("`cpod build` SIGKILLed at random moments", full=20, short=3,
                            must_hold="state DB intact, 0 finished steps redone"):
        with rnd:
            root = project(tmp_path / f"p{rnd.index}")
            proc = start_cpod(root, "build", "-j", "2")
            k = rnd.rng.randrange(0, total_steps)
            try:
                wait_for(lambda: len(ran(root)) >= k or proc.poll() is not None, timeout=60,
                         what=f"step {k} to start")
            finally:
                proc.send_signal(signal.SIGKILL)
                proc.wait(timeout=30)
            state_db = root / ".computepods/state.db"
            if state_db.exists():           # a kill before the first write leaves none
                db = sqlite3.connect(state_db)
                assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
                db.close()
            before = committed(root)
            started = len(ran(root))
            rerun = cpod(root, "build", "-j", "2")
            assert rerun.code == 0, f"killed after {k} steps: {rerun.err}"
            for path, text in expected().items():
                assert (root / path).read_text() == text, f"{path} wrong after rerun"
            redone = set(ran(root)[started:]) & before
            assert not redone, f"killed after {k} steps: reran finished steps {sorted(redone)}"
            assert not list((root / ".computepods/scratch").iterdir())
