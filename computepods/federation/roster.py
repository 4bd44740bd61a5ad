"""The pods a pod has heard, with each one's SFTP host key pinned.

A pod's host key is pinned from its first authenticated hello (only the
majordomo and chef roles may say one: bus/auth.py).  A later hello or
discover answer from that pod with another key is refused and logged,
naming the pod and both fingerprints: it is someone else using the pod's
name, or a pod whose key changed; an operator who knows it changed on
purpose makes this pod forget the old one (:data:`FORGET_HELP`).  A pin
outlives the pod's silence, so waiting for a pod to go quiet does not let
another key in under its name.

A pod one of whose hellos was refused is *disputed* until it is forgotten
(:meth:`Roster.forget`; a restart forgets all): two keys claim its name,
and nothing tells which one is real, so no step is placed there
(:meth:`Roster.trusts`, the MajorDomo's ``Federation.trusts``).

The client keys a pod's store server lets in are those of live hellos
(:meth:`Roster.client_authorized`, for ``StoreServer(authorized=)``).  A
pod silent for :data:`~computepods.federation.hello.EXPIRY_HELLOS` of its
own hello periods is gone (:meth:`Roster.expire`).

The Roster is plain and locked: the Herald chart feeds it on its thread,
the store server asks it on its own, the Scout reads it on another.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from computepods.federation.hello import PodHello, fingerprint_of, same_key
from computepods.transfer.endpoint import Endpoint

log = logging.getLogger("computepods.federation")

FORGET_HELP = ("if its key changed on purpose (a new machine, a wiped workspace), make this "
               "pod forget the old one: restart it (pins live in its memory, taken from "
               "each pod's first hello)")


@dataclass
class _Heard:
    hello: PodHello
    last: float              # monotonic seconds of its latest hello


class Roster:
    """The live pods by id, and the host key pinned for every pod ever heard."""

    def __init__(self) -> None:
        self._live: dict[str, _Heard] = {}
        self._pins: dict[str, str] = {}
        self._disputed: set[str] = set()      # pods one of whose hellos was refused
        self._lock = threading.Lock()
        self.refused = 0                      # hellos refused for a changed host key

    # -- keys ------------------------------------------------------------------
    def refusal(self, hello: PodHello) -> str | None:
        """Why this hello's host key is refused (another one is pinned for its
        pod), or None.  It changes nothing."""
        with self._lock:
            pinned = self._pins.get(hello.pod)
        if pinned is None or same_key(pinned, hello.sftp.host_key):
            return None
        return (f"pod {hello.pod!r} announced SFTP host key {fingerprint_of(hello.sftp.host_key)} "
                f"but {fingerprint_of(pinned)} is pinned for it since its first hello; "
                f"refused. {FORGET_HELP}")

    def pin(self, pod: str, host_key: str) -> None:
        """Pin a host key known from elsewhere (a discovery cache), unless one is."""
        with self._lock:
            self._pins.setdefault(pod, host_key)

    def forget(self, pod: str) -> bool:
        """Drop a pod and its pinned key (an operator's verb); whether it was known."""
        with self._lock:
            self._live.pop(pod, None)
            self._disputed.discard(pod)
            return self._pins.pop(pod, None) is not None

    # -- hellos ----------------------------------------------------------------
    def heard(self, hello: PodHello, now: float) -> bool:
        """Take a hello heard at monotonic `now`; False when it is refused
        (logged once per refused hello)."""
        problem = self.refusal(hello)
        if problem:
            self.refused += 1
            with self._lock:
                self._disputed.add(hello.pod)
            log.warning("%s", problem)
            return False
        with self._lock:
            self._pins.setdefault(hello.pod, hello.sftp.host_key)
            self._live[hello.pod] = _Heard(hello, now)
        return True

    def live_count(self) -> int:
        with self._lock:
            return len(self._live)

    def is_live(self, pod: str) -> bool:
        with self._lock:
            return pod in self._live

    def trusts(self, pod: str) -> bool:
        """Whether steps may go to `pod`: no hello under its name was refused
        (it is not disputed).  A pod not heard yet is trusted: its run's
        files are fetched only once its hello is heard (Member.find)."""
        with self._lock:
            return pod not in self._disputed

    def endpoint(self, pod: str) -> Endpoint | None:
        """A live pod's SFTP endpoint, with the host key pinned for it."""
        with self._lock:
            heard = self._live.get(pod)
        return heard.hello.sftp if heard else None

    def client_authorized(self, public_line: str) -> bool:
        """Whether a live pod announced this client key."""
        with self._lock:
            keys = [h.hello.client_key for h in self._live.values()]
        return any(same_key(key, public_line) for key in keys)

    def pods(self) -> list[PodHello]:
        """The live pods' latest hellos, by pod id."""
        with self._lock:
            return [self._live[p].hello for p in sorted(self._live)]

    def expire(self, now: float) -> list[str]:
        """Drop the pods silent past their expiry at monotonic `now`; their ids."""
        with self._lock:
            gone = sorted(p for p, h in self._live.items() if now - h.last > h.hello.expiry_s)
            for pod in gone:
                del self._live[pod]
        return gone

    def tools(self) -> dict[str, set[str]]:
        """Tool name -> the fingerprints of it that some live pod offers."""
        offered: dict[str, set[str]] = {}
        for hello in self.pods():
            for tool, print_ in hello.tools.items():
                offered.setdefault(tool, set()).add(print_)
        return offered
