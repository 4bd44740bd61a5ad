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

from computepods.state.hashing import FileRecord


def own_records(root: Path, outputs: dict[str, list]) -> list[FileRecord]:
    """`outputs`: path -> [sha256, size, mtime_ns, inode, checked_ns] from the chef."""
    prefix = os.path.join(root, "")
    files = []
    for path, (sha256, size, mtime_ns, ino, checked_ns) in outputs.items():
        try:
            st = os.stat(prefix + path)
        except OSError:
            continue
        same = (st.st_size, st.st_mtime_ns, st.st_ino) == (size, mtime_ns, ino)
        files.append(FileRecord(path, st.st_size, st.st_mtime_ns, st.st_ino, sha256,
                                checked_ns if same else 0))
    return files
