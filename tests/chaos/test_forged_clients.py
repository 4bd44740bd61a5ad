"""Battery row: unauthenticated and forged bus clients.

Every case an attacker on the machine can try against a pod's bus: no
credentials, a guessed password or token, a role's user with another
role's password; then each role's user publishing every subject it is
refused (a forged ``cp.chef.<id>.run`` whose command touches a sentinel
among them) and subscribing to every subject it is refused, ``>``
included.  What must hold: the server refuses each one, nothing forged
reaches a subscriber, no command runs, no payload is read; and the pod,
which served a real build meanwhile, still runs its MajorDomo's run.
"""
from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from busclients import (attempt_connect, bus_subjects, connect, forbidden_publish,
                        forbidden_subscribe, forged_run, login)
from computepods.bus import messages as m
from computepods.bus.auth import API, CHEF, MAJORDOMO, ROLES, WATCHER, BusUsers
from computepods.bus.client import request_build
from computepods.pod.pod import Pod, PodOptions
from projects import COPY as PROJECT
from cpodrun import write
from helpers import wait_for

ROW = "unauthenticated and forged bus clients"
MUST_HOLD = "0 commands run, 0 payloads read"
VIOLATION_TIMEOUT_S = 10.0     # seconds to wait for the server's -ERR to a refused action
MARK = "forged-by"             # a field every forged message carries, to spot one delivered
@pytest.fixture
def pod(tmp_path, nats_server):
    root = write(tmp_path / "p", PROJECT)
    pod = Pod(root, PodOptions(nats_url=nats_server.url, slots=1)).start()
    yield pod
    pod.stop()
    assert {c.name: c.crashes for c in pod.charts if c.crashes} == {}


class Client:
    """A raw connection as ``role``, keeping the server's errors and what it reads."""

    def __init__(self, url: str, users: BusUsers, role: str):
        self.url, self.users, self.role = url, users, role
        self.errors: list[str] = []
        self.new_error = asyncio.Event()
        self.nc = None

    async def __aenter__(self) -> "Client":
        async def on_error(exc):
            self.errors.append(str(exc).lower())
            self.new_error.set()
        self.nc = await connect(self.url, error_cb=on_error, **login(self.users, self.role))
        return self

    async def __aexit__(self, *exc) -> None:
        await self.nc.close()

    async def refused(self, what: str, subject: str) -> None:
        """Wait for the server's violation for `what` ("publish to",
        "subscription") on `subject`."""
        needle = f'permissions violation for {what} "{subject}"'.lower()

        async def heard() -> None:      # woken by each error the server sends
            while True:
                self.new_error.clear()
                if any(needle in e for e in self.errors):
                    return
                await self.new_error.wait()
        await asyncio.wait_for(heard(), VIOLATION_TIMEOUT_S)


async def forged_publishes(pod: Pod, users: BusUsers, marker: Path, case) -> None:
    """Each role publishes every subject it may not, each refused; a
    majordomo listening on everything hears none of them."""
    chef = pod.chefs[0].chef
    subjects = bus_subjects(pod.bridge.ns, chef)
    heard: list = []
    async with Client(pod.url, users, MAJORDOMO) as ear:
        async def on_msg(msg):
            if MARK.encode() in msg.data:
                heard.append((msg.subject, msg.data[:200]))
        await ear.nc.subscribe(f"{pod.bridge.ns}.>", cb=on_msg)
        await ear.nc.flush()
        for role in (CHEF, WATCHER, API):
            async with Client(pod.url, users, role) as forger:
                for signal, subject in forbidden_publish(role, pod.bridge.ns, subjects).items():
                    body = forged_run(chef, marker) if signal == m.CHEF_RUN else {"targets": []}
                    with case(f"{role} publishes {subject}"):
                        await forger.nc.publish(subject, m.encode({**body, MARK: role}),
                                                reply=f"_INBOX.{role}.forged")
                        await forger.nc.flush()
                        await forger.refused("publish to", subject)
        await ear.nc.flush()
    with case("no forged message reached a subscriber"):
        assert heard == []


