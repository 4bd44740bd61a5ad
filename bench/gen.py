"""Generate a benchmark project: one step graph, written for every tool.

    python bench/gen.py wide 1000 DIR       # 1000 copies, then one step over them all
    python bench/gen.py layers 2000 10 DIR  # 2000 steps in 10 layers

For the same graph it writes ``computepods.toml``, ``Makefile``,
``build.ninja`` and ``dodo.py`` (doit, reading ``graph.json``), with the same
command text in each, plus the sources under ``src/`` and the empty output
directories (make and doit do not create them; creating them up front keeps
the tools comparable).

Shapes:

wide N
    N independent steps ``cp src/fI.txt build/fI.txt`` and one final step
    ``cksum build/*.txt > out/all.txt`` whose inputs are all N outputs.  The
    shell's glob names them (in the same, sorted, order) because the list
    spelt out does not fit one command line at N = 10000: ``sh -c TEXT``
    fails with E2BIG once TEXT passes Linux's 128 KiB limit for a single
    argument, in make, ninja and doit alike.
layers N L
    N steps in L layers of N/L.  Layer 0 copies sources; step j of layer k
    concatenates output j of layer k-1 and, for about half the steps, a second
    output of layer k-1 chosen by a seeded generator.  Every step is thus
    reachable from the last layer, which is the default target.
"""
from __future__ import annotations

import argparse
import json
import random
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

SEED = 20240501               # the layers shape's wiring is the same every run
SOURCE_BYTES = 64             # size of each generated source file


@dataclass
class Step:
    name: str                 # a rule name: unique, usable in toml and doit
    inputs: list[str]
    output: str
    command: str              # the same text for every tool
    template: str             # the command with placeholders, for cpod
    by_pattern: bool = False  # cpod builds it with a pattern rule


@dataclass
class Graph:
    """A step graph; ``steps`` are in build order (a step after its inputs' steps)."""
    shape: str
    sources: list[str]
    steps: list[Step]
    defaults: list[str]       # what a bare build builds
    patterns: list[tuple[str, str, str]]   # (output, input, command) with '%'


def wide(n: int) -> Graph:
    names = [f"f{i:05d}" for i in range(n)]
    steps = [Step(f"copy_{x}", [f"src/{x}.txt"], f"build/{x}.txt",
                  f"cp src/{x}.txt build/{x}.txt", "cp {in} {out}", by_pattern=True)
             for x in names]
    copied = [s.output for s in steps]
    steps.append(Step("sum", copied, "out/all.txt",
                      "cksum build/*.txt > out/all.txt", "cksum build/*.txt > {out}"))
    return Graph(
        shape="wide", sources=[f"src/{x}.txt" for x in names], steps=steps,
        defaults=["out/all.txt"],
        patterns=[("build/%.txt", "src/%.txt", "cp {in} {out}")])


def layers(n: int, n_layers: int) -> Graph:
    if n_layers < 1 or n < n_layers:
        raise SystemExit(f"layers: need 1 <= L <= N, got N={n} L={n_layers}")
    width = n // n_layers
    rng = random.Random(SEED)
    names = [f"s{j:05d}" for j in range(width)]
    steps = [Step(f"l0_{x}", [f"src/{x}.txt"], f"build/l0/{x}.txt",
                  f"cp src/{x}.txt build/l0/{x}.txt", "cp {in} {out}", by_pattern=True)
             for x in names]
    for k in range(1, n_layers):
        for j, x in enumerate(names):
            inputs = [f"build/l{k - 1}/{x}.txt"]
            if rng.random() < 0.5 and width > 1:
                other = rng.choice([y for y in range(width) if y != j])
                inputs.append(f"build/l{k - 1}/{names[other]}.txt")
            out = f"build/l{k}/{x}.txt"
            steps.append(Step(f"l{k}_{x}", inputs, out,
                              f"cat {' '.join(inputs)} > {out}", "cat {in} > {out}"))
    return Graph(
        shape="layers", sources=[f"src/{x}.txt" for x in names], steps=steps,
        defaults=[f"build/l{n_layers - 1}/{x}.txt" for x in names],
        patterns=[("build/l0/%.txt", "src/%.txt", "cp {in} {out}")])


