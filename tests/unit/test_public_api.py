"""The public API (README "Embedding"): every name importable from
``computepods``, and ``import computepods`` itself still free.

The names are re-exported lazily; these tests check both halves of that:
nothing heavy is loaded by the import, and each name, once asked for, is the
very object its module defines.  (tests/integration/test_background_pod.py
checks the same of a ``cpod build`` handed to a running pod.)
"""
from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

import computepods

TREE = Path(computepods.__file__).resolve().parent.parent
HEAVY = {"miros", "nats", "networkx"}
PUBLIC = ["Pod", "PodOptions", "Chart", "Fabric", "Chef", "FSWatcher", "MajorDomo", "Store",
          "Bus", "NatsBridge", "LoopbackBus", "NatsServer", "Clock", "SystemClock", "SimClock",
          "Alarm", "register_pack", "Workspace", "join_as_chef_pod", "ComputePodsError"]


def loaded_by(code: str) -> set[str]:
    """The modules a fresh interpreter imports to run `code` (-X importtime)."""
    run = subprocess.run([sys.executable, "-X", "importtime", "-c", code], capture_output=True,
                         text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(TREE)})
    assert run.returncode == 0, run.stderr
    return {line.split("|")[-1].strip() for line in run.stderr.splitlines()
            if line.startswith("import time:")}


def test_import_computepods_loads_only_itself():
    loaded = loaded_by("import computepods")
    assert "computepods" in loaded
    assert not loaded & (HEAVY | {"typing"}), sorted(loaded & (HEAVY | {"typing"}))
    assert {name for name in loaded if name.startswith("computepods")} == {
        "computepods", "computepods.version"}


def test_asking_for_one_name_loads_its_module_only_then():
    loaded = loaded_by("import computepods, sys\n"
                       "assert 'computepods.clock' not in sys.modules\n"
                       "computepods.SimClock\n")
    assert "computepods.clock" in loaded and not loaded & HEAVY


def test_the_public_names_are_the_documented_ones():
    assert sorted(computepods.__all__) == sorted(["__version__", *PUBLIC])
    assert sorted(computepods._PUBLIC) == sorted(PUBLIC)
    assert set(PUBLIC) <= set(dir(computepods))


@pytest.mark.parametrize("name", PUBLIC)
def test_each_public_name_is_the_object_its_module_defines(name):
    value = getattr(computepods, name)
    home = importlib.import_module(value.__module__)
    assert getattr(home, name) is value
    assert value.__name__ == name and value.__doc__


def test_from_computepods_import_works_for_names_and_submodules():
    from computepods import Chef, FSWatcher, MajorDomo, NatsBridge, Pod, SimClock, errors
    assert Pod.__module__ == "computepods.pod.pod" and errors.ComputePodsError
    clock = SimClock()
    start = clock.monotonic()
    clock.advance(2.5)
    assert clock.monotonic() == start + 2.5
    for value in (Chef, FSWatcher, MajorDomo, NatsBridge):     # kept: asked for once
        assert vars(computepods)[value.__name__] is value


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'Kitchen'"):
        computepods.Kitchen
    with pytest.raises(ImportError):
        from computepods import Kitchen
        Kitchen()


def test_the_type_checking_imports_name_the_same_modules():
    """The TYPE_CHECKING block that editors read agrees with the lazy table."""
    hints = {}
    source = Path(computepods.__file__).read_text()
    block = source.split("if TYPE_CHECKING:", 1)[1].split("\n\n", 1)[0]
    for line in block.splitlines():
        line = line.strip()
        if line.startswith("from "):
            module, names = line[len("from "):].split(" import ")
            hints.update({n.strip(): module for n in names.split(",")})
    assert hints == computepods._PUBLIC
