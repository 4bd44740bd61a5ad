"""The discovery cache: a JSON file of what the federation looked like lately.

A short-lived ``cpod build --nats URL`` reads it to know the pods without
waiting for a discovery round (docs/architecture.md §6); whoever hears
hellos remembers them in it.  Thousands of processes may share the file,
so every access is safe against the others and against being killed:

* **Readers never see a torn file.**  A write goes to a temp file in the
  same directory, is fsynced, renamed over the cache, and the directory is
  fsynced.  A reader opens whatever name is there: the old file or the new
  one, whole.  So reads take no lock and never wait.
* **Writers take turns** on an ``flock`` of a side file (``<cache>.lock``),
  taken with ``LOCK_EX | LOCK_NB`` so that a blocked writer is told so
  (:class:`Blocked`) and can wait on its own terms (the chart on a timer,
  plain code in :meth:`CacheFile.acquire`).  A read-modify-write
  (:meth:`CacheFile.update`) holds the lock from its read to its rename, so
  no update is lost.  The kernel drops an flock with the last descriptor of
  its holder, so a SIGKILLed writer never leaves the cache locked; the next
  writer removes its temp file.  The side file is never deleted (a new
  inode would be a second lock).  The seeds' chmod "lock" was a
  check-then-act race that root ignores and a kill leaves set.

The file is ``{"v": 1, "entries": {key: {"until": t, "value": ...}}}``,
``until`` in wall-clock seconds; what expired is dropped on every access.
A file that is not such JSON, or that others could have written (not the
user's, or group/other-writable: it holds pods' host keys), is reported
once, named, and read as empty; the next write replaces it.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import random
import re
import stat
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from computepods.clock import Clock, SystemClock
from computepods.errors import CacheFileBusy, MalformedMessage
from computepods.federation.backoff import Backoff
from computepods.federation.hello import PodHello
from computepods.federation.workspace import cache_dir
from computepods.paths import writing

log = logging.getLogger("computepods.cachefile")

FORMAT_VERSION = 1
POD_EXPIRY_S = 60.0                  # seconds a remembered pod stays known
MAX_EXPIRY_S = 24 * 3600.0           # seconds: an entry due to live longer is from a clock set back
MAX_FILE_BYTES = 16 * 1024 * 1024    # a cache file larger than this is refused
DIR_MODE = 0o700
FILE_MODE = 0o600
LOCK_WAIT_S = 30.0                   # seconds acquire() waits for the lock before giving up
REMEMBER_WAIT_S = 5.0                # seconds remember_pods() waits: it is only a cache

_NAMESPACE = re.compile(r"[A-Za-z0-9_-]+")
_LOGGED: set[tuple] = set()          # (path, problem key) warned about in this process
_LOGGED_LOCK = threading.Lock()


def discovery_path(ns: str) -> Path:
    """The discovery cache of namespace ``ns``: ``pods-<ns>.json`` in
    ``$XDG_CACHE_HOME/computepods`` (default ``~/.cache/computepods``)."""
    if not _NAMESPACE.fullmatch(ns):
        raise ValueError(f"namespace {ns!r}: must be one subject token (letters, digits, '-', '_')")
    return cache_dir() / f"pods-{ns}.json"


@dataclass(frozen=True)
class Blocked:
    """Another process holds the cache's lock (``holder``: its pid, if it said)."""
    path: Path
    holder: int | None = None

    def __bool__(self) -> bool:          # `if lock := cf.try_acquire():` reads right
        return False


class CacheLock:
    """The cache's flock, held until :meth:`release` (or the process dies)."""

    def __init__(self, path: Path, fd: int):
        self.path = path
        self._fd: int | None = fd

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)                 # closing the descriptor drops the flock

    def __enter__(self) -> "CacheLock":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


@dataclass(frozen=True)
class Entry:
    value: Any
    until: float                         # wall-clock seconds


