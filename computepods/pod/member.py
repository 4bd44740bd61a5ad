"""A pod's membership of a federation: its keys, store, SFTP server, puller and hellos.

Both kinds of pod hold one: the user's pod (``cpod up --nats URL``, role
``majordomo``), which offers its tree's files by hash and pulls results
home, and a chef pod (``cpod chef`` outside a project, role ``chef``),
which pulls what its steps read and keeps their outputs for the user's pod
to pull (docs/architecture.md §6)::

    Member.start()
      PodKeys        host and client keys, 0600 files under keys_dir
      ContentStore   files by sha256 under store_dir
      Roster         the pods heard, their host keys pinned; seeded from the
                     discovery cache so a short build knows them at once
      StoreServer    our store read-only over SFTP, to the client keys of
                     live hellos only
      Puller         pulls by hash from the pods of the Roster
      Herald         says our hello every few seconds, hears the others',
                     and remembers them in the discovery cache (CacheFile)
"""
from __future__ import annotations

import hashlib
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
from computepods.transfer.keys import PodKeys
from computepods.transfer.pull import Puller
from computepods.transfer.server import StoreServer
from computepods.transfer.store import ContentStore

log = logging.getLogger("computepods.federation")

CACHE_READ_WAIT_S = 2.0      # seconds a starting pod waits for the discovery cache
FIND_POD_S = 10.0            # seconds a fetch from a pod not heard yet waits for its Scout
LOOPBACK = "127.0.0.1"


def pod_id_for(place: Path) -> str:
    """A stable pod id: the host, and a hash of the directory it holds (a
    project or a chef pod's workspace), so two pods on one host differ."""
    digest = hashlib.sha256(str(Path(place).resolve()).encode()).hexdigest()[:8]
    return f"{socket.gethostname()}-{digest}"


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
    keys_dir: Path
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


@dataclass
class Member:
    """Start with :meth:`start`, stop with :meth:`stop`."""
    bridge: Bus
    options: MemberOptions
    chart_kw: dict = field(default_factory=dict)   # live_trace, fabric: as the pod's charts
    keys: PodKeys | None = None
    store: ContentStore | None = None
    roster: Roster = field(default_factory=Roster)
    server: StoreServer | None = None
    puller: Puller | None = None
    herald: Herald | None = None
    cache: CacheFileChart | None = None
    _finding: dict = field(default_factory=dict)      # pod -> Event, while a Scout looks
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> "Member":
        o = self.options
        try:
            self.keys = PodKeys.load_or_create(o.keys_dir)
            self.store = ContentStore(o.store_dir)
            if o.remember:
                self.cache = CacheFileChart.for_discovery(o.namespace, **self.chart_kw).start()
                self._seed_from_cache()
            self.server = StoreServer(self.store, self.keys, self.roster.client_authorized,
                                      lookup=o.lookup, host=o.listen_host,
                                      port=o.listen_port).start()
            self.puller = Puller(self.store, self.keys, self.roster.endpoint)
            self.herald = Herald(self.bridge, self.hello, roster=self.roster,
                                 every_s=o.every_s, on_pod=self._on_pod,
                                 probe=self.puller.probe, on_search=self._searched,
                                 name=f"herald:{o.pod}",
                                 **self.chart_kw).start()
        except BaseException:
            self.stop()
            raise
        log.info("pod %s (%s) serves its store at %s:%d", o.pod, o.role, o.listen_host,
                 self.server.port)
        return self

    def fetch(self, pod: str, sha: str) -> Path:
        """A local file holding `sha`, pulled from `pod` if we lack it.  A
        pod not heard yet (its run came before its hello) is searched for
        first; the Puller then names it if it is still unknown."""
        assert self.puller is not None, "Member.fetch before start"
        if self.store is not None and not self.store.has(sha) and \
                self.roster.endpoint(pod) is None:
            self.find(pod)
        return self.puller.fetch(pod, sha)

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
        assert self.server is not None and self.keys is not None
        return PodHello(pod=o.pod, host=socket.gethostname(), role=o.role,
                        chefs=tuple(o.chefs()), slots=o.slots,
                        sftp=self.server.endpoint(o.pod), client_key=self.keys.client_public,
                        load=dict(o.load()), tools=dict(o.tools()),
                        moved={"in": self.moved_in(), "out": self.moved_out()},
                        every_s=o.every_s)

    def moved_in(self) -> int:
        return self.puller.moved_in if self.puller is not None else 0

    def moved_out(self) -> int:
        return self.server.moved_out if self.server is not None else 0

    def stop(self) -> None:
        for part in (self.herald, self.cache):
            if part is not None:
                part.stop()
        if self.puller is not None:
            self.puller.close()
        if self.server is not None:
            self.server.stop()
        self.herald = self.cache = self.puller = self.server = None

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
        if self.options.on_pod is not None:
            self.options.on_pod(pod, hello)
