"""A handed-off build shown by the pod: what the thin client prints, framed.

The thin client (:mod:`computepods.cli.quick`) imports next to nothing, so
it cannot read JSON events or draw progress: the pod does both for it.  A
``POST /build`` whose body has ``"render"`` (the client's terminal: is
stderr a terminal, its width, ``-v``, ``--explain``) is answered with
frames instead of JSON lines.  A frame is one kind byte, the payload's
length in decimal, ``:``, and the payload:

- ``2``: text for the client's stderr (:class:`~computepods.cli.progress.Progress`'s output);
- ``i``: what the client says if it is interrupted (the build is cancelled,
  or, for a build it joined, goes on);
- ``x``: the exit code, last.
"""
from __future__ import annotations

import threading
from typing import Callable

from computepods.cli.progress import Progress

STDERR, ON_INTERRUPT, EXIT = b"2", b"i", b"x"


def frame(kind: bytes, payload: bytes) -> bytes:
    return kind + str(len(payload)).encode() + b":" + payload


class _Stderr:
    """The text stream Progress writes to: each flush sends one frame."""

    def __init__(self, send: Callable[[bytes], None], tty: bool):
        self._send, self._tty, self._parts = send, tty, []

    def isatty(self) -> bool:
        return self._tty

    def write(self, text: str) -> int:
        self._parts.append(text)
        return len(text)

    def flush(self) -> None:
        if self._parts:
            text, self._parts = "".join(self._parts), []
            self._send(frame(STDERR, text.encode("utf-8", "replace")))


class RenderedBuild:
    """Build events in, frames out (``send`` writes bytes to the client)."""

    def __init__(self, render: dict, pid: int, send: Callable[[bytes], None]):
        tty = bool(render.get("tty"))
        columns = render.get("columns")
        self._lock = threading.Lock()
        self._send = send
        self._pid = pid
        self._stderr = _Stderr(send, tty)
        self._progress = Progress(self._stderr, verbose=bool(render.get("verbose")),
                                  explain=bool(render.get("explain")), tty=tty,
                                  flush_when_waiting=True,
                                  columns=columns if isinstance(columns, int) else None)

    def event(self, ev: dict) -> None:
        with self._lock:
            if ev.get("t") == "accepted":
                self._send(frame(ON_INTERRUPT, self._interrupted(ev).encode()))
            self._progress.handle(ev)
            self._progress.flush()

    def _interrupted(self, accepted: dict) -> str:
        if accepted.get("joined"):
            return (f"cpod: stopped following; build {accepted.get('build')} was asked for by "
                    f"another client and goes on in the pod (pid {self._pid})\n")
        return f"cpod: the pod (pid {self._pid}) cancels the build\n"

    def exit(self, code: int) -> None:
        with self._lock:
            self._progress.flush()
            self._send(frame(EXIT, str(int(code)).encode()))
