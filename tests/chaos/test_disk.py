"""Battery rows: the disk fills at a random point of a build; state.db is corrupt.

Disk full: each round mounts a 4 MB tmpfs in a user+mount namespace
(``tests/tmpfs.py``, no root needed), copies the project onto it, and fills
the disk with a filler file that leaves a seeded random margin: from
nothing (the state directory cannot be made) to enough for the whole build.
The build must end by itself, within its timeout, with exit 0 and correct
outputs, or exit != 0 and a clear message naming the disk (the mount) and
no traceback.  The filler is then removed, and the next build must exit 0
with every output as a clean build makes it.

Corrupt state.db: a built project's database is truncated, replaced by
garbage, or has bytes of its middle pages overwritten (seeded); `cpod
build` and `cpod explain` must each exit 2 with a clear message (what and
where) and no traceback.
"""
from __future__ import annotations

import random
import sqlite3
from pathlib import Path

from cpodrun import cpod, write
from tmpfs import in_tmpfs

WIDE = 10
CHUNK = 120_000            # bytes each of the WIDE steps writes
DISK = "4m"


def project_files() -> dict[str, str]:
    rules = ['[project]\ndefault = ["out/all.txt"]\n']
    for i in range(WIDE):
        rules.append(f"""
[[rule]]
name = "w{i}"
inputs = ["src/{i}.txt"]
outputs = ["build/{i}.txt"]
command = "yes $(cat {{in}}) | head -c {CHUNK} > {{out}}"
""")
    rules.append("""
[[rule]]
name = "all"
inputs = [""" + ", ".join(f'"build/{i}.txt"' for i in range(WIDE)) + """]
outputs = ["out/all.txt"]
command = "cat {in} > {out}"
""")
    files = {"computepods.toml": "".join(rules)}
    files.update({f"src/{i}.txt": f"line{i}\n" for i in range(WIDE)})
    return files


def expected() -> dict[str, str]:
    out = {f"build/{i}.txt": (f"line{i}\n" * (CHUNK // 6 + 1))[:CHUNK] for i in range(WIDE)}
    out["out/all.txt"] = "".join(out[f"build/{i}.txt"] for i in range(WIDE))
    return out


ROUND = """
    import shutil
    root = MOUNT / "p"
    for name, text in ARGS["files"].items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    fill(MOUNT / "filler", ARGS["margin"])
    first = cpod(root, "build", "-j", "2", timeout=ARGS["timeout"])
    first["free"] = free()
    (MOUNT / "filler").unlink()
    second = cpod(root, "build", "-j", "2", timeout=ARGS["timeout"])
    print(json.dumps({"first": first, "second": second,
                      "files": files(root, ARGS["outputs"])}))
"""


def test_disk_full_at_random_points_of_a_build(tmp_path, chaos):
    want = expected()
    for rnd in chaos.rounds("disk full, at random points of a build", full=10, short=1,
                            must_hold="a clear error, exit != 0, no hang, the next build"
                                      " after freeing space correct"):
        with rnd:
            mount = tmp_path / f"disk{rnd.index}"
            # From no room at all to about what the whole build needs.
            margin = rnd.rng.randrange(0, 2 * WIDE * CHUNK + 300_000)
            got = in_tmpfs(mount, DISK, ROUND, {
                "files": project_files(), "margin": margin, "timeout": 60,
                "outputs": sorted(want)})
            first, second = got["first"], got["second"]
            where = f"margin {margin} bytes"
            assert not first["hung"], f"{where}: cpod build hung (killed at 60 s):" \
                                      f" {first['err'][-2000:]}"
            assert "Traceback" not in first["err"], f"{where}: {first['err'][-3000:]}"
            if first["code"] != 0:
                assert str(mount) in first["err"], \
                    f"{where}: exit {first['code']}, no disk named: {first['err'][-2000:]}"
            assert not second["hung"], f"{where}: the build after freeing space hung"
            assert second["code"] == 0, f"{where}: after freeing space: {second['err'][-2000:]}"
            assert "Traceback" not in second["err"], f"{where}: {second['err'][-3000:]}"
            wrong = [p for p, text in want.items() if got["files"][p] != text]
            assert not wrong, f"{where}: wrong after freeing space: {wrong}"


# --- corrupt state.db ----------------------------------------------------------

def corrupt(db: Path, how: str, rng: random.Random) -> None:
    data = bytearray(db.read_bytes())
    page = 4096
    if how == "truncated":
        data = data[:rng.randrange(page, len(data) - page)]
    elif how == "garbage":
        data = bytearray(rng.randbytes(rng.randrange(100, 3 * page)))
    else:                                # bad middle pages: past the header page
        pages = len(data) // page
        for pg in rng.sample(range(1, pages), max(1, pages // 2)):
            at = pg * page + rng.randrange(0, page - 256)
            data[at:at + 256] = rng.randbytes(256)
    db.write_bytes(bytes(data))


def built_project(root: Path) -> Path:
    """A project whose state.db has many pages (300 steps' records)."""
    n = 300
    write(root, {"computepods.toml": (
        "[project]\ndefault = [" + ", ".join(f'"build/f{i}.txt"' for i in range(n)) + "]\n"
        '[[rule]]\nname = "up"\ninputs = ["src/%.txt"]\noutputs = ["build/%.txt"]\n'
        'command = "tr a-z A-Z < {in} > {out}"\n'),
        **{f"src/f{i}.txt": f"line {i} " + "x" * 200 + "\n" for i in range(n)}})
    run = cpod(root, "build", "-j", "2")
    assert run.code == 0, run.err
    return root


def test_corrupt_state_db_is_a_clear_error(tmp_path, chaos):
    base = built_project(tmp_path / "base")
    db = base / ".computepods/state.db"
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")      # every record in the main file
    conn.close()
    good = db.read_bytes()
    cases = ("truncated", "garbage", "bad middle pages")
    for rnd in chaos.rounds("corrupt state.db", full=6, short=3,
                            must_hold="a clear error, no traceback"):
        with rnd:
            how = cases[rnd.index % len(cases)]
            db.write_bytes(good)
            for extra in db.parent.glob("state.db-*"):
                extra.unlink()
            corrupt(db, how, rnd.rng)
            for args in (("build", "-j", "2"), ("explain", "build/f7.txt")):
                run = cpod(base, *args, timeout=60)
                what = f"{how}: cpod {args[0]}"
                assert "Traceback" not in run.err, f"{what}: {run.err[-3000:]}"
                if run.code == 0:
                    # SQLite read every record it needed from pages left whole.
                    continue
                assert run.code == 2, f"{what}: exit {run.code}: {run.err[-2000:]}"
                assert f"{db}: the state database is corrupt" in run.err, f"{what}: {run.err}"
                assert "deleting it loses only the record of what was built" in run.err
