"""The REST worker's reading of a request as it arrives (computepods.api.worker)."""
from __future__ import annotations

import inspect

from gunicorn.workers.gthread import TConn, ThreadWorker

from computepods.api.worker import MAX_HEAD_BYTES, Arrival, ArrivalWorker, chunked_end

HEAD = b"POST /v1/builds HTTP/1.1\r\nHost: localhost\r\n"


def arrived(*pieces: bytes) -> Arrival:
    arrival = Arrival()
    for piece in pieces:
        arrival.add(piece)
    return arrival


def test_a_head_is_complete_only_at_its_empty_line():
    assert not arrived(b"GET /healthz HTTP/1.1\r\nHost: x").complete()
    assert not arrived(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").complete()
    assert arrived(b"GET /healthz HTTP/1.1\r\n", b"Host: x\r\n\r\n").complete()


def test_a_small_body_must_arrive_before_a_thread_gets_it():
    head = HEAD + b"Content-Length: 10\r\n\r\n"
    assert not arrived(head, b"12345").complete()
    assert arrived(head, b"12345", b"67890").complete()
    big = HEAD + b"Content-Length: 999999999\r\n\r\n"
    assert arrived(big).complete()                 # the app refuses it unread: 413
    assert arrived(HEAD + b"Content-Length: nine\r\n\r\n").complete()     # gunicorn's 400


def test_a_chunked_body_is_complete_at_its_last_chunk():
    head = HEAD + b"Transfer-Encoding: chunked\r\n\r\n"
    assert not arrived(head, b"5\r\nhel").complete()
    assert not arrived(head, b"5\r\nhello\r\n").complete()
    assert not arrived(head, b"5\r\nhello\r\n0\r\n").complete()
    assert arrived(head, b"5\r\nhello\r\n0\r\n\r\n").complete()
    assert arrived(head, b"5;ext=1\r\nhello\r\n0\r\nX-Trailer: 1\r\n\r\n").complete()
    assert arrived(head, b"zz\r\nnot a chunk\r\n").complete()       # gunicorn's 400
    assert chunked_end(b"3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1") == len(b"3\r\nabc\r\n0\r\n\r\n")


def test_an_expect_header_is_taken_once_and_the_body_then_awaited():
    arrival = arrived(HEAD + b"Expect: 100-continue\r\nContent-Length: 2\r\n\r\n")
    assert arrival.take_expect() and not arrival.take_expect()
    assert b"expect" not in bytes(arrival.data).lower()
    assert not arrival.complete()
    arrival.add(b"{}")
    assert arrival.complete()


def test_a_head_too_large_is_seen_before_it_ends():
    assert not arrived(HEAD).head_too_large()
    assert arrived(HEAD, b"X-Big: " + b"x" * MAX_HEAD_BYTES).head_too_large()


def test_the_parts_of_gunicorn_the_worker_leans_on_are_there():
    # A gunicorn release without them must fail here, not under load.
    worker_parts = ["accept", "on_client_socket_readable", "finish_request", "handle",
                    "murder_pending", "enqueue_req"]
    for part in worker_parts:
        assert callable(getattr(ThreadWorker, part, None)), part
    init = inspect.getsource(ThreadWorker.__init__)
    assert "self.pending_conns" in init and "self.keepalived_conns" in init
    assert "data_ready" in inspect.getsource(TConn.__init__)
    assert "conn.data_ready" in inspect.getsource(ThreadWorker.handle)
    assert issubclass(ArrivalWorker, ThreadWorker)


def test_a_chunked_body_past_the_buffer_is_refused_not_awaited():
    head = HEAD + b"Transfer-Encoding: chunked\r\n\r\n"
    assert arrived(head, b"ffffffffff\r\n{}").body_too_large()
    assert arrived(head, b"8000\r\n" + b"x" * 0x8000 + b"\r\n" * 1, b"40000\r\n").body_too_large()
    assert not arrived(head, b"5\r\nhel").body_too_large()
    assert not arrived(HEAD + b"Content-Length: 5\r\n\r\n").body_too_large()
