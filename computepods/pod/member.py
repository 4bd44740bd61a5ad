"""A pod's membership of a federation: its keys, store, SFTP server, puller and hellos.

Both kinds of pod hold one: the user's pod (``cpod up --nats URL``, role
``majordomo``), which offers its tree's files by hash and pulls results
home, and a chef pod (``cpod chef`` outside a project, role ``chef``),
which pulls what its steps read and keeps their outputs for the user's pod
to pull (docs/architecture.md §6)::

    Member.start()
      PodStore       (pod/podstore.py) its own, or one shared with the
                     Members of the pod's other namespaces:
        PodKeys        host and client keys, 0600 files under keys_dir
        ContentStore   files by sha256 under store_dir
        StoreServer    our store read-only over SFTP, to the client keys of
                       live hellos only
        Puller         pulls by hash from the pods of the Roster
      Roster         the pods heard on our namespace, their host keys pinned;
                     seeded from the discovery cache so a short build knows
                     them at once
      Herald         says our hello every few seconds, hears the others',
                     and remembers them in the discovery cache (CacheFile)

A chef pod serving several namespaces has one Member per namespace (its
own bridge, Herald, Roster and discovery cache) over one PodStore.
"""
from __future__ import annotations

import ipaddress
import logging
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping
from urllib.parse import urlsplit

from computepods.bus import messages as m
from computepods.bus.protocol import Bus
from computepods.charts.cachefile import CacheAnswer, CacheFileChart, ReadCache, WriteCache
from computepods.charts.herald import Herald
from computepods.errors import MalformedMessage
from computepods.federation.hello import HELLO_EVERY_S, PodHello
from computepods.federation.roster import Roster
from computepods.federation.search import ScoutFound, ScoutNotFound, Search, Want
from computepods.pod.podstore import PodStore
from computepods.transfer.keys import PodKeys
from computepods.transfer.pull import Puller
from computepods.transfer.server import StoreServer
from computepods.transfer.sshd import SshdServing
from computepods.transfer.store import ContentStore

log = logging.getLogger("computepods.federation")

CACHE_READ_WAIT_S = 2.0      # seconds a starting pod waits for the discovery cache
FIND_POD_S = 10.0            # seconds a fetch from a pod not heard yet waits for its Scout
LOOPBACK = "127.0.0.1"


def reachable_host(urls: list[str]) -> str:
    """The address other pods can reach us at: the one this host uses
    toward the first NATS server it joins (loopback when that server is
    local).  A federation on loopback stays on loopback."""
    for url in urls:
        host = urlsplit(url if "://" in url else f"nats://{url}").hostname
        if not host:
            continue
        try:
            if ipaddress.ip_address(host).is_loopback:
                return LOOPBACK
        except ValueError:
            if host == "localhost":
                return LOOPBACK
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
                probe.connect((host, 9))          # no packet is sent: it picks a route
                return probe.getsockname()[0]
        except OSError:
            continue
    return LOOPBACK


@dataclass
class MemberOptions:
    pod: str                                       # our pod id
    role: str                                      # "majordomo" or "chef"
    keys_dir: Path                                 # (unused with a shared PodStore)
    store_dir: Path
    namespace: str = m.DEFAULT_NAMESPACE
    listen_host: str = LOOPBACK                    # where our SFTP server listens
    listen_port: int = 0
    slots: int = 0
    chefs: Callable[[], list[str]] = list          # our chefs' names now
    tools: Callable[[], Mapping[str, str]] = dict  # tool -> fingerprint we offer
    load: Callable[[], Mapping[str, float]] = dict
    lookup: Callable[[str], "Path | None"] | None = None   # tree files our server may serve
    every_s: float = HELLO_EVERY_S
    remember: bool = True                          # keep the discovery cache
    on_pod: Callable[[str, "PodHello | None"], None] | None = None
    sshd: SshdServing | None = None                # the system sshd serves our store


