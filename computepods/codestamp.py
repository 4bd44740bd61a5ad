"""The package's code, by stat: what a cached plan and a running pod were made by.

A changed file of the package (an upgrade, or an edit in a development
tree) makes cached plans and verdicts stale (:mod:`computepods.planning.plancache`)
and a background pod out of date (:mod:`computepods.pod.background`).  A
stat per file, once a process, standard library only: the thin client
checks it before every handed-off build.
"""
from __future__ import annotations

import os
import zlib

_stamp: tuple | None = None


def code_fingerprint() -> tuple:
    """(path, size, mtime_ns) of every module and pack of the package, once
    a process: the whole package, so a moved or new module counts too.
    (``os.scandir`` and string slices, not ``os.walk`` and ``relpath``: the
    thin client pays this on every handed-off build.)"""
    global _stamp
    if _stamp is None:
        package = os.path.dirname(os.path.abspath(__file__))
        stamp: list = []
        _scan(package, len(package) + 1, stamp)
        for folder in filter(None, os.environ.get("CP_PACKS", "").split(os.pathsep)):
            try:                 # the user's own packs (project/packs: CP_PACKS) count too
                _scan(os.path.abspath(folder), 0, stamp)
            except OSError:
                stamp.append((folder, -1, -1))
        _stamp = tuple(stamp)
    return _stamp


def _scan(folder: str, strip: int, stamp: list) -> None:
    with os.scandir(folder) as entries:
        found = sorted(entries, key=lambda e: e.name)
    for entry in found:
        if entry.is_dir(follow_symlinks=False):
            if entry.name != "__pycache__":
                _scan(entry.path, strip, stamp)
        elif entry.name.endswith((".py", ".toml")):
            st = entry.stat()
            stamp.append((entry.path[strip:], st.st_size, st.st_mtime_ns))


def code_hash() -> str:
    """A short digest of :func:`code_fingerprint`, as pod.json's "code":
    two checksums, not a cryptographic hash (hashlib costs the thin client
    5 ms to import, and nobody forges a stat list)."""
    data = repr(code_fingerprint()).encode()
    return f"{zlib.crc32(data):08x}{zlib.adler32(data):08x}"
