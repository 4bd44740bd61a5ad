"""``diagrams/federation.dot``: the federation as the bus routes it.

Two pods: the user's (``cpod up --nats URL``, which holds the project) and
a chef pod (``cpod chef`` outside any project).  Each holds the charts
:data:`PODS` names; every arrow is one subject of
:data:`computepods.bus.messages.ROUTES`, from a chart that publishes or
requests it to one that subscribes to it, as the code's ``bridge.route /
publish / request`` calls say (:func:`computepods.tools.charts.wiring`,
which hands this module its list).  In-process signals (the fabric's) are
dashed arrows inside a pod; the Member's posts to its CacheFileChart (the
discovery cache) and the files that move by SFTP are drawn by hand.  Written by
``python -m computepods.tools.charts`` with the other drawings, and kept
true by the same test.
"""
from __future__ import annotations

from typing import Iterable

from computepods.bus import messages as m

# The charts each kind of pod runs (pod/pod.py, pod/daemon.py, pod/member.py,
# cli/chef.py): the only part of this drawing written by hand.
PODS = {
    "user": ("the user's pod (cpod up --nats URL)",
             ("FSWatcher", "MajorDomo", "Store", "Cron", "Desk", "Chef", "Herald", "Scout",
              "CacheFileChart")),
    "chefpod": ("a chef pod (cpod chef, no project)",
                ("Chef", "Herald", "Scout", "CacheFileChart")),
}
SENDS = ("publish", "request")


def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def federation_dot(use: Iterable[tuple[str, str, str]], mark: str) -> str:
    """The drawing, from ``use``: (component, role, signal) for each call."""
    use = list(use)
    out = [f"// {mark}", "digraph federation {",
           '  graph [rankdir=LR, compound=true, fontname="Helvetica", labelloc=t, '
           'label="computepods: a federation of two pods, and the NATS subjects between '
           'their charts"];',
           '  node [shape=box, style=bold, fontname="Helvetica", fontsize=10];',
           '  edge [fontname="Helvetica", fontsize=8];']
    for pod, (label, charts) in PODS.items():
        out += [f"  subgraph {_q('cluster_' + pod)} {{", f"    label={_q(label)}; style=rounded;"]
        out += [f"    {_q(pod + ':' + c)} [label={_q(c)}];" for c in charts]
        out += [f'    {_q(pod + ":store")} [label="content store\\n(SFTP server, Puller)", '
                'style=rounded];', "  }"]
    for sig in dict.fromkeys(s for _, _, s in use):
        route = m.ROUTES.get(sig)
        senders = [w for w, role, s in use if s == sig and role in SENDS]
        hearers = [w for w, role, s in use if s == sig and role == "subscribe"]
        for a, b in _pairs(senders, hearers, across=route is not None):
            style = (", style=bold" if (a.split(":")[1], "request", sig) in use else "") \
                if route else ", style=dashed"
            out.append(f"  {_q(a)} -> {_q(b)} [label={_q(route.template if route else sig)}"
                       f"{style}];")
    out += [f'  {_q(p + ":Herald")} -> {_q(p + ":CacheFileChart")} [style=dashed, '
            'label="pods heard (Member: CACHE_FILE_WRITE)"];' for p in PODS]
    out += ['  "user:store" -> "chefpod:store" [dir=both, style=dashed, color=grey, '
            'label="SFTP: files by sha256"];', "}"]
    return "\n".join(out) + "\n"


def _pairs(senders: list[str], hearers: list[str], across: bool) -> list[tuple[str, str]]:
    """Each (sending chart, hearing chart) placed in the pods that run them
    (``across``: in any two, a bus subject; else in the same one); a chart
    hears itself only across pods (a Herald hears other Heralds)."""
    where = {c: [p for p, (_, charts) in PODS.items() if c in charts]
             for c in {*senders, *hearers}}
    pairs = []
    for s in senders:
        for h in hearers:
            for ps in where[s]:
                for ph in where[h]:
                    if (s, ps) != (h, ph) and (across or ps == ph):
                        pairs.append((f"{ps}:{s}", f"{ph}:{h}"))
    return list(dict.fromkeys(pairs))
