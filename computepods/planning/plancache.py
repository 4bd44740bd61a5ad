"""What a cold no-op can skip: the resolved plan, and the last "all up to date".

Resolving and judging many targets goal-directed costs more than ninja's
whole no-op (``bench/rebuild.py noop wide 10000`` compares them).  Both are pure functions of
what they read, so both are kept between runs and checked against exactly
that, at the price of a stat per file:

**The plan** (``.computepods/plans/``, one pickle per request) is a
function of the project file's bytes, the packs and the code that read it,
the requested names and working directory (together: its *key*), and of
whether each file resolution asked about exists (the *probes*: a pattern
rule is passed over while its source is missing, and a source with no rule
must exist), and of the files each glob in an input matched (the *globs*:
project/globs.py).  Nothing else on disk is read while resolving: discovered
inputs (depfiles, ``.fls``) join the graph later, from the step records.
The steps those records say a TeX run needs (planning/needs.py) are added
from the records too, and a plan that grew so is stored again: the cached
plan may hold them, and the records add any it lacks.  A cached plan is
used only if its key matches, every probe still gives the same answer and
every glob still matches the same files.

**The verdict** (a row of the state database's ``verdicts`` table, under
the *request*: root, cwd, names and code) says: with the step and file
records as they are, this plan was all up to date while each judged file,
and the project file, had this (size, mtime_ns, inode), each probe
(resolution's and the orphan check's) this answer, and each glob these files.  Any write of records
deletes every verdict in the same transaction (state.py), and a verdict is
stored only when each stat it rests on is past the racily-clean window: so
while the stats still match, :class:`~computepods.state.hashing.StatCache` would
return the very hashes the verdict was judged with, the same project file
would give the same plan, and the judgement and the orphan check would come
out the same.  Only the tools a pack needs are looked up again, as PATH may
have changed.  Answering from a verdict imports no TOML, rules or hashing.
"""
from __future__ import annotations

import marshal
import os
import stat as stat_mod
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

# A cached plan or verdict stands for the code that made it (codestamp.py).
from computepods.codestamp import code_fingerprint
from computepods.paths import PLANS_DIR, PROJECT_FILE, STATE_DB, STATE_DIR, atomic_write
from computepods.project.globs import Globs, globs_hold

CACHE_FORMAT = 4                    # bump when what is pickled or marshalled changes
KEEP_PLANS = 8                      # requests (targets, cwd) remembered per project

StatKey = tuple[int, int, int]      # (size, mtime_ns, inode), as hashing.FileRecord.key
Stamp = tuple["StatKey | None", int]    # a stat key and time.time_ns() just before it


@dataclass
class Basis:
    """What a plan was resolved from, as its verdict needs it."""
    request: str                    # root, cwd, names, code: the verdict's key
    project: Stamp | None           # the project file's stat when it was read
    probes: dict[str, bool] = field(default_factory=dict)
    packs: dict[str, dict[str, str]] = field(default_factory=dict)   # used ones' settings
    key: str | None = None          # the plan cache's (content_key), None if unreadable
    globs: Globs = field(default_factory=dict)     # glob -> the files it matched
    ignore: tuple[str, ...] = ()    # project.ignore, which globs pass over


def request_key(root: Path, names: Sequence[str], cwd: Path) -> str:
    """Everything but the files that decides a plan: the verdict's key."""
    return repr((CACHE_FORMAT, str(root), str(cwd), list(names), code_fingerprint()))


def read_project(root: Path) -> tuple[bytes, Stamp] | None:
    """The project file's bytes, and its stat taken before they were read
    (so a later write shows); None if it cannot be read (loading it then
    says why)."""
    checked_ns = time.time_ns()
    try:
        with open(os.path.join(root, PROJECT_FILE), "rb") as f:
            st = os.fstat(f.fileno())
            source = f.read()
    except OSError:
        return None
    return source, ((st.st_size, st.st_mtime_ns, st.st_ino), checked_ns)


def content_key(request: str, source: bytes) -> str:
    """The plan cache's key: the request and the project file's content."""
    import hashlib
    return hashlib.sha256(source + b"\0" + request.encode()).hexdigest()


class Probes:
    """``exists(path)`` for resolution, answering each path once (from one
    stat) and remembering the answers, which then validate the plan."""

    __slots__ = ("_prefix", "seen")

    def __init__(self, root: Path, seen: dict[str, bool] | None = None):
        self._prefix = os.path.join(root, "")
        self.seen: dict[str, bool] = {} if seen is None else seen

    def __call__(self, path: str) -> bool:
        found = self.seen.get(path)
        if found is None:
            found = self.seen[path] = os.path.isfile(self._prefix + path)
        return found


