"""The gunicorn worker of the REST app: gthread, but a thread only for a
request that has fully arrived (issue 11, break 8).

gunicorn's gthread worker reads a request in a pool thread, with blocking
reads: a client that trickles its headers a byte at a time (slowloris),
or connects and says nothing, holds a thread for as long as it likes, and
a few more such clients than threads shut everyone else out.  Every client
of a pod is 127.0.0.1, so a per-address limit cannot tell them apart.

Here the main loop, which already polls the listening socket and the
kept-alive connections, also reads each request's head, and its body when
that is small and framed by ``Content-Length`` or ``chunked``, without
blocking (:class:`Arrival`).  Only a complete request goes to a thread,
whose parser then reads it from memory.  A request not complete within
``ARRIVAL_TIMEOUT_S`` of its first byte being awaited is closed; a head
over ``MAX_HEAD_BYTES`` gets a 431.  What still holds a thread is the app
at work and an open event stream, which the app bounds itself
(:mod:`computepods.api.sse`).

This leans on ThreadWorker's own parts (``pending_conns``, whose expired
connections it closes; ``enqueue_req``; the parser's unreader), so
setup.cfg pins gunicorn to the releases that have them, and
tests/unit/api/test_worker.py checks that they are there.
"""
from __future__ import annotations

import errno
import json
import re
import selectors
import time
from dataclasses import dataclass, field
from functools import partial

from gunicorn.workers.gthread import TConn, ThreadWorker

ARRIVAL_TIMEOUT_S = 10.0        # seconds a client has to send a whole request
MAX_HEAD_BYTES = 64 * 1024      # request line and headers
MAX_BUFFERED_BODY = 256 * 1024  # bodies up to this are read here; larger go to a thread
RECV_BYTES = 64 * 1024
HEAD_END = b"\r\n\r\n"


def _answer(status: str, title: str, description: str) -> bytes:
    """A whole JSON error answer, as the app would give, closing the connection."""
    body = json.dumps({"title": title, "description": description}).encode()
    return (f"HTTP/1.1 {status}\r\nConnection: close\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


TOO_LARGE = _answer("431 Request Header Fields Too Large", "Headers too large",
                    f"the request line and headers are over {MAX_HEAD_BYTES} bytes")
BODY_TOO_LARGE = _answer("413 Content Too Large", "Body too large",
                         f"a chunked body over {MAX_BUFFERED_BODY} bytes")
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]{1,16})[ \t]*(?:;[^\r\n]*)?\r\n")


@dataclass
class Arrival:
    """The bytes of one request as they come: :meth:`complete` says when a
    thread can have it without waiting on the client."""
    data: bytearray = field(default_factory=bytearray)

    def add(self, chunk: bytes) -> None:
        self.data += chunk

    def body_too_large(self) -> bool:
        """A chunked body that has grown, or says it will grow, past
        ``MAX_BUFFERED_BODY``: refused here, as a thread would wait on it."""
        end = self.data.find(HEAD_END)
        if end < 0:
            return False
        headers = _headers(bytes(self.data[:end]))
        if (headers.get(b"transfer-encoding") or b"").strip().lower() != b"chunked":
            return False
        return chunked_end(memoryview(self.data)[end + len(HEAD_END):]) == -1

    def head_too_large(self) -> bool:
        return HEAD_END not in self.data[:MAX_HEAD_BYTES + 4] and len(self.data) > MAX_HEAD_BYTES

    def complete(self) -> bool:
        """True once the head has come and, for a small body whose end can be
        seen here, the body too; a head this module cannot frame goes to
        gunicorn's parser as it is (it answers 400 or reads on)."""
        end = self.data.find(HEAD_END)
        if end < 0:
            return False
        headers = _headers(bytes(self.data[:end]))
        body = memoryview(self.data)[end + len(HEAD_END):]
        encoding = headers.get(b"transfer-encoding")
        if encoding is not None:
            if encoding.strip().lower() != b"chunked":
                return True
            return chunked_end(body) is not None
        length = headers.get(b"content-length", b"0").strip()
        if not length.isdigit() or int(length) > MAX_BUFFERED_BODY:
            return True
        return len(body) >= int(length)


    def take_expect(self) -> bool:
        """True once, if the head asks for ``100 Continue``, which is then the
        caller's to send: the header is taken out, so gunicorn sends none."""
        end = self.data.find(HEAD_END)
        if end < 0:
            return False
        lines = bytes(self.data[:end]).split(b"\r\n")
        kept = [ln for ln in lines if not (ln.split(b":", 1)[0].strip().lower() == b"expect"
                                           and b"100-continue" in ln.lower())]
        if len(kept) == len(lines):
            return False
        self.data[:end] = b"\r\n".join(kept)
        return True


