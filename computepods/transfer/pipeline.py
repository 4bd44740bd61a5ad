"""Reading one remote file with a bounded pipeline of SFTP read requests.

paramiko's ``SFTPFile.prefetch`` asks for 32 KiB at a time from a helper
thread that sleeps while its window of requests is full; it moved 4-50
MB/s on loopback, whatever its request limit.  Here the calling
thread keeps ``READS_IN_FLIGHT`` requests of ``READ_BYTES`` outstanding and
writes the answers in order: 150-215 MB/s on the same machine
(bench/transfer.py).

It leans on two internals of paramiko's SFTPClient, ``_async_request``
and ``_read_response`` (as prefetch itself does);
tests/unit/transfer/test_pipeline.py checks they are there.  A server may
answer a read with fewer bytes than asked (OpenSSH caps reads at its
message size): the rest is asked for again before going on.
"""
from __future__ import annotations

import collections
from typing import BinaryIO, Callable

import paramiko
from paramiko.sftp import CMD_DATA, CMD_READ, CMD_STATUS, SFTP_EOF
from paramiko.sftp_client import int64

from computepods.transfer.tuning import READ_BYTES, READS_IN_FLIGHT


class _Answers:
    """Where paramiko delivers the answers to our read requests."""

    def __init__(self):
        self.got: dict[int, tuple[int, paramiko.Message]] = {}

    def _async_response(self, t: int, msg: paramiko.Message, num: int) -> None:
        self.got[num] = (t, msg)


def read_pipelined(sftp: paramiko.SFTPClient, path: str, out: BinaryIO,
                   in_flight: int = READS_IN_FLIGHT, read_bytes: int = READ_BYTES,
                   progress: Callable[[int], None] | None = None) -> int:
    """Copy the remote file ``path`` into ``out`` in order; the bytes copied.

    Raises IOError (from paramiko) when the server refuses the file, and
    EOFError when it ends before the size it stated."""
    handle_file = sftp.open(path, "rb")
    try:
        size = handle_file.stat().st_size
        handle = handle_file.handle
        answers = _Answers()
        asked: collections.deque[tuple[int, int, int]] = collections.deque()
        next_ask = 0          # the first offset not yet asked for
        done = 0              # bytes written to out, in order
        while done < size:
            while next_ask < size and len(asked) < in_flight:
                length = min(read_bytes, size - next_ask)
                num = sftp._async_request(answers, CMD_READ, handle, int64(next_ask), length)
                asked.append((num, next_ask, length))
                next_ask += length
            num, offset, length = asked.popleft()
            while num not in answers.got:
                sftp._read_response()
            t, msg = answers.got.pop(num)
            data = _data(sftp, t, msg, path)
            if offset != done or not data:
                raise EOFError(f"{path}: the server stopped at byte {done} of {size}")
            out.write(data)
            done += len(data)
            if progress is not None:
                progress(len(data))
            if len(data) < length:
                # A short answer: drain what is in flight (it lies beyond a
                # gap) and ask again from here.
                _drain(sftp, answers, asked)
                next_ask = done
        return done
    finally:
        handle_file.close()


def _data(sftp: paramiko.SFTPClient, t: int, msg: paramiko.Message, path: str) -> bytes:
    if t == CMD_DATA:
        return msg.get_string()
    if t == CMD_STATUS:
        code = msg.get_int()
        if code == SFTP_EOF:
            return b""
        msg.rewind()
        msg.get_int()
        sftp._convert_status(msg)       # raises IOError with the server's text
    raise IOError(f"{path}: unexpected SFTP answer {t} to a read")


def _drain(sftp: paramiko.SFTPClient, answers: _Answers,
           asked: collections.deque[tuple[int, int, int]]) -> None:
    while asked:
        num, _offset, _length = asked.popleft()
        while num not in answers.got:
            sftp._read_response()
        answers.got.pop(num)
