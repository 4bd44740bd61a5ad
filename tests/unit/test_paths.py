"""paths: the state directory's names and the one atomic write."""
from __future__ import annotations

import os

import pytest

from computepods import paths


def test_every_state_path_is_inside_the_state_directory():
    names = [v for k, v in vars(paths).items() if k.isupper() and k not in
             ("PROJECT_FILE", "STATE_DIR")]
    assert names and all(paths.in_state_dir(n) for n in names)
    assert not paths.in_state_dir(".computepods-not") and not paths.in_state_dir("src/a.c")


def test_atomic_write_replaces_the_file_whole_and_leaves_no_temp_file(tmp_path):
    target = tmp_path / "pod.json"
    target.write_bytes(b"old")
    paths.atomic_write(target, b"new" * 100_000, durable=True)
    assert target.read_bytes() == b"new" * 100_000
    assert os.listdir(tmp_path) == ["pod.json"]


def test_a_failed_atomic_write_keeps_the_old_file_and_removes_its_temp_file(tmp_path):
    target = tmp_path / "cron.json"
    target.write_bytes(b"old")
    with pytest.raises(TypeError):
        paths.atomic_write(target, "not bytes")      # type: ignore[arg-type]
    assert target.read_bytes() == b"old" and os.listdir(tmp_path) == ["cron.json"]
