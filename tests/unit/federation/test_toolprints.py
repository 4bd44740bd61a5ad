"""Which program a step starts, and the fingerprint of the file it is."""
from __future__ import annotations

import hashlib
import os

from computepods.federation.toolprints import (command_program, fingerprint, fingerprints,
                                               missing_program, step_tools)


def test_the_program_of_a_list_command_is_its_first_item():
    assert command_program(["cc", "-c", "a.c"]) == "cc"
    assert command_program([]) == ""


def test_the_program_of_a_shell_command_skips_assignments_and_wrappers():
    assert command_program("cp {in} {out}") == "cp"
    assert command_program("LC_ALL=C sort a > b") == "sort"
    assert command_program("exec env pdflatex -recorder x.tex") == "pdflatex"
    assert command_program("# only a comment") == ""
    assert command_program("echo 'unbalanced") == "echo"


def test_a_steps_tools_are_its_packs_and_its_program_but_not_a_project_script():
    assert step_tools(["bibtex"], "pdflatex x.tex") == {"bibtex", "pdflatex"}
    assert step_tools([], "./configure --prefix=x") == set()
    assert step_tools([], "scripts/gen.sh a b") == set()
    assert step_tools([], "/usr/bin/env python3 x.py") == {"/usr/bin/env"}


def test_a_fingerprint_is_the_sha256_of_the_resolved_file_and_follows_an_upgrade(tmp_path):
    tool = tmp_path / "bin" / "mytool"
    tool.parent.mkdir()
    tool.write_bytes(b"#!/bin/sh\necho one\n")
    tool.chmod(0o755)
    link = tmp_path / "bin" / "alias"
    link.symlink_to(tool)
    first = fingerprint(tool)
    assert first == hashlib.sha256(tool.read_bytes()).hexdigest()
    assert fingerprint(link) == first
    tool.write_bytes(b"#!/bin/sh\necho two, a new version\n")   # upgraded in place
    assert fingerprint(tool) == hashlib.sha256(tool.read_bytes()).hexdigest() != first


def test_fingerprints_cover_the_tools_found_on_path_and_leave_out_the_rest(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("cc", "ld"):
        (bin_dir / name).write_bytes(f"#!/bin/sh\n# {name}\n".encode())
        (bin_dir / name).chmod(0o755)
    (bin_dir / "notexec").write_bytes(b"data")
    found = fingerprints(["cc", "ld", "notexec", "nosuchtool"], path_env=str(bin_dir))
    assert set(found) == {"cc", "ld"}
    assert found["cc"] != found["ld"]
    assert fingerprints(["cc"], path_env=os.pathsep.join(["/nonexistent", str(bin_dir)])) == \
        {"cc": found["cc"]}


def test_a_missing_program_is_named_but_not_a_found_one_nor_a_shell_builtin(tmp_path):
    tool = tmp_path / "bin" / "onlyonb"
    tool.parent.mkdir()
    tool.write_bytes(b"#!/bin/sh\ncat\n")
    tool.chmod(0o755)
    here = str(tool.parent)
    assert missing_program("onlyonb {in} > {out}", "/nonexistent") == "onlyonb"
    assert missing_program(["onlyonb", "x"], "/nonexistent") == "onlyonb"
    assert missing_program("onlyonb {in} > {out}", here) is None
    assert missing_program(str(tool), "/nonexistent") is None
    assert missing_program(str(tmp_path / "nothing"), here) == str(tmp_path / "nothing")
    for builtin in ("cd sub && make", "echo hi > {out}", "(cd a; cat x)", "{ cat a; } > b",
                    "./configure", "# a comment"):
        assert missing_program(builtin, "/nonexistent") is None, builtin