def _headers(head: bytes) -> dict[bytes, bytes]:
    """Header names (lower case) to values; a repeated name keeps its last."""
    out = {}
    for line in head.split(b"\r\n")[1:]:
        name, sep, value = line.partition(b":")
        if sep:
            out[name.strip().lower()] = value
    return out


def chunked_end(body: memoryview | bytes) -> int | None:
    """Where a complete chunked body ends (after its last CRLF), None if
    more is to come, -1 if it is past ``MAX_BUFFERED_BODY``.  Malformed
    framing counts as complete: the parser rejects it without waiting."""
    at = 0
    data = bytes(body)
    while True:
        m = _CHUNK_SIZE.match(data, at)
        if m is None:
            line_end = data.find(b"\r\n", at)
            return None if line_end < 0 and len(data) - at < 64 else len(data)
        size = int(m.group(1), 16)
        at = m.end()
        if at + size > MAX_BUFFERED_BODY:
            return -1                       # too large to wait for here
        if size == 0:                       # trailers, then an empty line
            end = data.find(b"\r\n", at)
            while end > at:
                at = end + 2
                end = data.find(b"\r\n", at)
            return None if end < 0 else end + 2
        at += size + 2
        if at > len(data):
            return None


class ArrivalWorker(ThreadWorker):
    """gthread whose threads only get complete requests (module docstring)."""

    def accept(self, listener) -> None:
        try:
            sock, addr = listener.accept()
        except BlockingIOError:
            return
        except OSError as exc:
            if exc.errno != errno.ECONNABORTED:      # the client gave up before we took it
                raise
            return
        self.nr_conns += 1
        self._await_request(TConn(self.cfg, sock, addr, listener.getsockname()))

    def on_client_socket_readable(self, conn, client) -> None:
        """A kept-alive connection has more: its next request arrives here too."""
        self.poller.unregister(client)
        self.keepalived_conns.remove(conn)
        self._await_request(conn)

    def finish_request(self, conn, fs) -> None:
        """Bytes the thread read past its request (pipelined) are the start
        of the next one: it arrives here too, not in a thread."""
        if (self.alive and not fs.cancelled() and fs.exception() is None and fs.result()
                and conn.parser is not None and conn.parser.unreader.buf.getvalue()):
            ahead = conn.parser.unreader.take_buffered()
            self._await_request(conn, ahead)
            return
        super().finish_request(conn, fs)

    def handle(self, conn):
        """In a thread: the request is in memory; hand it to the parser."""
        arrival = getattr(conn, "arrival", None)
        if arrival is not None:
            conn.arrival = None
            conn.sock.setblocking(True)
            conn.init()
            conn.parser.unreader.unread(bytes(arrival.data))
        return super().handle(conn)

    def murder_pending(self) -> None:
        """Close requests too slow to arrive; a stopping worker closes them all
        at once (no request of theirs has started, and the worker would
        otherwise wait for them until its graceful timeout)."""
        if not self.alive:
            for conn in list(self.pending_conns):
                self._drop(conn)
        super().murder_pending()

    # -- the main loop's side ---------------------------------------------------

    def _await_request(self, conn, ahead: bytes = b"") -> None:
        conn.sock.setblocking(False)
        conn.arrival = Arrival(bytearray(ahead))
        conn.timeout = time.monotonic() + ARRIVAL_TIMEOUT_S
        self.pending_conns.append(conn)        # closed by murder_pending when late
        if ahead and self._dispatch_if_ready(conn):
            return
        self.poller.register(conn.sock, selectors.EVENT_READ,
                             partial(self._on_request_bytes, conn))

    def _on_request_bytes(self, conn, client) -> None:
        try:
            chunk = conn.sock.recv(RECV_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            chunk = b""
        if not chunk:                           # the client went away
            self._drop(conn)
            return
        conn.arrival.add(chunk)
        if conn.arrival.head_too_large():
            self._refuse(conn, TOO_LARGE)
            return
        if conn.arrival.body_too_large():
            self._refuse(conn, BODY_TOO_LARGE)
            return
        if conn.arrival.take_expect():
            try:
                conn.sock.send(CONTINUE)
            except OSError:
                pass
        self._dispatch_if_ready(conn, registered=True)

    def _dispatch_if_ready(self, conn, registered: bool = False) -> bool:
        if not conn.arrival.complete():
            return False
        if registered:
            self.poller.unregister(conn.sock)
        self.pending_conns.remove(conn)
        conn.data_ready = True
        self.enqueue_req(conn)
        return True

    def _refuse(self, conn, answer: bytes) -> None:
        try:
            conn.sock.send(answer)
        except OSError:
            pass
        self._drop(conn)

    def _drop(self, conn) -> None:
        try:
            self.poller.unregister(conn.sock)
        except (KeyError, ValueError, OSError):
            pass
        self.pending_conns.remove(conn)
        self.nr_conns -= 1
        conn.close()
