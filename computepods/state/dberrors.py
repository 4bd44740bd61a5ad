"""What a failed SQLite call on the state database means, said so a user can act.

SQLite reports a full disk, a read-only directory and a corrupt file all
as ``sqlite3`` errors, some of them (``unable to open database file``) the
same words for different causes.  Each needs different advice: free space;
fix the permissions; or delete the file, which loses only the record of
what was built.  :func:`db_error` tells them apart by SQLite's primary
result code and by looking at the disk, and never calls a full disk or a
permission problem corrupt.
"""
from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path

from computepods.errors import ComputePodsError, NotWritable, StateCorrupt
from computepods.paths import STATE_DIR, disk_full

# SQLite's primary result codes (https://sqlite.org/rescode.html).
SQLITE_ERROR = 1
SQLITE_PERM = 3
SQLITE_BUSY = 5
SQLITE_LOCKED = 6
SQLITE_READONLY = 8
SQLITE_IOERR = 10
SQLITE_CORRUPT = 11
SQLITE_FULL = 13
SQLITE_CANTOPEN = 14
SQLITE_NOTADB = 26
REFUSED_CODES = (SQLITE_PERM, SQLITE_READONLY, SQLITE_CANTOPEN)
CORRUPT_CODES = (SQLITE_CORRUPT, SQLITE_NOTADB)
LOW_SPACE_BYTES = 64 * 1024   # an I/O error with less than this free is a full disk

DELETE_ADVICE = ("deleting it loses only the record of what was built (the next build"
                 " rebuilds everything)")


def db_error(path: Path, exc: Exception, what: str, *, writing: bool = True
             ) -> ComputePodsError:
    """``exc``, raised reading or writing the state database at ``path``,
    as the error to show; ``what`` names what was not written (or read):
    "the records of 3 steps and 2 files"."""
    code = _code(exc)
    lost = f"not {'written' if writing else 'read'}: {what}"
    if code == SQLITE_FULL or (code == SQLITE_IOERR and _low_space(path)):
        return disk_full(path, what)
    if code in REFUSED_CODES and not _writable(path):
        return _refused(path, exc, lost)
    if code in CORRUPT_CODES or not isinstance(exc, sqlite3.Error) or (
            code == SQLITE_ERROR and "JSON" in str(exc)):
        return corrupt(path, exc)
    if code in REFUSED_CODES:
        return ComputePodsError(f"{path}: cannot open the state database ({exc}); {lost}")
    if code in (SQLITE_BUSY, SQLITE_LOCKED):
        return ComputePodsError(f"{path}: the state database stayed locked by another"
                                f" process ({exc}); {lost}")
    return ComputePodsError(f"{path}: the state database failed ({exc}); {lost}")


def is_database_trouble(exc: BaseException) -> bool:
    """An error the file or the disk caused, not a bug in the caller (a
    broken constraint, a misused API): those stay as they are."""
    return isinstance(exc, sqlite3.DatabaseError) and not isinstance(
        exc, (sqlite3.IntegrityError, sqlite3.ProgrammingError, sqlite3.DataError,
              sqlite3.NotSupportedError, sqlite3.InterfaceError))


def corrupt(path: Path, exc: Exception) -> StateCorrupt:
    return StateCorrupt(f"{path}: the state database is corrupt ({exc}); {DELETE_ADVICE}")


def _code(exc: Exception) -> int | None:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is None:
        # sqlite3.connect and some older paths carry no code: read the words.
        text = str(exc)
        for words, guess in (("disk is full", SQLITE_FULL), ("malformed", SQLITE_CORRUPT),
                             ("not a database", SQLITE_NOTADB), ("readonly", SQLITE_READONLY),
                             ("unable to open", SQLITE_CANTOPEN), ("disk I/O", SQLITE_IOERR),
                             ("locked", SQLITE_BUSY)):
            if words in text:
                return guess
        return None
    return code & 0xFF


def _low_space(path: Path) -> bool:
    try:
        st = os.statvfs(os.path.dirname(os.path.abspath(path)))
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < LOW_SPACE_BYTES


def _writable(path: Path) -> bool:
    """Can SQLite write the database and, beside it, its -wal and -shm files?"""
    folder = os.path.dirname(os.path.abspath(path))
    try:
        if os.statvfs(folder).f_flag & os.ST_RDONLY:
            return False
    except OSError:
        return False
    if not os.access(folder, os.W_OK | os.X_OK):
        return False
    return not os.path.exists(path) or os.access(path, os.W_OK)


def _refused(path: Path, exc: Exception, lost: str) -> ComputePodsError:
    folder = os.path.dirname(os.path.abspath(path))
    try:
        readonly_fs = bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except OSError:
        readonly_fs = False
    why = ("is on a read-only filesystem" if readonly_fs else
           f"or {STATE_DIR}/ is not writable by this user")
    return NotWritable(
        f"{path}: the state database {why} ({exc}); {lost}; this is a"
        f" permission problem, not a damaged file: make {folder} writable (SQLite"
        " writes its -wal and -shm files beside the database)",
        errno.EROFS if readonly_fs else errno.EACCES)
