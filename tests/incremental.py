"""Random small projects and the edits a stat cache can get wrong, for the
property tests (tests/integration/test_incremental_property.py, test_hot_pod.py).
What they generate, and why, is said in test_incremental_property.py.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from hypothesis import event
from hypothesis import strategies as st

from cpodrun import Run, cpod

MAX_PASSES = 8                        # every generated group settles within 6 passes
# The racily-clean edit simulates a filesystem with 2-second timestamps
# (FAT): a write's mtime is its time rounded down to the tick, so a rewrite
# in the tick of the last check keeps size, mtime and inode.
TICK_NS = 2_000_000_000
BUILD_ENV = {"LC_ALL": "C"}           # `sort` must order the same way in both builds

SOURCE_ALPHABET = "abcxyzABC 01\n"
SOURCE_TEXT = st.text(alphabet=SOURCE_ALPHABET, max_size=12)
FIRST_TEXT = st.text(alphabet=SOURCE_ALPHABET, min_size=1, max_size=12)


def literal(text: str) -> str:
    """Text to put in a command as is: braces are placeholders there."""
    return text.replace("{", "{{").replace("}", "}}")


# --- the tools the generated steps run ------------------------------------

REVERSE_PY = """
import sys
out, *ins = sys.argv[1:]
text = "".join(open(p).read() for p in ins)
open(out, "w").write(text[::-1])
"""

SUMMARY_PY = """
import hashlib, sys
out, *ins = sys.argv[1:]
with open(out, "w") as f:
    for p in ins:
        data = open(p, "rb").read()
        f.write(p + " " + str(len(data)) + " " + hashlib.sha256(data).hexdigest()[:12] + "\\n")
"""

# A cyclic step: argv is OUT AUX STATE INPUT...; STATE is the circulating
# file it reads back (its own AUX, or what its partner made of AUX), and it
# may be missing on the first pass.
CLIMB_PY = """
import sys
out, aux, state, *ins = sys.argv[1:]
try:
    prev = open(state).read()
except FileNotFoundError:
    prev = "missing"
text = "".join(open(p).read() for p in ins)
k = 1 + sum(text.encode()) % 3
nxt = "1" if prev == "missing" else str(min(int(prev) + 1, k))
open(aux, "w").write(nxt)
open(out, "w").write(text + "#" + nxt + "\\n")
"""

TABLE_PY = """
import json, sys
out, aux, table, state, *ins = sys.argv[1:]
try:
    prev = open(state).read()
except FileNotFoundError:
    prev = "missing"
nxt = json.loads(table)[prev]
open(aux, "w").write(nxt)
text = "".join(open(p).read() for p in ins)
open(out, "w").write(nxt + ":" + text)
"""

# The partner in a two-step group: copies AUX back to STATE; AUX may be
# missing on the first pass, as a .bbl is before bibtex has run.
RELAY_PY = """
import sys
aux, state = sys.argv[1:]
try:
    text = open(aux).read()
except FileNotFoundError:
    text = "missing"
