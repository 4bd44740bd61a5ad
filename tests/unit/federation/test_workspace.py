"""A chef pod's workspace: trees per origin, files materialised by hash,
escapes refused, one chef pod per workspace.  The fetch is a fake: a dict
of sha -> bytes written to files, counting what it was asked."""
from __future__ import annotations

import errno
import hashlib
import os
import subprocess
import sys
import textwrap

import pytest

from computepods.errors import PathEscapesWorkspace, TransferError, WorkspaceBusy
from computepods.federation import workspace as ws
from computepods.federation.workspace import Workspace, cache_dir, tree_name
from helpers import wait_for


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class FakeFetch:
    """fetch(pod, sha) -> a file holding that content, from a dict."""

    def __init__(self, directory, contents: dict[str, bytes]):
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.files = {}
        for data in contents.values():
            path = self.dir / sha(data)
            path.write_bytes(data)
            path.chmod(0o444)
            self.files[sha(data)] = path
        self.asked: list[tuple[str, str]] = []

    def __call__(self, pod: str, digest: str):
        self.asked.append((pod, digest))
        if digest not in self.files:
            raise TransferError(f"pod {pod}: file {digest} is not in its store")
        return self.files[digest]


@pytest.fixture
def workspace(tmp_path):
    with Workspace(tmp_path / "ws") as w:
        yield w


def test_files_land_at_their_paths_as_hard_links_and_a_second_time_nothing_is_fetched(
        tmp_path, workspace):
    a, h = b"int main(void) { return 0; }\n", b"#define N 1\n"
    fetch = FakeFetch(tmp_path / "origin-store", {"a": a, "h": h})
    tree = workspace.tree("podA")
    files = {"src/main.c": sha(a), "include/n.h": sha(h)}
    done = workspace.materialise(tree, files, fetch, "podA")
    assert (tree / "src/main.c").read_bytes() == a and (tree / "include/n.h").read_bytes() == h
    assert (tree / "src/main.c").stat().st_ino == fetch.files[sha(a)].stat().st_ino
    assert (done.placed, done.placed_bytes, done.kept) == (2, len(a) + len(h), 0)
    assert sorted(fetch.asked) == sorted(("podA", s) for s in files.values())
    fetch.asked.clear()
    again = workspace.materialise(tree, files, fetch, "podA")
    assert (again.placed, again.kept, fetch.asked) == (0, 2, [])


def test_a_file_already_there_with_its_sha_is_left_alone_even_after_a_restart(tmp_path):
    data = b"already here\n"
    fetch = FakeFetch(tmp_path / "store", {"d": data})
    with Workspace(tmp_path / "ws") as first:
        tree = first.tree("podA")
        (tree / "x.txt").write_bytes(data)            # there before, not put by us
        ino = (tree / "x.txt").stat().st_ino
        assert first.materialise(tree, {"x.txt": sha(data)}, fetch, "podA").kept == 1
    with Workspace(tmp_path / "ws") as second:        # a new process's index: hashed once
        assert second.materialise(tree, {"x.txt": sha(data)}, fetch, "podA").kept == 1
    assert fetch.asked == [] and (tree / "x.txt").stat().st_ino == ino


def test_a_file_whose_sha_changed_is_replaced_by_the_new_content(tmp_path, workspace):
    old, new = b"v1\n", b"v2\n"
    fetch = FakeFetch(tmp_path / "store", {"old": old, "new": new})
    tree = workspace.tree("podA")
    workspace.materialise(tree, {"f.txt": sha(old)}, fetch, "podA")
    done = workspace.materialise(tree, {"f.txt": sha(new)}, fetch, "podA")
    assert done.placed == 1 and (tree / "f.txt").read_bytes() == new
    assert fetch.files[sha(old)].read_bytes() == old        # the store's file untouched


@pytest.mark.parametrize("path", ["/etc/passwd", "../outside.txt", "a/../../outside.txt",
                                  ".computepods/scratch/x", "", "a\0b"])
def test_a_path_that_escapes_the_tree_is_refused_before_anything_is_fetched(tmp_path,
                                                                            workspace, path):
    data = b"evil\n"
    fetch = FakeFetch(tmp_path / "store", {"e": data})
    tree = workspace.tree("podA")
    with pytest.raises(PathEscapesWorkspace):
        workspace.materialise(tree, {"ok.txt": sha(data), path: sha(data)}, fetch, "podA")
    assert fetch.asked == [] and not (tree / "ok.txt").exists()
    assert not (tree.parent / "outside.txt").exists()


