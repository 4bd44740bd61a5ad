"""Importing nats-py without paying for what the bridge never uses.

nats-py imports its JetStream package and ``importlib.metadata`` at import
time; the stand-ins below defer the first and answer the second's one
question, and the real modules come back as soon as they are needed.
Import ``nats`` from here: ``from computepods.bus.natsimport import nats``.
"""
from __future__ import annotations

import importlib
import os
import sys
import types


class _JetStreamOnUse(types.ModuleType):
    """Stands in for ``nats.js`` until an attribute of it is used.

    nats-py imports its JetStream package at import time (a large share of
    what a cold ``cpod build`` imports; ``python -X importtime`` shows it) although the bridge never uses
    JetStream; the client only reads header constants from it when a reply
    carries headers (a no-responders status).  Then the real package loads.
    """

    __spec__ = None            # the import system finds it "initialised"

    def __getattr__(self, name: str):
        if sys.modules.get("nats.js") is self:
            del sys.modules["nats.js"]
        real = importlib.import_module("nats.js")
        sys.modules["nats"].js = real
        return getattr(real, name)


class _VersionLookUp(types.ModuleType):
    """Stands in for ``importlib.metadata`` while nats-py is imported.

    nats-py asks it for one thing, its own version (sent in CONNECT), and
    importing the real module drags in email, zipfile, csv... at every cold
    start (``python -X importtime``).  The version is read from the ``*.dist-info`` directory's name;
    the real module is back in place as soon as nats-py is imported.
    """

    __spec__ = None

    @staticmethod
    def version(distribution: str) -> str:
        prefix = distribution.replace("-", "_") + "-"
        for entry in sys.path:
            try:
                names = os.listdir(entry or ".")
            except OSError:
                continue
            for name in names:
                if name.startswith(prefix) and name.endswith(".dist-info"):
                    return name[len(prefix):-len(".dist-info")]
        raise LookupError(f"{distribution} is not installed")   # nats-py: "0.0.0"


if "nats" not in sys.modules and "nats.js" not in sys.modules:
    sys.modules["nats.js"] = _JetStreamOnUse("nats.js")
_stand_in = None
if "nats" not in sys.modules and "importlib.metadata" not in sys.modules:
    _stand_in = sys.modules["importlib.metadata"] = _VersionLookUp("importlib.metadata")
try:
    import nats  # noqa: E402,F401  (after the stand-ins above)
finally:
    if _stand_in is not None and sys.modules.get("importlib.metadata") is _stand_in:
        del sys.modules["importlib.metadata"]

if isinstance(sys.modules.get("nats.js"), _JetStreamOnUse):
    nats.js = sys.modules["nats.js"]   # what `import nats.js` binds on the package

