#!/usr/bin/env python3
"""A pod process of your own: a Graphviz renderer on a federation bus.

    python renderer.py --nats nats://hub:4222 [--watch DIR] [-j 2] [--pod NAME]

It logs in as a chef (CP_NATS_USER / CP_NATS_PASSWORD, as `cpod chef`
does) and embeds, from computepods' public API:

* a Chef chart, made with its documented constructor (composition: the
  chart's states and attributes are not public), after registering its
  rule pack, packs/graphviz.toml, so the chef fingerprints `dot` and
  announces the pack;
* its membership of the federation (join_as_chef_pod): hellos that offer
  `dot`, a workspace with one tree per pod it builds for, and a content
  store served over SFTP, from which the project's pod fetches each SVG;
* with --watch DIR, an FSWatcher chart on DIR, on an in-process bus of its
  own (a chef may not publish cp.fs.changed), printing each settled change.

A `cpod up --nats URL` pod whose project says `use = ["graphviz"]` then
sends its .dot steps here.  Ctrl-C or SIGTERM stops it.
"""
from __future__ import annotations

import argparse
import os
import queue
import signal
import socket
import threading
from pathlib import Path

from computepods import (Chef, FSWatcher, LoopbackBus, NatsBridge, Workspace,
                         join_as_chef_pod, register_pack)

PACK = Path(__file__).resolve().parent / "packs" / "graphviz.toml"
FS_CHANGED = "FS_CHANGED"       # the signal an FSWatcher publishes (cp.fs.changed)


def main(argv: list[str] | None = None) -> int:
    args = options(argv)
    stopping = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopping.set())

    register_pack(PACK)          # before the Chef: it fingerprints every pack's tools
    name = f"{args.pod}-chef"
    workspace = Workspace(args.workspace).acquire()
    bridge = NatsBridge(args.nats, name=f"chef:{name}").start()
    member = join_as_chef_pod(bridge, workspace, args.pod, namespace=bridge.ns,
                              bus_urls=[args.nats], sftp=args.sftp, slots=args.jobs,
                              chefs=lambda: [name])
    chef = Chef(name, bridge, None, args.jobs, pod=args.pod, workspace=workspace,
                fetch=member.fetch, keep=member.store.add, prefetch=True).start()
    watcher = changes = None
    if args.watch:
        local = LoopbackBus(name="renderer", keep_log=False)
        changes = queue.Queue()
        local.listen(FS_CHANGED, changes)
        watcher = FSWatcher(local, Path(args.watch), pod=args.pod).start()
    print(f"renderer: pod {args.pod}, chef {name} with {args.jobs} slots on {args.nats}",
          flush=True)
    try:
        while not stopping.is_set():
            try:
                change = changes.get(timeout=0.5) if changes else stopping.wait(0.5)
            except queue.Empty:
                continue
            if change:
                print(f"changed: {change.data['path']} ({change.data['kind']})", flush=True)
    finally:
        if watcher is not None:
            watcher.stop()
        chef.stop()              # says goodbye: the pods it served need not wait its lease
        member.stop()
        bridge.stop()
        workspace.release()
    print("renderer: stopped", flush=True)
    return 0


def options(argv: list[str] | None) -> argparse.Namespace:
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    p = argparse.ArgumentParser(description="A Graphviz renderer pod on a computepods bus.")
    p.add_argument("--nats", default=os.environ.get("CP_NATS_URL"), required=False,
                   help="the bus (default: CP_NATS_URL)")
    p.add_argument("--pod", default=f"renderer-{socket.gethostname()}",
                   help="this pod's id on the bus")
    p.add_argument("-j", "--jobs", type=int, default=2, help="steps run at once")
    p.add_argument("--workspace", type=Path, default=cache / "computepods" / "renderer",
                   help="its trees, store and keys")
    p.add_argument("--sftp", metavar="HOST[:PORT]",
                   help="where its store is served (default: the address it reaches NATS from)")
    p.add_argument("--watch", metavar="DIR", help="print each settled change under DIR")
    args = p.parse_args(argv)
    if not args.nats:
        p.error("--nats URL (or CP_NATS_URL) is needed: the bus to serve")
    return args


if __name__ == "__main__":
    raise SystemExit(main())
