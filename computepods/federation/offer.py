"""The files of our tree we offered to other pods, by hash.

A remote step's run message names its inputs by sha256; the chef pulls
what its pod lacks from ours.  Our StoreServer serves them straight from
the project tree (its ``lookup``), without copying each source into the
content store: :meth:`OfferIndex.lookup` gives the file for a sha256 we
offered, but only while it still has that content.  A file edited since it
was offered is checked again (by its stat, then its hash) and not served
as the old sha256; the puller verifies every byte it receives anyway.

Offers are made on the MajorDomo's thread and looked up on the SFTP
server's, so the index takes a lock.
"""
from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path
from typing import Mapping

CHUNK_BYTES = 1 << 20           # read size when a file is hashed again
MAX_OFFERS = 200_000            # sha256s remembered; the oldest are forgotten first

_Stat = tuple[int, int, int]    # (size, mtime_ns, ino)


def _stat(path: str) -> _Stat | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns, st.st_ino


def _sha256(path: str) -> str | None:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(CHUNK_BYTES), b""):
                digest.update(chunk)
    except OSError:
        return None
    return digest.hexdigest()


class OfferIndex:
    """sha256 -> a file of the tree that had that content when offered."""

    def __init__(self, root: Path, limit: int = MAX_OFFERS):
        self._prefix = os.path.join(os.path.abspath(root), "")
        self._limit = limit
        self._offers: dict[str, tuple[str, _Stat | None]] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._offers)

    def offer(self, files: Mapping[str, str]) -> None:
        """These project paths hold these sha256s (as the build judged them)."""
        stats = {path: _stat(self._prefix + path) for path in files}
        with self._lock:
            for path, sha in files.items():
                self._offers.pop(sha, None)          # newest last, for the forgetting
                self._offers[sha] = (path, stats[path])
            while len(self._offers) > self._limit:
                del self._offers[next(iter(self._offers))]

    def lookup(self, sha: str) -> Path | None:
        """The file to serve for `sha`, or None (never offered, or its content changed)."""
        with self._lock:
            found = self._offers.get(sha)
        if found is None:
            return None
        path, offered = found
        full = self._prefix + path
        now = _stat(full)
        if now is None:
            return None
        if now != offered:              # touched since: serve it only if it still matches
            if _sha256(full) != sha:
                return None
            with self._lock:
                if sha in self._offers:
                    self._offers[sha] = (path, now)
        return Path(full)


class StoringOffers(OfferIndex):
    """Offers a system sshd can serve (transfer/sshd.py): it sees only the
    content store it is chrooted into, not the tree, so each file offered
    is also put in ``store`` (a copy; nothing when the store has it)."""

    def __init__(self, root: Path, store, limit: int = MAX_OFFERS):
        super().__init__(root, limit)
        self._store = store                 # a ContentStore

    def offer(self, files: Mapping[str, str]) -> None:
        super().offer(files)
        for path, sha in files.items():
            if not self._store.has(sha):
                self._store.add(Path(self._prefix + path))
