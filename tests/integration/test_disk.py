"""A full disk and a read-only .computepods, as a user meets them (issue 11,
breaks 4 and 7): a clear error naming the disk or the directory, a prompt
exit, the right advice, no traceback.  Each runs in a small tmpfs mounted in
a user+mount namespace (tests/tmpfs.py): no root needed."""
from __future__ import annotations

from tmpfs import in_tmpfs

PROJECT = {
    "computepods.toml": """
[project]
default = ["out/big.txt", "out/small.txt"]

[[rule]]
name = "small"
inputs = ["src/a.txt"]
outputs = ["out/small.txt"]
command = "cat {in} > {out}"

[[rule]]
name = "big"
inputs = ["src/a.txt"]
outputs = ["out/big.txt"]
command = "head -c 5000000 /dev/zero > {out}"
""",
    "src/a.txt": "hello\n",
}

BIG_STEP = """
    root = MOUNT / "p"
    for name, text in ARGS["files"].items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    first = cpod(root, "build", "-j", "2", timeout=60)
    shrunk = root / "computepods.toml"
    shrunk.write_text(shrunk.read_text().replace("5000000", "5000"))
    second = cpod(root, "build", "-j", "2", timeout=60)
    print(json.dumps({"first": first, "second": second,
                      "files": files(root, ["out/big.txt", "out/small.txt"])}))
"""


def test_a_step_that_fills_the_disk_ends_the_build_naming_the_disk(tmp_path):
    # It used to hang: the Store retried 'database or disk is full' forever.
    mount = tmp_path / "disk"
    got = in_tmpfs(mount, "2m", BIG_STEP, {"files": PROJECT})
    first, second = got["first"], got["second"]
    assert not first["hung"], f"cpod build still running at 60 s: {first['err'][-2000:]}"
    assert first["code"] != 0
    assert "Traceback" not in first["err"], first["err"]
    assert f"is full (the filesystem mounted at {mount}" in first["err"], first["err"]
    assert "corrupt" not in first["err"] and "delete" not in first["err"]
    # Space again (the step writes less now): the next build is correct.
    assert second["code"] == 0 and not second["hung"], second["err"]
    assert got["files"] == {"out/big.txt": "\0" * 5000, "out/small.txt": "hello\n"}


READ_ONLY = """
    root = MOUNT / "p"
    for name, text in ARGS["files"].items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    built = cpod(root, "build", timeout=60)
    (root / "src/a.txt").write_text("changed\\n")
    state = root / ".computepods"
    subprocess.run(["mount", "--bind", str(state), str(state)], check=True)
    subprocess.run(["mount", "-o", "remount,bind,ro", str(state)], check=True)
    build = cpod(root, "build", timeout=60)
    explain = cpod(root, "explain", "out/small.txt", timeout=60)
    print(json.dumps({"built": built, "build": build, "explain": explain}))
"""


def test_a_read_only_state_directory_is_a_permission_problem_not_corruption(tmp_path):
    project = dict(PROJECT, **{"computepods.toml": PROJECT["computepods.toml"].replace(
        "5000000", "5")})
    got = in_tmpfs(tmp_path / "disk", "8m", READ_ONLY, {"files": project})
    assert got["built"]["code"] == 0, got["built"]["err"]
    state = tmp_path / "disk" / "p" / ".computepods"
    for name in ("build", "explain"):
        run = got[name]
        assert run["code"] == 2, f"cpod {name}: exit {run['code']}: {run['err']}"
        assert "Traceback" not in run["err"], run["err"]
        assert str(state) in run["err"] and "read-only" in run["err"], run["err"]
        assert "permission problem" in run["err"], run["err"]
        assert "corrupt" not in run["err"] and "delete" not in run["err"], run["err"]
