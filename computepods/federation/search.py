"""What a Scout looks for, what it answers, and its probes (plain code).

A search (:class:`Search`) names what is wanted (:class:`Want`): one pod by
id, a role (``chef``: any chef pod; ``None``: any pod), a tool (and, if
given, its fingerprint), a number of free slots.  The Scout asks
``pods.discover`` with it; each pod answers with its hello, and
:func:`candidates` keeps those that match and whose host key is not refused
by the Roster.  Each candidate's SFTP endpoint is then probed off the chart's
thread (:class:`Prober`): ``probe(endpoint)`` returns None when the endpoint
accepts our key while presenting the host key the pod announced, otherwise
the problem.  :func:`verdict` turns all that into the Scout's single answer:
:class:`ScoutFound` or :class:`ScoutNotFound` with a reason a person can act on.
"""
from __future__ import annotations

import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

from computepods.errors import MalformedMessage
from computepods.federation.hello import PodHello
from computepods.transfer.endpoint import Endpoint
from computepods.words import counted

log = logging.getLogger("computepods.federation")

WINDOW_S = 1.0               # seconds a Scout listens for answers to one discover
MAX_ANSWERS = 1000           # answers one discover keeps at most
PROBE_WORKERS = 4            # SFTP endpoints probed at once per Scout
PROBE_TIMEOUT_S = 10.0       # seconds a round of probes may take before it counts as failed

Probe = Callable[[Endpoint], "str | None"]    # None: it accepts our key with that host key


@dataclass(frozen=True)
class Want:
    """What a search is for; every field left None matches anything."""
    pod: str | None = None
    role: str | None = None                 # "chef": any chef pod; "majordomo"
    tool: str | None = None
    fingerprint: str | None = None          # of `tool`, when it must be that build of it
    slots: int = 0                          # at least this many slots

    def mismatch(self, hello: PodHello) -> str | None:
        """Why `hello`'s pod does not fit, or None when it does."""
        if self.pod is not None and hello.pod != self.pod:
            return f"it is not {self.pod}"
        if self.role is not None and hello.role != self.role:
            return f"its role is {hello.role}, not {self.role}"
        if self.tool is not None:
            have = hello.tools.get(self.tool)
            if have is None:
                return f"it has no {self.tool}"
            if self.fingerprint is not None and have != self.fingerprint:
                return f"its {self.tool} is {have[:19]}, not {self.fingerprint[:19]}"
        if hello.slots < self.slots:
            return f"it has {hello.slots} slots, not {self.slots}"
        return None

    def describe(self) -> str:
        parts = [f"pod {self.pod}" if self.pod else "",
                 f"a {self.role} pod" if self.role else "",
                 f"tool {self.tool}" + (f" ({self.fingerprint[:19]})" if self.fingerprint else "")
                 if self.tool else "",
                 f"{self.slots}+ slots" if self.slots else ""]
        return ", ".join(p for p in parts if p) or "any pod"

    def to_dict(self) -> dict:
        return {k: v for k, v in (("pod", self.pod), ("role", self.role), ("tool", self.tool),
                                  ("fingerprint", self.fingerprint), ("slots", self.slots))
                if v}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None, subject: str = "pods.discover") -> "Want":
        data = data or {}
        for key in ("pod", "role", "tool", "fingerprint"):
            if not isinstance(data.get(key, ""), str):
                raise MalformedMessage(subject, f"pods.discover: want.{key} must be a string")
        slots = data.get("slots", 0)
        if not isinstance(slots, int) or isinstance(slots, bool) or slots < 0:
            raise MalformedMessage(subject, "pods.discover: want.slots must be a count")
        return cls(data.get("pod") or None, data.get("role") or None, data.get("tool") or None,
                   data.get("fingerprint") or None, slots)


@dataclass(frozen=True)
class Search:
    """SEARCH: (re-)aim the scout named `search` at what `want` says."""
    search: str
    want: Want = field(default_factory=Want)
    window_s: float = WINDOW_S


@dataclass(frozen=True)
class ScoutFound:
    """SCOUT_FOUND: the pods that answered, fit and accepted our key."""
    search: str
    pods: tuple[PodHello, ...]


@dataclass(frozen=True)
class ScoutNotFound:
    """SCOUT_NOT_FOUND: why no pod would do."""
    search: str
    reason: str


@dataclass(frozen=True)
class Probed:
    """PROBED: what each probed pod's endpoint said (None: it let us in)."""
    token: int
    problems: Mapping[str, str | None]


def candidates(answers: Iterable[dict], want: Want, own: str,
               refusal: Callable[[PodHello], str | None]) -> tuple[list[PodHello], list[str]]:
    """The answering pods that fit (one hello per pod, ours left out), and
    why each other answer was passed over."""
    fit: dict[str, PodHello] = {}
    passed: list[str] = []
    for data in answers:
        try:
            hello = PodHello.from_dict(data)
        except MalformedMessage as exc:
            passed.append(f"an answer was not a hello ({exc.problem})")
            continue
        if hello.pod == own or hello.pod in fit:
            continue
        why = want.mismatch(hello) or refusal(hello)
        if why:
            passed.append(f"{hello.pod}: {why}")
        else:
            fit[hello.pod] = hello
    return list(fit.values()), passed


def verdict(search: Search, answered: int, fit: list[PodHello], passed: list[str],
            problems: Mapping[str, str | None]) -> ScoutFound | ScoutNotFound:
    """The Scout's one answer from what it heard and what the probes said."""
    good = tuple(h for h in fit if problems.get(h.pod, "not probed") is None)
    if good:
        return ScoutFound(search.search, good)
    wanted = search.want.describe()
    if not answered:
        return ScoutNotFound(search.search, f"no pod answered pods.discover within "
                                            f"{search.window_s:g} s (looking for {wanted})")
    why = passed + [f"{h.pod}: its SFTP endpoint {h.sftp.host}:{h.sftp.port} "
                    f"{problems.get(h.pod, 'was not probed')}" for h in fit]
    return ScoutNotFound(search.search, f"{counted(answered, 'pod')} "
                                        f"answered, none is {wanted}: " + "; ".join(why))


class Prober:
    """Probes endpoints on worker threads and hands back all outcomes at once."""

    def __init__(self, probe: Probe, workers: int = PROBE_WORKERS):
        self._probe = probe
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="probe")

    def start(self, token: int, endpoints: list[Endpoint],
              done: Callable[[Probed], None]) -> None:
        """Probe every endpoint; call ``done(Probed)`` once all have answered."""
        if not endpoints:
            done(Probed(token, {}))
            return
        futures = {e.pod: self._pool.submit(self._one, e) for e in endpoints}
        left, lock = [len(futures)], threading.Lock()

        def finished(_: Future) -> None:
            with lock:                   # the workers finish on threads of their own
                left[0] -= 1
                last = left[0] == 0
            if last:
                done(Probed(token, {pod: "was not probed (the scout stopped)" if f.cancelled()
                                    else f.result() for pod, f in futures.items()}))
        for future in list(futures.values()):
            future.add_done_callback(finished)

    def _one(self, endpoint: Endpoint) -> str | None:
        try:
            return self._probe(endpoint)
        except Exception as exc:         # a probe that raises is a refusal, named
            log.warning("probing %s at %s:%d failed: %s", endpoint.pod, endpoint.host,
                        endpoint.port, exc)
            return f"could not be probed: {type(exc).__name__}: {exc}"

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
