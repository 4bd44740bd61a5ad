"""A pod's id on the bus (standard library only: `cpod build` needs it
before it has imported anything else, to launch its chef child)."""
from __future__ import annotations

import hashlib
import socket
from pathlib import Path


def pod_id_for(place: Path) -> str:
    """A stable pod id: the host, and a hash of the directory it holds (a
    project or a chef pod's workspace), so two pods on one host differ."""
    digest = hashlib.sha256(str(Path(place).resolve()).encode()).hexdigest()[:8]
    return f"{socket.gethostname()}-{digest}"
