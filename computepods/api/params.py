"""Query parameters the REST routes read the same way (api/resources.py)."""
from __future__ import annotations

import falcon

from computepods.errors import UsageError


def flag(req: falcon.Request, key: str) -> bool:
    """A boolean parameter: true or false (also 1/0, yes/no, on/off); an
    empty one (``?ran=``) is refused, as the document's boolean says."""
    if req.get_param(key) == "":
        raise UsageError(f"query parameter {key!r} must be true or false, not empty")
    return req.get_param_as_bool(key) or False


def page(req: falcon.Request, limit: int, most: int) -> dict:
    """``offset`` and ``limit`` (at most ``most``; ``limit`` unless asked)."""
    return {"offset": req.get_param_as_int("offset", min_value=0) or 0,
            "limit": req.get_param_as_int("limit", min_value=1, max_value=most) or limit}