class CacheFile:
    """One JSON cache file of entries that expire.

    ``clock`` gives the wall time entries expire by (a SimClock in tests);
    ``sleep`` and ``rng`` are :meth:`acquire`'s waits.  ``in_write``, if
    given, is called with the lock held and the temp file half written: a
    test's seam to kill a writer mid-write.
    """

    def __init__(self, path: Path, *, clock: Clock | None = None,
                 rng: random.Random | None = None, sleep: Callable[[float], None] = time.sleep,
                 in_write: Callable[[], None] | None = None):
        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self.clock = clock or SystemClock()
        self._rng = rng or random.Random()
        self._sleep = sleep
        self._in_write = in_write
        self._reported: set[tuple] = set()
        self.problems: list[str] = []    # each problem reported, once

    # -- reading (no lock: a rename is atomic) ---------------------------------
    def read(self, now: float | None = None) -> dict[str, Any] | None:
        """The unexpired entries' values by key; None if there is no cache file."""
        entries = self._load(self._now(now))
        return None if entries is None else {k: e.value for k, e in entries.items()}

    # -- writing (under the lock) ----------------------------------------------
    def try_acquire(self) -> CacheLock | Blocked:
        """The cache's lock if no one holds it, else :class:`Blocked` at once."""
        with writing(self.lock_path, f"the lock of the cache {self.path}"):
            self._make_dir()
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
                         FILE_MODE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            return Blocked(self.path, holder)
        except BaseException:
            os.close(fd)
            raise
        with contextlib.suppress(OSError):   # who holds it, for a message; the flock is the lock
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
        return CacheLock(self.path, fd)

    def acquire(self, timeout_s: float = LOCK_WAIT_S) -> CacheLock:
        """The lock, waiting (a growing random delay between tries) at most
        ``timeout_s`` seconds; :class:`CacheFileBusy` then, naming the holder."""
        backoff = Backoff(self._rng)
        deadline = self.clock.monotonic() + timeout_s
        while True:
            got = self.try_acquire()
            if isinstance(got, CacheLock):
                return got
            left = deadline - self.clock.monotonic()
            if left <= 0:
                who = f"process {got.holder}" if got.holder else "another process"
                raise CacheFileBusy(
                    f"the cache {self.path} is still locked by {who} after {timeout_s:g} s "
                    f"(its lock: {self.lock_path}); if that process is stuck, stop it")
            self._sleep(min(backoff.next(), left))

    def write(self, data: Mapping[str, Any], *, now: float | None = None,
              expiry_s: float = POD_EXPIRY_S, lock: CacheLock | None = None) -> None:
        """Replace every entry with ``data``, each expiring ``expiry_s`` from now."""
        self.update(lambda _: data, now=now, expiry_s=expiry_s, lock=lock, replace=True)

    def update(self, fn: Callable[[dict[str, Any]], Mapping[str, Any]], *,
               now: float | None = None, expiry_s: float = POD_EXPIRY_S,
               lock: CacheLock | None = None, replace: bool = False,
               wait_s: float = LOCK_WAIT_S) -> dict[str, Any]:
        """Read, change, write, all under the lock: ``fn`` gets the unexpired
        values and returns the entries to set (each expiring ``expiry_s``
        from now; a value None removes its key); the others keep their
        expiry.  ``lock``: one already held (else it is taken, waiting up to
        ``wait_s``, and let go).  Returns the values now in the cache."""
        if lock is not None and not lock.held:
            raise ValueError(f"cache {self.path}: update() with a lock already released")
        own = lock is None
        held = self.acquire(wait_s) if own else lock
        try:
            now = self._now(now)
            entries = {} if replace else (self._load(now) or {})
            for key, value in dict(fn({k: e.value for k, e in entries.items()})).items():
                if value is None:
                    entries.pop(key, None)
                else:
                    entries[str(key)] = Entry(value, now + expiry_s)
            self._commit(entries)
            return {k: e.value for k, e in entries.items()}
        finally:
            if own:
                held.release()

    # -- the parts -------------------------------------------------------------
    def _now(self, now: float | None) -> float:
        return self.clock.time() if now is None else now

    def _make_dir(self) -> None:
        folder = self.path.parent
        folder.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        st = folder.stat()
        if st.st_uid == os.geteuid() and st.st_mode & 0o077:
            os.chmod(folder, DIR_MODE)     # it holds pods' keys: the user's alone

    def _load(self, now: float) -> dict[str, Entry] | None:
        try:                             # (O_NONBLOCK: a FIFO put there does not hang us)
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
        except FileNotFoundError:
            return None
        except OSError as exc:
            what = "is a symbolic link" if exc.errno == errno.ELOOP else f"cannot be read ({exc})"
            self._report(("open", exc.errno), f"{what}; remove it")
            return {}
        try:
            st = os.fstat(fd)
            identity = (st.st_ino, st.st_mtime_ns, st.st_size)
            if not stat.S_ISREG(st.st_mode):
                self._report(identity, "is not a regular file; remove it")
                return {}
            if st.st_uid != os.geteuid() or st.st_mode & 0o022:
                self._report(identity, f"is not the user's own (owner uid {st.st_uid}, mode "
                                       f"{st.st_mode & 0o777:o}), so it is not trusted; remove it")
                return {}
            with os.fdopen(fd, "rb", closefd=False) as f:
                raw = f.read(MAX_FILE_BYTES + 1)
        except OSError as exc:
            self._report(("read", exc.errno), f"cannot be read ({exc})")
            return {}
        finally:
            os.close(fd)
        try:
            return _parse(raw, now)
        except ValueError as exc:
            self._report(identity, f"is corrupt ({exc}); read as empty, the next write "
                                   "replaces it")
            return {}

    def _report(self, key: tuple, problem: str) -> None:
        """Once per problem with this file: in ``problems`` for this reader,
        in the log for the whole process (a pod reads the cache often)."""
        if key in self._reported:
            return
        self._reported.add(key)
        text = f"the cache file {self.path} {problem}"
        self.problems.append(text)
        with _LOGGED_LOCK:
            first = (self.path, key) not in _LOGGED
            _LOGGED.add((self.path, key))
        if first:
            log.warning("%s", text)

    def _commit(self, entries: dict[str, Entry]) -> None:
        body = json.dumps({"v": FORMAT_VERSION, "entries": {
            k: {"until": e.until, "value": e.value} for k, e in sorted(entries.items())}},
            separators=(",", ":")).encode()
        folder = self.path.parent
        tmp = folder / f"{self.path.name}.{os.getpid()}.tmp"
        with writing(self.path, f"the cache {self.path}"):
            self._make_dir()
            self._remove_debris()
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC,
                         FILE_MODE)
            try:
                try:
                    half = len(body) // 2
                    _write_all(fd, body[:half])
                    if self._in_write is not None:
                        self._in_write()
                    _write_all(fd, body[half:])
                    os.fsync(fd)
                finally:
                    os.close(fd)
                os.replace(tmp, self.path)
            except BaseException:
                _unlink(tmp)
                raise
            dfd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                os.fsync(dfd)                # the rename itself survives a power cut
            finally:
                os.close(dfd)

    def _remove_debris(self) -> None:
        """Temp files of writers killed mid-write (we hold the lock: no one
        else is writing one)."""
        prefix = self.path.name + "."
        for name in os.listdir(self.path.parent):
            if name.startswith(prefix) and name.endswith(".tmp") \
                    and name[len(prefix):-4].isdigit():
                _unlink(self.path.parent / name)