open(state, "w").write(text)
"""

DAG_COMMANDS: dict[str, str | list[str]] = {
    "cat": "cat {in} > {out}",
    "upper": "cat {in} | tr a-z A-Z > {out}",
    "sort": "cat {in} | sort > {out}",
    "reverse": ["python3", "-c", literal(REVERSE_PY), "{out}", "{in}"],
    "summary": ["python3", "-c", literal(SUMMARY_PY), "{out}", "{in}"],
}


# --- generated projects -----------------------------------------------------

@dataclass(frozen=True)
class Step:
    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    kind: str                                   # which tool: "sort", "climb", ...
    command: str | tuple[str, ...] = field(repr=False)
    max_passes: int | None = field(default=None, repr=False)

    def toml(self) -> str:
        def value(v):
            if isinstance(v, (list, tuple)):
                return "[" + ", ".join(value(x) for x in v) + "]"
            return json.dumps(v)         # a JSON string is a TOML basic string
        lines = ["[[rule]]", f"name = {value(self.name)}", f"inputs = {value(self.inputs)}",
                 f"outputs = {value(self.outputs)}", f"command = {value(self.command)}"]
        if self.max_passes is not None:
            lines.append(f"max_passes = {self.max_passes}")
        return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Project:
    sources: dict[str, str]
    steps: tuple[Step, ...]
    cycle: str                  # "none", or the group's shape and kind: "pair climb"

    @property
    def outputs(self) -> list[str]:
        return [out for step in self.steps for out in step.outputs]

    def toml(self) -> str:
        head = ("[project]\nname = \"prop\"\n"
                f"default = {json.dumps(self.outputs)}\n\n")
        return head + "\n".join(step.toml() for step in self.steps)

    def write(self, root: Path) -> Path:
        root.mkdir(parents=True)
        (root / "computepods.toml").write_text(self.toml())
        for name, text in self.sources.items():
            path = root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        return root


@st.composite
def converging_tables(draw) -> dict[str, str]:
    """prev -> next over four states and "missing"; every chain ends in one state."""
    states = draw(st.permutations(["p", "q", "r", "s"]))
    table = {states[0]: states[0]}
    for i, state in enumerate(states[1:], start=1):
        table[state] = draw(st.sampled_from(states[:i]))
    table["missing"] = draw(st.sampled_from(states))
    return table


@st.composite
def cyclic_group(draw, index: int, available: list[str]) -> tuple[str, list[Step]]:
    """One converging cyclic group: a step reading back its own state (shape
    "self"), or two steps passing it round (shape "pair", like latex and bibtex)."""
    shape = draw(st.sampled_from(["self", "pair"]))
    kind = draw(st.sampled_from(["climb", "table"]))
    ins = draw(st.lists(st.sampled_from(available), min_size=1, max_size=2, unique=True))
    out, aux = f"out/s{index}.txt", f"out/s{index}.aux"
    state = aux if shape == "self" else f"out/s{index}.state"
    if kind == "climb":
        command = ("python3", "-c", literal(CLIMB_PY), "{out[0]}", "{out[1]}", "{in}")
    else:
        table = json.dumps(draw(converging_tables()), sort_keys=True)
        command = ("python3", "-c", literal(TABLE_PY), "{out[0]}", "{out[1]}",
                   literal(table), "{in}")
    steps = [Step(f"s{index}{kind}", (state, *ins), (out, aux), kind, command, MAX_PASSES)]
    if shape == "pair":
        steps.append(Step(f"s{index}relay", (aux,), (state,), "relay",
                          ("python3", "-c", literal(RELAY_PY), "{in}", "{out}"),
                          MAX_PASSES))
    return f"{shape} {kind}", steps


@st.composite
def projects(draw) -> Project:
    names = draw(st.lists(st.sampled_from("abcdef"), min_size=1, max_size=4, unique=True))
    sources = {f"src/{n}.txt": draw(FIRST_TEXT) for n in names}
    n_steps = draw(st.integers(min_value=3, max_value=10))
    has_cycle = draw(st.integers(min_value=0, max_value=2)) > 0     # two in three
    cycle_at = draw(st.integers(min_value=0, max_value=n_steps - 2)) if has_cycle else None
    available = list(sources)            # what a step may read: sources, earlier outputs
    steps: list[Step] = []
    cycle = "none"
    i = 0
    while len(steps) < n_steps:
        if i == cycle_at:
            cycle, group = draw(cyclic_group(i, available))
        else:
            kind = draw(st.sampled_from(sorted(DAG_COMMANDS)))
            ins = draw(st.lists(st.sampled_from(available), min_size=1, max_size=3,
                                unique=True))
            command = DAG_COMMANDS[kind]
            group = [Step(f"s{i}{kind}", tuple(ins), (f"out/s{i}.txt",), kind,
                          command if isinstance(command, str) else tuple(command))]
        steps.extend(group)
        available.extend(out for step in group for out in step.outputs)
        i += 1
    return Project(sources, tuple(steps), cycle)


# --- edits ------------------------------------------------------------------

@dataclass(frozen=True)
class Edit:
    kind: str        # rewrite | same | touch | recreate | racy
    path: str
    text: str | None = None      # rewrite, recreate, racy's first write: new content
                                 # (None: keep it)
    at: int = 0                  # racy: which character to change in the second write

    def __str__(self) -> str:
        extra = f" {self.text!r}" if self.text is not None else ""
        extra += f" then change char {self.at}" if self.kind == "racy" else ""
        return f"{self.kind} {self.path}{extra}"


def edits_for(project: Project):
    paths = sorted(project.sources)
    one = st.one_of(
        st.builds(Edit, st.just("rewrite"), st.sampled_from(paths), SOURCE_TEXT),
        st.builds(Edit, st.just("same"), st.sampled_from(paths)),
        st.builds(Edit, st.just("touch"), st.sampled_from(paths)),
        st.builds(Edit, st.just("recreate"), st.sampled_from(paths), st.none() | SOURCE_TEXT),
        st.builds(Edit, st.just("racy"), st.sampled_from(paths), st.none() | SOURCE_TEXT,
                  st.integers(min_value=0, max_value=11)),
    )
    return st.lists(one, min_size=2, max_size=4)


def tick_of(ns: int) -> int:
    return ns - ns % TICK_NS


def same_size_change(text: str, at: int) -> str:
    """``text`` with one character replaced by another: same size, new content."""
    i = at % len(text)
    new = SOURCE_ALPHABET[(SOURCE_ALPHABET.index(text[i]) + 1) % len(SOURCE_ALPHABET)]
    return text[:i] + new + text[i + 1:]


# --- building and comparing -------------------------------------------------

def build(root: Path, what: str, history: list[str]) -> Run:
    run = cpod(root, "build", env=BUILD_ENV)
    assert run.code == 0, (
        f"{what} failed (exit {run.code}) after edits {history}:\n{run.err}{run.out}")
    return run


def read_outputs(root: Path, project: Project) -> dict[str, bytes | None]:
    return {out: (root / out).read_bytes() if (root / out).is_file() else None
            for out in project.outputs}


def assert_same_outputs(project: Project, got: dict, want: dict, history: list[str],
                        run: Run) -> None:
    """Every output as a clean build of the same sources makes it."""
    maker = {out: step.name for step in project.steps for out in step.outputs}
    for out in want:
        assert got[out] == want[out], (
            f"{out} (step {maker[out]}): the incremental build left {got[out]!r}, a clean "
            f"build of the same sources makes {want[out]!r}: the incremental build missed "
            f"a change or ran a step on stale inputs.\nEdits so far: {history}\n"
            f"The incremental build ran {run.ran}:\n{run.err}")


def sources_now(root: Path, project: Project) -> tuple[tuple[str, bytes], ...]:
    return tuple((name, (root / name).read_bytes()) for name in sorted(project.sources))


def fresh_copy(root: Path, fresh: Path) -> Path:
    """The project's sources, without outputs or state: for a clean build."""
    shutil.copytree(root, fresh, ignore=shutil.ignore_patterns("out", ".computepods"))
    return fresh


