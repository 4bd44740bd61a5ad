"""How a count reads in a message: ``counted(1, "step")`` is "1 step",
``counted(3, "step")`` "3 steps"; nouns whose plural is not an added "s"
give it (``counted(2, "directory", "directories")``)."""
from __future__ import annotations


def counted(n: int, noun: str, plural: str | None = None) -> str:
    return f"{n} {noun if n == 1 else plural or noun + 's'}"