def downstream(graph: Graph, changed: str) -> list[Step]:
    """The steps a change to the file ``changed`` reaches, directly or through
    other steps' outputs: what a correct incremental rebuild runs."""
    dirty, reached = {changed}, []
    for step in graph.steps:                 # in build order, so one sweep will do
        if dirty.intersection(step.inputs):
            dirty.add(step.output)
            reached.append(step)
    return reached


def _toml_list(items: list[str]) -> str:
    return "[" + ", ".join(json.dumps(i) for i in items) + "]"


def write_computepods(graph: Graph, root: Path) -> None:
    lines = ["[project]", f'name = "bench-{graph.shape}"',
             f"default = {_toml_list(graph.defaults)}", ""]
    for i, (out, inp, command) in enumerate(graph.patterns):
        lines += ["[[rule]]", f'name = "pattern{i}"', f"inputs = {_toml_list([inp])}",
                  f"outputs = {_toml_list([out])}", f"command = {json.dumps(command)}", ""]
    for step in graph.steps:
        if step.by_pattern:
            continue
        lines += ["[[rule]]", f"name = {json.dumps(step.name)}",
                  f"inputs = {_toml_list(step.inputs)}",
                  f"outputs = {_toml_list([step.output])}",
                  f"command = {json.dumps(step.template)}", ""]
    (root / "computepods.toml").write_text("\n".join(lines))


def write_makefile(graph: Graph, root: Path) -> None:
    lines = [".SUFFIXES:", "MAKEFLAGS += --no-builtin-rules", "",
             f"all: {' '.join(graph.defaults)}", ""]
    for step in graph.steps:
        lines += [f"{step.output}: {' '.join(step.inputs)}", f"\t{step.command}"]
    (root / "Makefile").write_text("\n".join(lines) + "\n")


def write_ninja(graph: Graph, root: Path) -> None:
    lines = ["rule run", "  command = $cmd", ""]
    for step in graph.steps:
        lines += [f"build {step.output}: run {' '.join(step.inputs)}",
                  f"  cmd = {step.command}"]
    lines += ["", f"default {' '.join(graph.defaults)}"]
    (root / "build.ninja").write_text("\n".join(lines) + "\n")


DODO = '''\
"""doit tasks for the benchmark graph in graph.json (written by bench/gen.py)."""
import json

DOIT_CONFIG = {"default_tasks": ["step"], "verbosity": 0}
STEPS = json.load(open("graph.json"))["steps"]


def task_step():
    for step in STEPS:
        yield {"name": step["name"], "actions": [step["command"]],
               "file_dep": step["inputs"], "targets": [step["output"]]}
'''


def write_doit(graph: Graph, root: Path) -> None:
    (root / "graph.json").write_text(json.dumps(
        {"shape": graph.shape, "steps": [asdict(s) for s in graph.steps]}))
    (root / "dodo.py").write_text(DODO)


def generate(graph: Graph, root: Path) -> None:
    """Write the project afresh into ``root`` (removed first)."""
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    for i, src in enumerate(graph.sources):
        path = root / src
        path.parent.mkdir(parents=True, exist_ok=True)
        line = f"{src} {i}\n"
        path.write_text((line * (SOURCE_BYTES // len(line) + 1))[:SOURCE_BYTES])
    for step in graph.steps:
        (root / step.output).parent.mkdir(parents=True, exist_ok=True)
    write_computepods(graph, root)
    write_makefile(graph, root)
    write_ninja(graph, root)
    write_doit(graph, root)


def graph_for(shape: str, params: list[int]) -> Graph:
    if shape == "wide" and len(params) == 1:
        return wide(params[0])
    if shape == "layers" and len(params) == 2:
        return layers(*params)
    raise SystemExit(f"unknown shape {shape} {params}: use 'wide N' or 'layers N L'")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("shape", choices=["wide", "layers"])
    parser.add_argument("params", nargs="+", help="N, or N L")
    args = parser.parse_args(argv)
    *numbers, out = args.params
    graph = graph_for(args.shape, [int(x) for x in numbers])
    generate(graph, Path(out))
    print(f"{args.shape}: {len(graph.steps)} steps written to {out}")


if __name__ == "__main__":
    main()
