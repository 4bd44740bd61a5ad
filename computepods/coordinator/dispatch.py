"""Which chef runs each waiting step, and the run messages that take them there.

Without a federation every chef is the pod's own: the least-loaded chef
gets the next batch (:func:`~computepods.coordinator.placement.place`), as
on one machine.  With one, each step goes where it costs least
(:mod:`computepods.federation.cost`) among the chefs fit for it:

- a chef is *local* when its status names our pod; the others are remote,
  and a remote step's run message carries its files by hash and our pod as
  their origin (:mod:`computepods.federation.manifest`), which we offer to
  serve from our tree;
- a step's tools are its pack's and its command's program; the fingerprint
  each must have is our pod's own, or the one the step was last built
  with, unless ``[project] interchangeable`` names the tool.  A chef lists
  its pack tools from the start, but a program only once a run started it:
  a program no chef has listed yet may go to any remote chef (which then
  learns and lists it), and so may a program to a remote chef no run of
  this build has told of it yet; a chef that was told and does not list it
  lacks it.  One that refuses a step for lacking its program has it sent
  elsewhere when another chef may have the program (else the step fails,
  with the refusal);
- a cyclic group's steps all go to the chef its first step went to;
- the first run of a step that discovers its inputs goes to a local chef
  when there is one; without one it is sent the project's files;
- a pod that failed to hand back a step's outputs is not given it again;
- a chef silent past its lease is given nothing (a pod stopped between
  builds is still listed until the first lease check of the next).

Remote steps go in smaller batches (``REMOTE_BATCH``), local ones as before.
The Dispatcher keeps what a remote step was sent until its result, so the
ownership map learns that the chef's pod holds those inputs once it succeeds.
"""
from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Iterator

from computepods.coordinator.buildrun import BuildRun
from computepods.coordinator.taken import Taken
from computepods.errors import ComputePodsError
from computepods.coordinator.chefs import WINDOW_PER_SLOT, ChefDirectory, ChefInfo
from computepods.coordinator.placement import MAX_BATCH, RunBatches, place
from computepods.federation.cost import Board, Candidate, Need, choose, offers_of, why_none
from computepods.federation.federation import Federation
from computepods.federation.landing import LandingFailure
from computepods.federation.manifest import Manifest, inputs_unknown, step_manifest, tree_files
from computepods.planning.job import Job
from computepods.planning.plan import BuildPlan, check_tools

log = logging.getLogger("computepods.dispatch")

REMOTE_BATCH = 8           # steps per run message to a chef on another pod
WINDOW_S = 1.5             # seconds of steps (by its typical_s) a chef holds, federated
UNFIT_WAIT_S = 10.0        # seconds a step waits for a fit chef before it fails

Send = tuple[str, dict, tuple]        # (chef, chef.run payload, reply token)


def window(chef: ChefInfo) -> int:
    """The steps a chef may hold: its slots' window, or, once its status says
    how long its steps take, about ``WINDOW_S`` of them (at least two per
    slot).  Steps left with the MajorDomo go to whichever chef frees first:
    a deep queue at each chef would fix the build's tail early, on guesses."""
    full = chef.slots * WINDOW_PER_SLOT
    typical = chef.status.typical_s if chef.status is not None else None
    if not typical:
        return full
    return max(2 * chef.slots, min(full, math.ceil(chef.slots * WINDOW_S / typical)))


