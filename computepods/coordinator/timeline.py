"""Where a build's time went: one span per run of a step, on its chef's slots.

A :class:`Timeline` folds a build's events, each at the moment the
MajorDomo noted it, into spans: the step, its chef, the slot it ran in, its
start and end, how it ended, and for a step of a cyclic group the pass it
ran in; pass, fixpoint and cancel events become marks.  The times are the
MajorDomo's: a chef's start note may ride with its next results
(``charts/chef.py: STARTED_HOLD_S``), so a span starts at the earlier of
when its start was heard and when its result was heard less the chef's own
measure of the run, and lasts that measure.

A chef's result says which of its slots ran the step and when it started
on the chef's clock (``slot``, ``started_ns``): a span takes both, so a
chef of two slots has two lanes however its results were batched.  A start
the MajorDomo's clock disagrees with (a chef on another machine) is not
taken.  For a chef that does not say, :func:`assign_slots` gives each span
the lowest slot of its chef free at its start, so its spans on one slot
never overlap (its slot count is then a floor, not a cap: times heard late
may overlap by a little more).

:func:`trace_events` writes a finished build's timeline as Chrome
trace-event JSON, which Perfetto and ``chrome://tracing`` open: one process
per chef, one thread per slot, a complete event per run, and the marks as
instant events on the build's own lane.  :func:`timeline_answer` gives the
same data to the page, with the build's critical path
(:mod:`computepods.coordinator.criticalpath`).
"""
from __future__ import annotations

from dataclasses import dataclass

OK, FAILED, CANCELLED, LOST = "ok", "failed", "cancelled", "lost"
CLOCK_SLACK_S = 0.05       # how far a chef's start may pass our latest guess of it


@dataclass
class Span:
    """One run of a step; times in seconds since the build started."""
    step: str
    chef: str
    start_s: float
    end_s: float
    outcome: str = OK
    cycle: str | None = None
    pass_no: int | None = None
    slot: int = 0
    chef_slot: bool = False          # the chef said which slot (else assign_slots picks one)

    def to_row(self) -> list:
        return [self.step, self.chef, self.slot, round(self.start_s, 6), round(self.end_s, 6),
                self.outcome, self.cycle, self.pass_no]

    @classmethod
    def from_row(cls, row: list) -> "Span":
        step, chef, slot, start, end, outcome, cycle, pass_no = row
        return cls(step, chef, start, end, outcome, cycle, pass_no, slot)


class Timeline:
    """The spans and marks of one build, fed its events in order."""

    def __init__(self, origin_ns: int | None = None) -> None:
        self.origin_ns = origin_ns                # the build's start, wall ns
        self.spans: list[Span] = []
        self.marks: list[tuple[float, str]] = []
        self._open: dict[str, Span] = {}          # step -> its run, started

    def heard(self, ev: dict, at_s: float) -> None:
        t = ev.get("t")
        step = ev.get("step")
        if t == "start":
            self._open[step] = Span(step, str(ev.get("chef") or "?"), at_s, at_s,
                                    cycle=ev.get("cycle"), pass_no=ev.get("pass"))
        elif t == "ran":
            span = Span(step, str(ev.get("chef") or "?"), at_s, at_s, cycle=ev.get("cycle"),
                        pass_no=ev.get("pass"))
            self._close(span, at_s, OK, ev.get("duration_s"), ev)
        elif t in ("ok", "fail", "cancelled") and step in self._open:
            outcome = {"ok": OK, "fail": FAILED, "cancelled": CANCELLED}[t]
            self._close(self._open.pop(step), at_s, outcome, ev.get("duration_s"), ev)
        elif t == "chef_lost":
            for sid in ev.get("steps") or ():
                if sid in self._open:
                    self._close(self._open.pop(sid), at_s, LOST, None)
        elif t == "pass":
            self.marks.append((at_s, f"pass {ev.get('pass')}/{ev.get('max')} of {ev.get('cycle')}"))
        elif t == "fixpoint":
            self.marks.append((at_s, f"fixpoint of {ev.get('cycle')} after pass {ev.get('pass')}"))
        elif t == "cycle_failed":
            self.marks.append((at_s, f"cyclic group {ev.get('cycle')} failed"))
        elif t == "cancel":
            self.marks.append((at_s, "cancelled"))

    def _close(self, span: Span, at_s: float, outcome: str, duration_s, ev: dict | None = None
               ) -> None:
        ev = ev or {}
        if isinstance(duration_s, (int, float)) and duration_s >= 0:
            span.start_s = max(0.0, min(span.start_s, at_s - duration_s))
            started = self._chef_start(ev, at_s - duration_s)
            if started is not None:
                span.start_s = started
            span.end_s = span.start_s + duration_s
        else:
            span.end_s = at_s
        slot = ev.get("slot")
        if isinstance(slot, int) and not isinstance(slot, bool) and slot >= 0:
            span.slot, span.chef_slot = slot, True
        span.outcome = outcome
        self.spans.append(span)

    def _chef_start(self, ev: dict, latest_s: float) -> float | None:
        """When the chef says the run started, in the build's seconds; None
        when it did not say, or its clock disagrees with ours (a start
        before the build, or after the result less the run was heard)."""
        started_ns = ev.get("started_ns")
        if self.origin_ns is None or not isinstance(started_ns, int):
            return None
        start_s = (started_ns - self.origin_ns) / 1e9
        return start_s if 0.0 <= start_s <= latest_s + CLOCK_SLACK_S else None

    def finish(self, at_s: float) -> dict:
        """The timeline as stored (steps still open end now, lost), slots assigned."""
        for span in self._open.values():
            span.end_s, span.outcome = at_s, LOST
            self.spans.append(span)
        self._open.clear()
        assign_slots(self.spans)
        return {"spans": [s.to_row() for s in self.spans],
                "marks": [[round(t, 6), name] for t, name in self.marks],
                "duration_s": round(at_s, 6)}


