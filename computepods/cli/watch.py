"""``cpod watch DIR --nats URL``: the user-side watcher (inotify2nats, docs/architecture.md §2).

It runs one :class:`~computepods.charts.watcher.FSWatcher` on DIR and
publishes ``<ns>.fs.changed`` for every settled change until Ctrl-C or
SIGTERM, then stops cleanly (exit 0); if DIR itself goes away, it says so
and exits 1.  DIR need not be a project: when it holds a
``computepods.toml``, that file's ``ignore`` and ``stream`` patterns apply;
``.git`` and ``.computepods`` are never watched.
"""
from __future__ import annotations

import argparse
import signal
import socket
import sys
import threading
from pathlib import Path

from computepods.errors import EXIT_FAILED, UsageError

DEFAULT_NAMESPACE = "cp"


def add_parser(sub, nats_default: str | None) -> None:
    """The ``watch`` subcommand's arguments (called by cli.build_parser)."""
    w = sub.add_parser("watch", help="publish cp.fs.changed for a directory until stopped")
    w.add_argument("dir", metavar="DIR", help="the directory to watch (any; a project or not)")
    w.add_argument("-C", dest="directory", metavar="DIR", default=argparse.SUPPRESS)
    w.add_argument("--nats", metavar="URL", default=nats_default,
                   help="the NATS server to publish to (env CP_NATS_URL)")
    w.add_argument("--namespace", default=DEFAULT_NAMESPACE,
                   help=f"subject namespace (default: {DEFAULT_NAMESPACE})")
    w.add_argument("--quiet-ms", type=float, metavar="MS",
                   help="report a file once it has not changed for MS ms (default 50)")
    w.add_argument("--pod", metavar="NAME", help="the pod named in each message (default: host)")
    w.add_argument("--insecure-bus", action="store_true",
                   help="join a NATS server that asks for no authentication")


def cmd_watch(args, cwd: Path | None = None) -> int:
    """Watch until interrupted; 0 on a clean stop."""
    from computepods.bus import messages as m
    from computepods.bus.bridge import NatsBridge
    from computepods.charts.watcher import FSWatcher
    from computepods.watch.debounce import MAX_DELAY_S, QUIET_S
    from computepods.paths import PROJECT_FILE
    from computepods.project.load import load_project

    root = ((cwd or Path.cwd()) / args.dir).resolve()
    if not root.is_dir():
        raise UsageError(f"cpod watch {args.dir}: not a directory")
    if not args.nats:
        raise UsageError("cpod watch needs --nats URL (or CP_NATS_URL): where to publish")
    quiet_s = QUIET_S if args.quiet_ms is None else args.quiet_ms / 1000
    if quiet_s < 0:
        raise UsageError(f"--quiet-ms {args.quiet_ms}: must not be negative")
    ignore, stream = (), ()
    if (root / PROJECT_FILE).is_file():
        project = load_project(root)
        ignore, stream = project.ignore, project.stream
    pod = args.pod or socket.gethostname()
    # Its login comes from CP_NATS_USER/CP_NATS_PASSWORD: the watcher role's
    # (`cpod nats-config DIR` writes DIR/watcher.env).
    bridge = NatsBridge(args.nats, namespace=args.namespace, name=f"watch:{pod}",
                        insecure=args.insecure_bus or None).start()
    watcher = None
    stop = threading.Event()
    before = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        watcher = FSWatcher(bridge, root, pod=pod, ignore=ignore, stream=stream,
                            quiet_s=quiet_s, max_delay_s=max(quiet_s, MAX_DELAY_S))
        watcher.when_stopped(stop.set)    # DIR itself went away
        watcher.start()
        print(f"cpod: watching {root} ({len(watcher.tree.wds)} directories); "
              f"publishing {bridge.subject(m.FS_CHANGED)} on {args.nats}",
              file=sys.stderr, flush=True)
        stop.wait()                       # until Ctrl-C or SIGTERM
    finally:
        if watcher is not None:
            watcher.stop()
        bridge.stop()
        for s, handler in before.items():
            signal.signal(s, handler)
    if watcher.gone:
        print(f"cpod: {root} went away; stopped watching", file=sys.stderr, flush=True)
        return EXIT_FAILED
    print("cpod: stopped watching", file=sys.stderr, flush=True)
    return 0
