"""A pod's hello: who it is, what it offers, and how to reach its store.

Every pod announces one on ``<ns>.pods.hello`` every :data:`HELLO_EVERY_S`
seconds and answers ``<ns>.pods.discover`` with it (charts/herald.py).  Only
the majordomo and chef roles may publish a hello (bus/auth.py), so the bus
itself authenticates it; what it says about keys is then pinned by the
:class:`~computepods.federation.roster.Roster` (docs/architecture.md §6).

:class:`PodHello` is exactly the ``pods.hello`` schema of
:mod:`computepods.bus.messages`; :meth:`PodHello.from_dict` checks that
schema and then what it leaves to the reader: the role, the SFTP endpoint
(host, port, host key) and the keys' OpenSSH form.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from computepods.bus.messages import PODS_HELLO, SCHEMA_VERSION, SCHEMAS
from computepods.errors import MalformedMessage
from computepods.transfer.endpoint import Endpoint

HELLO_EVERY_S = 3          # seconds between a pod's hellos
EXPIRY_HELLOS = 3          # a pod silent for 3 of its own hello periods is gone
ROLES = ("majordomo", "chef")
KEY_TYPES = ("ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384",
             "ecdsa-sha2-nistp521", "rsa-sha2-512", "rsa-sha2-256", "ssh-rsa")
MAX_PORT = 65535
_LOGIN = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,31}")   # a login name sshd would take
_POD_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}")


def key_blob(public_line: str) -> tuple[str, bytes] | None:
    """An OpenSSH public key line's (type, key bytes), its comment left out;
    None if it is not one."""
    parts = public_line.split()
    if len(parts) < 2 or parts[0] not in KEY_TYPES:
        return None
    try:
        blob = base64.b64decode(parts[1], validate=True)
    except (binascii.Error, ValueError):
        return None
    return (parts[0], blob) if blob else None


def fingerprint_of(public_line: str) -> str:
    """A key's fingerprint as ``ssh-keygen -l`` prints it (``SHA256:...``)."""
    blob = key_blob(public_line)
    if blob is None:
        return "(not a key)"
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob[1]).digest()).decode().rstrip("=")


def same_key(a: str, b: str) -> bool:
    """Whether two OpenSSH public lines hold one key (comments do not count)."""
    blob_a = key_blob(a)
    return blob_a is not None and blob_a == key_blob(b)


@dataclass(frozen=True)
class PodHello:
    """``pods.hello``: a pod, its chefs and slots, its load and tools, and its
    store's SFTP endpoint with the host key it presents there."""
    pod: str
    host: str
    role: str                                   # "majordomo" or "chef"
    chefs: tuple[str, ...]
    slots: int
    sftp: Endpoint
    client_key: str                             # OpenSSH line of the key it pulls with
    load: Mapping[str, float] = field(default_factory=dict)   # running, queued
    tools: Mapping[str, str] = field(default_factory=dict)    # tool -> fingerprint
    moved: Mapping[str, int] = field(default_factory=lambda: {"in": 0, "out": 0})  # bytes
    every_s: float = HELLO_EVERY_S

    @property
    def expiry_s(self) -> float:
        """Seconds of silence after which this pod counts as gone."""
        return EXPIRY_HELLOS * self.every_s

    def to_dict(self) -> dict:
        return {"pod": self.pod, "host": self.host, "role": self.role,
                "chefs": list(self.chefs), "slots": self.slots, "load": dict(self.load),
                "tools": dict(self.tools),
                "sftp": {"host": self.sftp.host, "port": self.sftp.port,
                         "host_key": self.sftp.host_key,
                         **({"user": self.sftp.user} if self.sftp.user else {})},
                "client_key": self.client_key, "moved": dict(self.moved),
                "every_s": self.every_s}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], subject: str = "pods.hello") -> "PodHello":
        """Read a hello; MalformedMessage naming the field when it is not one."""
        d = SCHEMAS[PODS_HELLO].check(subject, {"v": SCHEMA_VERSION, **data})

        def bad(what: str) -> MalformedMessage:
            return MalformedMessage(subject, f"pods.hello from {d['pod']!r}: {what}")
        if not _POD_ID.fullmatch(d["pod"]):
            raise MalformedMessage(subject, f"pods.hello: pod id {d['pod'][:80]!r} is not "
                                            "1-128 letters, digits and _.:@-")
        if d["role"] not in ROLES:
            raise bad(f"role {d['role'][:40]!r} is not one of {', '.join(ROLES)}")
        sftp = d["sftp"]
        host, port, host_key = sftp.get("host"), sftp.get("port"), sftp.get("host_key")
        if not isinstance(host, str) or not host:
            raise bad("sftp.host must be a host name or address")
        if not isinstance(port, int) or isinstance(port, bool) or not 0 < port <= MAX_PORT:
            raise bad(f"sftp.port must be a port number (1 to {MAX_PORT}), got {port!r}")
        if not isinstance(host_key, str) or key_blob(host_key) is None:
            raise bad("sftp.host_key must be an OpenSSH public key line")
        user = sftp.get("user")
        if user is not None and not (isinstance(user, str) and _LOGIN.fullmatch(user)):
            raise bad("sftp.user must be a login name (letters, digits, _.-)")
        if key_blob(d["client_key"]) is None:
            raise bad("client_key must be an OpenSSH public key line")
        return cls(d["pod"], d["host"], d["role"], tuple(d["chefs"]), d["slots"],
                   Endpoint(d["pod"], host, port, host_key, user), d["client_key"],
                   dict(d.get("load") or {}), dict(d.get("tools") or {}),
                   {"in": 0, "out": 0, **(d.get("moved") or {})},
                   d.get("every_s", HELLO_EVERY_S))
