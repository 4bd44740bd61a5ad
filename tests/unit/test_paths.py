"""paths: the state directory's names and the one atomic write."""
from __future__ import annotations

import errno
import os

import pytest

from computepods import errors, paths


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


def test_a_full_disk_names_the_disk_and_what_was_not_written(tmp_path):
    target = tmp_path / "out.bin"
    with pytest.raises(errors.DiskFull) as caught:
        with paths.writing(target, "output out.bin"):
            raise OSError(errno.ENOSPC, "No space left on device", str(target))
    text = str(caught.value)
    assert f"the disk holding {target} is full" in text
    assert f"the filesystem mounted at {paths.mount_of(tmp_path)}" in text
    assert "bytes free" in text and "not written: output out.bin" in text
    assert isinstance(caught.value, OSError) and caught.value.errno == errno.ENOSPC


def test_a_refused_write_is_a_permission_problem(tmp_path):
    with pytest.raises(errors.NotWritable, match="permission problem") as caught:
        with paths.writing(tmp_path / "lock", "the project lock"):
            raise PermissionError(errno.EACCES, "Permission denied", str(tmp_path / "lock"))
    assert "corrupt" not in str(caught.value)


def test_other_errors_pass_through_writing(tmp_path):
    with pytest.raises(FileNotFoundError):
        with paths.writing(tmp_path, "x"):
            raise FileNotFoundError(errno.ENOENT, "gone")


def test_mount_of_finds_the_mount_point():
    assert paths.mount_of("/proc/self/status") == "/proc"
    assert paths.mount_of("/no/such/dir/at/all") == paths.mount_of("/")