def probes_hold(root: Path, probes: dict[str, bool]) -> bool:
    prefix = os.path.join(root, "")
    isfile = os.path.isfile
    return all(isfile(prefix + path) == existed for path, existed in probes.items())


# --- the plan -----------------------------------------------------------------

def _plan_file(root: Path, request: str) -> str:
    import hashlib
    name = hashlib.sha256(request.encode()).hexdigest()[:24]
    return os.path.join(root, PLANS_DIR, name)


def load_plan(root: Path, request: str, key: str):
    """(project, plan) as resolved before under this key, if its probes hold."""
    import pickle
    try:
        with open(_plan_file(root, request), "rb") as f:
            if f.read(len(key)) != key.encode("ascii"):
                return None
            blob = f.read()
    except OSError:
        return None
    try:
        fmt, project, plan = pickle.loads(blob)
    except Exception:              # a torn or foreign file is only a miss
        return None
    if fmt != CACHE_FORMAT or not probes_hold(root, plan.basis.probes) \
            or not globs_hold(root, plan.basis.ignore, plan.basis.globs):
        return None
    return project, plan


def store_plan(root: Path, project, plan) -> None:
    """Keep the plan for the next run, once the state directory exists (it
    is the build's to create, with its .gitignore): a first build stores it
    again after creating it."""
    key = plan.basis.key
    if key is None or not os.path.isdir(os.path.join(root, STATE_DIR)):
        return
    import pickle
    blob = pickle.dumps((CACHE_FORMAT, project, plan), protocol=pickle.HIGHEST_PROTOCOL)
    _write(root, _plan_file(root, plan.basis.request), key, blob)


def _write(root: Path, path: str, key: str, blob: bytes) -> None:
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        atomic_write(path, key.encode("ascii") + blob)
    except OSError:        # a cache: the next build resolves afresh
        return
    _prune(os.path.dirname(path))


def _prune(folder: str) -> None:
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.stat().st_mtime_ns)
    except OSError:
        return
    for entry in entries[:-KEEP_PLANS]:
        _unlink(entry.path)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


# --- the verdict --------------------------------------------------------------

def encode_verdict(steps: int, packs: dict[str, dict[str, str]], targets: list[str],
                   stats: dict[str, StatKey | None], probes: dict[str, bool],
                   globs: Globs | None = None, ignore: tuple[str, ...] = ()) -> bytes:
    """``stats``: each file's stat key, None for "not a regular file"."""
    return marshal.dumps((CACHE_FORMAT, steps, packs, targets, stats, probes,
                          globs or {}, tuple(ignore)))


def stats_hold(root: Path, stats: dict[str, StatKey | None]) -> bool:
    """Each file has the stat key it was judged with (or is still no file)."""
    prefix = os.path.join(root, "")
    stat, is_reg = os.stat, stat_mod.S_ISREG
    for path, key in stats.items():
        try:
            st = stat(prefix + path)
        except (FileNotFoundError, NotADirectoryError):
            if key is None:
                continue
            return False
        except OSError:            # the full check reports it
            return False
        if not is_reg(st.st_mode):
            if key is None:
                continue
            return False
        if key is None or key != (st.st_size, st.st_mtime_ns, st.st_ino):
            return False
    return True


def stored_noop(root: Path, names: Sequence[str], cwd: Path) -> int | None:
    """The number of steps, when the stored verdict for this request still
    holds; else None.  Call under the project lock, as a build judges."""
    db_path = os.path.join(root, STATE_DB)
    if not os.path.isfile(db_path):
        return None
    from computepods.state.db import StateDB
    with StateDB(Path(db_path), readonly=True) as db:
        blob = db.verdict(request_key(root, names, cwd))
    if blob is None:
        return None
    try:
        fmt, steps, packs, targets, stats, probes, globs, ignore = marshal.loads(blob)
    except (ValueError, EOFError, TypeError):
        return None
    if (fmt != CACHE_FORMAT or not stats_hold(root, stats)
            or not probes_hold(root, probes) or not globs_hold(root, ignore, globs)):
        return None
    check_packs(packs, targets)
    return steps


def check_packs(packs: dict[str, dict[str, str]], targets: Sequence[str]) -> None:
    """Fail before anything runs when this machine's chef lacks a tool one
    of these packs needs (the embedded pod's chefs are local)."""
    if not packs:
        return
    from computepods.errors import NoChefCanBuild
    from computepods.project.packs import missing_tools
    for pack in sorted(packs):
        missing = missing_tools(pack, packs[pack])
        if missing:
            raise NoChefCanBuild(
                f"no chef can build {', '.join(targets)}: the {pack} pack needs "
                f"{', '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} not "
                f"on PATH here (install it, or set a tool in [pack.{pack}])")
