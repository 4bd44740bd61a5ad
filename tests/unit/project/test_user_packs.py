"""A rule pack of the user's own: ``computepods.register_pack(path)`` in a
pod process, ``CP_PACKS=DIR`` for the ``cpod`` commands; the pack of
examples/custom_pod among them."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from computepods import errors, register_pack
from computepods.project import packs
from computepods.project.load import load_project
from computepods.paths import PROJECT_FILE

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "custom_pod"
TREE = EXAMPLE.parents[1]


@pytest.fixture
def own_registry(monkeypatch):
    """The pack registry as shipped, for this test only: a registration ends with it."""
    monkeypatch.setattr(packs, "PACKS", dict(packs.PACKS))
    monkeypatch.setattr(packs, "KNOWN_PACKS", dict(packs.KNOWN_PACKS))


def project(root: Path, text: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / PROJECT_FILE).write_text(textwrap.dedent(text))
    return root


def test_a_registered_pack_is_used_as_a_shipped_one(tmp_path, own_registry):
    assert register_pack(EXAMPLE / "packs" / "graphviz.toml") == "graphviz"
    root = project(tmp_path / "p", """
        [project]
        use = ["graphviz"]
        [pack.graphviz]
        layout = "neato"
    """)
    rule, = load_project(root).rules
    assert (rule.name, rule.pack, rule.inputs, rule.outputs) == (
        "graphviz.svg", "graphviz", ("%.dot",), ("%.svg",))
    assert rule.command == ("dot", "-Kneato", "-Tsvg", "{in}", "-o", "{out}")
    # a Chef made now fingerprints the pack's tool and announces the pack
    from computepods.chef.tools import pack_tools
    assert "dot" in pack_tools() and "graphviz" in packs.available_packs()


def test_without_registering_the_pack_is_unknown(tmp_path):
    root = project(tmp_path / "p", '[project]\nuse = ["graphviz"]\n')
    with pytest.raises(errors.ProjectError, match="unknown pack 'graphviz'; known packs: c, latex"):
        load_project(root)


def test_a_malformed_pack_file_is_one_line_naming_it(tmp_path, own_registry):
    bad = tmp_path / "broken.toml"
    bad.write_text('[[rule]]\nname = "x"\noutputs = ["a"]\ncommand = "true"\n')   # no tools
    with pytest.raises(errors.PackError) as info:
        register_pack(bad)
    assert str(info.value).startswith(f"{bad}: rule #1: tools must name the programs")
    assert "\n" not in str(info.value) and "broken" not in packs.PACKS
    with pytest.raises(errors.PackError, match="cannot be read|No such file"):
        register_pack(tmp_path / "missing.toml")


def test_a_shipped_packs_name_is_refused(tmp_path, own_registry):
    mine = tmp_path / "latex.toml"
    mine.write_text((EXAMPLE / "packs" / "graphviz.toml").read_text())
    with pytest.raises(errors.PackError, match="a pack named 'latex' ships with computepods"):
        register_pack(mine)
    assert packs.PACKS["latex"] is not None and packs.PACKS["latex"].name == "latex"


def cpod(root: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "computepods.cli", "-C", str(root), *args],
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(TREE), "CP_POD": "0", **env})


def test_cpod_finds_the_users_packs_in_CP_PACKS(tmp_path):
    root = project(tmp_path / "p", """
        [project]
        use = ["graphviz"]
        default = ["flow.svg"]
    """)
    (root / "flow.dot").write_text("digraph { a -> b }\n")
    run = cpod(root, {"CP_PACKS": str(EXAMPLE / "packs")}, "build", "-n")
    assert run.returncode == 0, run.stderr
    assert "graphviz.svg:flow.svg" in run.stderr
    broken = tmp_path / "mine"
    broken.mkdir()
    (broken / "oops.toml").write_text("description = 3\n[[rule]\n")
    run = cpod(root, {"CP_PACKS": f"{EXAMPLE / 'packs'}{os.pathsep}{broken}"}, "build", "-n")
    assert run.returncode == 2
    assert run.stderr.startswith(f"cpod: {broken / 'oops.toml'}: TOML syntax error")
    assert "Traceback" not in run.stderr and len(run.stderr.splitlines()) == 1
