"""The SFTP view's path rules and what it opens, without a server."""
from __future__ import annotations

import os

import pytest

from computepods.transfer.store import ContentStore
from computepods.transfer.storesftp import Served, sha_of

HEX = "ab" * 32


@pytest.mark.parametrize("path", [f"/sha256/{HEX}", f"sha256/{HEX}", f"//sha256/{HEX}",
                                  f"/sha256/./{HEX}", f"/x/../sha256/{HEX}", f"/sha256/ab/{HEX}",
                                  f"/sha256/ab/../ab/{HEX}"])
def test_the_two_readable_names_in_their_spellings(path):
    assert sha_of(path) == HEX


@pytest.mark.parametrize("path", ["/", "/sha256", "/sha256/", f"/sha256/../{HEX}",
                                  "/etc/passwd", f"/sha256/{HEX}/x", f"/sha256/{HEX[:-1]}",
                                  f"/sha256/{HEX.upper()}", f"/sha256/cd/{HEX}",
                                  f"/sha256/ab/ab/{HEX}", f"/sha256/a/{HEX}",
                                  f"/sha256/{HEX}\0", "../../etc/passwd"])
def test_every_other_name_is_refused(path):
    assert sha_of(path) is None


def test_a_symlink_planted_in_the_store_is_not_followed(tmp_path):
    store = ContentStore(tmp_path / "store")
    secret = tmp_path / "secret"
    secret.write_text("do not serve")
    store.path(HEX).parent.mkdir(parents=True)
    os.symlink(secret, store.path(HEX))
    assert Served(store, None).open_sha(HEX) is None


def test_a_symlinked_directory_in_the_store_is_not_followed(tmp_path):
    store = ContentStore(tmp_path / "store")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / HEX).write_text("do not serve")
    os.symlink(elsewhere, store.path(HEX).parent)
    assert Served(store, None).open_sha(HEX) is None


def test_a_missing_sha_is_asked_of_the_lookup(tmp_path):
    store = ContentStore(tmp_path / "store")
    src = tmp_path / "project-file"
    src.write_text("source")
    asked = []
    served = Served(store, lambda sha: asked.append(sha) or src)
    fd = served.open_sha(HEX)
    try:
        assert os.read(fd, 100) == b"source"
    finally:
        os.close(fd)
    assert asked == [HEX]
    assert Served(store, lambda sha: tmp_path).open_sha(HEX) is None   # a directory
