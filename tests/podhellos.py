"""Hellos for tests of discovery: made-up keys in OpenSSH form, and a pod's hello."""
from __future__ import annotations

import base64
import hashlib

from computepods.federation.hello import PodHello
from computepods.transfer.endpoint import Endpoint


def fake_key(seed: str, comment: str = "") -> str:
    """An ed25519 public key line (not a usable key: its bytes come from `seed`)."""
    raw = b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x20" + hashlib.sha256(seed.encode()).digest()
    line = "ssh-ed25519 " + base64.b64encode(raw).decode()
    return f"{line} {comment}" if comment else line


def hello_of(pod: str, *, role: str = "chef", host_key: str | None = None,
             client_key: str | None = None, tools: dict | None = None, slots: int = 2,
             port: int = 2222, every_s: float = 3.0) -> PodHello:
    return PodHello(pod, f"{pod}.example", role, (f"{pod}-c0",), slots,
                    Endpoint(pod, "127.0.0.1", port, host_key or fake_key(f"host:{pod}")),
                    client_key or fake_key(f"client:{pod}"), {"running": 0, "queued": 0},
                    tools or {}, {"in": 0, "out": 0}, every_s)
