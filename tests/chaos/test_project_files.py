"""Battery row: fuzzed project files (Hypothesis over the TOML schema, plus
deep nesting), with `cpod build -n`.

Each example writes a computepods.toml into a fresh project and runs
`cpod build -n` in this process (`computepods.cli.cpod.main`, stderr
captured), so a thousand examples fit in minutes.  The files are mostly
rule tables that are nearly right (names, inputs, outputs, commands,
patterns with `%` and `%%`, aliases and their cycles, packs), each with a
few random mutations; the rest are garbage text, garbage bytes, and TOML
or alias chains nested thousands deep.  Must hold: the exit code is 0, 1
or 2; a failure says why on a `cpod:` line; never a traceback, never an
internal error, never a hang (each run has an alarm).
"""
from __future__ import annotations

import collections
import copy
import itertools
import json
import math
from dataclasses import dataclass

import hypothesis
from hypothesis import HealthCheck, Phase, settings, strategies as st

from cpodrun import cpod_here

ROW = "fuzzed project files (hypothesis over the TOML schema, plus deep nesting), with `-n`"
MUST_HOLD = "exit 0, 1 or 2 with a clear message, never a traceback"
RUN_LIMIT_S = 60            # one `cpod build -n`; more is a hang
SOURCES = {"src/a.txt": "a\n", "src/b.txt": "b\n", "src/50%.txt": "p\n", "-x": "dash\n",
           "sub/c.txt": "c\n", "doc/main.tex": "\\relax\n"}

# --- the strategies -----------------------------------------------------------

NAMES = st.sampled_from(["copy", "all", "c-1", "x.y", "_u", "bad name", "", "a/b", "-n",
                         "é", "latex.pdf", "copy"]) | st.text(max_size=6)
PATHS = st.sampled_from([
    "src/%.txt", "out/%.txt", "out/%.up", "src/a.txt", "src/b.txt", "out/a.txt", "out/all.txt",
    "-x", "out/-x", "src/50%%.txt", "out/50%%.txt", "out/%-100%%.txt", "%%", "%", "%/%",
    "%.x", "%.x.x", "../x", "/etc/passwd", "a/../../b", ".", "", " ", ".computepods/x",
    "computepods.toml", "./out/a.txt", "a\0b", "x" * 300, "d/" * 2100, "sub/c.txt",
    "build/%.o", "build/%.d", "doc/%.tex", "doc/%.pdf", "out/a b.txt",
]) | st.text(alphabet="ab%/.-_ ", max_size=12)
COMMANDS = st.sampled_from([
    "cp {in} {out}", "cat {in} > {out}", "touch {out}", "cp {in[0]} {out[0]}", "echo {stem}",
    "cp {in[3]} {out}", "cp {bogus} {out}", "x { y", "x } y", "{{literal}} {out}", "",
    " ", "cd {dir} && touch {out}", "touch {scratch}/x {out}", "echo a\0b > {out}",
]) | st.lists(st.sampled_from(["cp", "{in}", "{out}", "{in[0]}", "{out[9]}", "-x", "a\0b",
                               "", "{stem}", "{scratch}"]), max_size=4)
SCALARS = (st.booleans() | st.integers(-3, 10**6) | st.floats(allow_infinity=True,
                                                              allow_nan=True) | st.text(max_size=8))
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=6)
RULE = st.fixed_dictionaries(
    {"name": NAMES, "outputs": st.lists(PATHS, max_size=3), "command": COMMANDS},
    optional={"inputs": st.lists(PATHS, max_size=3), "depfile": PATHS,
              "discover": st.sampled_from(["fls", "aux"]),
              "timeout": st.sampled_from([1, 0, -1, 2.5, "10", math.nan]),
              "max_passes": st.sampled_from([1, 0, 5, 2.5, True]),
              "cwd": st.sampled_from(["{dir}", "{stem}", "/tmp", "..", "sub", "{in}"]),
              "parts": st.dictionaries(PATHS, st.sampled_from(["bibtex", "x"]), max_size=2)})
TARGETS = st.lists(PATHS | NAMES, max_size=2)
GOOD_RULES = ({"name": "up", "inputs": ["src/%.txt"], "outputs": ["out/%.txt"],
               "command": "cp {in} {out}"},
              {"name": "all", "inputs": ["out/a.txt", "out/b.txt"], "outputs": ["out/all.txt"],
               "command": "cat {in} > {out}"})


@dataclass
class Case:
    source: bytes          # the computepods.toml
    targets: list[str]

    def __repr__(self) -> str:      # a deep case is 100 kB: show its start
        return f"Case({len(self.source)} bytes: {self.source[:200]!r}, {self.targets!r})"


