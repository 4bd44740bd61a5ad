"""Scratch dirs and views: writes land in scratch, reads see the tree."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from computepods.errors import PathEscapesWorkspace
from computepods.chef.scratch import (SCRATCH_DIR, check_relative, make_scratch, make_view,
                                 new_files_in_view, out_moves, scratch_name,
                                 scratch_out_path, view_outputs)


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.fixture
def tree(tmp_path):
    """A small LaTeX-ish project with an old .aux and a stale PDF."""
    root = tmp_path / "proj"
    write(root / "paper.tex", "\\documentclass{article}")
    write(root / "paper.aux", "old aux")
    write(root / "sub" / "fig.png", "png")
    write(root / "docs" / "manual.tex", "manual")
    write(root / "docs" / "manual.pdf", "stale pdf")
    write(root / ".git" / "HEAD", "ref")
    write(root / ".computepods" / "state.db", "db")
    return root


def snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): p.read_text()
            for p in sorted(root.rglob("*")) if p.is_file() and SCRATCH_DIR not in str(p)}


def test_scratch_names_are_readable_unique_and_deterministic():
    a = scratch_name("compile:build/a.o")
    assert a == scratch_name("compile:build/a.o")
    assert a.startswith("compile_build_a.o-") and len(a.rsplit("-", 1)[1]) == 8
    assert scratch_name("compile:build/a.o") != scratch_name("compile:build:a.o")
    assert "/" not in scratch_name("../../etc/passwd")
    assert len(scratch_name("x" * 1000)) < 100


def test_make_scratch_gives_a_fresh_empty_dir_under_the_project(tmp_path):
    first = make_scratch(tmp_path, "link:bin/app")
    assert first.parent == tmp_path / SCRATCH_DIR and first.is_dir()
    write(first / "out" / "junk", "from an earlier run")
    again = make_scratch(tmp_path, "link:bin/app")
    assert again == first and list(again.iterdir()) == []
    assert make_scratch(tmp_path, "link:bin/other") != first


def test_scratch_out_path_creates_the_parent_and_refuses_escapes(tmp_path):
    scratch = make_scratch(tmp_path, "s")
    path = scratch_out_path(scratch, "build/deep/a.o")
    assert path == scratch / "out" / "build" / "deep" / "a.o" and path.parent.is_dir()
    for bad in ("../a.o", "/etc/passwd", "build/../../a.o", "", "."):
        with pytest.raises(PathEscapesWorkspace):
            scratch_out_path(scratch, bad)


def test_out_moves_lists_only_what_was_written(tmp_path):
    scratch = make_scratch(tmp_path, "s")
    scratch_out_path(scratch, "build/a.o").write_text("obj")
    scratch_out_path(scratch, "build/a.d")
    assert out_moves(scratch, ["build/a.o", "build/a.d"]) == [("out/build/a.o", "build/a.o")]


def test_check_relative_normalises():
    assert check_relative("./a//b/../c") == "a/c"


def test_view_links_the_tree_and_makes_room_for_outputs(tree):
    scratch = make_scratch(tree, "latex:paper.pdf")
    view = make_view(tree, scratch, ["paper.pdf", "paper.aux", "docs/manual.pdf",
                                     "build/x/y.o"], copy_in=["paper.aux", "paper.bbl"])
    assert view == scratch / "view"
    # Reads through links see the tree.
    assert (view / "paper.tex").is_symlink()
    assert (view / "paper.tex").read_text() == "\\documentclass{article}"
    assert (view / "sub").is_symlink() and (view / "sub" / "fig.png").read_text() == "png"
    # Directories on the way to outputs are real; their other entries are links.
    assert (view / "docs").is_dir() and not (view / "docs").is_symlink()
    assert (view / "docs" / "manual.tex").is_symlink()
    assert not os.path.lexists(view / "docs" / "manual.pdf")
    assert (view / "build" / "x").is_dir() and not (view / "build").is_symlink()
    # Outputs are absent or real copies, never links; a missing copy_in is no error.
    assert not os.path.lexists(view / "paper.pdf")
    assert not (view / "paper.aux").is_symlink()
    assert (view / "paper.aux").read_text() == "old aux"
    assert not os.path.lexists(view / "paper.bbl")
    # Ignored entries are left out.
    assert not os.path.lexists(view / ".git")
    assert not os.path.lexists(view / ".computepods")


def test_a_command_writing_in_the_view_leaves_the_tree_alone(tree):
    before = snapshot(tree)
    scratch = make_scratch(tree, "latex:paper.pdf")
    outputs = ["paper.pdf", "paper.aux", "docs/manual.pdf"]
    view = make_view(tree, scratch, outputs, copy_in=["paper.aux"])
    script = ("cat paper.tex > paper.pdf; cat paper.aux > seen; echo new aux > paper.aux;"
              " echo toc > paper.toc; echo manual > docs/manual.pdf; mkdir -p gen;"
              " echo g > gen/g.txt")
    subprocess.run(["/bin/sh", "-c", script], cwd=view, check=True, timeout=30)

    assert snapshot(tree) == before
    assert (view / "seen").read_text() == "old aux"
    assert (view / "paper.pdf").read_text() == "\\documentclass{article}"
    assert view_outputs(view, outputs + ["paper.log"]) == [
        ("view/paper.pdf", "paper.pdf"), ("view/paper.aux", "paper.aux"),
        ("view/docs/manual.pdf", "docs/manual.pdf")]
    assert new_files_in_view(view) == ["docs/manual.pdf", "gen/g.txt", "paper.aux",
                                       "paper.pdf", "paper.toc", "seen"]


def test_below_a_tex_runs_directory_every_directory_is_real(tree):
    """A TeX run writes an \\include'd chapter's .aux beside it before any
    record names that file: in the view, not through a linked directory."""
    write(tree / "docs" / "chapters" / "intro.tex", "intro")
    (tree / "docs" / "linked").symlink_to(tree / "sub")
    before = snapshot(tree)
    scratch = make_scratch(tree, "latex:docs/manual.pdf")
    view = make_view(tree, scratch, ["docs/manual.pdf"], real_below="docs")
    assert not (view / "docs" / "chapters").is_symlink()
    assert (view / "docs" / "chapters" / "intro.tex").is_symlink()
    assert (view / "docs" / "linked").is_symlink()       # a link in the tree stays one
    assert (view / "sub").is_symlink()                   # outside the run's directory
    (view / "docs" / "chapters" / "intro.aux").write_text("aux")
    assert snapshot(tree) == before


def test_an_output_written_through_a_link_is_committed_as_a_file(tree):
    """A paper.log no record names is linked into the view; the command
    writes through the link.  What is committed is a file, not the link
    (which, moved over its own target, would point at itself)."""
    write(tree / "paper.log", "stale log")
    scratch = make_scratch(tree, "latex:paper.pdf")
    view = make_view(tree, scratch, ["paper.pdf"])
    assert (view / "paper.log").is_symlink()
    (view / "paper.log").write_text("new log")
    assert view_outputs(view, ["paper.log", "paper.tex.missing"]) == [
        ("view/paper.log", "paper.log")]
    assert not (view / "paper.log").is_symlink()
    assert (view / "paper.log").read_text() == "new log"


def test_view_with_custom_ignore_patterns(tree):
    scratch = make_scratch(tree, "s")
    view = make_view(tree, scratch, ["docs/out.txt"], ignore=(".git", "*.tex"))
    assert not os.path.lexists(view / "paper.tex")
    assert not os.path.lexists(view / "docs" / "manual.tex")
    assert (view / "docs" / "manual.pdf").is_symlink()
    assert (view / ".computepods").is_symlink()


def test_view_is_rebuilt_from_scratch_each_time(tree):
    scratch = make_scratch(tree, "s")
    view = make_view(tree, scratch, ["a.out"])
    (view / "a.out").write_text("pass 1")
    view = make_view(tree, scratch, ["a.out"])
    assert not os.path.lexists(view / "a.out")


def test_view_refuses_outputs_outside_the_project(tree):
    scratch = make_scratch(tree, "s")
    with pytest.raises(PathEscapesWorkspace):
        make_view(tree, scratch, ["../evil"])
    with pytest.raises(PathEscapesWorkspace):
        make_view(tree, scratch, ["ok"], copy_in=["/etc/passwd"])
