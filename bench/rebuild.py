"""Time rebuilds of a built project: nothing changed, or one source edited.

    python bench/rebuild.py noop wide 10000 -j 2 --repeat 5
    python bench/rebuild.py edit layers 2000 10 -j 2 --repeat 5 [--source 0]
    python bench/rebuild.py full wide 1000 -j 2 --repeat 3

Every tool gets its own copy of the project (see gen.py), in
``bench/work/<scenario>-<shape>/<tool>``, and one full build there to make
its outputs and its state; that build is timed once, for information only.
Two cpods take part: ``cpod`` as a user types it, whose first (untimed)
build leaves a pod running in the background that every later build hands
its request to, and ``cpod-cold``, the one-shot build (``CP_POD=0``).  The
pod is stopped (``cpod down``) when the run ends.  Then the tools take turns,
round by round, so that a burst of load from elsewhere on the machine
spreads over all of them:

noop
    time a rebuild with nothing changed.  It must rewrite no output.
    cpod-cold must answer it cold, before starting any server ("cpod: nothing
    to do" on its stderr); cpod must hand it to the pod that is up.
edit
    rewrite layer-0 source number ``--source`` with new content (different
    each round, the same for every tool) and time the rebuild.  Counted:
    the outputs it rewrote (their mtime changed), for cpod also the steps it
    ran (its "run  RULE:OUTPUT" lines on stderr, which it prints when not on
    a terminal), both against the steps the change reaches in the graph
    (gen.downstream).  The outputs must equal the first tool's of the round.
full
    delete every output (nothing else: the state, and cpod's pod, stay) and
    time the rebuild, which must rewrite every output.

The median time of each tool is shown with its ratio to ninja and to make.
A tool whose build fails makes the run exit 1 (its stderr is printed).
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gen  # noqa: E402  (bench/ is not a package)
import run  # noqa: E402

CPOD_COLD_NOOP = "cpod: nothing to do"     # printed only by the no-op that starts no pod
CPOD_RUN_PREFIX = "run  "                  # "run  RULE:OUTPUT", one line per step run
CPOD_STARTED_POD = "started a pod in the background"
CPODS = ("cpod", "cpod-cold")
PEERS = ("make", "ninja", "doit", *CPODS)


@dataclass
class Result:
    tool: str
    argv: list[str] | None
    root: Path
    why: str = ""                          # not available, or how it failed
    first_build_s: float | None = None
    seconds: list[float] = field(default_factory=list)
    rewrote: list[int] = field(default_factory=list)   # outputs whose mtime changed
    ran: list[int] = field(default_factory=list)       # cpod's "run" lines
    problems: list[str] = field(default_factory=list)

    @property
    def active(self) -> bool:
        return self.argv is not None and not self.why


def cpod_steps_run(stderr: str) -> int:
    return sum(line.startswith(CPOD_RUN_PREFIX) for line in stderr.splitlines())


def counts(values: list[int]) -> str:
    """One number when every round agrees, else each round's ("34/35/34")."""
    if not values:
        return "-"
    return str(values[0]) if len(set(values)) == 1 else "/".join(map(str, values))


