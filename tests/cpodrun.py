"""Running the real `cpod` on a project directory, as a user would."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

CPOD = [sys.executable, "-m", "computepods.cli"]


@dataclass
class Run:
    code: int
    out: str
    err: str

    @property
    def ran(self) -> list[str]:
        """Step ids that ran, from the plain (non-terminal) progress lines."""
        return [line.split(None, 1)[1] for line in self.err.splitlines()
                if line.startswith("run  ")]


def cpod(root: Path, *args: str, timeout: float = 120, env: dict | None = None) -> Run:
    p = subprocess.run([*CPOD, "-C", str(root), *args], capture_output=True, text=True,
                       timeout=timeout, env={**os.environ, **(env or {})})
    return Run(p.returncode, p.stdout, p.stderr)


def start_cpod(root: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([*CPOD, "-C", str(root), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root
