"""The HTTP client of a pod's REST API: requests, and a build's event stream.

Standard library only, so ``cpctrl`` starts at once.  :class:`Api` turns
what can go wrong into the errors cpctrl exits with: ServerUnreachable (no
answer, a refused token, a stream that broke off) or RequestRefused (an
HTTP error, with the server's title and description).
"""
from __future__ import annotations

import http.client
import json
from typing import Iterator
from urllib.parse import quote, urlsplit

from computepods.errors import ComputePodsError, RequestRefused, ServerUnreachable

TIMEOUT_S = 60.0            # seconds a request (or a silent event stream) may take


class Api:
    """Requests to one server; raises ServerUnreachable or RequestRefused."""

    def __init__(self, url: str, token: str | None = None, timeout: float = TIMEOUT_S):
        parts = urlsplit(url if "://" in url else "http://" + url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ComputePodsError(f"--url {url!r}: expected http://HOST:PORT")
        self.url = f"{parts.scheme}://{parts.netloc}"
        self.base = parts.path.rstrip("/")
        self.parts = parts
        self.token = token
        self.timeout = timeout

    def _conn(self) -> http.client.HTTPConnection:
        cls = http.client.HTTPSConnection if self.parts.scheme == "https" else \
            http.client.HTTPConnection
        return cls(self.parts.hostname, self.parts.port, timeout=self.timeout)

    def open(self, method: str, path: str, body: dict | None = None,
             headers: dict | None = None) -> tuple[http.client.HTTPConnection,
                                                   http.client.HTTPResponse]:
        heads = {"Accept": "application/json", **(headers or {})}
        if self.token:
            heads["Authorization"] = f"Bearer {self.token}"
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            heads["Content-Type"] = "application/json"
        conn = self._conn()
        try:
            conn.request(method, self.base + path, body=data, headers=heads)
            resp = conn.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise ServerUnreachable(f"cannot reach {self.url}: {_why(exc)}") from None
        if resp.status >= 400:
            try:
                err = json.loads(resp.read() or b"{}")
            except (ValueError, OSError, http.client.HTTPException):
                err = {}
            conn.close()
            title = err.get("title") or f"HTTP {resp.status}"
            if resp.status == 401:
                title = "token refused" if self.token else "this server needs a token (--token or CP_API_TOKEN)"
                raise ServerUnreachable(f"{self.url}: {title}")
            raise RequestRefused(resp.status, title, err.get("description", ""))
        return conn, resp

    def call(self, method: str, path: str, body: dict | None = None):
        conn, resp = self.open(method, path, body)
        try:
            data = resp.read()
        except (OSError, http.client.HTTPException) as exc:
            raise ServerUnreachable(f"{self.url}: the answer broke off: {_why(exc)}") from None
        finally:
            conn.close()
        if resp.getheader("Content-Type", "").startswith("application/json"):
            return json.loads(data)
        return data.decode(errors="replace")

    def events(self, build_id: str) -> Iterator[dict]:
        """A build's events (server-sent), to its done event."""
        last = None
        for _ in range(2):                  # one reconnect if the stream breaks off
            headers = {"Accept": "text/event-stream"}
            if last is not None:
                headers["Last-Event-ID"] = str(last)
            conn, resp = self.open("GET", f"/v1/builds/{quote(build_id, safe='')}/events",
                                   headers=headers)
            try:
                if resp.status == 204:
                    return
                for seq, ev in sse_events(resp):
                    last = seq
                    yield ev
                    if ev.get("t") == "done":
                        return
            except (OSError, http.client.HTTPException):
                pass
            finally:
                conn.close()
        raise ServerUnreachable(f"{self.url}: the event stream of build {build_id} broke off")


def _why(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


def sse_events(resp) -> Iterator[tuple[int | None, dict]]:
    """(id, event) of each JSON event in a server-sent event stream, to its
    end; comments, other fields and undecodable data are skipped."""
    seq, data = None, []
    while True:
        line = resp.readline()
        if not line:
            return
        line = line.decode("utf-8", errors="replace").rstrip("\r\n")
        if not line:
            if data:
                try:
                    yield seq, json.loads("\n".join(data))
                except ValueError:
                    pass
            data = []
        elif line.startswith("data:"):
            data.append(line[5:].lstrip(" "))
        elif line.startswith("id:"):
            value = line[3:].strip()
            seq = int(value) if value.isdigit() else seq
