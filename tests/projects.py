"""Sample project files, and loading them, for the tests that share them."""
from __future__ import annotations

import textwrap
from pathlib import Path

from computepods.paths import PROJECT_FILE
from computepods.planning.resolve import RuleSet, Step, bind
from computepods.project.load import load_project
from computepods.project.model import Project

# One rule copying src/a.txt to out/a.txt: the smallest project that builds.
COPY = {
    "computepods.toml": """
        [project]
        default = ["out/a.txt"]

        [[rule]]
        name = "copy"
        inputs = ["src/%.txt"]
        outputs = ["out/%.txt"]
        command = "cp {in} {out}"
    """,
    "src/a.txt": "a\n",
}

# The C project of the README: a pattern rule with a depfile, an explicit
# link rule, and an explicit rule that beats the pattern for one object.
C_PROJECT = """
[[rule]]
name = "compile"
inputs = ["src/%.c"]
outputs = ["build/%.o", "build/%.o.d"]
command = "cc -MD -MF {out[1]} -c {in} -o {out[0]}"
depfile = "build/%.o.d"
timeout = 600

[[rule]]
name = "link"
inputs = ["build/main.o", "build/util.o"]
outputs = ["bin/app"]
command = ["cc", "{in}", "-o", "{out}"]

[[rule]]
name = "special"
inputs = ["src/special.c", "src/special.h"]
outputs = ["build/special.o"]
command = "cc -O0 -c {in[0]} -o {out}"
"""


def load(root: Path, text: str) -> Project:
    (root / PROJECT_FILE).write_text(textwrap.dedent(text))
    return load_project(root)


def ruleset(root: Path, text: str) -> RuleSet:
    return RuleSet(load(root, text))


def one_rule_step(root: Path, stem: str | None = None, **keys: str) -> Step:
    """Bind a single rule written as TOML values."""
    table = {"name": '"r"', "inputs": '["in put.txt", "b.txt"]',
             "outputs": '["out.txt", "log.txt"]', "command": '"cp {in} {out}"'}
    table.update(keys)
    text = "[[rule]]\n" + "".join(f"{k} = {v}\n" for k, v in table.items())
    return bind(load(root, text).rules[0], stem)
