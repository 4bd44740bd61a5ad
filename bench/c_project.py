"""Time a C library plus a program, built by the c pack, against make -j2.

    python bench/c_project.py [--sources 30] [-j 2] [--repeat 5] [--peers make,cpod,cpod-cold]

The project is generated (the same for every tool) into
``bench/work/c-project/<tool>``: ``--sources`` C files, most in a library
(``lib/libcore.a``) in six groups, four in the program (``bin/app``); every
file includes ``include/common.h``, a library file its group's header, and
every third one a second group's header too, as real code shares headers.
make gets the Makefile a careful user writes (``-MD -MP`` depfiles,
``-include``d); cpod the c pack's tables, ten lines.  Then, round by round,
the tools taking turns:

clean
    ``make clean`` / ``cpod clean`` (not timed), then a build, timed.  For
    ``cpod`` as a user types it the build starts the background pod; for
    ``cpod-cold`` (``CP_POD=0``) it runs alone.
no-op
    a build with nothing changed: it must rewrite no output.
header
    one group's header (``include/g2.h``) changes a value; the build must
    recompile exactly the objects that include it and relink.
.c edit
    one library source changes a constant: one object, the archive, the link.

Each rebuild's rewritten outputs (mtime changed) are checked against what
the change reaches, cpod's "run  RULE:OUTPUT" lines too, and the program's
output must equal make's.  Medians are shown with the ratio to make; a tool
whose build fails or goes wrong makes the run exit 1.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run  # noqa: E402  (bench/ is not a package)

WORK = run.WORK / "c-project"
GROUPS = 6                 # library groups, one header each
APP_SOURCES = 4            # main.c and three more in the program
EDITED_HEADER = "include/g2.h"
SCENARIOS = ("clean", "no-op", "header", ".c edit")
CPOD_RUN_PREFIX = "run  "
CFLAGS = "-O2 -Wall -Iinclude"


@dataclass
class Project:
    """What the generator made: sources, and which files include each header."""
    library: list[str]
    app: list[str]
    includers: dict[str, list[str]]        # header -> the .c files including it

    @property
    def objects(self) -> list[str]:
        return [c[:-2] + ".o" for c in (*self.library, *self.app)]

    @property
    def outputs(self) -> list[str]:
        return [*self.objects, "lib/libcore.a", "bin/app"]


@dataclass
class Result:
    tool: str
    argv: list[str] | None
    root: Path
    why: str = ""
    seconds: dict[str, list[float]] = field(default_factory=lambda: {s: [] for s in SCENARIOS})
    problems: list[str] = field(default_factory=list)


def library_source(group: int, i: int, other: int | None) -> str:
    extra = f'#include "g{other}.h"\n' if other is not None else ""
    mix = f" + G{other}_SCALE" if other is not None else ""
    return (f'#include "common.h"\n#include "g{group}.h"\n{extra}\n'
            f"int g{group}_f{i}(int x)\n{{\n"
            "    int s = 1;\n"
            f"    for (int k = 0; k < x % 7 + 3; k++)\n"
            f"        s = mix(s, k * G{group}_SCALE{mix});\n"
            f"    return s;\n}}\n")


def generate(root: Path, n_sources: int) -> Project:
    """The project for every tool: sources, headers, the Makefile, computepods.toml."""
    shutil.rmtree(root, ignore_errors=True)
    n_lib = n_sources - APP_SOURCES
    files: dict[str, str] = {
        "include/common.h": ("#ifndef COMMON_H\n#define COMMON_H\n"
                             "static inline int mix(int a, int b) "
                             "{ return (a * 31 + b) % 1000003; }\n#endif\n")}
    includers: dict[str, list[str]] = {"include/common.h": []}
    library, decls = [], []
    for g in range(GROUPS):
        files[f"include/g{g}.h"] = header(g, g + 2)
        includers[f"include/g{g}.h"] = []
    for n in range(n_lib):
        g, i = n % GROUPS, n // GROUPS
        other = (g + 1) % GROUPS if n % 3 == 0 else None
        path = f"src/lib/g{g}_f{i}.c"
        files[path] = library_source(g, i, other)
        library.append(path)
        for h in ("common", f"g{g}", *([f"g{other}"] if other is not None else [])):
            includers[f"include/{h}.h"].append(path)
        decls.append(f"int g{g}_f{i}(int x);")
    files["include/core.h"] = "\n".join(decls) + "\n"
    calls = " + ".join(f"g{n % GROUPS}_f{n // GROUPS}(x)" for n in range(n_lib))
    app = [f"src/app/part{k}.c" for k in range(1, APP_SOURCES)] + ["src/app/main.c"]
    for k in range(1, APP_SOURCES):
        files[f"src/app/part{k}.c"] = (f'#include "common.h"\n#include "core.h"\n'
                                       f"int part{k}(int x) {{ return mix({calls}, {k}); }}\n")
        includers["include/common.h"].append(f"src/app/part{k}.c")
    parts = " + ".join(f"part{k}(x)" for k in range(1, APP_SOURCES))
    protos = " ".join(f"int part{k}(int);" for k in range(1, APP_SOURCES))
    files["src/app/main.c"] = (f"#include <stdio.h>\n#include \"common.h\"\n{protos}\n"
                               "int main(void) { long s = 0; for (int x = 0; x < 50; x++) "
                               f"s += {parts}; printf(\"%ld\\n\", s); return 0; }}\n")
    includers["include/common.h"].append("src/app/main.c")
    project = Project(library, app, includers)
    files["Makefile"] = makefile(project)
    files["computepods.toml"] = project_file(project)
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return project


def header(group: int, scale: int) -> str:
    return f"#ifndef G{group}_H\n#define G{group}_H\n#define G{group}_SCALE {scale}\n#endif\n"


def makefile(p: Project) -> str:
    objs = lambda srcs: " ".join(s[:-2] + ".o" for s in srcs)  # noqa: E731
    return (f"CFLAGS = {CFLAGS}\nLIB_OBJS = {objs(p.library)}\nAPP_OBJS = {objs(p.app)}\n"
            "bin/app: $(APP_OBJS) lib/libcore.a\n\t@mkdir -p bin\n"
            "\tcc $(APP_OBJS) lib/libcore.a -o $@\n"
            "lib/libcore.a: $(LIB_OBJS)\n\t@mkdir -p lib\n\trm -f $@ && ar rcsD $@ $(LIB_OBJS)\n"
            "%.o: %.c\n\tcc $(CFLAGS) -MD -MP -MF $*.d -c $< -o $@\n"
            "clean:\n\trm -f $(LIB_OBJS) $(APP_OBJS) $(LIB_OBJS:.o=.d) $(APP_OBJS:.o=.d) "
            "lib/libcore.a bin/app\n"
            ".PHONY: clean\n-include $(LIB_OBJS:.o=.d) $(APP_OBJS:.o=.d)\n")


def project_file(p: Project) -> str:
    quoted = lambda srcs: ", ".join(f'"{s[:-2]}.o"' for s in srcs)  # noqa: E731
    return (f'[project]\nuse = ["c"]\ndefault = ["bin/app"]\n[pack.c]\ncflags = "{CFLAGS}"\n'
            f'[pack.c.archives]\n"lib/libcore.a" = [{quoted(p.library)}]\n'
            f'[pack.c.programs]\n"bin/app" = [{quoted(p.app)}, "lib/libcore.a"]\n')


def clean(result: Result) -> None:
    argv = (["make", "-C", str(result.root), "clean"] if result.tool == "make" else
            [str(run.BIN / "cpod"), "-C", str(result.root), "clean"])
    done = subprocess.run(argv, capture_output=True, text=True, timeout=run.BUILD_TIMEOUT_S)
    if done.returncode != 0:
        result.why = f"clean exited {done.returncode}:\n{done.stderr[-run.ERROR_TAIL_CHARS:]}"


def build(result: Result, scenario: str, project: Project, expected: set[str] | None) -> None:
    """Time one build; check the outputs it rewrote (None: all of them)."""
    root = result.root
    before = {o: mtime(root / o) for o in project.outputs}
    seconds, proc = run.timed(result.argv, root, env=run.TOOL_ENV.get(result.tool))
    if proc.returncode != 0:
        result.why = f"{scenario} build exited {proc.returncode}:\n{proc.stderr[-run.ERROR_TAIL_CHARS:]}"
        return
    result.seconds[scenario].append(seconds)
    rewrote = {o for o in project.outputs if mtime(root / o) != before[o]}
    want = set(project.outputs) if expected is None else expected
    if rewrote != want:
        result.problems.append(f"{scenario}: rewrote {len(rewrote)} outputs, not {len(want)}")
    if result.tool.startswith("cpod") and scenario != "clean":
        ran = {line.rpartition(":")[2] for line in proc.stderr.splitlines()
               if line.startswith(CPOD_RUN_PREFIX)}
        if ran != want:
            result.problems.append(f"{scenario}: ran {len(ran)} steps, not {len(want)}")


def mtime(path: Path) -> int | None:
    try:
        return os.stat(path).st_mtime_ns
    except FileNotFoundError:
        return None


def program_output(result: Result) -> str:
    return subprocess.run([str(result.root / "bin/app")], capture_output=True, text=True,
                          timeout=60).stdout


def one_round(result: Result, project: Project, round_no: int, outputs: dict[str, str]) -> None:
    root = result.root
    header_reach = {c[:-2] + ".o" for c in project.includers[EDITED_HEADER]}
    edited = project.library[1]
    steps = [
        ("clean", None, None),
        ("no-op", None, set()),
        ("header", lambda: (root / EDITED_HEADER).write_text(header(2, 100 + round_no)),
         header_reach | {"lib/libcore.a", "bin/app"}),
        (".c edit", lambda: (root / edited).write_text(re.sub(
            r"int s = \d+;", f"int s = {round_no + 1};", (root / edited).read_text())),
         {edited[:-2] + ".o", "lib/libcore.a", "bin/app"}),
    ]
    for scenario, change, expected in steps:
        if scenario == "clean":
            clean(result)
        elif change is not None:
            change()
        if result.why:
            return
        build(result, scenario, project, expected)
        if result.why:
            return
        out = program_output(result)
        reference = outputs.setdefault(scenario, out)
        if out != reference:
            result.problems.append(f"{scenario}: the program prints other than make's")


def report(title: str, results: list[Result]) -> str:
    med = {r.tool: {s: statistics.median(v) if v and not r.why else None
                    for s, v in r.seconds.items()} for r in results}
    make = med.get("make", {})
    header_line = f"{'tool':<9} " + " ".join(f"{s + ' s':>10} {'/make':>6}" for s in SCENARIOS)
    lines = [title, header_line + "   notes", "-" * (len(header_line) + 8)]
    for r in results:
        if r.why or r.argv is None:
            lines.append(f"{r.tool:<9} {r.why.splitlines()[0] if r.why else 'not available'}")
            continue
        cells = " ".join(f"{med[r.tool][s]:10.3f} {run.ratio(med[r.tool][s], make.get(s)):>6}"
                         for s in SCENARIOS)
        lines.append(f"{r.tool:<9} {cells}   {'; '.join(sorted(set(r.problems))) or 'ok'}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="A C library and program: cpod vs make.")
    parser.add_argument("--sources", type=int, default=30)
    parser.add_argument("-j", "--jobs", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--peers", default="make,cpod,cpod-cold")
    args = parser.parse_args(argv)
    if args.sources < APP_SOURCES + GROUPS * 2:
        raise SystemExit(f"--sources: at least {APP_SOURCES + GROUPS * 2}")
    tools = [t.strip() for t in args.peers.split(",") if t.strip()]
    results: list[Result] = []
    project = None
    try:
        for tool in tools:
            root = WORK / tool
            project = generate(root, args.sources)
            result = Result(tool, run.command_for(tool, root, args.jobs), root)
            if result.argv is None:
                result.why = "not available"
            results.append(result)
        for round_no in range(1, args.repeat + 1):
            outputs: dict[str, str] = {}
            for result in results:
                if result.argv is not None and not result.why:
                    one_round(result, project, round_no, outputs)
    finally:
        for result in results:
            if result.tool.startswith("cpod") and result.argv is not None:
                subprocess.run([str(run.BIN / "cpod"), "-C", str(result.root), "down"],
                               capture_output=True, timeout=60)
    title = (f"C project: {args.sources} sources ({len(project.library)} in lib/libcore.a), "
             f"-j {args.jobs}, median of {args.repeat}")
    print(report(title, results))
    for result in results:
        if result.why and result.argv is not None:
            print(f"{result.tool}: {result.why}", file=sys.stderr)
    return 1 if any(r.argv is not None and (r.why or r.problems) for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
