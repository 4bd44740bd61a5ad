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


# The query parameters the routes read one value of (``target`` takes a
# list; a parameter no route reads is ignored, as before).
SCALARS = frozenset({"offset", "limit", "before", "prefix", "format", "group", "state",
                     "q", "ran", "batch"})


class OneValueEach:
    """Middleware: a parameter of SCALARS given twice is a 400.  Falcon
    keeps the last value, so ``?offset=x&offset=1`` read as offset 1, and a
    malformed first value went unseen (schemathesis)."""

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        for key, value in req.params.items():
            if isinstance(value, list) and key in SCALARS:
                raise falcon.HTTPBadRequest(
                    title="Repeated query parameter",
                    description=f"query parameter {key!r} is given {len(value)} times; "
                                "it takes one value")
