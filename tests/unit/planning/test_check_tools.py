"""Planning's tool check: a tool missing here is fine when a pod of the federation has it."""
from __future__ import annotations

import pytest

from computepods.errors import NoChefCanBuild
from computepods.planning.plan import check_tools, resolve
from loopbackpod import write_project

C_PROJECT = {
    "computepods.toml": """
        [project]
        name = "c"
        default = ["src/a.o"]
        use = ["c"]
    """,
    "src/a.c": "int a;\n",
}


@pytest.fixture
def no_cc_here(tmp_path, monkeypatch):
    (tmp_path / "empty-bin").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    root = write_project(tmp_path / "p", C_PROJECT)
    return resolve(root, [])


def test_without_a_federation_a_tool_missing_here_fails_planning(no_cc_here):
    with pytest.raises(NoChefCanBuild, match="the c pack needs cc, which is not on PATH here"):
        check_tools(*no_cc_here)


def test_a_tool_some_pod_offers_passes_planning(no_cc_here):
    check_tools(*no_cc_here, offered={"cc": {"f" * 64}})


def test_a_tool_no_pod_offers_fails_saying_so(no_cc_here):
    with pytest.raises(NoChefCanBuild) as err:
        check_tools(*no_cc_here, offered={"pdflatex": {"e" * 64}, "cc": set()})
    assert "needs cc, which neither this machine nor any pod of the federation has" in str(
        err.value)
