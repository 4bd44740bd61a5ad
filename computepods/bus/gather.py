"""Asking on NATS: one answer (a request, sent again until answered), or
every answer within a window (a gather: scatter-gather).

A request (``Bus.request``) waits for the first answer, retrying an attempt
that got none (:func:`request_on_nats`).  A gather
(``Bus.gather``) publishes one message with a private reply inbox and keeps
every answer that comes back within a window, or until it has
``max_replies`` of them, then posts them to the asking chart as ONE event:
``GATHERED`` with a :class:`Gathered`.  The Scout asks ``pods.discover`` so
(charts/scout.py): each pod answers with its hello.

Core NATS gives no count of who heard a message, so the window is how long
the asker is willing to wait for a slow answerer; it is never retried (a
second round is a new gather).  A malformed answer, or one that says
``{"error"}``, is not a reply: it is counted in ``problems``, by what was
wrong, and the others are kept.
"""
from __future__ import annotations

import asyncio
import itertools
import logging
from dataclasses import dataclass
from typing import Any, Callable

from computepods.bus.natsimport import nats
from nats.errors import NoRespondersError, TimeoutError as NatsTimeoutError

from computepods.bus import messages as m
from computepods.errors import MalformedMessage

log = logging.getLogger("computepods.bus")

MAX_WINDOW_S = 60.0          # seconds: the longest a gather may listen
MAX_GATHER_REPLIES = 10_000  # answers one gather keeps at most
_tokens = itertools.count(1)


@dataclass(frozen=True)
class Gathered:
    """What one gather heard: the valid answers in order of arrival, and what
    was wrong with the others (or with sending at all)."""
    token: str
    subject: str
    replies: tuple[dict, ...]
    problems: tuple[str, ...] = ()


def gather_token(bus_name: str) -> str:
    """A token no other gather of this process has."""
    return f"{bus_name}:gather:{next(_tokens)}"


def check_window(window_s: float, max_replies: int) -> None:
    """ValueError unless the window and the reply count are ones a gather keeps."""
    if not 0 < window_s <= MAX_WINDOW_S:
        raise ValueError(f"a gather's window must be over 0 and at most {MAX_WINDOW_S:g} s, "
                         f"got {window_s!r}")
    if not 0 < max_replies <= MAX_GATHER_REPLIES:
        raise ValueError(f"a gather keeps 1 to {MAX_GATHER_REPLIES} replies, got {max_replies!r}")


def answer_of(subject: str, data: bytes, token: Any = None) -> m.Reply:
    """An answer's bytes as a Reply: its data, or an error naming the subject."""
    try:
        answer = m.decode(subject, data, m.REPLY)
    except MalformedMessage as exc:
        return m.Reply(token, None, str(exc))
    if "error" in answer:
        return m.Reply(token, answer, f"{subject}: {answer['error']}")
    return m.Reply(token, answer)


async def request_on_nats(nc, subject: str, data: bytes, timeout: float, attempts: int,
                          stats, token: Any = None) -> m.Reply:
    """Ask until answered, `attempts` times of `timeout` s at most; the Reply
    (with its error set when none came).  ``stats`` counts retries and sends."""
    last = "no answer"
    for attempt in range(1, attempts + 1):
        try:
            msg = await nc.request(subject, data, timeout=timeout)
        except (NatsTimeoutError, NoRespondersError, nats.errors.ConnectionReconnectingError,
                nats.errors.OutboundBufferLimitError) as exc:
            last = type(exc).__name__
            stats.retries += 1
            if isinstance(exc, NoRespondersError):
                await asyncio.sleep(min(timeout, 0.05 * attempt))   # nobody yet: back off
            continue
        stats.published += 1
        return answer_of(subject, msg.data, token)
    return m.Reply(token, None, f"no answer on {subject} after {attempts} attempts "
                                f"of {timeout:.1f} s ({last})")


class Collector:
    """The answers of one gather, as they come (on whatever thread delivers)."""

    def __init__(self, token: str, subject: str, max_replies: int):
        self.token, self.subject, self.max_replies = token, subject, max_replies
        self.replies: list[dict] = []
        self.problems: list[str] = []

    def take(self, data: bytes) -> bool:
        """Keep one answer; True once the gather has all it wants."""
        reply = answer_of(self.subject, data)
        if reply.error:
            self.problems.append(reply.error)
        elif len(self.replies) < self.max_replies:
            self.replies.append(reply.data)
        return self.full

    @property
    def full(self) -> bool:
        return len(self.replies) >= self.max_replies

    def result(self, problem: str = "") -> Gathered:
        problems = self.problems + ([problem] if problem else [])
        return Gathered(self.token, self.subject, tuple(self.replies), tuple(problems))


async def gather_on_nats(nc, collector: Collector, data: bytes, window_s: float,
                         deliver: Callable[[Gathered], None]) -> None:
    """Publish on a NATS connection with a fresh inbox and gather its answers;
    `deliver` gets the result once, whatever happened."""
    done = asyncio.Event()
    sub, problem = None, ""

    async def heard(msg) -> None:
        if not done.is_set() and collector.take(msg.data):
            done.set()
    try:
        inbox = nc.new_inbox()
        sub = await nc.subscribe(inbox, cb=heard)
        await nc.publish(collector.subject, data, reply=inbox)
        await asyncio.wait_for(done.wait(), window_s)
    except asyncio.TimeoutError:
        pass                                    # the window closed: what came is the answer
    except Exception as exc:                    # the chart hears of it in `problems`
        problem = f"cannot gather on {collector.subject}: {type(exc).__name__}: {exc}"
        log.error("%s", problem)
    finally:
        done.set()
        if sub is not None:
            try:
                await sub.unsubscribe()
            except Exception as exc:            # the connection went; nothing to free
                log.debug("unsubscribe of a gather's inbox failed: %s", exc)
    deliver(collector.result(problem))
