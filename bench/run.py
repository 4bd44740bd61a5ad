"""Time computepods against its peers on a generated project.

    python bench/run.py wide 1000 -j 2
    python bench/run.py layers 2000 10 -j 2 --peers make,ninja --repeat 5

The project is generated into ``bench/work/<shape>`` (see gen.py).  For each
tool: clean, time a full build, then time a no-op rebuild; repeated (tools
taking turns), and the median of each is shown with its ratio to ninja and to make.  Each build is
checked: its outputs must equal the first tool's, and a no-op rebuild must
not touch an output.  A tool that is not installed is reported as "not
available"; a tool whose build fails makes the run exit 1, and so does one
that hangs: it is stopped after BUILD_TIMEOUT_S.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gen  # noqa: E402  (bench/ is not a package)

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / "bench" / "work"
VENV_BIN = REPO / ".venv" / "bin"
BIN = VENV_BIN if VENV_BIN.is_dir() else Path(sys.executable).parent
ALL_PEERS = ("make", "ninja", "doit", "cpod")
# cpod as a user types it leaves a pod running (issue 13); "cpod-cold" is the
# one-shot build (CP_POD=0).  This script cleans the state between rounds, which
# would stop a pod each time, so its "cpod" is the one-shot build too; a pod's
# builds are timed by rebuild.py, which keeps a project per tool.
TOOL_ENV = {"cpod": {"CP_POD": "1"}, "cpod-cold": {"CP_POD": "0"}}
STATE = (".ninja_log", ".ninja_deps", ".doit.db", ".doit.db.dat", ".doit.db.dir",
         ".doit.db.bak", ".computepods")
ERROR_TAIL_CHARS = 2000
BUILD_TIMEOUT_S = 900         # seconds; a build still running then has hung
STOP_GRACE_S = 30             # seconds between SIGTERM and SIGKILL


@dataclass
class Result:
    tool: str
    available: bool = True
    why: str = ""                        # not available, or how it failed
    full_s: list[float] = field(default_factory=list)
    noop_s: list[float] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.available and not self.why and not self.problems


def command_for(tool: str, root: Path, jobs: int) -> list[str] | None:
    """The build command of a tool, or None when it is not installed."""
    j = str(jobs)
    if tool == "make":
        exe = shutil.which("make")
        return [exe, "-C", str(root), "-j", j] if exe else None
    if tool == "ninja":
        exe = shutil.which("ninja")
        return [exe, "-C", str(root), "-j", j] if exe else None
    if tool == "doit":
        exe = BIN / "doit"
        # Threads, not processes: doit's commands are subprocesses anyway, and
        # -P process measured no faster here (wide 1000: 3.9 s vs 3.3 s).
        return [str(exe), "-n", j, "-P", "thread"] if exe.exists() else None
    if tool in ("cpod", "cpod-cold"):
        exe = BIN / "cpod"
        # Compile the package as an install would: with PYTHONDONTWRITEBYTECODE
        # set (as in some CI shells) every cpod run would compile each module
        # it imports that changed since its .pyc was written.
        importable = subprocess.run([str(BIN / "python"), "-m", "compileall", "-q",
                                     str(REPO / "computepods")],
                                    capture_output=True).returncode == 0 and \
            subprocess.run([str(BIN / "python"), "-c", "import computepods.cli"],
                           capture_output=True).returncode == 0
        return [str(exe), "-C", str(root), "build", "-j", j] if exe.exists() and importable else None
    raise SystemExit(f"unknown tool {tool!r}: choose from {', '.join(ALL_PEERS)}, cpod-cold")


def clean(root: Path, graph: gen.Graph) -> None:
    for step in graph.steps:
        (root / step.output).unlink(missing_ok=True)
    for name in STATE:
        path = root / name
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


def outputs_digest(root: Path, graph: gen.Graph) -> str:
    digest = hashlib.sha256()
    for step in graph.steps:
        path = root / step.output
        digest.update(step.output.encode() + b"\0")
        digest.update(path.read_bytes() if path.exists() else b"<missing>")
    return digest.hexdigest()


def outputs_stat(root: Path, graph: gen.Graph) -> dict[str, int | None]:
    stats = {}
    for step in graph.steps:
        try:
            stats[step.output] = os.stat(root / step.output).st_mtime_ns
        except FileNotFoundError:
            stats[step.output] = None
    return stats


def timed(argv: list[str], root: Path, timeout_s: float = BUILD_TIMEOUT_S,
          env: dict[str, str] | None = None) -> tuple[float, subprocess.CompletedProcess]:
    """Run a build and time it.  One that hangs is stopped as a terminal's
    Ctrl-C would stop it, its process group signalled (SIGTERM: cpod then
    stops its pod), and reported as failed with "timed out" at the end of
    its stderr, so that one hang does not stall the whole benchmark run."""
    start = time.perf_counter()
    environ = {**os.environ, **env} if env else None
    with subprocess.Popen(argv, cwd=root, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True, start_new_session=True,
                          env=environ) as proc:
        try:
            _, stderr = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                _, stderr = proc.communicate(timeout=STOP_GRACE_S)
                stderr += f"\nbench: timed out after {timeout_s:.0f} s; stopped by SIGTERM"
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                _, stderr = proc.communicate()
                stderr += (f"\nbench: timed out after {timeout_s:.0f} s; SIGTERM did not stop "
                           f"it in {STOP_GRACE_S} s, killed")
    seconds = time.perf_counter() - start
    return seconds, subprocess.CompletedProcess(argv, proc.returncode, None, stderr)


ONE_SHOT = TOOL_ENV["cpod-cold"]     # the rounds clean the state: no pod would last


def one_round(result: Result, argv: list[str], root: Path, graph: gen.Graph,
              reference: dict[str, str]) -> None:
    """Clean, time a full build, check it, time a no-op rebuild, check it."""
    clean(root, graph)
    seconds, proc = timed(argv, root, env=ONE_SHOT)
    if proc.returncode != 0:
        result.why = f"full build exited {proc.returncode}:\n{proc.stderr[-ERROR_TAIL_CHARS:]}"
        return
    result.full_s.append(seconds)
    digest = outputs_digest(root, graph)
    reference.setdefault("digest", digest)
    reference.setdefault("tool", result.tool)
    if digest != reference["digest"]:
        result.problems.append(f"outputs differ from {reference['tool']}'s")
    before = outputs_stat(root, graph)
    seconds, proc = timed(argv, root, env=ONE_SHOT)
    if proc.returncode != 0:
        result.why = f"no-op build exited {proc.returncode}:\n{proc.stderr[-ERROR_TAIL_CHARS:]}"
        return
    result.noop_s.append(seconds)
    touched = sum(before[k] != v for k, v in outputs_stat(root, graph).items())
    if touched:
        result.problems.append(f"no-op rebuild touched {touched} outputs")


def bench(tools: list[str], root: Path, graph: gen.Graph, jobs: int,
          repeat: int) -> list[Result]:
    """Rounds go tool by tool, repeat by repeat, so a burst of load from
    elsewhere on the machine spreads over every tool instead of one."""
    results, commands = [], {}
    for tool in tools:
        result = Result(tool)
        commands[tool] = command_for(tool, root, jobs)
        if commands[tool] is None:
            result.available, result.why = False, "not available"
        results.append(result)
    reference: dict[str, str] = {}
    for _ in range(repeat):
        for result in results:
            if result.available and not result.why:
                one_round(result, commands[result.tool], root, graph, reference)
    clean(root, graph)
    for result in results:
        if result.available and result.why:
            print(f"{result.tool}: {result.why}", file=sys.stderr)
    return results


def ratio(value: float | None, base: float | None) -> str:
    if value is None or not base:
        return "-"
    return f"{value / base:.2f}x"


def report(title: str, results: list[Result]) -> str:
    medians = {r.tool: (statistics.median(r.full_s) if r.full_s and not r.why else None,
                        statistics.median(r.noop_s) if r.noop_s and not r.why else None)
               for r in results}
    ninja = medians.get("ninja", (None, None))
    make = medians.get("make", (None, None))
    header = (f"{'tool':<6} {'full s':>8} {'/ninja':>7} {'/make':>7}   "
              f"{'no-op s':>8} {'/ninja':>7} {'/make':>7}   notes")
    lines = [title, header, "-" * len(header)]
    for r in results:
        full, noop = medians[r.tool]
        if full is None:
            lines.append(f"{r.tool:<6} {r.why.splitlines()[0] if r.why else '-'}")
            continue
        notes = "; ".join(sorted(set(r.problems))) or "ok"
        lines.append(f"{r.tool:<6} {full:8.3f} {ratio(full, ninja[0]):>7} "
                     f"{ratio(full, make[0]):>7}   {noop:8.3f} {ratio(noop, ninja[1]):>7} "
                     f"{ratio(noop, make[1]):>7}   {notes}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Time build tools on a generated project.")
    parser.add_argument("shape", choices=["wide", "layers"])
    parser.add_argument("params", nargs="+", type=int, help="N for wide; N L for layers")
    parser.add_argument("-j", "--jobs", type=int, default=2)
    parser.add_argument("--peers", default=",".join(ALL_PEERS),
                        help=f"comma-separated, from {','.join(ALL_PEERS)}")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the raw timings here")
    args = parser.parse_args(argv)

    graph = gen.graph_for(args.shape, args.params)
    root = WORK / args.shape
    gen.generate(graph, root)
    tools = [t.strip() for t in args.peers.split(",") if t.strip()]
    results = bench(tools, root, graph, args.jobs, args.repeat)

    title = (f"{args.shape} {' '.join(map(str, args.params))}: {len(graph.steps)} steps, "
             f"-j {args.jobs}, median of {args.repeat}")
    print(report(title, results))
    if args.json:
        args.json.write_text(json.dumps(
            {"title": title, "results": [r.__dict__ for r in results]}, indent=2))
    # A peer's quirk (ninja's no-op rewriting outputs under load) is a note;
    # a peer that cannot build, or any problem of cpod's, fails the run.
    failed = [r.tool for r in results
              if r.available and (r.why or (r.tool == "cpod" and not r.ok))]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
