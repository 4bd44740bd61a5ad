"""ContentStore: the layout, add (link or copy), receive (verify, install)."""
from __future__ import annotations

import hashlib
import os
import stat

import pytest

from computepods.errors import TransferError
from computepods.transfer.store import ContentStore, valid_sha


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_a_file_is_kept_under_its_hash(tmp_path):
    store = ContentStore(tmp_path / "store")
    src = tmp_path / "out.txt"
    src.write_bytes(b"hello\n")
    got = store.add(src)
    assert got == sha(b"hello\n")
    where = store.path(got)
    assert where == tmp_path / "store" / "sha256" / got[:2] / got
    assert where.read_bytes() == b"hello\n"
    assert store.has(got)
    assert stat.S_IMODE(where.stat().st_mode) == 0o444


def test_a_writable_file_is_copied_so_a_later_edit_leaves_the_store_alone(tmp_path):
    store = ContentStore(tmp_path / "store")
    src = tmp_path / "out.txt"
    src.write_bytes(b"first")
    got = store.add(src)
    assert store.path(got).stat().st_ino != src.stat().st_ino
    with open(src, "r+b") as f:          # edited in place, as a careless tool would
        f.write(b"FIRST")
    assert store.path(got).read_bytes() == b"first"


def test_a_read_only_file_on_the_same_disk_is_linked(tmp_path):
    store = ContentStore(tmp_path / "store")
    src = tmp_path / "out.bin"
    src.write_bytes(b"x" * 10_000)
    src.chmod(0o444)
    got = store.add(src)
    assert store.path(got).stat().st_ino == src.stat().st_ino
    assert store.path(got).read_bytes() == b"x" * 10_000


def test_adding_the_same_content_twice_keeps_one_file(tmp_path):
    store = ContentStore(tmp_path / "store")
    for name in ("a", "b"):
        (tmp_path / name).write_bytes(b"same")
    assert store.add(tmp_path / "a") == store.add(tmp_path / "b")
    files = [p for p in (tmp_path / "store").rglob("*") if p.is_file()]
    assert len(files) == 1


def test_received_content_with_its_hash_is_installed(tmp_path):
    store = ContentStore(tmp_path / "store")
    data = os.urandom(300_000)
    with store.receive(sha(data)) as out:
        out.write(data[:1000])
        out.write(memoryview(data)[1000:])
    assert store.path(sha(data)).read_bytes() == data
    assert leftovers(store) == []


def test_received_content_with_another_hash_is_refused_and_nothing_stays(tmp_path):
    store = ContentStore(tmp_path / "store")
    claimed = sha(b"what was promised")
    with pytest.raises(TransferError) as caught:
        with store.receive(claimed) as out:
            out.write(b"something else")
    assert claimed in str(caught.value) and sha(b"something else") in str(caught.value)
    assert not store.has(claimed)
    assert leftovers(store) == []


def test_a_receive_that_fails_midway_leaves_no_temp_file(tmp_path):
    store = ContentStore(tmp_path / "store")
    with pytest.raises(ConnectionError):
        with store.receive(sha(b"abc")) as out:
            out.write(b"a")
            raise ConnectionError("the pod went away")
    assert not store.has(sha(b"abc"))
    assert leftovers(store) == []


@pytest.mark.parametrize("name", ["", "abc", "../" + "a" * 61, "A" * 64, "g" * 64,
                                  "a" * 63 + "/", "a" * 65, None])
def test_a_name_that_is_not_a_sha256_is_refused(tmp_path, name):
    store = ContentStore(tmp_path / "store")
    assert not valid_sha(name)
    with pytest.raises(ValueError):
        store.path(name)


def leftovers(store: ContentStore) -> list[str]:
    """Temp files left in the store."""
    return [p.name for p in store.root.rglob(".tmp-*")]


def test_temp_files_left_by_a_killed_transfer_are_removed_once_stale(tmp_path):
    store = ContentStore(tmp_path / "store")
    left = store.path("ab" * 32).parent / ".tmp-0123456789abcdef"
    left.parent.mkdir()
    left.write_bytes(b"half a file")
    fresh = store.root / "sha256" / ".tmp-fedcba9876543210"
    fresh.write_bytes(b"another process is writing me")
    an_hour_ago = left.stat().st_mtime - 3601
    os.utime(left, (an_hour_ago, an_hour_ago))
    ContentStore(tmp_path / "store")           # a pod starting on its store
    assert not left.exists() and fresh.exists()
