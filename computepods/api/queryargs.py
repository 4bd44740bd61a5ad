"""The arguments of an ``api.query`` (docs/architecture.md §5), checked.

The REST app checks what a client sends; these check what reaches the Desk
over the bus, where anything may arrive: a wrong type is a UsageError (a
400), never a crash of the Desk.
"""
from __future__ import annotations

from computepods.errors import UsageError


def arg(args: dict, key: str, kind: type, default):
    """``args[key]`` (`default` when absent), which must be a `kind`."""
    value = args.get(key, default)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise UsageError(f"query argument {key!r} must be {kind.__name__}, "
                         f"not {type(value).__name__}")
    return value


def names(args: dict, key: str = "targets") -> list[str]:
    """A list of non-empty strings (targets)."""
    found = arg(args, key, list, [])
    if not all(isinstance(n, str) and n for n in found):
        raise UsageError(f"query argument {key!r} must be a list of non-empty strings")
    return found


def optional(args: dict, key: str, kind: type):
    """``args[key]`` or None; when given, a `kind`."""
    return None if args.get(key) is None else arg(args, key, kind, None)
