"""`cpod chef --nats URL`: a process that offers chefs to the pods on a bus."""
from __future__ import annotations

import os
import signal
from pathlib import Path

from computepods.cli.joined import start_own_server
from computepods.errors import Interrupted, UsageError


def cmd_chef(root: Path, args) -> int:
    """A chef process: its slots build in `root` for whoever asks on the bus.
    Stops on SIGTERM or Ctrl-C, killing the steps it is running, and says
    nothing about it: whoever stopped it knows (a pod stops its chef child
    at the end of every build, even one that failed before the chef had
    started)."""
    if args.heartbeat <= 0:
        raise UsageError(f"--heartbeat {args.heartbeat}: must be a positive number of seconds")
    own = start_own_server(args, args.namespace)   # --nats-routes/--nats-leaf: its own server
    if not args.nats:
        raise UsageError("cpod chef needs --nats URL (or CP_NATS_URL): the bus to serve")
    bridge = chef = None
    try:            # a signal may come at any point, even while importing or connecting
        import socket
        import threading

        from computepods.bus.bridge import NatsBridge
        from computepods.charts.chef import Chef
        from computepods.pod.localchef import default_slots

        name = args.name or f"{socket.gethostname()}-{os.getpid()}"
        bridge = NatsBridge(args.nats, namespace=args.namespace, name=f"chef:{name}",
                            insecure=args.insecure_bus or None).start()
        chef = Chef(name, bridge, root, args.jobs or default_slots(), live_trace=args.trace,
                    heartbeat_s=args.heartbeat)
        chef.start()
        threading.Event().wait()          # until a signal interrupts
    except Interrupted:
        return 0
    finally:
        # Stopping kills the running steps: a second signal (Ctrl-C reaches
        # a pod's chef child, then its pod's SIGTERM) must not cut that
        # short; whoever started this chef SIGKILLs it if it hangs.
        for s in (signal.SIGINT, signal.SIGTERM):
            signal.signal(s, signal.SIG_IGN)
        if chef is not None:
            chef.stop()
        if bridge is not None:
            bridge.stop()
        if own is not None:
            own.close()
