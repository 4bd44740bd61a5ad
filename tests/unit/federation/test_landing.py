"""Landing a remote step's outputs: fetched by hash, committed as a local commit is."""
from __future__ import annotations

import hashlib
import os

import pytest

from computepods.errors import TransferError
from computepods.federation.landing import _FetchFailed, land, stray_outputs
from computepods.paths import prepare_state_dir
from computepods.planning.job import Job
from computepods.planning.resolve import Plan, bind
from computepods.project.model import Rule

TEX = Rule(name="tex", inputs=("doc/%.tex",), outputs=("doc/%.pdf",), command="pdflatex {in}",
           discover="fls")
BIB = Rule(name="bib", inputs=("doc/%.aux",), outputs=("doc/%.bbl",), command="bibtex {in}")


def job(rule, stem):
    step = bind(rule, stem)
    return Job(step, 1, "", step.display(), "fp", {})


def test_outputs_are_fetched_committed_and_stat_as_ours(tmp_path):
    root = tmp_path / "tree"
    root.mkdir()
    prepare_state_dir(root)
    store = tmp_path / "store"
    store.mkdir()
    tool, text = b"#!/bin/sh\necho hi\n", b"report\n"
    for data, mode in ((tool, 0o555), (text, 0o444)):
        path = store / hashlib.sha256(data).hexdigest()
        path.write_bytes(data)
        path.chmod(mode)
    fetched = []

    def fetch(pod, sha):
        fetched.append((pod, sha))
        return store / sha
    item = {"id": "s", "attempt": 1, "outputs": {
        "bin/tool": {"sha256": hashlib.sha256(tool).hexdigest(), "size": len(tool)},
        "out/report.txt": {"sha256": hashlib.sha256(text).hexdigest(), "size": len(text)}}}
    landed = land(root, fetch, "pod-b", item, {"step_id": "s"})
    assert (root / "bin/tool").read_bytes() == tool and os.access(root / "bin/tool", os.X_OK)
    assert (root / "out/report.txt").read_bytes() == text
    assert oct((root / "out/report.txt").stat().st_mode & 0o777) == oct(0o644)
    st = (root / "bin/tool").stat()
    assert landed["outputs"]["bin/tool"]["local"]["ino"] == st.st_ino
    assert {pod for pod, _ in fetched} == {"pod-b"}
    assert os.listdir(root / ".computepods/scratch") == []        # journal and scratch gone


def test_an_output_its_chef_said_was_executable_lands_executable_from_a_plain_store(tmp_path):
    root = tmp_path / "tree"
    root.mkdir()
    prepare_state_dir(root)
    program = b"\x7fELF..."
    sha = hashlib.sha256(program).hexdigest()
    stored = tmp_path / sha                    # a store's file: read-only, no execute bit
    stored.write_bytes(program)
    stored.chmod(0o444)
    item = {"id": "s", "attempt": 1, "outputs": {
        "bin/hello": {"sha256": sha, "size": len(program), "x": True},
        "bin/data": {"sha256": sha, "size": len(program)}}}
    land(root, lambda pod, sha: stored, "pod-b", item, {"step_id": "s"})
    assert os.access(root / "bin/hello", os.X_OK)
    assert not os.access(root / "bin/data", os.X_OK)


def test_a_fetch_that_fails_leaves_the_tree_as_it_was(tmp_path):
    root = tmp_path / "tree"
    root.mkdir()
    prepare_state_dir(root)

    def fetch(pod, sha):
        raise TransferError(f"pod {pod} is unreachable")
    item = {"id": "s", "attempt": 1, "outputs": {"out/x": {"sha256": "a" * 64, "size": 1}}}
    with pytest.raises(_FetchFailed, match="output out/x .*pod pod-b is unreachable"):
        land(root, fetch, "pod-b", item, {})
    assert not (root / "out").exists() and os.listdir(root / ".computepods/scratch") == []


def test_stray_outputs_are_those_not_the_steps_to_write():
    plan = Plan(targets=["doc/a.pdf"])
    tex, bib = bind(TEX, "a"), bind(BIB, "a")
    plan.steps = {tex.id: tex, bib.id: bib}
    plan.sources = {"doc/a.tex"}
    assert stray_outputs(job(BIB, "a"), {"doc/a.bbl": 1, "doc/a.blg": 1}, plan) == ["doc/a.blg"]
    # TeX writes beside its PDF (.aux, .log): fine, but not a source, another step's
    # output, or anything elsewhere
    assert stray_outputs(job(TEX, "a"), dict.fromkeys(
        ["doc/a.pdf", "doc/a.aux", "doc/a.log", "doc/a.tex", "doc/a.bbl", "etc/x"]), plan) == \
        ["doc/a.bbl", "doc/a.tex", "etc/x"]


def test_an_output_our_tree_already_holds_is_not_fetched(tmp_path):
    root = tmp_path / "tree"
    root.mkdir()
    prepare_state_dir(root)
    (root / "out").mkdir()
    (root / "out/x").write_bytes(b"same\n")

    def fetch(pod, sha):
        raise AssertionError("nothing should move")
    item = {"id": "s", "attempt": 1, "outputs": {
        "out/x": {"sha256": hashlib.sha256(b"same\n").hexdigest(), "size": 5}}}
    landed = land(root, fetch, "pod-b", item, {})
    assert (root / "out/x").read_bytes() == b"same\n"
    assert landed["outputs"]["out/x"]["local"]["ino"] == (root / "out/x").stat().st_ino