def test_a_path_through_a_symlink_in_the_tree_is_refused(tmp_path, workspace):
    outside = tmp_path / "outside"
    outside.mkdir()
    data = b"evil\n"
    fetch = FakeFetch(tmp_path / "store", {"e": data})
    tree = workspace.tree("podA")
    (tree / "link").symlink_to(outside)
    with pytest.raises(PathEscapesWorkspace, match="'link' is a symlink"):
        workspace.materialise(tree, {"link/x.txt": sha(data)}, fetch, "podA")
    assert list(outside.iterdir()) == [] and fetch.asked == []


def test_a_sha_that_is_not_one_is_refused(tmp_path, workspace):
    with pytest.raises(ValueError, match="not a sha256"):
        workspace.materialise(workspace.tree("podA"), {"x": "../../etc"}, FakeFetch(
            tmp_path / "s", {}), "podA")


def test_a_failed_fetch_raises_the_transfer_error_and_places_nothing(tmp_path, workspace):
    tree = workspace.tree("podA")
    with pytest.raises(TransferError, match="pod podA: file 0{64} is not in its store"):
        workspace.materialise(tree, {"x.txt": "0" * 64}, FakeFetch(tmp_path / "s", {}), "podA")
    assert not (tree / "x.txt").exists()


def test_across_filesystems_the_file_is_copied_read_only(tmp_path, workspace, monkeypatch):
    data = b"copied\n"
    fetch = FakeFetch(tmp_path / "store", {"c": data})

    def no_link(src, dst, **kw):
        raise OSError(errno.EXDEV, "Invalid cross-device link")
    monkeypatch.setattr(ws.os, "link", no_link)
    tree = workspace.tree("podA")
    workspace.materialise(tree, {"c.txt": sha(data)}, fetch, "podA")
    placed = tree / "c.txt"
    assert placed.read_bytes() == data and placed.stat().st_mode & 0o777 == 0o444
    assert placed.stat().st_ino != fetch.files[sha(data)].stat().st_ino


@pytest.mark.parametrize("origin", ["..", ".", "a/b", "../../etc", "x\0y", "/", "pod A"])
def test_an_origin_pod_id_never_makes_a_tree_outside_the_workspace(workspace, origin):
    tree = workspace.tree(origin)
    assert tree.parent == workspace.root / "trees" and tree.is_dir()
    assert not tree.name.startswith(".")


def test_two_origins_get_two_trees_even_when_their_names_sanitise_alike(workspace):
    assert tree_name("a/b") != tree_name("a_b")
    assert workspace.tree("a/b") != workspace.tree("a_b")
    assert workspace.tree("podA") == workspace.tree("podA")


def test_a_second_chef_pod_on_one_workspace_is_refused_naming_the_holder(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys
            from computepods.federation.workspace import Workspace
            w = Workspace({str(tmp_path / "ws")!r}).acquire()
            print("held", flush=True)
            sys.stdin.read()
        """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    try:
        assert holder.stdout.readline() == "held\n"
        with pytest.raises(WorkspaceBusy, match=f"in use by process {holder.pid} "):
            Workspace(tmp_path / "ws").acquire()
        holder.kill()                         # the kernel drops a dead holder's flock
        holder.wait(10)
        wait_for(lambda: _acquired(tmp_path / "ws"), what="the workspace after a SIGKILL")
    finally:
        holder.kill()
        holder.wait(10)


def _acquired(root) -> bool:
    try:
        Workspace(root).acquire().release()
    except WorkspaceBusy:
        return False
    return True


def test_acquiring_drops_the_scratch_an_earlier_holder_left_in_its_trees(tmp_path):
    with Workspace(tmp_path / "ws") as w:
        tree = w.tree("podA")
        (tree / ".computepods/scratch/slot-1").mkdir(parents=True)
        (tree / "kept.txt").write_text("a file of the tree\n")
    with Workspace(tmp_path / "ws"):
        assert not (tree / ".computepods/scratch").exists() and (tree / "kept.txt").exists()


def test_the_workspace_is_under_the_xdg_cache_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert ws.default_workspace() == tmp_path / "cache/computepods/workspace"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")
    assert cache_dir() == ws.Path(os.path.expanduser("~"), ".cache", "computepods")
