"""The REST client's plain parts: the event-stream reader, the server's address."""
from __future__ import annotations

import io
import socket

import pytest

from computepods.cli.restclient import Api, sse_events
from computepods.errors import ComputePodsError, ServerUnreachable


def test_the_sse_reader_takes_ids_and_skips_comments():
    stream = io.BytesIO(b"retry: 3000\n\n: ping\n\nid: 0\nevent: plan\ndata: {\"t\": \"plan\"}\n\n"
                        b"id: 1\nevent: done\ndata: {\"t\":\"done\",\r\ndata: \"ok\":true}\n\n")
    assert list(sse_events(stream)) == [(0, {"t": "plan"}), (1, {"t": "done", "ok": True})]


def test_an_event_with_bad_json_is_skipped_and_the_stream_ends_with_its_input():
    stream = io.BytesIO(b"id: 4\ndata: {not json\n\nid: x\ndata: {\"t\": \"log\"}\n\n")
    assert list(sse_events(stream)) == [(4, {"t": "log"})]     # a bad id keeps the last one


def test_the_servers_address_is_read_from_the_url():
    api = Api("127.0.0.1:9000/pod/")
    assert (api.url, api.base) == ("http://127.0.0.1:9000", "/pod")
    assert Api("https://example.org").url == "https://example.org"
    with pytest.raises(ComputePodsError, match="expected http://HOST:PORT"):
        Api("ftp://somewhere")


@pytest.fixture
def unused_port():
    """A port nothing listens on (bound, then freed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_server_that_is_not_there_is_unreachable(unused_port):
    with pytest.raises(ServerUnreachable, match=f"cannot reach http://127.0.0.1:{unused_port}"):
        Api(f"127.0.0.1:{unused_port}", timeout=5).call("GET", "/v1/pods")
