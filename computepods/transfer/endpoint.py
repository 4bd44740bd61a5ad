"""Where a pod's store is served, and the host key it must present there."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Endpoint:
    """A pod's SFTP endpoint as its authenticated hello announced it."""
    pod: str
    host: str
    port: int
    host_key: str          # OpenSSH public line: "ssh-ed25519 AAAA..."
    user: str | None = None    # the login a system sshd serving it expects; None: our own
