"""Durations written in the project file: "90s", "30m", "2h" ([project] pod_idle)."""
from __future__ import annotations

import re
from typing import Any

from computepods.errors import ProjectError

UNITS_S = {"s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([smh])\s*")


def parse_duration(text: str) -> float | None:
    """Seconds in "90s", "30m", "2h" or "1.5h"; None if it is not one."""
    match = _DURATION.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        return None
    return float(match.group(1)) * UNITS_S[match.group(2)]


def as_duration(value: Any, file: str, key: str) -> float:
    """``value`` as seconds, or an error naming the file and the key."""
    seconds = parse_duration(value)
    if seconds is None or seconds <= 0:
        raise ProjectError(file, f"must be a duration such as \"90s\", \"30m\" or \"2h\", "
                           f"got {value!r}", None, key)
    return seconds
