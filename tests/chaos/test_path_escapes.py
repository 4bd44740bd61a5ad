"""Battery row: path escapes — symlink swaps under `cpod up`, `..`, absolute
paths, depfile entries.  Must hold: 0 bytes written outside the project.

Each kind is a case, not a random draw (full = short), except the symlink
swaps: their full count adds seeded rounds that pick which output
directory is swapped.  Every case ends by comparing a sentinel directory
outside the project with its snapshot from before.
"""
from __future__ import annotations

from pathlib import Path

import uppod
from cpodrun import cpod, cpod_here, write
from helpers import wait_for

up = uppod.up       # the fixture

ROW = "path escapes: symlink swaps under `cpod up`, `..`, absolute paths, depfile entries"
MUST_HOLD = "0 bytes written outside the project"


def snapshot(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): (p.read_bytes() if p.is_file() else b"")
            for p in sorted(directory.rglob("*"))}


def sentinel(tmp_path: Path, name: str) -> Path:
    outside = tmp_path / name
    outside.mkdir(parents=True)
    (outside / "keep.txt").write_text("untouched\n")
    return outside


def rules(text: str) -> str:
    return '[project]\ndefault = ["out/all.txt"]\n' + text


COPY = """
[[rule]]
name = "upper"
inputs = ["src/%.txt"]
outputs = ["build/%.up"]
command = "tr a-z A-Z < {in} > {out}"

[[rule]]
name = "all"
inputs = ["build/a.up", "build/b.up"]
outputs = ["out/all.txt"]
command = "cat {in} > {out}"
"""


def project(root: Path, text: str = COPY) -> Path:
    return write(root, {"computepods.toml": rules(text), "src/a.txt": "alpha\n",
                        "src/b.txt": "beta\n"})


def test_symlink_swaps_under_cpod_up_write_nothing_outside(tmp_path, chaos, up):
    for rnd in chaos.rounds(ROW, full=3, short=1, must_hold=MUST_HOLD):
        with rnd:
            base = tmp_path / f"r{rnd.index}"
            outside = sentinel(base, "outside")
            before = snapshot(outside)
            root = project(base / "p")
            pod = up(root)
            wait_for(lambda: (root / "out/all.txt").exists(), what="first build")
            swapped = rnd.rng.choice(["out", "build"]) if rnd.index else "out"
            for f in (root / swapped).iterdir():
                f.unlink()
            (root / swapped).rmdir()
            (root / swapped).symlink_to(outside)
            done = pod.builds_done()
            (root / "src/a.txt").write_text(f"gamma {rnd.seed}\n")
            wait_for(lambda: pod.builds_done() > done, what="the build after the swap")
            handed = cpod(root, "build")
            assert handed.code != 0 and "symlink" in handed.err, handed.err
            pod.stop()
            assert snapshot(outside) == before, f"{swapped}/ swapped: wrote outside"


def test_dot_dot_and_absolute_paths_are_refused_before_anything_runs(tmp_path, chaos,
                                                                    monkeypatch):
    monkeypatch.setenv("CP_CHEF_PROCESS", "0")
    for rnd in chaos.rounds(ROW, full=1, short=1, must_hold=MUST_HOLD):
        with rnd:
            outside = sentinel(tmp_path, "outside")
            before = snapshot(outside)
            root = project(tmp_path / "p")
            cases = {   # computepods.toml rule, or a target: what must be refused
                "output ..": ('outputs = ["../outside/x.txt"]', []),
                "output absolute": (f'outputs = ["{outside}/x.txt"]', []),
                "output x/../..": ('outputs = ["out/../../outside/x.txt"]', []),
                "cwd ..": ('outputs = ["out/x.txt"]\ncwd = "../outside"', []),
                "target ..": ('outputs = ["out/%.txt"]\ninputs = ["src/%.txt"]',
                              ["../outside/a.txt"]),
                "target absolute": ('outputs = ["out/%.txt"]\ninputs = ["src/%.txt"]',
                                    [f"{outside}/a.txt"]),
                "stem ..": ('outputs = ["out/%.txt"]\ninputs = ["src/%.txt"]',
                            ["out/../../outside/a.txt"]),
            }
            for what, (keys, targets) in cases.items():
                (root / "computepods.toml").write_text(
                    '[[rule]]\nname = "w"\ncommand = "cp src/a.txt {out}"\n' + keys + "\n")
                run = cpod_here(root, "build", *(targets or ["out/x.txt"]))
                assert run.code == 2, f"{what}: {run.code} {run.err}"
                assert "Traceback" not in run.err, f"{what}: {run.err}"
                assert snapshot(outside) == before, f"{what}: wrote outside"


def test_depfile_entries_outside_are_dropped_not_written(tmp_path, chaos, monkeypatch):
    monkeypatch.setenv("CP_CHEF_PROCESS", "0")
    for rnd in chaos.rounds(ROW, full=1, short=1, must_hold=MUST_HOLD):
        with rnd:
            outside = sentinel(tmp_path, "outside")
            before = snapshot(outside)
            root = project(tmp_path / "p", f"""
[[rule]]
name = "deps"
inputs = ["src/a.txt"]
outputs = ["out/all.txt", "out/all.d"]
depfile = "out/all.d"
command = "cp {{in}} {{out[0]}} && echo 'out/all.txt: ../outside/keep.txt {outside}/keep.txt src/a.txt' > {{out[1]}}"
""")
            run = cpod_here(root, "build")
            assert run.code == 0, run.err
            (outside / "keep.txt").write_text("changed outside\n")   # not a dependency
            again = cpod_here(root, "build")
            assert again.code == 0 and "nothing to do" in again.err, again.err
            (outside / "keep.txt").write_text("untouched\n")
            assert snapshot(outside) == before
