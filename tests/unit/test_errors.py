"""What the error classes promise the code around them."""
from __future__ import annotations

import pytest

from computepods.errors import ComputePodsError, Interrupted


def test_a_stop_request_gets_through_code_that_turns_failures_into_messages():
    # nats-py reads its own version inside `except Exception` at import, and
    # the bridge turns connect failures into messages the same way: a chef
    # told to stop while it started up used to carry on.  SIGINT and SIGTERM
    # (Interrupted) must pass such handlers, as KeyboardInterrupt does.
    def guarded() -> str:
        try:
            raise Interrupted("SIGTERM")
        except Exception:
            return "swallowed"

    with pytest.raises(Interrupted):
        guarded()
    assert not issubclass(Interrupted, ComputePodsError)