def assign_slots(spans: list[Span]) -> None:
    """Each span the chef did not place the lowest slot of its chef that is
    free when it starts (a chef of an older version does not say)."""
    free_at: dict[str, list[float]] = {}           # chef -> when each slot is free
    for span in sorted(spans, key=lambda s: s.start_s):       # ties: in the order heard
        if span.chef_slot:
            continue
        slots = free_at.setdefault(span.chef, [])
        slot = next((i for i, t in enumerate(slots) if t <= span.start_s + 1e-9), len(slots))
        if slot == len(slots):
            slots.append(0.0)
        slots[slot] = span.end_s
        span.slot = slot


def trace_events(build: dict, profile: dict) -> dict:
    """Chrome trace-event JSON of a build (``build``: its history entry as a
    dict) and its stored timeline: microseconds from the build's start."""
    def us(seconds: float) -> int:
        return int(round(seconds * 1e6))

    spans = [Span.from_row(r) for r in profile.get("spans") or ()]
    chefs = sorted({s.chef for s in spans})
    pid = {chef: i + 1 for i, chef in enumerate(chefs)}
    label = f"build {build['id']} ({' '.join(build.get('targets') or []) or 'default'})"
    events: list[dict] = [
        {"ph": "M", "name": "process_name", "pid": 0, "tid": 0, "args": {"name": label}},
        {"ph": "M", "name": "thread_name", "pid": 0, "tid": 0, "args": {"name": "build"}},
        {"ph": "X", "name": f"build {build['id']}", "cat": "build", "pid": 0, "tid": 0, "ts": 0,
         "dur": us(profile.get("duration_s") or 0.0),
         "args": {k: build.get(k) for k in ("state", "started_by", "ran", "up_to_date",
                                            "failed", "not_run", "cancelled")}}]
    for chef in chefs:
        events.append({"ph": "M", "name": "process_name", "pid": pid[chef], "tid": 0,
                       "args": {"name": f"chef {chef}"}})
        for slot in sorted({s.slot for s in spans if s.chef == chef}):
            events.append({"ph": "M", "name": "thread_name", "pid": pid[chef], "tid": slot + 1,
                           "args": {"name": f"slot {slot}"}})
    for s in spans:
        args = {"outcome": s.outcome, "chef": s.chef, "slot": s.slot}
        if s.pass_no is not None:
            args.update({"cycle": s.cycle, "pass": s.pass_no})
        events.append({"ph": "X", "name": s.step, "cat": f"step,{s.outcome}", "pid": pid[s.chef],
                       "tid": s.slot + 1, "ts": us(s.start_s),
                       "dur": max(1, us(s.end_s - s.start_s)), "args": args})
    for at_s, name in profile.get("marks") or ():
        events.append({"ph": "i", "s": "g", "name": name, "cat": "mark", "pid": 0, "tid": 0,
                       "ts": us(at_s)})
    return {"traceEvents": events, "displayTimeUnit": "ms",
            "otherData": {"build": build["id"], "started_ns": build.get("started_ns")}}


COLUMNS = ["step", "chef", "slot", "start_s", "end_s", "outcome", "cycle", "pass"]
MARK_KINDS = (("pass ", "pass"), ("fixpoint ", "fixpoint"), ("cyclic group ", "cycle_failed"),
              ("cancelled", "cancel"))


def mark_kind(text: str) -> str:
    return next((kind for prefix, kind in MARK_KINDS if text.startswith(prefix)), "mark")


def timeline_answer(profile: dict, deps) -> dict:
    """A stored timeline as ``GET /v1/builds/{id}/timeline`` gives it: its
    lanes (a chef's slot each), its runs as rows of ``COLUMNS`` (10,000 runs
    as objects would be half again as large), its marks, and the critical
    path through ``deps`` (each step's producers)."""
    from computepods.coordinator.criticalpath import critical_path
    spans = [Span.from_row(r) for r in profile.get("spans") or ()]
    lanes = sorted({(s.chef, s.slot) for s in spans})
    return {"duration_s": profile.get("duration_s") or 0.0,
            "lanes": [{"chef": chef, "slot": slot} for chef, slot in lanes],
            "columns": COLUMNS, "runs": [s.to_row() for s in spans],
            "marks": [{"at_s": at, "kind": mark_kind(text), "text": text}
                      for at, text in profile.get("marks") or ()],
            "critical_path": critical_path(spans, deps).to_dict()}