def edited_content(source: str, round_no: int) -> str:
    """New content for a source: a real change, the same for every tool in a
    round, different from the generated text and from other rounds."""
    line = f"{source} edited in round {round_no}\n"
    return (line * (gen.SOURCE_BYTES // len(line) + 1))[:gen.SOURCE_BYTES]


def set_up(tools: list[str], graph: gen.Graph, work: Path, jobs: int) -> list[Result]:
    """A fresh project per tool and one full build in it."""
    results = []
    for tool in tools:
        root = work / tool
        gen.generate(graph, root)
        result = Result(tool, run.command_for(tool, root, jobs), root)
        results.append(result)
        if result.argv is None:
            result.why = "not available"
            continue
        seconds, proc = run.timed(result.argv, root, env=run.TOOL_ENV.get(tool))
        if proc.returncode != 0:
            result.why = f"first build exited {proc.returncode}:\n{proc.stderr[-run.ERROR_TAIL_CHARS:]}"
            continue
        result.first_build_s = seconds
    return results


def stop_pods(results: list[Result]) -> None:
    """`cpod down` wherever a cpod build may have left a pod."""
    for result in results:
        if result.tool in CPODS and result.argv is not None:
            subprocess.run([str(run.BIN / "cpod"), "-C", str(result.root), "down"],
                           capture_output=True, timeout=60)


def timed(result: Result) -> tuple[float, subprocess.CompletedProcess]:
    seconds, proc = run.timed(result.argv, result.root, env=run.TOOL_ENV.get(result.tool))
    if result.tool == "cpod" and CPOD_STARTED_POD in proc.stderr:
        result.problems.append("the pod of the first build was gone: a new one started")
    return seconds, proc


def noop_round(result: Result, graph: gen.Graph) -> None:
    before = run.outputs_stat(result.root, graph)
    seconds, proc = timed(result)
    if proc.returncode != 0:
        result.why = f"no-op build exited {proc.returncode}:\n{proc.stderr[-run.ERROR_TAIL_CHARS:]}"
        return
    result.seconds.append(seconds)
    after = run.outputs_stat(result.root, graph)
    result.rewrote.append(sum(before[k] != v for k, v in after.items()))
    if result.rewrote[-1]:
        result.problems.append("no-op rewrote outputs")
    if result.tool in CPODS:
        result.ran.append(cpod_steps_run(proc.stderr))
    if result.tool == "cpod-cold" and CPOD_COLD_NOOP not in proc.stderr:
        result.problems.append("not answered cold (no 'nothing to do')")


def edit_round(result: Result, graph: gen.Graph, source: str, content: str,
               expected: set[str], reference: dict[str, str]) -> None:
    (result.root / source).write_text(content)
    before = run.outputs_stat(result.root, graph)
    seconds, proc = timed(result)
    if proc.returncode != 0:
        result.why = f"rebuild exited {proc.returncode}:\n{proc.stderr[-run.ERROR_TAIL_CHARS:]}"
        return
    result.seconds.append(seconds)
    after = run.outputs_stat(result.root, graph)
    rewritten = {k for k, v in after.items() if before[k] != v}
    result.rewrote.append(len(rewritten))
    if rewritten - expected:
        result.problems.append("rewrote outputs the change does not reach")
    if expected - rewritten:
        result.problems.append("left outputs the change reaches")
    if result.tool in CPODS:
        ran = [line[len(CPOD_RUN_PREFIX):].rpartition(":")[2]
               for line in proc.stderr.splitlines() if line.startswith(CPOD_RUN_PREFIX)]
        result.ran.append(len(ran))
        if set(ran) != expected:
            result.problems.append("ran steps other than those the change reaches")
    digest = run.outputs_digest(result.root, graph)
    reference.setdefault("digest", digest)
    reference.setdefault("tool", result.tool)
    if digest != reference["digest"]:
        result.problems.append(f"outputs differ from {reference['tool']}'s")


def full_round(result: Result, graph: gen.Graph, reference: dict[str, str]) -> None:
    """Every output deleted (the state kept): all of it is built again."""
    for step in graph.steps:
        (result.root / step.output).unlink(missing_ok=True)
    seconds, proc = timed(result)
    if proc.returncode != 0:
        result.why = f"full rebuild exited {proc.returncode}:\n{proc.stderr[-run.ERROR_TAIL_CHARS:]}"
        return
    result.seconds.append(seconds)
    made = sum(v is not None for v in run.outputs_stat(result.root, graph).values())
    result.rewrote.append(made)
    if made != len(graph.steps):
        result.problems.append("left outputs missing")
    if result.tool in CPODS:
        result.ran.append(cpod_steps_run(proc.stderr))
    digest = run.outputs_digest(result.root, graph)
    reference.setdefault("digest", digest)
    reference.setdefault("tool", result.tool)
    if digest != reference["digest"]:
        result.problems.append(f"outputs differ from {reference['tool']}'s")


def report(title: str, results: list[Result], expected: int | None) -> str:
    medians = {r.tool: statistics.median(r.seconds) if r.seconds and not r.why else None
               for r in results}
    ninja, make = medians.get("ninja"), medians.get("make")
    header = (f"{'tool':<9} {'time s':>8} {'/ninja':>7} {'/make':>7}   {'rewrote':>7} "
              f"{'ran':>5} {'expect':>6}   {'1st build s':>11}   notes")
    lines = [title, header, "-" * len(header)]
    for r in results:
        if medians[r.tool] is None:
            lines.append(f"{r.tool:<9} {r.why.splitlines()[0] if r.why else '-'}")
            continue
        notes = "; ".join(sorted(set(r.problems))) or "ok"
        lines.append(f"{r.tool:<9} {medians[r.tool]:8.3f} {run.ratio(medians[r.tool], ninja):>7} "
                     f"{run.ratio(medians[r.tool], make):>7}   {counts(r.rewrote):>7} "
                     f"{counts(r.ran):>5} {expected if expected is not None else 0:>6}   "
                     f"{r.first_build_s:11.3f}   {notes}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Time no-op and one-edit rebuilds.")
    parser.add_argument("scenario", choices=["noop", "edit", "full"])
    parser.add_argument("shape", choices=["wide", "layers"])
    parser.add_argument("params", nargs="+", type=int, help="N for wide; N L for layers")
    parser.add_argument("-j", "--jobs", type=int, default=2)
    parser.add_argument("--peers", default=",".join(PEERS),
                        help=f"comma-separated, from {','.join(PEERS)}")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--source", type=int, default=0,
                        help="edit: which layer-0 source to change (index, default 0)")
    args = parser.parse_args(argv)

    graph = gen.graph_for(args.shape, args.params)
    if not 0 <= args.source < len(graph.sources):
        raise SystemExit(f"--source {args.source}: the graph has {len(graph.sources)} sources")
    tools = [t.strip() for t in args.peers.split(",") if t.strip()]
    results: list[Result] = []
    try:
        results = set_up(tools, graph, run.WORK / f"{args.scenario}-{args.shape}", args.jobs)
        source = graph.sources[args.source]
        expected = {s.output for s in gen.downstream(graph, source)}
        for round_no in range(1, args.repeat + 1):
            reference: dict[str, str] = {}
            content = edited_content(source, round_no)
            for result in results:
                if not result.active:
                    continue
                if args.scenario == "noop":
                    noop_round(result, graph)
                elif args.scenario == "full":
                    full_round(result, graph, reference)
                else:
                    edit_round(result, graph, source, content, expected, reference)
    finally:
        stop_pods(results)

    shape = f"{args.shape} {' '.join(map(str, args.params))}: {len(graph.steps)} steps"
    if args.scenario == "noop":
        title = f"no-op rebuild, {shape}, -j {args.jobs}, median of {args.repeat}"
        print(report(title, results, None))
    elif args.scenario == "full":
        title = (f"every output deleted, then a build, {shape}, -j {args.jobs}, median of "
                 f"{args.repeat}")
        print(report(title, results, len(graph.steps)))
    else:
        title = (f"rebuild after {source} (layer 0) changed, {shape}, -j {args.jobs}, "
                 f"median of {args.repeat}; it reaches {len(expected)} steps")
        print(report(title, results, len(expected)))
    for result in results:
        if result.argv is not None and result.why:
            print(f"{result.tool}: {result.why}", file=sys.stderr)
    failed = [r.tool for r in results if r.argv is not None and (r.why or r.problems)]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
