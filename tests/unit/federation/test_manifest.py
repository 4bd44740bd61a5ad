"""A remote step's files by hash, the first-run question, and what we offer to serve."""
from __future__ import annotations

import hashlib
import os

from computepods.federation.manifest import inputs_unknown, step_manifest, tree_files
from computepods.federation.offer import OfferIndex
from computepods.planning.job import Job
from computepods.planning.resolve import bind
from computepods.project.model import Rule
from computepods.state.db import StepRecord

CC = Rule(name="cc", inputs=("src/%.c",), outputs=("build/%.o",),
          command="cc -MD -MF {out}.d -c {in} -o {out}", depfile="build/%.o.d")
LINK = Rule(name="link", inputs=("build/a.o",), outputs=("app",), command="cc {in} -o {out}")


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def tree(tmp_path, files: dict[str, str]):
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    return lambda path: sha((tmp_path / path).read_text()) if (tmp_path / path).is_file() \
        else None


def job(rule: Rule, stem: str | None, copied: dict | None = None) -> Job:
    step = bind(rule, stem)
    return Job(step, 1, "no record", step.display(), "fp", {}, dict(copied or {}))


def test_declared_and_discovered_inputs_go_by_hash_with_their_sizes(tmp_path):
    digest = tree(tmp_path, {"src/a.c": "int main;\n", "include/a.h": "#define A\n"})
    record = StepRecord("cc:build/a.o", "fp", "cc", {}, {}, discovered=["include/a.h"])
    m = step_manifest(tmp_path, job(CC, "a"), record, digest)
    assert m.files == {"src/a.c": sha("int main;\n"), "include/a.h": sha("#define A\n")}
    assert m.sizes == {sha("int main;\n"): 10, sha("#define A\n"): 10} and m.bytes == 20


def test_a_dependency_output_is_an_input_with_the_hash_its_producer_reported(tmp_path):
    tree(tmp_path, {"build/a.o": "stale bytes on disk"})
    m = step_manifest(tmp_path, job(LINK, None), None,
                      lambda path: {"build/a.o": "f" * 64}.get(path))
    assert m.files == {"build/a.o": "f" * 64}


def test_a_missing_optional_input_is_left_out_and_copy_in_is_kept(tmp_path):
    digest = tree(tmp_path, {"src/a.c": "x"})
    record = StepRecord("cc:build/a.o", "fp", "cc", {}, {}, discovered=["gone.h"])
    m = step_manifest(tmp_path, job(CC, "a", {"build/a.o": "e" * 64}), record, digest)
    assert m.files == {"src/a.c": sha("x"), "build/a.o": "e" * 64}


def test_the_first_run_of_a_discovering_step_does_not_know_its_inputs():
    assert inputs_unknown(job(CC, "a"), None)
    ok = StepRecord("cc:build/a.o", "fp", "cc", {}, {}, discovered=["a.h"])
    assert not inputs_unknown(job(CC, "a"), ok)
    assert not inputs_unknown(job(LINK, None), None)       # declares everything it reads


def test_the_tree_files_leave_out_the_state_directory_hidden_files_and_outputs(tmp_path):
    digest = tree(tmp_path, {"src/a.c": "c", "include/a.h": "h", ".computepods/state.db": "db",
                             ".git/HEAD": "ref", "build/a.o": "o", "computepods.toml": "t"})
    found = tree_files(tmp_path, {"build/a.o"}, digest)
    assert found == {"src/a.c": sha("c"), "include/a.h": sha("h"), "computepods.toml": sha("t")}
    assert len(tree_files(tmp_path, set(), digest, limit=2)) == 2


def test_an_offered_file_is_served_while_it_holds_that_content(tmp_path):
    tree(tmp_path, {"src/a.c": "v1"})
    offers = OfferIndex(tmp_path)
    offers.offer({"src/a.c": sha("v1")})
    assert offers.lookup(sha("v1")) == tmp_path / "src/a.c"
    assert offers.lookup(sha("never offered")) is None


def test_a_file_edited_since_it_was_offered_is_not_served_as_the_old_hash(tmp_path):
    tree(tmp_path, {"src/a.c": "v1"})
    offers = OfferIndex(tmp_path)
    offers.offer({"src/a.c": sha("v1")})
    (tmp_path / "src/a.c").write_text("v2")
    os.utime(tmp_path / "src/a.c", ns=(1, 1))           # a stat unlike the offered one
    assert offers.lookup(sha("v1")) is None
    (tmp_path / "src/a.c").write_text("v1")             # edited back: the same content
    assert offers.lookup(sha("v1")) == tmp_path / "src/a.c"
    (tmp_path / "src/a.c").unlink()
    assert offers.lookup(sha("v1")) is None


def test_offers_are_bounded_oldest_forgotten_first(tmp_path):
    tree(tmp_path, {f"f{i}": str(i) for i in range(3)})
    offers = OfferIndex(tmp_path, limit=2)
    offers.offer({f"f{i}": sha(str(i)) for i in range(3)})
    assert len(offers) == 2 and offers.lookup(sha("0")) is None
    assert offers.lookup(sha("2")) == tmp_path / "f2"
