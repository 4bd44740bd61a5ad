"""The stat cache hashes only what may have changed, and never trusts a racy stat."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

from computepods.state import hashing
from computepods.state.hashing import FileRecord, StatCache, sha256_file, stat_key

SECOND_NS = 1_000_000_000
FAKE_SHA = "f" * 64     # a hash no real content has: seeing it proves no hashing


def write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def old_record(root: Path, rel: str, sha: str = FAKE_SHA) -> FileRecord:
    """A record of the file as it is now, checked long after its mtime (clean)."""
    size, mtime_ns, ino = stat_key(root / rel)
    return FileRecord(rel, size, mtime_ns, ino, sha, mtime_ns + 10 * SECOND_NS)


def test_sha256_file_matches_hashlib_across_chunks(tmp_path):
    data = os.urandom(hashing.READ_CHUNK_BYTES * 2 + 123)
    write(tmp_path / "big", data)
    assert sha256_file(tmp_path / "big") == hashlib.sha256(data).hexdigest()
    write(tmp_path / "empty", b"")
    assert sha256_file(str(tmp_path / "empty")) == hashlib.sha256(b"").hexdigest()


def test_stat_key_of_file_directory_and_missing(tmp_path):
    write(tmp_path / "a", b"abc")
    st = os.stat(tmp_path / "a")
    assert stat_key(tmp_path / "a") == (3, st.st_mtime_ns, st.st_ino)
    assert stat_key(tmp_path) is None
    assert stat_key(tmp_path / "missing") is None
    assert stat_key(tmp_path / "a" / "below-a-file") is None


def test_new_file_is_hashed_and_recorded(tmp_path):
    write(tmp_path / "src" / "a.c", b"int main;")
    cache = StatCache(tmp_path, {})
    assert cache.digest("src/a.c") == hashlib.sha256(b"int main;").hexdigest()
    [rec] = cache.updated()
    assert rec.path == "src/a.c" and rec.size == 9
    assert (rec.size, rec.mtime_ns, rec.ino) == stat_key(tmp_path / "src/a.c")
    assert cache.record_for("src/a.c") == rec


def test_unchanged_stat_with_old_check_is_not_hashed(tmp_path):
    write(tmp_path / "a", b"content")
    cache = StatCache(tmp_path, {"a": old_record(tmp_path, "a")})
    assert cache.digest("a") == FAKE_SHA
    assert cache.updated() == []


def test_racily_clean_same_size_rewrite_in_the_same_tick_is_noticed(tmp_path):
    write(tmp_path / "a", b"one")
    st = os.stat(tmp_path / "a")
    # Checked in the same tick as the write: the stat proves nothing.
    racy = FileRecord("a", st.st_size, st.st_mtime_ns, st.st_ino,
                      hashlib.sha256(b"one").hexdigest(), st.st_mtime_ns)
    # Rewrite in place with the same size and (as a coarse clock would) the same mtime.
    with open(tmp_path / "a", "r+b") as f:
        f.write(b"two")
    os.utime(tmp_path / "a", ns=(st.st_atime_ns, st.st_mtime_ns))
    assert stat_key(tmp_path / "a") == racy.key

    cache = StatCache(tmp_path, {"a": racy})
    assert cache.digest("a") == hashlib.sha256(b"two").hexdigest()
    [rec] = cache.updated()
    assert rec.checked_ns > racy.checked_ns


def test_racy_record_is_rehashed_even_when_content_is_unchanged(tmp_path):
    write(tmp_path / "a", b"same")
    size, mtime_ns, ino = stat_key(tmp_path / "a")
    racy = FileRecord("a", size, mtime_ns, ino, FAKE_SHA, mtime_ns - 1)
    cache = StatCache(tmp_path, {"a": racy})
    assert cache.digest("a") == hashlib.sha256(b"same").hexdigest()


def test_whole_second_mtimes_get_a_wider_racy_window(tmp_path):
    write(tmp_path / "a", b"x")
    os.utime(tmp_path / "a", ns=(1_000 * SECOND_NS, 1_000 * SECOND_NS))
    size, mtime_ns, ino = stat_key(tmp_path / "a")
    one_s_later = FileRecord("a", size, mtime_ns, ino, FAKE_SHA, mtime_ns + SECOND_NS)
    assert hashing.is_racy(one_s_later)
    assert not hashing.is_racy(FileRecord("a", size, mtime_ns + 1, ino, FAKE_SHA,
                                          mtime_ns + SECOND_NS))


def test_stat_change_without_content_change_gives_the_same_hash(tmp_path):
    write(tmp_path / "a", b"data")
    real = hashlib.sha256(b"data").hexdigest()
    rec = old_record(tmp_path, "a", sha=real)
    os.utime(tmp_path / "a", ns=(rec.mtime_ns + 5 * SECOND_NS,) * 2)
    cache = StatCache(tmp_path, {"a": rec})
    assert cache.digest("a") == real
    [new] = cache.updated()
    assert new.mtime_ns == rec.mtime_ns + 5 * SECOND_NS and new.sha256 == real


def test_replaced_file_with_same_size_and_mtime_is_noticed_by_inode(tmp_path):
    write(tmp_path / "a", b"old!")
    rec = old_record(tmp_path, "a", sha=hashlib.sha256(b"old!").hexdigest())
    write(tmp_path / "a.new", b"new!")
    os.utime(tmp_path / "a.new", ns=(rec.mtime_ns, rec.mtime_ns))
    keep_inode_alive = open(tmp_path / "a", "rb")   # so the new file cannot reuse it
    try:
        os.replace(tmp_path / "a.new", tmp_path / "a")
        cache = StatCache(tmp_path, {"a": rec})
        assert cache.digest("a") == hashlib.sha256(b"new!").hexdigest()
    finally:
        keep_inode_alive.close()


def test_missing_and_non_files_give_none_and_keep_their_record(tmp_path):
    (tmp_path / "d").mkdir()
    write(tmp_path / "gone", b"x")
    rec = old_record(tmp_path, "gone")
    (tmp_path / "gone").unlink()
    cache = StatCache(tmp_path, {"gone": rec})
    assert cache.digest("gone") is None
    assert cache.digest("d") is None
    assert cache.digest("nothing/here") is None
    assert cache.record_for("gone") == rec
    assert cache.updated() == []


def test_forget_makes_the_next_digest_hash_again(tmp_path):
    write(tmp_path / "a", b"abc")
    cache = StatCache(tmp_path, {"a": old_record(tmp_path, "a")})
    assert cache.digest("a") == FAKE_SHA
    cache.forget("a")
    assert cache.record_for("a") is None
    assert cache.digest("a") == hashlib.sha256(b"abc").hexdigest()


def test_noop_over_many_files_hashes_nothing(tmp_path, monkeypatch):
    records = {}
    for i in range(300):
        rel = f"d{i % 7}/f{i}.txt"
        write(tmp_path / rel, b"x" * i)
        records[rel] = old_record(tmp_path, rel)

    def no_hashing(_fd, _size):
        raise AssertionError("a no-op check must not hash")

    monkeypatch.setattr(hashing, "_hash_fd", no_hashing)
    cache = StatCache(tmp_path, records)
    assert all(cache.digest(rel) == FAKE_SHA for rel in records)
    assert cache.updated() == []
