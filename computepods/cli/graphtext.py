"""`cpctrl graph`'s text: the groups as a table, a page of steps, one step.

As the page shows them (docs/architecture.md §7 "The graph"): a step's
inputs and readers one a line, so a step that reads 2,000 files is 2,000
short lines (at most ``--limit`` of them), never one long one.
"""
from __future__ import annotations

RUNNING_SHOWN = 3            # running steps named under the table

STATE_WORDS = {"up_to_date": "up to date", "stale": "stale", "building": "building",
               "failed": "failed", "cancelled": "cancelled", "not_run": "not run"}


def groups_lines(g: dict) -> list[str]:
    shown = [s for s in STATE_WORDS if g["counts"].get(s)]
    head = ["group", "steps", *(STATE_WORDS[s] for s in shown)] + (["ran"] if g["ran"] else [])
    rows = [[r["name"] + (" (cycle)" if r["cycle"] else ""), str(r["steps"]),
             *(str(r["counts"].get(s, 0)) for s in shown)] + ([str(r["ran"])] if g["ran"] else [])
            for r in g["groups"]]
    widths = [max(len(x) for x in col) for col in zip(head, *rows)]

    def fmt(cells: list[str]) -> str:       # names left, numbers right
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()
    targets = ", ".join(g["targets"]) or "(default)"
    lines = [f"{g['steps']} steps in {g['groups_total']} groups; targets: {targets}",
             fmt(head), *map(fmt, rows)]
    rest = g["groups_total"] - g["offset"] - len(g["groups"])
    if rest > 0:
        lines.append(f"... {rest} more groups")
    if g["running_total"]:
        names = ", ".join(r["id"] for r in g["running"][:RUNNING_SHOWN])
        more = g["running_total"] - min(len(g["running"]), RUNNING_SHOWN)
        lines.append(f"running now: {names}" + (f" (+{more})" if more > 0 else ""))
    return lines


def steps_lines(page: dict) -> list[str]:
    lines = [f"{STATE_WORDS[s['state']]:10}  {s['id']}" + ("  (ran)" if s["ran"] else "")
             for s in page["steps"]]
    end = page["offset"] + len(page["steps"])
    if not page["steps"]:
        lines.append("no such steps")
    elif page["total"] > end:
        lines.append(f"... {page['total'] - end} more (--offset {end})")
    return lines


def step_lines(n: dict) -> list[str]:
    lines = [f"{n['id']}: {STATE_WORDS[n['state']]}" + (", ran in the latest build"
                                                          if n["ran"] else ""),
             f"  group {n['group']}" + (f", cycle {n['cycle']} of {len(n['cycle_steps'])} steps"
                                        if n["cycle"] is not None else "")]
    lines.append(f"inputs ({n['inputs_total']}):")
    lines += [f"  {i['path']}  <- " + (f"{i['step']} ({STATE_WORDS[i['state']]})" if i["step"]
                                       else "source") for i in n["inputs"]]
    if n["inputs_total"] > len(n["inputs"]):
        lines.append(f"  ... {n['inputs_total'] - len(n['inputs'])} more (--limit)")
    lines.append("outputs: " + ", ".join(n["outputs"]))
    lines.append(f"read by ({n['dependants_total']}):")
    lines += [f"  {d['id']} ({STATE_WORDS[d['state']]})" for d in n["dependants"]]
    if n["dependants_total"] > len(n["dependants"]):
        lines.append(f"  ... {n['dependants_total'] - len(n['dependants'])} more (--limit)")
    return lines
