"""The pod's own records of the files chefs committed into its tree.

A chef reports each output's content (sha256, size) and, apart, its own
stat of the file.  The pod records its own stat, taken after the commit as
the pod sees the file; the chef's hash stands for it without rehashing
only when the chef's stat is of that very file (the same tree).  Otherwise
the record's check time is 0, so the next use of the file rehashes it.
"""
from __future__ import annotations

import os
from pathlib import Path

from computepods.bus.chefwire import Output
from computepods.state.hashing import FileRecord


def own_records(root: Path, outputs: dict[str, Output]) -> list[FileRecord]:
    """The pod's records of the outputs a chef reported."""
    prefix = os.path.join(root, "")
    files = []
    for path, out in outputs.items():
        try:
            st = os.stat(prefix + path)
        except OSError:
            continue
        local = out.local
        same = local is not None and (st.st_size, st.st_mtime_ns, st.st_ino) == (
            out.size, local.mtime_ns, local.ino)
        files.append(FileRecord(path, st.st_size, st.st_mtime_ns, st.st_ino, out.sha256,
                                local.checked_ns if same else 0))
    return files
