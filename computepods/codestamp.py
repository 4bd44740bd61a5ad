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
    a process: the whole package, so a moved or new module counts too."""
    global _stamp
    if _stamp is None:
        package = os.path.dirname(os.path.abspath(__file__))
        stamp = []
        for folder, dirs, files in os.walk(package):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__")
            for name in sorted(files):
                if name.endswith((".py", ".toml")):
                    st = os.stat(os.path.join(folder, name))
                    stamp.append((os.path.relpath(os.path.join(folder, name), package),
                                  st.st_size, st.st_mtime_ns))
        _stamp = tuple(stamp)
    return _stamp


def code_hash() -> str:
    """A short digest of :func:`code_fingerprint`, as pod.json's "code":
    two checksums, not a cryptographic hash (hashlib costs the thin client
    5 ms to import, and nobody forges a stat list)."""
    data = repr(code_fingerprint()).encode()
    return f"{zlib.crc32(data):08x}{zlib.adler32(data):08x}"
