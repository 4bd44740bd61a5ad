"""What the Desk answers about a project on disk: paths, artefacts, the graph, logs."""
from __future__ import annotations

import pytest

from computepods.api import catalog
from computepods.errors import NotFound, PathEscapesWorkspace, UnknownTarget
from computepods.state.hashing import FileRecord
from computepods.paths import STATE_DB
from computepods.state.db import StateDB, StepRecord
from cpodrun import write

PROJECT = """
    [project]
    default = ["out/paper.pdf"]

    [[rule]]
    name = "copy"
    inputs = ["src/%.txt"]
    outputs = ["build/%.txt"]
    command = "cp {in} {out}"

    [[rule]]
    name = "tex"
    inputs = ["build/a.txt", "out/paper.aux"]
    outputs = ["out/paper.pdf"]
    command = "cat {in[0]} > {out}"

    [[rule]]
    name = "aux"
    inputs = ["out/paper.pdf"]
    outputs = ["out/paper.aux"]
    command = "cp {in} {out}"
"""


@pytest.mark.parametrize("path, normal", [("a/b.txt", "a/b.txt"), ("a/./b.txt", "a/b.txt"),
                                          ("a//b", "a/b")])
def test_paths_inside_the_project(path, normal):
    assert catalog.check_path(path) == normal


# A ".." anywhere is refused, as the OpenAPI document's pattern says (it
# cannot say "one that normalizes inside"): a/../b.txt too.
@pytest.mark.parametrize("path", ["", "/etc/passwd", "..", "../x", "a/../../x", "a/../b.txt",
                                  ".", "./", "a\0b"])
def test_paths_that_leave_the_project(path):
    with pytest.raises(PathEscapesWorkspace, match="not a path inside the project"):
        catalog.check_path(path)


def project(tmp_path):
    root = write(tmp_path / "p", {"computepods.toml": PROJECT, "src/a.txt": "a\n"})
    (root / "build").mkdir()
    (root / "build/a.txt").write_text("a\n")
    with StateDB(root / STATE_DB) as db:
        db.write(steps=[StepRecord("copy:build/a.txt", "copy#x", "cp src/a.txt build/a.txt",
                                   {"src/a.txt": "h-src"}, {"build/a.txt": "h-a"}),
                        StepRecord("aux:out/paper.aux", "aux#x", "cp", {}, {}, status="failed",
                                   exit_code=2, reason="exit 2")],
                 files=[FileRecord("src/a.txt", 2, 1, 1, "h-src", 2),
                        FileRecord("build/a.txt", 2, 1, 2, "h-a", 2)])
    return root


def test_artefacts_with_their_producers(tmp_path):
    root = project(tmp_path)
    assert [(a["path"], a["step"]) for a in catalog.artefacts(root)] == [
        ("build/a.txt", "copy:build/a.txt"), ("src/a.txt", None)]
    assert [a["path"] for a in catalog.artefacts(root, "build/")] == ["build/a.txt"]
    assert catalog.artefact(root, "./build/a.txt")["sha256"] == "h-a"
    with pytest.raises(NotFound, match="no artefact 'out/paper.pdf'"):
        catalog.artefact(root, "out/paper.pdf")
    with pytest.raises(PathEscapesWorkspace):
        catalog.artefacts(root, "../")


def test_the_graph_shows_cycles_edges_and_states(tmp_path):
    root = project(tmp_path)
    g = catalog.graph(root, [], building={"copy:build/a.txt"})
    states = {n["id"]: (n["state"], n["cycle"]) for n in g["nodes"]}
    assert states == {"tex:out/paper.pdf": ("stale", 0), "aux:out/paper.aux": ("failed", 0),
                      "copy:build/a.txt": ("building", None)}
    assert g["cycles"] == [["tex:out/paper.pdf", "aux:out/paper.aux"]]
    assert ["aux:out/paper.aux", "tex:out/paper.pdf"] in g["edges"]
    assert ["tex:out/paper.pdf", "aux:out/paper.aux"] in g["edges"]
    dot = catalog.graph_dot(g)
    assert 'subgraph cluster_cycle0' in dot and '"copy:build/a.txt" -> "tex:out/paper.pdf";' in dot
    with pytest.raises(UnknownTarget):
        catalog.graph(root, ["nowhere.txt"])


def test_step_logs(tmp_path):
    root = project(tmp_path)
    log = catalog.step_log(root, "aux:out/paper.aux",
                           {"t": "fail", "stderr_tail": "boom\n", "exit_code": 2})
    assert (log["status"], log["exit_code"], log["stderr"]) == ("failed", 2, "boom\n")
    ok = catalog.step_log(root, "copy:build/a.txt", {"stderr_tail": "an older failure"})
    assert ok["status"] == "ok" and ok["stderr"] == "", "a later success hides an old failure"
    with pytest.raises(NotFound, match="no step 'x:y'"):
        catalog.step_log(root, "x:y")