class Dispatcher:
    def __init__(self, root: Path, chefs: ChefDirectory, federation: Federation | None = None):
        self.root = Path(root)
        self.chefs = chefs
        self.fed = federation
        self.batches = RunBatches()
        self._build = ""
        self._pins: dict[int, str] = {}            # cyclic component -> its chef
        self._groups: dict[str, int] = {}          # step id -> its cyclic component
        self._avoid: dict[str, set[str]] = {}      # step id -> pods not to send it to
        self._sent: dict[tuple[str, int], tuple[str, Manifest]] = {}   # remote steps
        self._prints: dict[str, str] = {}          # our own tool fingerprints, this build
        self._looked: set[str] = set()             # tools looked for on our PATH
        self._tools: dict[str, frozenset[str]] = {}  # rule -> its tools
        self._packed: dict[str, frozenset[str]] = {}  # rule -> its pack's tools
        self._tree: dict[str, str] | None = None   # the project's files, once per build
        self._taught: dict[str, set[str]] = {}     # remote chef -> programs sent it, this build
        self.ahead = os.environ.get("CP_AHEAD", "1") != "0"   # steps sent ahead (ahead.py)

    def check_tools(self, bp: BuildPlan) -> None:
        """Federated, planning fails only on a pack tool that neither we nor
        any pod has (NoChefCanBuild); alone, the pod's own check stands."""
        if self.fed is not None:
            check_tools(bp.project, bp.plan, self.fed.offered())

    # -- who is who -------------------------------------------------------------------
    def pod_of(self, chef: ChefInfo | None) -> str:
        status = chef.status if chef is not None else None
        return status.pod if status is not None else ""

    def remote_pod(self, name: str) -> str | None:
        """The pod of chef `name` when it is another pod's (else None)."""
        chef = self.chefs.get(name)
        return self.pod_of(chef) if self.is_remote(chef) else None

    def is_remote(self, chef: ChefInfo | None) -> bool:
        return (self.fed is not None and chef is not None
                and self.pod_of(chef) not in ("", self.fed.pod))

    def trusted(self, chef: ChefInfo) -> bool:
        """Guard: a chef steps may go to: our own, or one of a pod whose
        hellos we heard with the host key pinned for it (not disputed)."""
        return not self.is_remote(chef) or self.fed is None or self.fed.trusts(self.pod_of(chef))

    # -- sending ------------------------------------------------------------------------
    def ready(self, b: BuildRun) -> Iterator[Send]:
        """The run messages to send now for the jobs the build can release."""
        b.release()
        for chef, sid in b.ahead.assigned():      # released, and run by the chef it went to
            self.chefs.assign(chef, [sid])
        if self.fed is None:
            while (placed := place(self.chefs, b.waiting)) is not None:
                yield self._send(b, placed[0], b.next_batch(placed[1]))
            return
        self._new_build(b)
        if not b.waiting:
            return
        for name in [n for n in self._taught if self.chefs.get(n) is None]:
            del self._taught[name]                 # a chef lost: one back has forgotten
        # live: one silent past its lease while no build ran is not dropped until a tick
        cands = [Candidate(c, self.pod_of(c), not self.is_remote(c), self._offers(c),
                           self._taught_to(c), window(c) - len(c.outstanding))
                 for c in self.chefs.live() if self.trusted(c)]
        half = [c for c in cands if c.space >= min(window(c.chef) // 2, b.waiting)]
        if not half:
            return
        # The build's tail (all that waits fits in the chefs' windows): every
        # chef with room is weighed, and a step whose cheapest chef is not
        # taking a batch yet waits for it, rather than queue behind another's.
        usable = [c for c in cands if c.space > 0]
        tail = b.waiting <= sum(c.space for c in usable)
        sending = {c.chef.name for c in half}
        weighed = usable if tail else half
        room = sum(c.space for c in weighed)
        given: dict[str, list[tuple[Job, Manifest | None]]] = {}
        board = Board(weighed, self.fed.rates)
        left: list[Job] = []
        remote = any(not c.local for c in cands)
        announced = {t for c in cands if not c.local for t in c.offers}
        for job in b.take_waiting(room):
            job.copied = b.scheduler.own_outputs_to_copy(job)     # its manifest lists them
            need, manifest = self._need(b, job, cands, remote, announced)
            chosen = board.choose(need, self.fed.owners, self.fed.rates) if board else None
            if chosen is None:
                if choose(cands, need, self.fed.owners, self.fed.rates) is None \
                        and b.age_s > UNFIT_WAIT_S:
                    b.fail(job.step.id, f"no chef can run it: {why_none(cands, need)}")
                else:
                    left.append(job)
                continue
            board.took(chosen)
            if chosen.chef.name not in sending:
                left.append(job)
                continue
            group = self._groups.get(job.step.id)
            if group is not None and self.chefs.get(self._pins.get(group)) is None:
                self._pins[group] = chosen.chef.name      # (again, if its chef was lost)
            given.setdefault(chosen.chef.name, []).append(
                (job, manifest if not chosen.local else None))
        b.put_back(left)
        for name, items in given.items():
            chef = self.chefs.get(name)
            size = REMOTE_BATCH if self.is_remote(chef) else MAX_BATCH
            for i in range(0, len(items), size):
                yield self._send(b, chef, items[i:i + size])

    def _send(self, b: BuildRun, chef: ChefInfo, items) -> Send:
        outstanding = None
        if self.fed is None:        # our own chef: what can go ahead goes too
            jobs, files, origin = items, None, ""
            outstanding = chef.outstanding if self.ahead else None
        else:
            jobs = [job for job, _ in items]
            remote = [(job, m) for job, m in items if m is not None]
            files, origin = {}, ""
            if remote:
                pod, origin = self.pod_of(chef), self.fed.pod
                taught = self._taught.setdefault(chef.name, set())
                for job, manifest in remote:
                    taught |= self.tools_of(b, job) - self._packed[job.step.rule.name]
                    files[job.step.id] = manifest.files
                    self._sent[(job.step.id, job.attempt)] = (pod, manifest)
                    if self.fed.offers is not None:
                        self.fed.offers.offer(manifest.files)
        ids = [j.step.id for j in jobs]
        payload = b.run_message(chef.name, jobs, files, origin, outstanding)
        self.chefs.assign(chef.name, ids)
        return chef.name, payload, self.batches.sent(chef.name, ids)

    # -- what a step needs ----------------------------------------------------------------
    def _new_build(self, b: BuildRun) -> None:
        if self._build == b.id:
            return
        self._build, self._pins, self._avoid, self._tree = b.id, {}, {}, None
        self._taught = {}
        self._prints.clear()
        self._looked.clear()
        self._sent.clear()
        self._groups = {sid: comp.index for comp in b.bp.graph.components if comp.cyclic
                        for sid in comp.steps}

    def _offers(self, c: ChefInfo) -> dict[str, str | None]:
        if not self.is_remote(c):          # our own chefs: our PATH
            return self._prints            # (filled in as steps' tools are looked for)
        return offers_of(c)

    def _taught_to(self, c: ChefInfo) -> frozenset[str] | None:
        """The programs runs we sent this remote chef start (None: ours)."""
        return frozenset(self._taught.get(c.name, ())) if self.is_remote(c) else None

    def _own_prints(self, tools) -> dict[str, str]:
        """Our pod's fingerprints of these tools (those found on our PATH)."""
        if missing := [t for t in tools if t not in self._looked]:
            self._prints.update(self.fed.prints(missing))
            self._looked.update(missing)
        return self._prints

    def tools_of(self, b: BuildRun, job: Job) -> frozenset[str]:
        rule = job.step.rule
        if rule.name not in self._tools:
            from computepods.federation.toolprints import step_tools
            from computepods.project.packs import pack_tools
            packed = (pack_tools(rule.pack, b.bp.project.packs.get(rule.pack))
                      if rule.pack else [])
            self._tools[rule.name] = frozenset(step_tools(packed, rule.command))
            self._packed[rule.name] = frozenset(packed)
        return self._tools[rule.name]

    def _need(self, b: BuildRun, job: Job, cands: list[Candidate], remote: bool,
              announced: set[str]) -> tuple[Need, Manifest | None]:
        """What the step needs of a chef, and (with remote chefs about) its files."""
        sid = job.step.id
        tools = self.tools_of(b, job)
        ours = self._own_prints(tools)
        last = self.fed.built_with.of(sid)
        free = set(b.bp.project.interchangeable)
        prints = {t: fp for t in tools - free if (fp := ours.get(t) or last.get(t))}
        only = None
        pinned = self._pins.get(self._groups.get(sid, -1))
        if pinned is not None and self.chefs.get(pinned) is not None:
            only = frozenset({pinned})
        elif inputs_unknown(job, b.record_of(sid)) and any(c.local for c in cands):
            only = frozenset(c.chef.name for c in cands if c.local)
        manifest = (self._manifest(b, job) if remote and only is None
                    or (only and not self._all_local(only)) else None)
        programs = frozenset(tools - self._packed[job.step.rule.name])
        return Need(frozenset(tools), prints, manifest.sizes if manifest else {},
                    avoid=frozenset(self._avoid.get(sid, ())), only=only,
                    unannounced=programs - announced, programs=programs), manifest

    def _all_local(self, names) -> bool:
        return not any(self.is_remote(self.chefs.get(n)) for n in names)

    def _manifest(self, b: BuildRun, job: Job) -> Manifest:
        record = b.record_of(job.step.id)
        extra = None
        if inputs_unknown(job, record):          # no local chef took it: send the tree
            if self._tree is None:
                outputs = {p for s in b.bp.plan.steps.values() for p in s.outputs}
                self._tree = tree_files(self.root, outputs, b.scheduler.digest)
            extra = self._tree
        return step_manifest(self.root, job, record, b.scheduler.digest, extra)

    # -- results --------------------------------------------------------------------------
    def refused(self, reply, b: BuildRun | None = None
                ) -> list[tuple[str | None, str, str | None]]:
        """A chef's answer to a run: the steps it refused, why, and the chef
        (a step refused for lacking a program another chef may have is sent
        again, to one of those: not returned)."""
        chef, _ = self.batches.answered(reply.token) or (None, [])
        if b is not None:
            b.ahead.confirm(chef, reply.data.get("ahead") or [])
        failed = []
        for rej in reply.data.get("rejected", []):
            sid, why = rej.get("id"), str(rej.get("reason"))
            if b is not None and b.is_job(sid) and self._elsewhere(b, sid, chef, why):
                self.chefs.settled(chef, sid)
                b.resend(sid)
                continue
            failed.append((sid, f"chef {chef} refused it: {why}", chef))
        return failed

    def _elsewhere(self, b: BuildRun, sid: str, chef: str | None, why: str) -> bool:
        """The chef refused the step for lacking one of its programs (the
        refusal names it), and another live chef lists it or was not told of it."""
        job = b.job(sid)
        if self.fed is None or job is None:
            return False
        lacked = {p for p in self.tools_of(b, job) - self._packed[job.step.rule.name]
                  if repr(p) in why}
        return bool(lacked) and any(
            all(p in self._offers(c) or (self.is_remote(c) and p not in self._taught.get(
                c.name, ())) for p in lacked)
            for c in self.chefs.live() if c.name != chef and self.trusted(c))

    def unanswered(self, reply) -> list[tuple[str | None, str, str | None]]:
        """A run no chef answered: its steps fail, unless its chef's lease
        expired (then they were rescheduled already)."""
        chef, ids = self.batches.answered(reply.token) or (None, [])
        if self.chefs.get(chef) is None:
            return []
        return [(sid, f"chef {chef} did not answer: {reply.error}", chef) for sid in ids]

    def landing_failed(self, b: BuildRun | None, failed: LandingFailure) -> None:
        """A remote step's outputs could not be fetched: a new attempt, on
        another pod (or, with none fit, it fails naming this one); a commit
        that failed in our tree fails the step."""
        if b is None or not b.is_current({"id": failed.id, "attempt": failed.attempt}):
            return
        if not failed.fetching:
            b.fail(failed.id, failed.error)
            return
        self._avoid.setdefault(failed.id, set()).add(failed.pod)
        b.note({"t": "fetch_failed", "step": failed.id, "chef": failed.chef, "pod": failed.pod,
                "reason": failed.error})
        b.resend(failed.id)

    def took(self, b: BuildRun, chef: str, pod: str | None, taken: Taken) -> None:
        """Steps succeeded on `chef`: a remote one's pod (`pod`) holds its
        inputs and outputs now, and each was built with the chef's tools."""
        if self.fed is None:
            return
        info = self.chefs.get(chef)
        offers = self._offers(info) if info is not None else {}
        built, held = [], {}
        for record in taken.records:
            job = b.job(record.step_id)
            if record.status != "ok" or job is None:
                continue
            sent = self._sent.pop((record.step_id, job.attempt), None)
            if pod is not None:
                outputs = {o.sha256: o.size for p, o in taken.outputs.items()
                           if p in record.outputs}
                held[pod] = {**held.get(pod, {}), **(sent[1].sizes if sent else {}), **outputs}
            tools = self._tools.get(job.step.rule.name, frozenset())
            if prints := {t: fp for t in tools if (fp := offers.get(t))}:
                built.append((record.step_id, prints))
        try:
            for holder, contents in held.items():
                self.fed.owners.add(holder, contents)
            self.fed.built_with.built(built)
        except ComputePodsError as exc:     # only placement gets worse: the build goes on
            log.warning("%s", exc)
