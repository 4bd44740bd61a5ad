"""``posix_spawn`` that lets the other threads run while the child starts.

``os.posix_spawn`` holds the GIL for the whole call, and glibc's
posix_spawn is a vfork: the caller stays blocked until the child has
exec'd.  With two slots starting a thousand tiny steps, every thread of
the pod (the other slot, the bus, the MajorDomo) waited out each child's
exec (``bench/run.py wide 1000 -j 2`` shows the cost; CPython fixed the same for
``subprocess`` in 3.12, gh-104372; ``os.posix_spawn`` is unchanged).

A foreign call through :mod:`ctypes` drops the GIL, so :func:`spawn`
calls the C library's ``posix_spawn`` itself, with what :mod:`runner`
needs and nothing more: the three standard descriptors dup'ed from given
ones, the child leading a process group of its own, and SIGPIPE and
SIGXFSZ (which Python ignores) back to their defaults.  Where the C
library cannot be loaded this way, :func:`spawn` is ``os.posix_spawn``
with the same effect.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
from typing import Mapping, Sequence

# <spawn.h> flags: the same values in glibc and musl, the C libraries of Linux.
POSIX_SPAWN_SETPGROUP = 0x02
POSIX_SPAWN_SETSIGDEF = 0x04
RESET_SIGNALS = (signal.SIGPIPE, signal.SIGXFSZ)   # what Popen's restore_signals resets
# Opaque C types, allocated larger than any C library makes them
# (glibc on 64 bits: 336, 80 and 128 bytes).
ATTR_BYTES = 1024
FILE_ACTIONS_BYTES = 1024
SIGSET_BYTES = 1024


class _Libc:
    """The C library's spawn functions and one shared, read-only attribute
    set (posix_spawn only reads it, so threads may share it)."""

    def __init__(self) -> None:
        name = ctypes.util.find_library("c")
        if sys.platform != "linux" or name is None:
            raise OSError("no C library to load")
        libc = ctypes.CDLL(name, use_errno=True)
        self.spawn = libc.posix_spawn
        self.fa_init = libc.posix_spawn_file_actions_init
        self.fa_dup2 = libc.posix_spawn_file_actions_adddup2
        self.fa_destroy = libc.posix_spawn_file_actions_destroy
        # glibc 2.29+, musl 1.1.24+: the child changes directory itself, so a
        # step with a working directory of its own needs no fork of Python.
        self.fa_chdir = getattr(libc, "posix_spawn_file_actions_addchdir_np", None)
        self.attr = ctypes.create_string_buffer(ATTR_BYTES)
        sigset = ctypes.create_string_buffer(SIGSET_BYTES)
        _check(libc.posix_spawnattr_init(self.attr), "posix_spawnattr_init")
        _check(libc.sigemptyset(sigset) and ctypes.get_errno(), "sigemptyset")
        for signum in RESET_SIGNALS:
            _check(libc.sigaddset(sigset, int(signum)) and ctypes.get_errno(), "sigaddset")
        _check(libc.posix_spawnattr_setsigdefault(self.attr, sigset), "setsigdefault")
        _check(libc.posix_spawnattr_setpgroup(self.attr, 0), "setpgroup")
        _check(libc.posix_spawnattr_setflags(
            self.attr, ctypes.c_short(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF)),
            "setflags")


def _check(rc: int, what: str) -> None:
    if rc:
        raise OSError(rc, f"{what}: {os.strerror(rc)}")


def _load() -> _Libc | None:
    try:
        return _Libc()
    except (OSError, AttributeError):
        return None


_libc = _load()


# "NAME=value" bytes of environment entries seen before: a step's
# environment is the pod's plus a few entries of its own.
_ENCODED: dict[tuple[str, str], bytes] = {}
ENCODED_MAX = 4096            # entries kept; the cache starts over past this


def _encode_entry(entry: tuple[str, str]) -> bytes:
    if len(_ENCODED) >= ENCODED_MAX:
        _ENCODED.clear()
    data = _ENCODED[entry] = os.fsencode(entry[0]) + b"=" + os.fsencode(entry[1])
    return data


def releases_gil() -> bool:
    """True when :func:`spawn` goes through ctypes (the fast path)."""
    return _libc is not None


def can_chdir() -> bool:
    """True when :func:`spawn` can start a program in another directory."""
    return _libc is not None and _libc.fa_chdir is not None


def spawn(program: str, argv: Sequence[str], env: Mapping[str, str], stdin: int, stdout: int,
          stderr: int, cwd: str | None = None) -> int:
    """Start ``program`` (an absolute path) with ``argv`` and exactly ``env``;
    its pid, which is also its process group.  It runs in ``cwd`` (only where
    :func:`can_chdir`), else in this process's working directory.  A failure
    to start raises OSError naming the program, as ``os.posix_spawn`` does
    (glibc reports the exec's errno), or naming ``cwd`` when that is what
    could not be entered."""
    if cwd is not None and not can_chdir():
        raise ValueError("this C library's posix_spawn cannot change directory")
    if _libc is None:
        return os.posix_spawn(program, list(argv), env, setpgroup=0, setsigdef=RESET_SIGNALS,
                              file_actions=[(os.POSIX_SPAWN_DUP2, stdin, 0),
                                            (os.POSIX_SPAWN_DUP2, stdout, 1),
                                            (os.POSIX_SPAWN_DUP2, stderr, 2)])
    encode = os.fsencode
    args = [encode(a) for a in argv]
    entries = [_ENCODED.get(kv) or _encode_entry(kv) for kv in env.items()]
    c_argv = (ctypes.c_char_p * (len(args) + 1))(*args, None)
    c_env = (ctypes.c_char_p * (len(entries) + 1))(*entries, None)
    actions = ctypes.create_string_buffer(FILE_ACTIONS_BYTES)
    _check(_libc.fa_init(actions), "posix_spawn_file_actions_init")
    try:
        for fd, target in ((stdin, 0), (stdout, 1), (stderr, 2)):
            _check(_libc.fa_dup2(actions, fd, target), "posix_spawn_file_actions_adddup2")
        if cwd is not None:
            _check(_libc.fa_chdir(actions, encode(cwd)), "posix_spawn_file_actions_addchdir_np")
        pid = ctypes.c_int()
        rc = _libc.spawn(ctypes.byref(pid), encode(program), actions, _libc.attr, c_argv,
                         c_env)
    finally:
        _libc.fa_destroy(actions)
    if rc:
        if cwd is not None and not (os.path.isdir(cwd) and os.access(cwd, os.X_OK)):
            raise OSError(rc, os.strerror(rc), cwd)      # the child could not enter it
        raise OSError(rc, os.strerror(rc), program)
    return pid.value
