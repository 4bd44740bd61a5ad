"""`cpod chef --nats URL`: a process that offers chefs to the pods on a bus.

In a project (found from -C or the working directory) its chef builds in
that tree.  Anywhere else it is a *chef pod*: it holds no project, and
builds the steps other pods send it in its workspace (``--workspace DIR``,
default ``$XDG_CACHE_HOME/computepods/workspace``), one tree per origin pod,
from files fetched by hash (docs/architecture.md §6).
"""
from __future__ import annotations

import argparse
import os
import signal
import socket
from pathlib import Path

from computepods.cli.joined import start_own_server
from computepods.errors import Interrupted, ProjectNotFound, UsageError

# seconds between looks for a signal: a SIGTERM sent with the SIGCONT that wakes a
# stopped chef pod can be lost to a wait without a timeout (it then never stopped)
SIGNAL_POLL_S = 0.5


def add_pod_arguments(k: argparse.ArgumentParser) -> None:
    """The chef pod's options of `cpod chef`."""
    k.add_argument("--workspace", metavar="DIR",
                   help="where a chef pod keeps its trees and store (default: "
                        "$XDG_CACHE_HOME/computepods/workspace); in a project, also serve "
                        "other pods' steps there")
    k.add_argument("--pod", metavar="NAME",
                   help="this pod's id on the bus (default: the host and a hash of the "
                        "workspace, or 'local' in a project)")
    k.add_argument("--tool", dest="tools", action="append", default=[], metavar="NAME",
                   help="a program whose fingerprint the chef announces from the start "
                        "(repeatable; pack tools and the programs of its runs always are)")
    k.add_argument("--fetch-dir", metavar="DIR",
                   help="take the files other pods' steps need from the content store at "
                        "DIR (DIR/sha256/<2 hex>/<sha256>, on a shared disk)")


def pod_id(workspace: Path) -> str:
    """A chef pod's stable id: its host, and which workspace it holds."""
    from computepods.pod.member import pod_id_for
    return pod_id_for(workspace)


def cmd_chef(cwd: Path, args) -> int:
    """A chef process: its slots build in the project at or above `cwd` (or,
    outside any project, in its workspace) for whoever asks on the bus.
    Stops on SIGTERM or Ctrl-C, killing the steps it is running, and says
    nothing about it: whoever stopped it knows (a pod stops its chef child
    at the end of every build, even one that failed before the chef had
    started)."""
    if args.heartbeat <= 0:
        raise UsageError(f"--heartbeat {args.heartbeat}: must be a positive number of seconds")
    root = _project_root(cwd, given=bool(args.directory))
    own = start_own_server(args, args.namespace)   # --nats-routes/--nats-leaf: its own server
    if not args.nats:
        raise UsageError("cpod chef needs --nats URL (or CP_NATS_URL): the bus to serve")
    bridge = chef = workspace = member = None
    try:            # a signal may come at any point, even while importing or connecting
        import threading

        from computepods.bus.bridge import NatsBridge
        from computepods.charts.chef import Chef
        from computepods.pod.localchef import default_slots

        pod, fetch, keep = args.pod or "local", None, None
        if root is None or args.workspace:
            from computepods.federation.workspace import Workspace, default_workspace
            workspace = Workspace(Path(args.workspace or default_workspace())).acquire()
            if root is None:
                pod = args.pod or pod_id(workspace.root)
        name = args.name or f"{socket.gethostname()}-{os.getpid()}"
        slots = args.jobs or default_slots()
        bridge = NatsBridge(args.nats, namespace=args.namespace, name=f"chef:{name}",
                            insecure=args.insecure_bus or None).start()
        if workspace is not None:
            if args.fetch_dir:
                fetch = _fetch(args)
            else:       # the federation: our store over SFTP, others' pulled by hash
                member = _join(args, bridge, workspace, pod, name, slots, lambda: chef)
                fetch, keep = member.fetch, member.store.add
        chef = Chef(name, bridge, root, slots, live_trace=args.trace,
                    heartbeat_s=args.heartbeat, pod=pod, tools=args.tools,
                    workspace=workspace, fetch=fetch, keep=keep)
        chef.start()
        forever = threading.Event()
        while not forever.wait(SIGNAL_POLL_S):      # until a signal interrupts
            pass
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
        if member is not None:
            member.stop()
        if bridge is not None:
            bridge.stop()
        if workspace is not None:
            workspace.release()
        if own is not None:
            own.close()


def _join(args, bridge, workspace, pod: str, name: str, slots: int, chef):
    """The chef pod's Member: its hellos, its store served over SFTP, and
    the Puller its chef fetches other pods' files with."""
    from computepods.pod.federated import join_as_chef_pod
    from computepods.bus.natscluster import parse_urls

    def tools() -> dict[str, str]:
        return dict(chef().fingerprints) if chef() is not None else {}
    # the servers it joins before its own (whose address is loopback)
    urls = [*parse_urls(getattr(args, "nats_routes", None), "--nats-routes"),
            *parse_urls(getattr(args, "nats_leaf", None), "--nats-leaf"), args.nats]
    return join_as_chef_pod(bridge, workspace, pod, namespace=args.namespace, bus_urls=urls,
                            sftp=args.sftp, slots=slots, chefs=lambda: [name], tools=tools,
                            chart_kw={"live_trace": args.trace})


def _project_root(cwd: Path, given: bool) -> Path | None:
    """The project to serve; None outside any (a chef pod).  With -C the
    directory must be in a project."""
    from computepods.paths import find_project_root
    try:
        return find_project_root(cwd)
    except ProjectNotFound:
        if given:
            raise
        return None


def _fetch(args):
    """How a chef pod gets the files other pods' steps list."""
    if args.fetch_dir:
        from computepods.federation.remotesteps import directory_fetch
        return directory_fetch(Path(args.fetch_dir).resolve())
    from computepods.federation.remotesteps import no_fetch
    return no_fetch
