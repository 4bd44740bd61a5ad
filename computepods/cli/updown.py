"""`cpod up`, `cpod status`, `cpod down`, and `cpod build` handed to a pod.

Only ``cmd_up`` imports the pod (nats-py, miros, the charts); the others
speak to a running pod through :mod:`computepods.pod.handoff` and stay light.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from computepods.cli.podtable import federation_text
from computepods.pod import handoff
from computepods.errors import EXIT_CANNOT_START, EXIT_FAILED, EXIT_OK, Interrupted, UsageError
from computepods.words import counted


def cmd_up(root: Path, args) -> int:
    from computepods.pod.daemon import PodDaemon, UpOptions
    from computepods.pod.pod import default_slots
    from computepods.cli.joined import join_from_args
    from computepods.cli.sftpkeys import sshd_from_args

    if args.jobs is not None and args.jobs < 1:
        raise UsageError(f"-j {args.jobs}: the number of parallel steps must be at least 1")
    if args.quiet_ms is not None and args.quiet_ms < 0:
        raise UsageError(f"--quiet-ms {args.quiet_ms}: must not be negative")
    info = handoff.running_pod(root)
    if info is not None:
        raise UsageError(f"a pod is already up for {root} (pid {info['pid']}); "
                         "`cpod down` stops it")
    if args.http_hosts:     # the REST server reads them as it reads CP_API_TOKEN
        given = [h for h in os.environ.get("CP_HTTP_HOSTS", "").split(",") if h]
        os.environ["CP_HTTP_HOSTS"] = ",".join(given + list(args.http_hosts))
    daemon = PodDaemon(root, UpOptions(
        targets=list(args.targets), nats_url=args.nats, namespace=args.namespace,
        slots=args.jobs or default_slots(), http=None if args.background else args.http,
        trace=args.trace, background=args.background,
        insecure_bus=args.insecure_bus, nats_join=join_from_args(args), sftp=args.sftp,
        sftp_sshd=sshd_from_args(args),
        quiet_s=None if args.quiet_ms is None else args.quiet_ms / 1000.0))
    try:
        daemon.start()
        daemon.wait()
    except Interrupted:
        pass                      # Ctrl-C or SIGTERM: a clean stop is what was asked
    finally:
        daemon.stop()
    daemon.say("pod stopped")
    return EXIT_OK


def cmd_status(root: Path, args) -> int:
    info = handoff.running_pod(root)
    if info is None:
        print(f"cpod: no pod is up for {root}", file=sys.stderr)
        return EXIT_FAILED
    try:
        st = handoff.call(info, "GET", "/status")
    except handoff.PodUnreachable as exc:
        print(f"cpod: {exc}", file=sys.stderr)
        return EXIT_CANNOT_START
    last = st.get("last_build")
    if last:
        ago = time.time() - last["finished"]
        what = ("ok" if last["ok"] else f"FAILED ({last.get('error') or 'exit %s' % last['code']})")
        last_text = f"build {last['id']} {what}, {counted(last.get('ran') or 0, 'step')} ran, {ago:.0f} s ago"
    else:
        last_text = "none yet"
    mode = (f"background, stops after {st['idle_s']:g} s idle (`cpod down` stops it now)"
            if st.get("background") else "cpod up (foreground, rebuilds on changes)")
    print(f"pod       pid {st['pid']}, up {st['uptime_s']:.0f} s\n"
          f"mode      {mode}\n"
          f"project   {st['root']}\n"
          f"targets   {' '.join(st['targets']) or '(project default)'}\n"
          f"nats      {st['nats']}\n"
          f"http      {st['http'] or '(off)'}\n"
          f"builds    {st['builds']}\n"
          f"last      {last_text}")
    print("federation:")
    for line in federation_text(st.get("federation")):
        print(f"  {line}")
    return EXIT_OK


def cmd_down(root: Path, args) -> int:
    from computepods.pod.daemon import stop_running_pod
    try:
        return stop_running_pod(root)
    except handoff.PodUnreachable as exc:
        raise UsageError(str(exc)) from None


def hand_off_build(info: dict, cwd: Path, args) -> int:
    """`cpod build` while a pod is up: the pod builds; we show its progress."""
    from computepods.cli.progress import Progress

    started = getattr(args, "started_pod", False)     # it took -j and the namespace
    ignored = [flag for flag, given in (("-j", args.jobs not in (None, info.get("slots"))
                                         and not started),
                                        ("--trace", args.trace),
                                        ("--nats", args.nats and args.nats != info.get("nats")))
               if given]
    if ignored:
        print(f"cpod: {', '.join(ignored)} ignored: the pod up for this project "
              f"(pid {info['pid']}) builds with its own settings", file=sys.stderr)
    progress = Progress(verbose=args.verbose, explain=args.explain)
    accepted: dict = {}

    def on_event(ev: dict) -> None:
        if ev.get("t") == "accepted":
            accepted.update(ev)
        progress.handle(ev)
    watching = getattr(args, "watching", lambda on_event: on_event)   # cpod build --profile
    try:
        return handoff.stream_build(info, {"targets": list(args.targets), "cwd": str(cwd),
                                           "keep_going": args.keep_going,
                                           "dry_run": args.dry_run}, watching(on_event))
    except handoff.PodUnreachable as exc:
        raise UsageError(f"{exc}; `cpod down` (or killing that pid) lets cpod build alone") \
            from None
    except Interrupted:
        progress.clear_line()
        if accepted.get("joined"):
            print(f"cpod: stopped following; build {accepted['build']} was asked for by "
                  f"another client and goes on in the pod (pid {info['pid']})", file=sys.stderr)
        else:
            print(f"cpod: the pod (pid {info['pid']}) cancels the build", file=sys.stderr)
        raise
