"""Rule packs: ready-made rules a project takes with ``use = ["c"]``.

A pack is a list of rule tables written exactly as they would be in
``computepods.toml``, so they go through the same checks as the user's own
rules.  Pack rule names carry the pack's name ("c.compile"), so a project can
name its own rule "compile" beside them.  Only a minimal ``c`` pack lives
here for now; the full ``latex`` and ``c`` packs come later.
"""
from __future__ import annotations

KNOWN_PACKS: dict[str, list[dict]] = {
    "c": [
        {
            "name": "c.compile",
            "inputs": ["%.c"],
            "outputs": ["%.o", "%.d"],
            # -MD -MF writes a make-style depfile: the headers it included.
            "command": "cc -MD -MF {out[1]} -c {in[0]} -o {out[0]}",
            "depfile": "%.d",
        },
    ],
}
