"""The federation's pods as a text table, for `cpod status` and `cpctrl pods`.

Standard library only (both commands start at once): it reads the row
dicts of :mod:`computepods.federation.podview`, as the pod's control socket
and ``GET /v1/pods`` give them::

    pod       role       host  chefs      slots  load  tools           moved in/out    held
    host-1a2  majordomo  a     a-0        2      0/0   2: cc, tr       1.2 KiB/3.0 KiB  0 files
    podB      chef       b     podB-chef  2      1/3   3: cc, make...  3.0 KiB/1.2 KiB  9 files, 4.1 KiB

``load`` is running/queued steps; ``held`` what our ownership map says the
pod's store holds; a role marked ``(refused)`` is a pod one of whose hellos
was refused, which gets no steps.
"""
from __future__ import annotations

from typing import Iterable, Sequence

from computepods.words import counted

HEADERS = ("pod", "role", "host", "chefs", "slots", "load", "tools", "moved in/out", "held")
TOOLS_CHARS = 28           # the tools cell's names are cut after this many characters
CHEFS_CHARS = 32           # the chefs cell likewise
UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")
STEP = 1024
OURS_MARK = "*"            # after our own pod's id
DISPUTED = " (refused)"    # after the role of a pod one of whose hellos was refused


def human_bytes(n: int) -> str:
    """``0 B``, ``999 B``, ``1.5 KiB``, ``12 MiB``: a size as a person reads it."""
    size = float(max(0, int(n)))
    for unit in UNITS:
        if size < STEP or unit == UNITS[-1]:
            break
        size /= STEP
    if unit == "B":
        return f"{int(size)} B"
    return f"{size:.1f} {unit}" if size < 10 else f"{size:.0f} {unit}"


def cut(text: str, width: int) -> str:
    """`text`, cut to `width` characters with ``...`` when longer."""
    return text if len(text) <= width else text[:max(0, width - 3)].rstrip(", ") + "..."


def names_cell(names: Sequence[str], width: int, counted: bool = False) -> str:
    """Names joined by commas, cut to `width`; with their count first when asked."""
    if not names:
        return "-"
    joined = ", ".join(names)
    return cut(f"{len(names)}: {joined}" if counted else joined, width)


def held_cell(held: dict) -> str:
    files, size = int(held.get("files", 0)), int(held.get("bytes", 0))
    if not files:
        return "-"
    return f"{counted(files, 'file')}, {human_bytes(size)}"


def row_cells(pod: dict) -> tuple[str, ...]:
    load, moved = pod.get("load") or {}, pod.get("moved") or {}
    names = pod.get("chef_names") or [c["chef"] for c in pod.get("chefs") or []]
    role = (pod.get("role") or "?") + ("" if pod.get("trusted", True) else DISPUTED)
    return (pod["pod"] + (OURS_MARK if pod.get("ours") else ""), role,
            pod.get("host") or "?", names_cell(names, CHEFS_CHARS), str(pod.get("slots", 0)),
            f"{load.get('running', 0)}/{load.get('queued', 0)}",
            names_cell(pod.get("tools") or [], TOOLS_CHARS, counted=True),
            f"{human_bytes(moved.get('in', 0))}/{human_bytes(moved.get('out', 0))}",
            held_cell(pod.get("held") or {}))


def table(rows: Iterable[Sequence[str]], headers: Sequence[str] = HEADERS) -> list[str]:
    """Left-aligned columns two spaces apart, the headers first."""
    rows = [tuple(headers), *(tuple(r) for r in rows)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(headers))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows]


def pod_table(pods: Iterable[dict]) -> list[str]:
    """The pods' table (ours marked with ``*``)."""
    return table(row_cells(p) for p in pods)


def chef_lines(pods: Iterable[dict]) -> list[str]:
    """One line per chef our MajorDomo knows, with the steps it holds of ours."""
    return [f"chef {c['chef']} (pod {pod['pod']}): {c['slots']} slots, {c['running']} running,"
            f" {c['queued']} queued, {c.get('outstanding', 0)} steps outstanding"
            for pod in pods for c in pod.get("chefs") or []]


def federation_text(view: dict | None) -> list[str]:
    """The lines of a pod's federation section: the table and its chefs,
    or that the pod is not federated."""
    if not view:
        return ["(the pod did not say)"]
    pods = view.get("pods") or []
    lines = [] if view.get("federated") else ["not federated (this pod alone; `cpod up --nats "
                                              "URL` joins a federation)"]
    return lines + pod_table(pods) + chef_lines(pods)