async def forbidden_reads(pod: Pod, users: BusUsers, case) -> None:
    """Each role subscribes where it may not, each refused; then the pod
    sends on each subject, and the eavesdropper reads nothing."""
    ns = pod.bridge.ns
    async with Client(pod.url, users, MAJORDOMO) as pod_side:
        for role in (CHEF, WATCHER, API):
            async with Client(pod.url, users, role) as spy:
                for pattern in forbidden_subscribe(role, ns):
                    with case(f"{role} subscribes {pattern}"):
                        sub = await spy.nc.subscribe(pattern)
                        await spy.nc.flush()
                        await spy.refused("subscription to", pattern)
                        await send_secret(pod_side, pattern, ns, role)
                        await spy.nc.flush()           # what the server sent the spy is in
                        assert sub.pending_msgs == 0, f"{role} read what {pattern} covers"


async def send_secret(pod_side: Client, pattern: str, ns: str, secret: str) -> None:
    """The pod side sends a message the pattern covers, and sees it arrive:
    an answer to its own request for an inbox, a publish for the rest."""
    if pattern.startswith("_INBOX."):
        probe = f"{ns}.wire.probe"

        async def answer(msg):
            await msg.respond(m.encode({"secret": secret}))
        responder = await pod_side.nc.subscribe(probe, cb=answer)
        await pod_side.nc.request(probe, b"{}", timeout=VIOLATION_TIMEOUT_S)
        await responder.unsubscribe()
        return
    subject = pattern.replace(">", "x").replace("*", "x") if pattern != ">" else f"{ns}.chefs.query"
    control = await pod_side.nc.subscribe(subject)
    await pod_side.nc.publish(subject, m.encode({"secret": secret}))
    await control.next_msg(timeout=VIOLATION_TIMEOUT_S)   # it was sent
    await control.unsubscribe()


async def strangers(pod: Pod, users: BusUsers, case) -> None:
    for what, options in [
        ("no credentials", {}),
        ("a guessed token", {"token": "guess"}),
        *((f"{role} with a guessed password", {"user": role, "password": "guess"})
          for role in ROLES),
        *((f"{role} with {other}'s password",
           {"user": role, "password": users.passwords[other]})
          for role in ROLES for other in ROLES if other != role),
        ("an unknown user", {"user": "root", "password": users.passwords[MAJORDOMO]}),
    ]:
        with case(what):
            refusal = await attempt_connect(pod.url, error_cb=_quiet, **options)
            assert "authorization violation" in refusal.lower()


async def _quiet(exc: Exception) -> None:
    """nats-py's default error callback logs each refusal with a traceback."""


def test_unauthenticated_and_forged_bus_clients(tmp_path, chaos, nats_server, pod):
    row = chaos.row(ROW, MUST_HOLD)
    count = chaos.examples(full=1, short=1)      # every case is tried in each mode
    row.count += count
    marker = tmp_path / "SENTINEL"
    users: BusUsers = nats_server.users
    failures_before = len(row.failures)

    class case:
        def __init__(self, what: str):
            self.what = what

        def __enter__(self):
            row.tried()

        def __exit__(self, kind, error, tb):
            if error is None:
                row.held()
            elif isinstance(error, Exception):
                row.failed(f"{self.what}: {type(error).__name__}: {error}")
            return isinstance(error, Exception)

    async def every_case() -> None:
        await strangers(pod, users, case)
        await forged_publishes(pod, users, marker, case)
        await forbidden_reads(pod, users, case)
    asyncio.run(every_case())

    with case("the pod still builds, and ran nothing forged"):
        assert request_build(pod.bridge, [], pod.root) == 0
        assert (pod.root / "out/a.txt").read_text() == "a\n"
        assert not marker.exists() and not (pod.root / "pwned.txt").exists()
    with case("the same run from the MajorDomo runs (the forgeries were refused, not malformed)"):
        chef = pod.chefs[0].chef
        reply = pod.bridge.request_sync(m.CHEF_RUN, forged_run(chef, marker), chef=chef)
        assert reply["rejected"] == [], json.dumps(reply)
        wait_for(marker.exists, what="the MajorDomo's run")
    failures = row.failures[failures_before:]
    assert not failures, f"chaos row {ROW!r}: {len(failures)} cases failed:\n  " + \
        "\n  ".join(failures)
