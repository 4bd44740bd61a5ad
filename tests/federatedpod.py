"""A federated MajorDomo on the loopback bus, and fake chefs of other pods.

A :class:`FakeChef` announces itself with a pod id, slots, tools and
fingerprints, takes run messages, and "builds" each step on its own thread:
a remote one puts its outputs into its pod's fake store and reports their
hashes; a local one (our pod's) writes them into the tree, as a real chef
does.  The MajorDomo fetches remote outputs through a fake ``fetch``
(:class:`Stores`) and commits them.
"""
from __future__ import annotations

import hashlib
import queue
import threading
from pathlib import Path

from computepods.bus import messages as m
from computepods.bus.chefwire import ChefStatus
from computepods.chef.intake import NO_PROGRAM
from computepods.charts.majordomo import MajorDomo
from computepods.errors import TransferError
from computepods.federation.federation import Federation
from computepods.federation.offer import OfferIndex
from computepods.federation.toolprints import command_program
from computepods.state.owners import BuiltWith, OwnerMap
from helpers import wait_for
from loopbackpod import LoopbackPod

OURS = "pod-a"
MAX_LEASE_S = 3600.0         # a chef that keeps its lease however far the test goes
SHORT_LEASE_S = 5.0


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def made(sid: str) -> bytes:
    """What every chef writes for a step: the tree is the same wherever it ran."""
    return f"made by {sid}\n".encode()


class Stores:
    """The content stores of the fake pods, and the fetch the MajorDomo uses."""

    def __init__(self, into: Path):
        self.into = into
        self.held: dict[str, dict[str, bytes]] = {}
        self.failing: set[str] = set()
        self.calls: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def put(self, pod: str, data: bytes) -> str:
        with self._lock:
            self.held.setdefault(pod, {})[sha(data)] = data
        return sha(data)

    def fetch(self, pod: str, digest: str) -> Path:
        with self._lock:
            self.calls.append((pod, digest))
            data = self.held.get(pod, {}).get(digest)
        if pod in self.failing or data is None:
            raise TransferError(f"pod {pod}: cannot pull {digest[:12]}: connection refused")
        path = self.into / digest
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return path

    def pods_fetched(self) -> set[str]:
        with self._lock:
            return {pod for pod, _ in self.calls}