def toml(value) -> str:
    """A TOML value, inline (tables as `{...}`): enough to write any file."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") \
            if math.isinf(value) else repr(value)
    if isinstance(value, str):        # a TOML basic string: JSON's escapes, and DEL's
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, list):
        return "[" + ", ".join(toml(v) for v in value) + "]"
    return "{" + ", ".join(f"{toml(k)} = {toml(v)}" for k, v in value.items()) + "}"


def places(data, found: list) -> list:
    """Every (container, key) in a nested value, for a mutation to land on."""
    items = data.items() if isinstance(data, dict) else enumerate(data)
    for key, value in list(items):
        found.append((data, key))
        if isinstance(value, (dict, list)):
            places(value, found)
    return found


@st.composite
def schema_case(draw) -> Case:
    data: dict = {"rule": draw(st.lists(RULE, min_size=1, max_size=4))}
    good = draw(st.booleans())        # half start from a project that builds
    if good:
        data = {"project": {"default": ["out/all.txt"]},
                "rule": [*copy.deepcopy(GOOD_RULES),     # mutations change them
                         *data["rule"][:draw(st.sampled_from([0, 0, 1]))]]}
    elif draw(st.booleans()):
        data["project"] = draw(st.fixed_dictionaries({}, optional={
            "name": NAMES, "default": TARGETS, "ignore": st.lists(PATHS, max_size=2),
            "use": st.lists(st.sampled_from(["c", "latex", "nope"]), max_size=2)}))
    if draw(st.booleans()) and (not good or draw(st.booleans())):
        data["alias"] = draw(st.dictionaries(NAMES, st.lists(NAMES | PATHS, max_size=3),
                                             max_size=4))
    if draw(st.booleans()) and (not good or draw(st.booleans())):
        data["pack"] = draw(st.dictionaries(st.sampled_from(["c", "latex", "nope"]),
                                            st.dictionaries(st.sampled_from(
                                                ["engine", "bib", "cflags", "x"]),
                                                SCALARS, max_size=2), max_size=2))
    if draw(st.booleans()) and (not good or draw(st.booleans())):
        data["schedule"] = [{"cron": draw(st.sampled_from(["@daily", "* * *", "61 * * * *"])),
                             "targets": draw(TARGETS)}]
    for _ in range(draw(st.sampled_from([0, 0, 0, 1, 1, 2, 3]))):       # mutations
        found = places(data, [])
        if not found:
            break                                   # all deleted already
        container, key = draw(st.sampled_from(found))
        action = draw(st.sampled_from(["value", "drop", "unknown"]))
        if action == "value":
            container[key] = draw(VALUES)
        elif action == "drop":
            del container[key]
        elif isinstance(container, dict):
            container[draw(st.text(min_size=1, max_size=6))] = draw(VALUES)
    text = "".join(f"{toml(k)} = {toml(v)}\n" for k, v in data.items())
    return Case(text.encode(), draw(TARGETS))


@st.composite
def deep_case(draw) -> Case:
    n = draw(st.sampled_from([10, 200, 1000, 3000, 20000]))
    form = draw(st.sampled_from(["array", "inline", "dotted", "headers", "aliases", "cycle"]))
    if form == "array":
        text = "x = " + "[" * n + "]" * n
    elif form == "inline":
        text = "x = " + "{a = " * n + "1" + "}" * n
    elif form == "dotted":
        text = ".".join(["a"] * n) + " = 1"
    elif form == "headers":
        text = "[" + ".".join(["t"] * n) + "]"
    else:
        end = "a0" if form == "cycle" else "out/a.txt"
        text = ('[project]\ndefault = ["a0"]\n[alias]\n'
                + "".join(f'a{i} = ["a{i + 1}"]\n' for i in range(n)) + f'a{n} = ["{end}"]\n'
                + '[[rule]]\nname = "copy"\ninputs = ["src/%.txt"]\noutputs = ["out/%.txt"]\n'
                  'command = "cp {in} {out}"\n')
    return Case(text.encode(), [])


CASES = (schema_case() | schema_case() | schema_case() | deep_case()
         | st.builds(Case, st.text(max_size=300).map(str.encode), st.just([]))
         | st.builds(Case, st.binary(max_size=300), st.just([])))

# --- running one --------------------------------------------------------------


def check(case: Case, code: int, err: str) -> None:
    shown = f"{case.source[:300]!r} targets={case.targets!r}:\n{err[-1500:]}"
    assert code in (0, 1, 2), f"exit {code}: {shown}"
    assert "Traceback" not in err and "internal error" not in err, shown
    if code:
        assert any(line.startswith("cpod: ") and len(line) > 12
                   for line in err.splitlines()), f"no message: {shown}"


def test_fuzzed_project_files_never_give_a_traceback(tmp_path, chaos, monkeypatch):
    row = chaos.row(ROW, MUST_HOLD)
    monkeypatch.setenv("CP_CHEF_PROCESS", "0")     # no chef process to start per example
    numbers = itertools.count()
    codes: collections.Counter[int] = collections.Counter()
    examples = chaos.examples(full=1000, short=40)

    @hypothesis.seed(chaos.seed)
    @settings(max_examples=examples, database=None, deadline=None,
              phases=[Phase.explicit, Phase.generate],   # bounded: no shrinking rounds
              suppress_health_check=list(HealthCheck))
    @hypothesis.given(CASES)
    def one(case: Case) -> None:
        row.tried()
        root = tmp_path / f"ex{next(numbers)}"
        for name, text in SOURCES.items():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_text(text)
        (root / "computepods.toml").write_bytes(case.source)
        run = cpod_here(root, "build", "-n", "--", *case.targets, timeout=RUN_LIMIT_S)
        check(case, run.code, run.err)
        codes[run.code] += 1
        row.held()

    one()
    if examples >= 200:       # the fuzz must reach projects that load and plan, too
        assert codes[0] >= examples // 20, f"exit codes: {dict(codes)}"
