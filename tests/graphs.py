"""Graphs as catalog.graph answers them, made up for tests of what reads them."""
from __future__ import annotations


def wide(n: int, state: str = "stale") -> dict:
    """n copies by one pattern rule, then one step reading them all (bench/gen.py's wide)."""
    copies = [{"id": f"copy:build/f{i:05d}.txt", "rule": "copy",
               "inputs": [f"src/f{i:05d}.txt"], "outputs": [f"build/f{i:05d}.txt"],
               "state": state, "cycle": None} for i in range(n)]
    total = {"id": "sum:out/all.txt", "rule": "sum", "inputs": [c["outputs"][0] for c in copies],
             "outputs": ["out/all.txt"], "state": state, "cycle": None}
    return {"targets": ["out/all.txt"], "nodes": [*copies, total], "cycles": [],
            "edges": [[c["id"], total["id"]] for c in copies]}