class FakeChef:
    """A chef of pod `pod` on the loopback bus; it runs each step on its own
    thread (unless `hold`: then it keeps them until :meth:`release`)."""

    def __init__(self, pod: LoopbackPod, stores: Stores, name: str, pod_id: str, *,
                 slots: int = 1, queued: int = 0, typical_s: float = 1.0,
                 prints: dict | None = None, lease_s: float = MAX_LEASE_S,
                 discovered: dict | None = None, hold: bool = False,
                 then_queued: int | None = None, extra_outputs: tuple = (),
                 lacks: tuple = ()):
        """`then_queued`: the queue it says it has once it took its first run;
        `lacks`: programs it refuses a run of, naming them, as a chef does."""
        self.bus, self.root, self.stores = pod.bus, pod.root, stores
        self.name, self.pod = name, pod_id
        self.discovered = discovered or {}
        self.runs: list[dict] = []
        self.rules: dict[str, dict] = {}
        self.hold = hold
        self.then_queued = then_queued
        self.extra_outputs = extra_outputs       # what a hostile chef claims it wrote too
        self.lacks = lacks
        self.refused: list[str] = []
        self._held: list[tuple[str, dict]] = []
        self._work: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._serve, name=f"fake-chef-{name}")
        self.status = ChefStatus(name, pod_id, slots, queued=queued, typical_s=typical_s,
                                 lease_s=lease_s, fingerprints=dict(prints or {}))
        self.bus.route(m.CHEF_RUN, self, chef=name)
        self._thread.start()
        self.announce()
        wait_for(lambda: pod.majordomo.chefs.get(name), what=f"the MajorDomo to know {name}")

    def announce(self) -> None:
        self.bus.publish(m.CHEF_STATUS, self.status.to_dict())

    @property
    def local(self) -> bool:
        return self.pod == OURS

    def post(self, signal: str, msg: m.Message) -> None:      # the bus delivers a run
        self.runs.append(msg.data)
        self.rules.update(msg.data["rules"])
        lacking = {rule: program for rule, r in msg.data["rules"].items()
                   if (program := command_program(r["command"])) in self.lacks}
        refused = [s for s in msg.data["steps"] if s["id"].split(":", 1)[0] in lacking]
        self.refused += [s["id"] for s in refused]
        self.bus.respond(msg, {
            "accepted": [s["id"] for s in msg.data["steps"] if s not in refused],
            "rejected": [{"id": s["id"], "reason": NO_PROGRAM.format(
                program=lacking[s["id"].split(":", 1)[0]])} for s in refused]})
        for step in msg.data["steps"]:
            if step not in refused:
                self._work.put((msg.data["build"], step))
        if self.then_queued is not None and len(self.runs) == 1:
            self.status = ChefStatus(self.name, self.pod, self.status.slots,
                                     queued=self.then_queued, typical_s=self.status.typical_s,
                                     lease_s=self.status.lease_s,
                                     fingerprints=self.status.fingerprints)
            self.announce()

    def steps_run(self) -> list[str]:
        return [s["id"] for run in self.runs for s in run["steps"] if s["id"] not in self.refused]

    def release(self) -> None:
        """Report the steps held back (late, if the lease ran out meanwhile)."""
        self.hold = False
        for build, step in self._held:
            self._work.put((build, step))

    def _serve(self) -> None:
        while (work := self._work.get()) is not None:
            if self.hold:
                self._held.append(work)
            else:
                self._finish(*work)

    def _finish(self, build: str, step: dict) -> None:
        sid = step["id"]
        outputs = {}
        for path in [*self._outputs(step), *self.extra_outputs]:
            data = made(sid)
            if self.local:
                (self.root / path).parent.mkdir(parents=True, exist_ok=True)
                (self.root / path).write_bytes(data)
            else:
                self.stores.put(self.pod, data)
            outputs[path] = {"sha256": sha(data), "size": len(data)}
        item = {"event": "finished", "build": build, "id": sid, "attempt": step["attempt"],
                "ok": True, "command": "", "exit_code": 0, "reason": "", "duration_s": 0.1,
                "outputs": outputs, "discovered": self.discovered.get(sid, [])}
        self.bus.request_sync(m.STEP_RESULTS, {"chef": self.name, "results": [item]})

    def _outputs(self, step: dict) -> list[str]:
        stem = step.get("stem")
        return [p.replace("%", stem) if stem is not None else p
                for p in self.rules[step["rule"]]["outputs"]]

    def stop(self) -> None:
        self._work.put(None)
        self._thread.join(10)


class Federated:
    """A LoopbackPod whose MajorDomo is federated as pod-a."""

    def __init__(self, root: Path, prints: dict | None = None):
        self.pod = LoopbackPod(root)
        self.stores = Stores(root.parent / f"{root.name}-fetched")
        self.owners = OwnerMap(self.pod.db_path)
        self.built_with = BuiltWith(self.pod.db_path)
        self.offers = OfferIndex(root)
        self.rate = {"pod-b": None, "pod-c": None}
        self.disputed: set[str] = set()       # pods whose hello the Roster refused
        self.fed = Federation(OURS, self.stores.fetch, self.owners, rates=self.rate.get,
                              offers=self.offers, built_with=self.built_with,
                              trusts=lambda pod: pod not in self.disputed,
                              prints=lambda tools: {t: (prints or {}).get(t, "OURS")
                                                    for t in tools})
        p = self.pod
        p.majordomo = MajorDomo(p.bus, p.root, clock=p.clock, fabric=p.fabric, federation=self.fed)
        p.start()
        self.chefs: list[FakeChef] = []

    def chef(self, name: str, pod_id: str, **kw) -> FakeChef:
        chef = FakeChef(self.pod, self.stores, name, pod_id, **kw)
        self.chefs.append(chef)
        return chef

    def stop(self) -> None:
        self.pod.stop()
        for chef in self.chefs:
            chef.stop()
        self.owners.close()
        self.built_with.close()
