"""Helpers for tests: wait on a condition, never on a sleep."""
from __future__ import annotations

import time
from typing import Callable, TypeVar

T = TypeVar("T")

DEFAULT_TIMEOUT_S = 10.0
DEFAULT_INTERVAL_S = 0.005


def wait_for(predicate: Callable[[], T], timeout: float = DEFAULT_TIMEOUT_S,
             interval: float = DEFAULT_INTERVAL_S, what: str = "condition") -> T:
    """Poll ``predicate`` until it returns something truthy, and return that.

    Raises AssertionError naming ``what`` (and the last value seen) when
    ``timeout`` seconds pass first.  The interval is a poll period, not a
    guess at how long the thing takes: the test goes on as soon as it holds.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"timed out after {timeout} s waiting for {what} (last: {value!r})")
        time.sleep(interval)


def pid_is_gone(pid: int) -> bool:
    """True when no live process has this pid.

    A zombie counts as gone: an orphan is reparented to pid 1, which in a
    container may never reap it, so /proc keeps its entry in state Z.
    """
    try:
        stat = open(f"/proc/{pid}/stat").read()
    except FileNotFoundError:
        return True
    # The state field follows the command name, which is in parentheses and
    # may itself contain spaces or parentheses.
    state = stat.rsplit(")", 1)[1].split()[0]
    return state in ("Z", "X")
