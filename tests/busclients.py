"""Clients of a pod's bus as an attacker on the machine would write them:
raw nats-py connections with or without a login, a forged run whose
command leaves a marker, and the subjects each role is refused.  Shared by
tests/integration/test_bus_auth.py and the battery's forged-clients row."""
from __future__ import annotations

from pathlib import Path

import nats

from computepods.bus import messages as m
from computepods.bus.auth import API, CHEF, WATCHER, BusUsers, permissions
from computepods.bus.loopback import subject_matches

CONNECT_TIMEOUT_S = 2.0      # seconds a raw client waits to connect
# What issue 11 says each role may never publish, written out here rather
# than read from auth.py, so that a permission opened there by mistake fails.
NEVER_PUBLISH = {CHEF: (m.CHEF_RUN, m.BUILD_REQUEST, m.API_QUERY),
                 WATCHER: (m.CHEF_RUN, m.BUILD_REQUEST, m.API_QUERY),
                 API: (m.CHEF_RUN, m.CHEFS_CANCEL, m.STEP_RESULTS, m.CHEF_STATUS)}


def forged_run(chef: str, marker: Path) -> dict:
    """A well-formed run whose command leaves ``marker`` behind."""
    return {"build": "forged", "chef": chef,
            "rules": {"pwn": {"name": "pwn", "inputs": [], "outputs": ["pwned.txt"],
                              "command": f"touch {marker}; echo x > {{out}}"}},
            "steps": [{"id": "pwn:pwned.txt", "attempt": 1, "rule": "pwn", "stem": "",
                       "inputs": {}}]}


def login(users: BusUsers, role: str | None) -> dict:
    """nats-py's connect options for ``role`` (none: no credentials)."""
    return users.credentials(role).connect_options() if role else {}


def connect(url: str, **options):
    """A raw nats-py connection that gives up rather than reconnect."""
    return nats.connect(url, connect_timeout=CONNECT_TIMEOUT_S, allow_reconnect=False,
                        max_reconnect_attempts=0, **options)


async def attempt_connect(url: str, **options) -> str:
    """"connected", or the server's refusal."""
    try:
        nc = await connect(url, **options)
    except Exception as exc:      # nats-py: a plain Error naming the violation
        return str(exc) or type(exc).__name__
    await nc.close()
    return "connected"


def bus_subjects(ns: str, chef: str) -> dict[str, str]:
    """One concrete subject per bus signal, by signal (per-entity ones for
    ``chef`` and a build "b0")."""
    return {signal: route.subject(ns, chef=chef, build="b0") for signal, route in m.ROUTES.items()}


def forbidden_publish(role: str, ns: str, subjects: dict[str, str]) -> dict[str, str]:
    """Of ``subjects`` (by signal), those ``role`` may not publish: what its
    permissions leave out, and what it must never publish in any case."""
    allowed = permissions(role, ns).publish
    return {sig: s for sig, s in subjects.items() if sig in NEVER_PUBLISH.get(role, ())
            or not any(subject_matches(a, s) for a in allowed)}


def forbidden_subscribe(role: str, ns: str) -> list[str]:
    """Subscriptions ``role`` may not make: every wildcard route it lacks,
    everything (``>``), and every inbox but its own."""
    allowed = permissions(role, ns).subscribe
    wild = [r.wildcard(ns) for r in m.ROUTES.values()]
    return [s for s in wild if s not in allowed] + [">", f"{ns}.>", "_INBOX.>",
                                                    "_INBOX.majordomo.>"]
