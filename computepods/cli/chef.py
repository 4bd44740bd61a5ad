"""`cpod chef --nats URL`: a process that offers chefs to the pods on a bus.

In a project (found from -C or the working directory) its chef builds in
that tree.  Anywhere else it is a *chef pod*: it holds no project, and
builds the steps other pods send it in its workspace (``--workspace DIR``,
default ``$XDG_CACHE_HOME/computepods/workspace``), one tree per origin pod,
from files fetched by hash (docs/architecture.md §6).

A chef pod may serve the projects of several namespaces at once
(``--namespace a --namespace b``): a bridge, a Chef and a Member (hellos,
roster) per namespace, over one workspace and one PodStore (one key pair,
one content store, one SFTP server).  Its ``-j N`` slots are shared: each
namespace's chef takes up to N steps, and at most N of them run at once
(a gate the chefs share), so one project may use them all while the
others are idle.
"""
from __future__ import annotations

import argparse
import os
import signal
import socket
from pathlib import Path
from typing import Sequence

from computepods.cli.joined import start_own_server
from computepods.errors import Interrupted, ProjectNotFound, UsageError

DEFAULT_NAMESPACE = "cp"
# seconds between looks for a signal: a SIGTERM sent with the SIGCONT that wakes a
# stopped chef pod can be lost to a wait without a timeout (it then never stopped)
SIGNAL_POLL_S = 0.5


def add_pod_arguments(k: argparse.ArgumentParser) -> None:
    """The chef pod's options of `cpod chef`."""
    k.add_argument("--namespace", dest="namespaces", action="append", metavar="NS",
                   help="the subject namespace whose pods it serves (default: cp); "
                        "repeatable for a chef pod, which then serves the projects of "
                        "each, its -j slots shared by all, its chef in NS named NAME-NS")
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
    from computepods.federation.podid import pod_id_for
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
    namespaces = _namespaces(args, root)
    args.namespace = namespaces[0]       # what code reading one namespace expects
    own = start_own_server(args, *namespaces)   # --nats-routes/--nats-leaf: its own server
    if not args.nats:
        raise UsageError("cpod chef needs --nats URL (or CP_NATS_URL): the bus to serve")
    if len(namespaces) > 1:
        return _serve_namespaces(args, namespaces, own)
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
                    workspace=workspace, fetch=fetch, keep=keep, prefetch=keep is not None)
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
    from computepods.cli.sftpkeys import sshd_from_args
    from computepods.pod.federated import join_as_chef_pod

    def tools() -> dict[str, str]:
        return dict(chef().tools.fingerprints) if chef() is not None else {}
    return join_as_chef_pod(bridge, workspace, pod, namespace=args.namespace,
                            bus_urls=_bus_urls(args),
                            sftp=args.sftp, slots=slots, chefs=lambda: [name], tools=tools,
                            chart_kw={"live_trace": args.trace}, sshd=sshd_from_args(args))


def _namespaces(args, root: Path | None) -> list[str]:
    """The namespaces to serve, each once; several only for a chef pod that
    pulls over SFTP (a project's chef builds for that project's pod)."""
    from computepods.bus.auth import MAJORDOMO, permissions
    namespaces = list(dict.fromkeys(args.namespaces or [DEFAULT_NAMESPACE]))
    for ns in namespaces:
        permissions(MAJORDOMO, ns)        # one subject token, or a UsageError naming it
    if len(namespaces) > 1 and (root is not None or args.fetch_dir):
        why = f"in the project {root}" if root is not None else "with --fetch-dir"
        raise UsageError(f"--namespace {' --namespace '.join(namespaces)}: only a chef pod "
                         f"outside any project, pulling over SFTP, serves several "
                         f"namespaces; this one runs {why}: give one --namespace")
    return namespaces


def _serve_namespaces(args, namespaces: Sequence[str], own) -> int:
    """A chef pod serving each of `namespaces` (see the module's doc) until
    a signal stops it."""
    bridges: list = []
    chefs: list = []
    members: list = []
    store = workspace = None
    try:            # a signal may come at any point, even while importing or connecting
        import threading

        from computepods.bus.bridge import NatsBridge
        from computepods.charts.chef import Chef
        from computepods.federation.workspace import Workspace, default_workspace
        from computepods.pod.federated import chef_pod_store, join_as_chef_pod
        from computepods.pod.localchef import default_slots

        workspace = Workspace(Path(args.workspace or default_workspace())).acquire()
        pod = args.pod or pod_id(workspace.root)
        name = args.name or f"{socket.gethostname()}-{os.getpid()}"
        slots = args.jobs or default_slots()
        gate = threading.BoundedSemaphore(slots)
        from computepods.cli.sftpkeys import sshd_from_args
        store = chef_pod_store(workspace, namespaces, bus_urls=_bus_urls(args), sftp=args.sftp,
                               sshd=sshd_from_args(args))
        for ns in namespaces:
            chef_name = f"{name}-{ns}"
            bridge = NatsBridge(args.nats, namespace=ns, name=f"chef:{chef_name}",
                                insecure=args.insecure_bus or None).start()
            bridges.append(bridge)
            member = join_as_chef_pod(
                bridge, workspace, pod, namespace=ns, bus_urls=_bus_urls(args), sftp=args.sftp,
                slots=slots, chefs=lambda c=chef_name: [c], tools=_tools_of(chefs, len(chefs)),
                chart_kw={"live_trace": args.trace}, shared=store)
            members.append(member)
            chef = Chef(chef_name, bridge, None, slots, live_trace=args.trace,
                        heartbeat_s=args.heartbeat, pod=pod, tools=args.tools,
                        workspace=workspace, fetch=member.fetch, keep=store.store.add, gate=gate,
                        prefetch=True)
            chefs.append(chef)
            chef.start()
        forever = threading.Event()
        while not forever.wait(SIGNAL_POLL_S):      # until a signal interrupts
            pass
    except Interrupted:
        return 0
    finally:
        for s in (signal.SIGINT, signal.SIGTERM):    # as cmd_chef: stopping is not cut short
            signal.signal(s, signal.SIG_IGN)
        for part in (*chefs, *members, *([store] if store is not None else []), *bridges):
            part.stop()
        if workspace is not None:
            workspace.release()
        if own is not None:
            own.close()


def _tools_of(chefs: list, index: int):
    """The fingerprints chef number `index` announces (none before it starts)."""
    def tools() -> dict[str, str]:
        return dict(chefs[index].tools.fingerprints) if len(chefs) > index else {}
    return tools


def _bus_urls(args) -> list[str]:
    """The servers it joins before its own (whose address is loopback)."""
    from computepods.bus.natscluster import parse_urls
    return [*parse_urls(getattr(args, "nats_routes", None), "--nats-routes"),
            *parse_urls(getattr(args, "nats_leaf", None), "--nats-leaf"), args.nats]


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
