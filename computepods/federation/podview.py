"""What `cpod status` and `cpctrl pods` show of a federation: one row per pod.

A row joins three views of one pod (docs/architecture.md §6):

- what it says of itself in its hello: role, host, chefs, slots, tools,
  and the bytes its store has served and pulled;
- what our MajorDomo knows of its chefs: each one's last status (slots,
  running, queued) and the steps it handed that chef and has not heard
  the end of (``outstanding``);
- what our ownership map says it holds (files, bytes).

Our own pod comes first, then the live pods by id, then pods our map says
hold files but that are silent now (role ``gone``).  A pod one of whose
hellos was refused (a changed key, or another claiming its name) is marked
untrusted: it gets no steps until forgotten.  A pod that is not
federated is one row: itself and its chefs.  Plain functions: the Pod's
parts are passed in, so the rows are tested without a bus.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Iterable, Mapping

from computepods.coordinator.chefs import ChefInfo
from computepods.federation.hello import PodHello

GONE = "gone"              # the role of a silent pod our ownership map still names


@dataclass(frozen=True)
class ChefRow:
    chef: str
    pod: str
    slots: int
    running: int
    queued: int
    outstanding: int        # steps our MajorDomo handed it, not finished yet
    tools: tuple[str, ...] = ()     # those its status gives a fingerprint of

    def to_dict(self) -> dict:
        return {"chef": self.chef, "pod": self.pod, "slots": self.slots,
                "running": self.running, "queued": self.queued,
                "outstanding": self.outstanding}


@dataclass(frozen=True)
class PodRow:
    pod: str
    role: str               # "majordomo", "chef", or GONE
    host: str
    ours: bool
    chefs: tuple[ChefRow, ...]
    names: tuple[str, ...]  # its chefs' names (the hello's, else those we know)
    slots: int
    running: int
    queued: int
    tools: tuple[str, ...]
    moved_in: int           # bytes its puller pulled
    moved_out: int          # bytes its store served
    held_files: int         # what our ownership map says its store holds
    held_bytes: int
    trusted: bool = True    # False: one of its hellos was refused; it gets no steps

    def to_dict(self) -> dict:
        return {"pod": self.pod, "role": self.role, "host": self.host, "ours": self.ours,
                "chefs": [c.to_dict() for c in self.chefs], "chef_names": list(self.names),
                "slots": self.slots, "load": {"running": self.running, "queued": self.queued},
                "tools": list(self.tools), "moved": {"in": self.moved_in, "out": self.moved_out},
                "held": {"files": self.held_files, "bytes": self.held_bytes},
                "trusted": self.trusted}


def chef_row(info: ChefInfo, pod: str) -> ChefRow:
    """A chef as our MajorDomo (or Desk) knows it; `pod` when its status names none."""
    st = info.status
    return ChefRow(info.name, (st.pod if st is not None and st.pod else pod), info.slots,
                   st.running if st is not None else 0, st.queued if st is not None else 0,
                   len(tuple(info.outstanding)),
                   tuple(sorted(st.fingerprints)) if st is not None else ())


def _load(hello: PodHello, key: str) -> int:
    value = hello.load.get(key, 0)
    return int(value) if isinstance(value, (int, float)) else 0


def _row(hello: PodHello, chefs: list[ChefRow], held: tuple[int, int], ours: bool) -> PodRow:
    running = sum(c.running for c in chefs) if chefs else _load(hello, "running")
    queued = sum(c.queued for c in chefs) if chefs else _load(hello, "queued")
    names = tuple(hello.chefs) or tuple(c.chef for c in chefs)
    tools = tuple(sorted(set(hello.tools).union(*(c.tools for c in chefs))))
    return PodRow(hello.pod, hello.role, hello.host, ours, tuple(chefs), names, hello.slots,
                  running, queued, tools, int(hello.moved.get("in", 0)),
                  int(hello.moved.get("out", 0)), *held)


def own_row(pod: str, host: str, chefs: Iterable[ChefInfo],
            held: tuple[int, int] = (0, 0)) -> PodRow:
    """A pod that is not federated: itself and every chef it knows."""
    rows = sorted((chef_row(c, pod) for c in chefs), key=lambda c: c.chef)
    return PodRow(pod, "majordomo", host, True, tuple(rows), tuple(c.chef for c in rows),
                  sum(c.slots for c in rows), sum(c.running for c in rows),
                  sum(c.queued for c in rows), tuple(sorted(set().union(*(c.tools for c in rows)))),
                  0, 0, *held)


def pod_rows(own: PodHello, heard: Iterable[PodHello], chefs: Iterable[ChefInfo],
             held: Mapping[str, tuple[int, int]]) -> list[PodRow]:
    """Our pod (`own`, our own hello), the pods heard, and the silent pods
    `held` (pod -> files, bytes) still names; `chefs` those our MajorDomo
    knows.  A chef whose pod sent no hello yet counts under a row of its
    own (role chef, host unknown) so that no chef we use goes unlisted."""
    by_pod: dict[str, list[ChefRow]] = {}
    for info in chefs:
        row = chef_row(info, own.pod)
        by_pod.setdefault(row.pod, []).append(row)
    for rows in by_pod.values():
        rows.sort(key=lambda c: c.chef)
    others = {h.pod: h for h in heard if h.pod != own.pod}
    out = [_row(own, by_pod.pop(own.pod, []), held.get(own.pod, (0, 0)), True)]
    for pod in sorted(others):
        out.append(_row(others[pod], by_pod.pop(pod, []), held.get(pod, (0, 0)), False))
    for pod in sorted(set(by_pod) | (set(held) - {own.pod} - set(others))):
        rows = by_pod.get(pod, [])
        files, size = held.get(pod, (0, 0))
        out.append(PodRow(pod, "chef" if rows else GONE, "?", False, tuple(rows),
                          tuple(c.chef for c in rows), sum(c.slots for c in rows),
                          sum(c.running for c in rows), sum(c.queued for c in rows),
                          (), 0, 0, files, size))
    return out


def census(pod: str, host: str, chefs: Iterable[ChefInfo], *, own: PodHello | None = None,
           heard: Iterable[PodHello] = (), held: Mapping[str, tuple[int, int]] | None = None,
           trusts: Callable[[str], bool] | None = None) -> dict:
    """``{"federated": bool, "pods": [row dicts]}``: `own` (our hello) is
    None when the pod is not federated; `trusts` (Roster.trusts) marks the
    pods whose hellos were refused."""
    if own is None:
        return {"federated": False, "pods": [own_row(pod, host, chefs).to_dict()]}
    rows = pod_rows(own, heard, chefs, held or {})
    if trusts is not None:
        rows = [r if r.ours or trusts(r.pod) else replace(r, trusted=False) for r in rows]
    return {"federated": True, "pods": [r.to_dict() for r in rows]}
