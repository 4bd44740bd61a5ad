"""The tail of what a step printed: the last lines of its stdout or stderr.

A failure report carries the last ``TAIL_MAX_LINES`` lines (at most about
``TAIL_MAX_BYTES``) of each stream, read from the end of its file and
decoded with errors="replace".
"""
from __future__ import annotations

import os
from pathlib import Path

TAIL_MAX_LINES = 40         # lines of stdout/stderr kept for a failure report
TAIL_MAX_BYTES = 4096       # bytes read from the end of stdout/stderr


def tail(path: Path, max_lines: int = TAIL_MAX_LINES, max_bytes: int = TAIL_MAX_BYTES) -> str:
    """The last lines of a file (at most ``max_lines`` and about ``max_bytes``),
    decoded with errors="replace"; "" for a missing file."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return ""
    try:
        return tail_fd(fd, max_lines, max_bytes)
    finally:
        os.close(fd)


def tail_fd(fd: int, max_lines: int = TAIL_MAX_LINES, max_bytes: int = TAIL_MAX_BYTES) -> str:
    """:func:`tail` of an open descriptor (read with pread: its offset stays)."""
    size = os.fstat(fd).st_size
    start = max(0, size - max_bytes)
    data = os.pread(fd, size - start, start)
    if start > 0:
        data = _drop_partial_first_line(data)
    lines = data.decode(errors="replace").splitlines(keepends=True)
    return "".join(lines[-max_lines:])


def _drop_partial_first_line(data: bytes) -> bytes:
    """Cut at the first line break, unless that would leave nothing: a tail
    should start at the beginning of a line."""
    newline = data.find(b"\n")
    if 0 <= newline < len(data) - 1:
        return data[newline + 1:]
    return data
