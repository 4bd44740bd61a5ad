"""The tails of what a step printed: last lines, last bytes, any bytes."""
from __future__ import annotations

import os

from computepods.chef.tails import tail, tail_fd


def test_tail_keeps_the_last_lines(tmp_path):
    path = tmp_path / "log"
    path.write_text("".join(f"line {i}\n" for i in range(100)))
    text = tail(path)
    assert text.splitlines() == [f"line {i}" for i in range(60, 100)]
    assert tail(path, max_lines=2) == "line 98\nline 99\n"


def test_tail_keeps_the_last_bytes_from_a_line_start(tmp_path):
    path = tmp_path / "log"
    path.write_bytes(b"x" * 10_000 + b"\n" + b"a" * 100 + b"\nlast\n")
    assert tail(path, max_bytes=200) == "a" * 100 + "\nlast\n"
    path.write_bytes(b"y" * 10_000)
    assert tail(path, max_bytes=50) == "y" * 50


def test_tail_replaces_undecodable_bytes_and_tolerates_missing_files(tmp_path):
    path = tmp_path / "log"
    path.write_bytes(b"ok \xff\xfe bytes\n")
    assert tail(path) == "ok \ufffd\ufffd bytes\n"
    assert tail(tmp_path / "missing") == ""


def test_tail_fd_leaves_the_descriptors_offset_alone(tmp_path):
    fd = os.open(tmp_path / "log", os.O_RDWR | os.O_CREAT | os.O_APPEND)
    try:
        os.write(fd, b"one\ntwo\n")
        assert tail_fd(fd, max_lines=1) == "two\n"
        os.write(fd, b"three\n")
        assert tail_fd(fd) == "one\ntwo\nthree\n"
    finally:
        os.close(fd)