def apply(root: Path, edit: Edit) -> None:
    """Apply every edit but the racy one, which needs a build in the middle."""
    path = root / edit.path
    if edit.kind == "rewrite":
        path.write_text(edit.text)
    elif edit.kind == "same":
        path.write_text(path.read_text())
    elif edit.kind == "touch":
        later = max(time.time_ns(), path.stat().st_mtime_ns + 1)
        os.utime(path, ns=(later, later))
    elif edit.kind == "recreate":
        text = path.read_text() if edit.text is None else edit.text
        path.unlink()
        path.write_text(text)
    else:
        raise AssertionError(f"unknown edit {edit}")


def stamp_tick(root: Path, edit: Edit) -> int:
    """The racy edit's first half: write (or keep) the source and give it the
    mtime a coarse-timestamp filesystem would, the current tick."""
    path = root / edit.path
    if edit.text is not None:
        path.write_text(edit.text)
    tick = tick_of(time.time_ns())
    os.utime(path, ns=(tick, tick))
    return tick


def rewrite_in_tick(root: Path, edit: Edit, tick: int) -> None:
    """The racy edit's second half, right after the build that checked the
    source: change one character in place (same size, same inode) and give
    it the tick of this write.  While that is still the checking build's
    tick, size, mtime and inode are exactly as recorded, and only the
    racily-clean rule can see that the content differs.
    """
    path = root / edit.path
    old = path.read_text()
    if not old:
        event("racy edit of an empty file: the size changes")
        path.write_text("x")
        return
    ino = path.stat().st_ino
    with open(path, "r+") as f:
        f.write(same_size_change(old, edit.at))
    now = tick_of(time.time_ns())
    os.utime(path, ns=(now, now))
    assert path.stat().st_ino == ino, f"{edit.path}: rewriting in place changed the inode"
    event("racy edit: size, mtime and inode unchanged" if now == tick
          else "racy edit: the next tick had begun (mtime changed)")
