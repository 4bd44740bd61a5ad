"""Tool fingerprints: which program a step starts, and which file that is.

A step's tools are its pack's tools plus the program its command starts
(argv[0], or a shell command's first word).  A tool's fingerprint is the
sha256 of the file PATH resolves it to, so two pods agree on a tool only
when they would run the same bytes (docs/architecture.md §6).  Hashing a
compiler costs tens of milliseconds, so a fingerprint is cached by the
file's stat: a tool upgraded in place gets a new one.
"""
from __future__ import annotations

import functools
import hashlib
import os
import shlex
import shutil
import threading
from pathlib import Path
from typing import Iterable, Sequence

CHUNK_BYTES = 1 << 20          # read size when hashing a tool
# Words a shell command may start with that are not the program it runs.
_SHELL_PREFIXES = frozenset({"exec", "env", "command", "nice", "time", "nohup"})
# Words the shell runs itself (builtins, keywords): a command starting with one needs no
# program on PATH.  Nor does one starting with a group or a placeholder: "(", "{", "!".
SHELL_WORDS = frozenset({
    ":", ".", "[", "alias", "break", "case", "cd", "continue", "do", "done", "echo", "elif",
    "else", "esac", "eval", "exit", "export", "false", "fi", "for", "getopts", "hash", "if",
    "kill", "printf", "pwd", "read", "readonly", "return", "set", "shift", "source", "test",
    "then", "times", "trap", "true", "type", "ulimit", "umask", "unalias", "unset", "until",
    "wait", "while"})

_cache: dict[tuple[str, int, int, int], str] = {}     # (path, ino, size, mtime_ns) -> sha256
_cache_lock = threading.Lock()


def command_program(command: str | Sequence[str]) -> str:
    """The program a command starts: argv[0] of a list, or the first word
    of a shell command that is not an assignment or a wrapper; "" if none."""
    if not isinstance(command, str):
        return str(command[0]) if command else ""
    return _shell_program(command)


@functools.lru_cache(maxsize=4096)
def _shell_program(command: str) -> str:
    """(Cached: a chef reads every rule of every run message, and shlex was
    half of reading one.)"""
    try:
        words = shlex.split(command, comments=True)
    except ValueError:                 # unbalanced quotes: the shell will say so
        words = command.split()
    for word in words:
        if "=" in word.split("/")[0] and not word.startswith("="):
            continue                   # VAR=value before the program
        if word in _SHELL_PREFIXES:
            continue
        return word
    return ""


def step_tools(rule_tools: Iterable[str], command: str | Sequence[str]) -> set[str]:
    """A step's tools: its pack's, and the program its command starts.

    A program given by a path inside the project ("./configure",
    "scripts/gen") is the project's own file, an input, not a tool."""
    tools = {t for t in rule_tools if t}
    program = command_program(command)
    if program and "/" not in program:
        tools.add(program)
    elif program.startswith("/"):
        tools.add(program)             # an absolute path: the same file must exist there
    return tools


def missing_program(command: str | Sequence[str], path_env: str | None = None) -> str | None:
    """The program `command` starts when PATH (`path_env`, else this
    process's) has no such executable, else None: a step from another pod
    would only exit 127 here.  A shell command may start with a builtin."""
    program = next(iter(step_tools((), command)), "")
    if not program or isinstance(command, str) and (program in SHELL_WORDS
                                                     or program[0] in "({!"):
        return None
    search = path_env if path_env is not None else os.environ.get("PATH", os.defpath)
    return None if shutil.which(program, path=search) else program


def fingerprint(path: Path) -> str:
    """The sha256 of the file at `path` (symlinks followed), cached by its stat."""
    real = os.path.realpath(path)
    info = os.stat(real)
    key = (real, info.st_ino, info.st_size, info.st_mtime_ns)
    with _cache_lock:
        found = _cache.get(key)
    if found is not None:
        return found
    digest = hashlib.sha256()
    with open(real, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK_BYTES), b""):
            digest.update(chunk)
    found = digest.hexdigest()
    with _cache_lock:
        _cache[key] = found
    return found


def fingerprints(tools: Iterable[str], path_env: str | None = None) -> dict[str, str]:
    """tool -> fingerprint, for each of `tools` found on PATH (`path_env`,
    else this process's PATH); a tool not found, or unreadable, is left out."""
    search = path_env if path_env is not None else os.environ.get("PATH", os.defpath)
    found: dict[str, str] = {}
    for tool in sorted(set(tools)):
        where = tool if "/" in tool else shutil.which(tool, path=search)
        if not where:
            continue
        try:
            found[tool] = fingerprint(Path(where))
        except OSError:
            continue
    return found