@dataclass
class Member:
    """Start with :meth:`start`, stop with :meth:`stop`.  Given a started
    ``shared`` PodStore it uses that one (and leaves it running at stop);
    else it makes its own of the options' keys, store and address."""
    bridge: Bus
    options: MemberOptions
    chart_kw: dict = field(default_factory=dict)   # live_trace, fabric: as the pod's charts
    shared: PodStore | None = None
    roster: Roster = field(default_factory=Roster)
    herald: Herald | None = None
    cache: CacheFileChart | None = None
    _finding: dict = field(default_factory=dict)      # pod -> Event, while a Scout looks
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _own: PodStore | None = None                      # the PodStore we made, we stop

    @property
    def keys(self) -> PodKeys | None:
        return self.shared.keys if self.shared is not None else None

    @property
    def store(self) -> ContentStore | None:
        return self.shared.store if self.shared is not None else None

    @property
    def server(self) -> StoreServer | None:
        return self.shared.server if self.shared is not None else None

    @property
    def puller(self) -> Puller | None:
        return self.shared.puller if self.shared is not None else None

    def start(self) -> "Member":
        o = self.options
        try:
            if self.shared is None:
                self.shared = self._own = PodStore(o.keys_dir, o.store_dir, (o.namespace,),
                                                   lookup=o.lookup, host=o.listen_host,
                                                   port=o.listen_port, sshd=o.sshd)
            self.roster = self.shared.roster(o.namespace)
            if o.remember:
                self.cache = CacheFileChart.for_discovery(o.namespace, **self.chart_kw).start()
                self._seed_from_cache()
            if self._own is not None:
                self._own.start()
            assert self.puller is not None, "PodStore not started"
            self.herald = Herald(self.bridge, self.hello, roster=self.roster,
                                 every_s=o.every_s, on_pod=self._on_pod,
                                 probe=self.puller.probe, on_search=self._searched,
                                 name=f"herald:{o.pod}@{o.namespace}",  # one per namespace
                                 **self.chart_kw).start()
        except BaseException:
            self.stop()
            raise
        at = self.shared.served_at(o.pod)
        log.info("pod %s (%s) serves its store at %s:%d%s", o.pod, o.role, at.host, at.port,
                 " (the system sshd)" if self.shared.sshd is not None else "")
        return self

    def fetch(self, pod: str, sha: str) -> Path:
        """A local file holding `sha`, pulled from `pod` if we lack it.  A
        pod not heard yet (its run came before its hello) is searched for
        first; the Puller then names it if it is still unknown."""
        assert self.shared is not None and self.puller is not None, "Member.fetch before start"
        if self.store is not None and not self.store.has(sha) and \
                self.roster.endpoint(pod) is None:
            self.find(pod)
        return self.shared.fetch(self.options.namespace, pod, sha)

    def rate(self, pod: str) -> float | None:
        """Bytes/s measured from `pod`, or None before a large enough transfer."""
        return self.shared.rate(self.options.namespace, pod) if self.shared else None

    def find(self, pod: str, timeout_s: float = FIND_POD_S) -> bool:
        """Send a Scout after `pod` (one per pod however many ask) and wait
        until it answers; whether the Roster knows the pod then."""
        with self._lock:
            done = self._finding.get(pod)
            first = done is None
            if first:
                done = self._finding[pod] = threading.Event()
        if first and self.herald is not None:
            self.herald.post(m.SEARCH, Search(f"pod:{pod}", Want(pod=pod)))
        done.wait(timeout_s)
        return self.roster.endpoint(pod) is not None

    def _searched(self, answer: ScoutFound | ScoutNotFound) -> None:
        if not answer.search.startswith("pod:"):
            return
        pod = answer.search[len("pod:"):]
        if isinstance(answer, ScoutNotFound):
            log.warning("pod %s was searched for and not found: %s", pod, answer.reason)
        with self._lock:
            done = self._finding.pop(pod, None)
        if done is not None:
            done.set()
        if self.herald is not None:
            self.herald.post(m.SCOUT_STOP, answer.search)

    def hello(self) -> PodHello:
        o = self.options
        assert self.shared is not None and self.keys is not None
        return PodHello(pod=o.pod, host=socket.gethostname(), role=o.role,
                        chefs=tuple(o.chefs()), slots=o.slots,
                        sftp=self.shared.served_at(o.pod), client_key=self.keys.client_public,
                        load=dict(o.load()), tools=dict(o.tools()),
                        moved={"in": self.moved_in(), "out": self.moved_out()},
                        every_s=o.every_s)

    def moved_in(self) -> int:
        """Bytes the pod pulled (all its namespaces', with a shared PodStore)."""
        return self.shared.moved_in() if self.shared is not None else 0

    def moved_out(self) -> int:
        return self.shared.moved_out() if self.shared is not None else 0

    def stop(self) -> None:
        for part in (self.herald, self.cache):
            if part is not None:
                part.stop()
        if self._own is not None:
            self._own.stop()
        self.herald = self.cache = None

    # -- the discovery cache ----------------------------------------------------
    def _seed_from_cache(self) -> None:
        """Pods a recent command heard, live at once (their keys as pinned
        then): a short `cpod build --nats` places steps without a round."""
        got = threading.Event()
        answer: list[CacheAnswer] = []

        def read(signal: str, a: CacheAnswer) -> None:
            answer.append(a)
            got.set()
        assert self.cache is not None
        self.cache.post(m.CACHE_FILE_READ, ReadCache(asker=read))
        if not got.wait(CACHE_READ_WAIT_S) or not answer or not answer[0].data:
            return
        now = time.monotonic()
        for pod, entry in sorted(answer[0].data.items()):
            if pod == self.options.pod:
                continue
            try:
                self.roster.heard(PodHello.from_dict(entry, "discovery cache"), now)
            except MalformedMessage as exc:
                log.info("discovery cache: pod %s left out: %s", pod, exc.problem)

    def _on_pod(self, pod: str, hello: PodHello | None) -> None:
        if hello is not None and self.cache is not None:
            self.cache.post(m.CACHE_FILE_WRITE, WriteCache({pod: hello.to_dict()}))
        elif self.cache is not None and self.shared is not None and self.shared.sshd is not None:
            # the system sshd lets in the pods `cpod sftp-keys` reads here: the live ones
            self.cache.post(m.CACHE_FILE_WRITE, WriteCache({pod: None}))
        if self.options.on_pod is not None:
            self.options.on_pod(pod, hello)