def _parse(raw: bytes, now: float) -> dict[str, Entry]:
    """The unexpired entries of a cache file's bytes; ValueError saying what is wrong."""
    if len(raw) > MAX_FILE_BYTES:
        raise ValueError(f"over {MAX_FILE_BYTES} bytes")
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(doc, dict) or doc.get("v") != FORMAT_VERSION \
            or not isinstance(doc.get("entries"), dict):
        raise ValueError(f"not a version {FORMAT_VERSION} cache: "
                         "want {\"v\": 1, \"entries\": {...}}")
    entries = {}
    for key, item in doc["entries"].items():
        until = item.get("until") if isinstance(item, dict) else None
        if not isinstance(until, (int, float)) or isinstance(until, bool) or "value" not in item:
            raise ValueError(f"entry {key!r} has no 'until' time or no 'value'")
        if now < until <= now + MAX_EXPIRY_S:
            entries[key] = Entry(item["value"], float(until))
    return entries


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _holder(fd: int) -> int | None:
    with contextlib.suppress(OSError):
        text = os.pread(fd, 32, 0).decode(errors="replace").strip()
        return int(text) if text.isdecimal() else None
    return None


# -- the discovery cache: pods by id -------------------------------------------------

def _valid_hello(value: Any, where: str) -> bool:
    try:
        PodHello.from_dict(value, where)
    except (MalformedMessage, TypeError):
        return False
    return True


def known_pods(ns: str, now: float | None = None, *,
               cache: CacheFile | None = None) -> list[dict]:
    """The PodHello dicts of namespace ``ns`` remembered and not expired, by pod id
    (an entry that :meth:`PodHello.from_dict` refuses is left out)."""
    cache = cache or CacheFile(discovery_path(ns))
    values = cache.read(now) or {}
    return [v for _, v in sorted(values.items())
            if isinstance(v, dict) and _valid_hello(v, str(cache.path))]


def remember_pods(ns: str, hellos: Iterable[Any], now: float | None = None, *,
                  expiry_s: float = POD_EXPIRY_S, cache: CacheFile | None = None,
                  wait_s: float = REMEMBER_WAIT_S) -> bool:
    """Merge ``hellos`` (PodHello objects or their dicts) into the cache of
    ``ns`` by pod id, each known for ``expiry_s`` from ``now``.  A cache
    that cannot be written (locked past ``wait_s``, a full disk) costs the
    next command a discovery round, never a build: it is logged, and False."""
    cache = cache or CacheFile(discovery_path(ns))
    fresh = {}
    for hello in (dict(h.to_dict() if hasattr(h, "to_dict") else h) for h in hellos):
        if not _valid_hello(hello, str(cache.path)):
            raise ValueError(f"remember_pods: not a pod hello: {hello!r:.200}")
        fresh[hello["pod"]] = hello
    try:
        cache.update(lambda _: fresh, now=now, expiry_s=expiry_s, wait_s=wait_s)
    except (CacheFileBusy, OSError) as exc:
        log.warning("pods not remembered: %s", exc)
        return False
    return True
