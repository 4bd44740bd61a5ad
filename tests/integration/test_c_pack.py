"""The c pack on a small library and program, with the real cc, ar and cpod.

The project file is the few lines a user writes: the pack's tables name the
archive and the program; nothing else is a rule.  Headers are shared the way
real projects share them: one included by two files, one by a single file.
"""
from __future__ import annotations

import subprocess

from cpodrun import cpod, write

PROJECT = """\
[project]
use = ["c"]
default = ["bin/count"]
[pack.c]
cflags = "-O2 -Wall -Werror -Iinclude"
[pack.c.archives]
"lib/liblist.a" = ["src/list.o"]
[pack.c.programs]
"bin/count" = ["src/main.o", "lib/liblist.a"]
[pack.c.flags]
"src/main.c" = "-DONLY_MAIN=7"
"""

SOURCES = {
    "include/list.h": "#define LIST_MAX 3\nint list_sum(int n);\n",
    "include/fmt.h": "#define FMT \"sum %d, flag %d\\n\"\n",
    "src/list.c": """\
        #include "list.h"
        #ifdef ONLY_MAIN
        #error ONLY_MAIN reached list.c
        #endif
        int list_sum(int n) { int s = 0; for (int i = 1; i <= n && i <= LIST_MAX; i++) s += i; return s; }
        """,
    "src/main.c": """\
        #include <stdio.h>
        #include "list.h"
        #include "fmt.h"
        int main(void) { printf(FMT, list_sum(10), ONLY_MAIN); return 0; }
        """,
}


def project(tmp_path):
    # main.c's own flag: main.c prints it, list.c fails if it sees it
    return write(tmp_path / "count", {**SOURCES, "computepods.toml": PROJECT})


def output(root) -> str:
    return subprocess.run([str(root / "bin/count")], capture_output=True, text=True,
                          timeout=30, check=True).stdout


def test_a_library_and_a_program_build_and_run_from_the_packs_tables(tmp_path):
    root = project(tmp_path)
    run = cpod(root, "build")
    assert run.code == 0, run.err
    assert sorted(run.ran) == ["c.archive.lib_liblist.a:lib/liblist.a",
                               "c.compile.src_main:src/main.o", "c.compile:src/list.o",
                               "c.program.bin_count:bin/count"]
    # the flag reached main.c, and list.c compiled without it (#error otherwise)
    assert output(root) == "sum 6, flag 7\n"
    assert cpod(root, "build").ran == []


def test_a_header_edit_rebuilds_exactly_the_objects_that_include_it(tmp_path):
    root = project(tmp_path)
    assert cpod(root, "build").code == 0
    (root / "include/fmt.h").write_text('#define FMT "total %d (%d)\\n"\n')
    run = cpod(root, "build")
    assert run.code == 0, run.err
    # only main.c includes fmt.h: the archive's object is not recompiled
    assert sorted(run.ran) == ["c.compile.src_main:src/main.o",
                               "c.program.bin_count:bin/count"]
    assert output(root) == "total 6 (7)\n"

    (root / "include/list.h").write_text("#define LIST_MAX 4\nint list_sum(int n);\n")
    run = cpod(root, "build")
    assert run.code == 0, run.err
    assert sorted(run.ran) == ["c.archive.lib_liblist.a:lib/liblist.a",
                               "c.compile.src_main:src/main.o", "c.compile:src/list.o",
                               "c.program.bin_count:bin/count"]
    assert output(root) == "total 10 (7)\n"


def test_the_depfiles_in_the_tree_name_project_paths(tmp_path):
    root = project(tmp_path)
    assert cpod(root, "build").code == 0
    for name, headers in (("list", ["include/list.h"]),
                          ("main", ["include/list.h", "include/fmt.h"])):
        text = (root / f"src/{name}.d").read_text()
        assert text.startswith(f"src/{name}.o: src/{name}.c \\\n"), text
        assert ".computepods" not in text and str(root) not in text
        for header in headers:
            assert f" {header}" in text
    # make reads it as it is: from the root, src/list.o is up to date until
    # the header it names is newer
    make = subprocess.run(["make", "-q", "-f", "src/list.d", "src/list.o"], cwd=root,
                          capture_output=True, text=True, timeout=30)
    assert make.returncode == 0, make.stdout + make.stderr
