"""`cpod`: build, clean, and (later) run pods.

Exit codes (docs/architecture.md §2): 0 built or nothing to do; 1 a step failed; 2 the
build could not start; 130 interrupted.
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path
from typing import Sequence

from computepods.version import __version__
from computepods.words import counted

# Interrupted lives in errors.py: under `python -m computepods.cli` this
# module is __main__, and a class defined here would be a different one.
from computepods.errors import (EXIT_CANNOT_START, EXIT_INTERRUPTED, ComputePodsError, Interrupted,
                     RecordsNotWritten, UsageError)
from computepods.paths import STATE_DIR, find_project_root
from computepods.cli.joined import add_config_arguments, add_join_arguments
from computepods.cli.sftpkeys import add_sshd_arguments, sshd_from_args


INSECURE_HELP = "join a NATS server that asks for no login (anyone can then run commands)"


def _interrupt(signum, frame):
    raise Interrupted(signal.Signals(signum).name)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cpod", description="computepods: incremental builds "
                                "by content hash, cycles to a fixpoint, on one pod or many.")
    p.add_argument("--version", action="version", version=f"cpod {__version__}")
    p.add_argument("-C", dest="directory", metavar="DIR", help="run as if started in DIR")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    b = sub.add_parser("build", help="build targets (default: project.default)")
    b.add_argument("targets", nargs="*", metavar="TARGET")
    b.add_argument("-C", dest="directory", metavar="DIR", default=argparse.SUPPRESS)
    b.add_argument("-j", "--jobs", type=int, metavar="N", help="parallel steps (default: cores)")
    b.add_argument("-k", "--keep-going", action="store_true",
                   help="after a failure, go on with what does not depend on it")
    b.add_argument("-n", "--dry-run", action="store_true", help="say what would run; run nothing")
    b.add_argument("-v", "--verbose", action="store_true", help="echo each command")
    b.add_argument("--nats", metavar="URL", default=os.environ.get("CP_NATS_URL"),
                   help="join this NATS server instead of starting one (env CP_NATS_URL)")
    b.add_argument("--namespace", default="cp", help="subject namespace (default: cp)")
    b.add_argument("--insecure-bus", action="store_true", help=INSECURE_HELP)
    b.add_argument("--trace", action="store_true", help="miros live_trace of the build's charts")
    b.add_argument("--sftp", metavar="HOST[:PORT]", default=os.environ.get("CP_SFTP"),
                   help="where this pod serves its store to the federation (env CP_SFTP; "
                        "default: the address it reaches NATS from, a free port)")
    add_sshd_arguments(b)
    b.add_argument("--explain", action="store_true", help="say why each step runs")
    b.add_argument("--profile", metavar="FILE",
                   help="write where the time went as Chrome trace-event JSON (Perfetto)")
    b.add_argument("--no-pod", action="store_true",
                   help="start no background pod for later builds (also CP_POD=0, CI=true)")

    e = sub.add_parser("explain", help="which of TARGET's steps would run, and why")
    e.add_argument("targets", nargs="*", metavar="TARGET")
    e.add_argument("-C", dest="directory", metavar="DIR", default=argparse.SUPPRESS)
    e.add_argument("--all", dest="everything", action="store_true",
                   help="every step, up to date or not, with its last run")
    e.add_argument("-v", "--verbose", action="store_true",
                   help="each command whole (else shortened to one line)")

    k = sub.add_parser("chef", help="offer chefs to the pods on a NATS bus until stopped")
    k.add_argument("-C", dest="directory", metavar="DIR", default=argparse.SUPPRESS)
    k.add_argument("--nats", metavar="URL", default=os.environ.get("CP_NATS_URL"),
                   help="the NATS server to join (env CP_NATS_URL)")
    k.add_argument("--insecure-bus", action="store_true", help=INSECURE_HELP)
    k.add_argument("-j", "--jobs", type=int, metavar="N", help="slots (default: cores)")
    k.add_argument("--name", help="chef name (default: host-pid)")
    k.add_argument("--heartbeat", type=float, default=5.0, metavar="S",
                   help="seconds between status messages; silent for 3 of them, "
                        "a MajorDomo reschedules its steps (default 5)")
    k.add_argument("--trace", action="store_true")
    k.add_argument("--sftp", metavar="HOST[:PORT]", default=os.environ.get("CP_SFTP"),
                   help="where this pod serves its store to the federation (env CP_SFTP; "
                        "default: the address it reaches NATS from, a free port)")
    add_sshd_arguments(k)
    add_join_arguments(k)
    from computepods.cli.chef import add_pod_arguments
    add_pod_arguments(k)

    n = sub.add_parser("nats-config", help="write DIR/nats.conf (the bus's users) and DIR/<role>.env")
    n.add_argument("dir", metavar="DIR", help="where to write nats.conf and the .env files")
    n.add_argument("--namespace", dest="namespaces", action="append", metavar="NS",
                   help="a subject namespace its pods use (repeatable; default: cp)")
    add_config_arguments(n)

    from computepods.cli.sftpkeys import add_parser as add_sftp_keys_parser
    add_sftp_keys_parser(sub)

    c = sub.add_parser("clean", help="remove the outputs and state computepods made")
    c.add_argument("-C", dest="directory", metavar="DIR", default=argparse.SUPPRESS)

    from computepods.cli.watch import add_parser as add_watch_parser
    add_watch_parser(sub, os.environ.get("CP_NATS_URL"))

    u = sub.add_parser("up", help="run a pod that watches the project and keeps it built")
    u.add_argument("-C", dest="directory", metavar="DIR", default=argparse.SUPPRESS)
    u.add_argument("--target", dest="targets", action="append", default=[], metavar="T",
                   help="what to keep built (repeatable; default: project.default)")
    u.add_argument("-j", "--jobs", type=int, metavar="N", help="parallel steps (default: cores)")
    u.add_argument("--nats", metavar="URL", default=os.environ.get("CP_NATS_URL"),
                   help="join this NATS server instead of starting one (env CP_NATS_URL)")
    u.add_argument("--namespace", default="cp", help="subject namespace (default: cp)")
    u.add_argument("--insecure-bus", action="store_true", help=INSECURE_HELP)
    u.add_argument("--http", metavar="ADDR:PORT", default="127.0.0.1:8765",
                   help="where to serve the REST API and the page (default 127.0.0.1:8765)")
    u.add_argument("--no-http", dest="http", action="store_const", const=None,
                   help="serve no REST API")
    u.add_argument("--http-host", dest="http_hosts", action="append", default=[], metavar="NAME",
                   help="a host name the REST API also answers to (repeatable; env CP_HTTP_HOSTS)")
    u.add_argument("--quiet-ms", type=float, metavar="MS",
                   help="a file is reported once it has not changed for MS ms (default 50)")
    u.add_argument("--trace", action="store_true", help="miros live_trace of the pod's charts")
    u.add_argument("--background", action="store_true", help=argparse.SUPPRESS)  # cpod build's
    u.add_argument("--sftp", metavar="HOST[:PORT]", default=os.environ.get("CP_SFTP"),
                   help="where this pod serves its store to the federation (env CP_SFTP; "
                        "default: the address it reaches NATS from, a free port)")
    add_sshd_arguments(u)
    add_join_arguments(u)

    for name, text in (("status", "show the pod that is up for this project"),
                       ("down", "stop the pod that is up for this project")):
        x = sub.add_parser(name, help=text)
        x.add_argument("-C", dest="directory", metavar="DIR", default=argparse.SUPPRESS)
    return p


def log_level() -> int:
    """WARNING, or CP_LOG_LEVEL (DEBUG, INFO, ...) to see what a pod does:
    which pods it hears, where it serves its store."""
    import logging
    level = logging.getLevelName(os.environ.get("CP_LOG_LEVEL", "WARNING").upper())
    return level if isinstance(level, int) else logging.WARNING


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_CANNOT_START
    if args.command != "build":            # a build handed to a pod logs nothing here
        _log_to_stderr()
    cwd = Path(args.directory).resolve() if args.directory else Path.cwd()
    old = {s: signal.signal(s, _interrupt) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        if not cwd.is_dir():
            raise UsageError(f"-C {args.directory}: not a directory")
        if args.command == "watch":           # any directory, a project or not
            from computepods.cli.watch import cmd_watch
            return cmd_watch(args, cwd)
        if args.command == "nats-config":     # any directory too
            return cmd_nats_config(cwd / args.dir, args.namespaces or ["cp"], args)
        if args.command == "sftp-keys":       # anywhere: sshd runs it, in no project
            from computepods.cli.sftpkeys import cmd_sftp_keys
            return cmd_sftp_keys(args)
        if args.command == "chef":            # a project, or anywhere as a chef pod
            from computepods.cli.chef import cmd_chef
            return cmd_chef(cwd, args)
        root = find_project_root(cwd)
        if args.command == "build":
            return cmd_build(root, cwd, args)
        if args.command in ("up", "status", "down"):
            from computepods.cli import updown
            return getattr(updown, f"cmd_{args.command}")(root, args)
        if args.command == "clean":
            from computepods.cli.clean import cmd_clean
            return cmd_clean(root)
        if args.command == "explain":
            import shutil
            from computepods.planning.explain import explain
            width = None if args.verbose else shutil.get_terminal_size((100, 20)).columns - 1
            print("\n".join(explain(root, args.targets, cwd, everything=args.everything,
                                     width=width)))
            return 0
        raise UsageError(f"unknown command {args.command!r}")
    except ComputePodsError as exc:
        print(f"cpod: {exc}", file=sys.stderr)
        return exc.exit_code
    except Interrupted as exc:
        if args.command != "chef":      # whoever started a chef stops it: it leaves quietly
            print(f"cpod: interrupted ({exc})", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


def _log_to_stderr() -> None:
    import logging
    logging.basicConfig(level=log_level(), format="cpod: %(message)s")


def cmd_build(root: Path, cwd: Path, args) -> int:
    """The build; with ``--profile``, its trace is written once it is over."""
    profile = None
    if args.profile:
        from computepods.cli.profile import ProfileFile
        profile = ProfileFile(root, cwd / args.profile)
    args.watching = profile.watching if profile else (lambda on_event: on_event)
    code = _cmd_build(root, cwd, args)
    if profile:
        profile.write()
    return code


def _cmd_build(root: Path, cwd: Path, args) -> int:
    # A pod is up for the project: hand the build to it (stdlib only).
    from computepods.pod.handoff import running_pod
    info = running_pod(root)
    if info is None or info.get("background"):
        from computepods.pod import background
        if info is None and background.wanted(args) and not args.dry_run:
            info = background.start(root, args)
            args.started_pod = info is not None     # it took -j from us
        elif info is not None and (why := background.out_of_date(
                info, None if args.dry_run else args.jobs)):
            # A dry run changes nothing, a pod included: it answers itself.
            info = None if args.dry_run else background.restart(root, info, args, why)
            args.started_pod = info is not None
    if info is not None:
        from computepods.cli.updown import hand_off_build
        return hand_off_build(info, cwd, args)
    _log_to_stderr()
    if args.jobs is not None and args.jobs < 1:
        raise UsageError(f"-j {args.jobs}: the number of parallel steps must be at least 1")

    def waiting(who: str) -> None:
        print(f"cpod: waiting for the build of {who} to finish", file=sys.stderr, flush=True)

    # One lock for the whole build, taken before the state is first read.
    from computepods.state.lock import ProjectLock
    from computepods.paths import STATE_DB
    from computepods.planning.plancache import stored_noop
    lock = ProjectLock(root)
    locked = False
    try:
        if (root / STATE_DB).is_file():
            lock.acquire(on_wait=waiting)
            locked = True
            # The cold no-op the last one judged, while its files keep their stats.
            steps = stored_noop(root, args.targets, cwd)
            if steps is not None:
                print(f"cpod: nothing to do: {counted(steps, 'step')} up to date", file=sys.stderr)
                return 0
        return _start_and_build(root, cwd, args, lock, locked, waiting)
    finally:
        lock.release()


def _start_and_build(root: Path, cwd: Path, args, lock, locked: bool, waiting) -> int:
    # The embedded nats-server and the pod's chef process start now, on the
    # other processor, while this one imports and plans (docs/architecture.md §10); a
    # no-op stops them unused.
    server, chefs = None, []
    if not args.nats:
        from computepods.bus.auth import CHEF, BusUsers
        from computepods.bus.natsd import NatsServer
        from computepods.errors import NatsServerError
        from computepods.paths import NATS_DIR, prepare_state_dir
        prepare_state_dir(root)
        try:
            server = NatsServer(store_dir=root / NATS_DIR,
                                users=BusUsers.generate(args.namespace)).launch()
        except NatsServerError:
            server = None          # the pod tries again and says why, if a build needs it
    url = server.url if server else args.nats
    from computepods.pod.localchef import chef_process     # not before a cold no-op
    if url and chef_process():
        from computepods.pod.localchef import LocalChef, chef_name, default_slots
        from computepods.federation.podid import pod_id_for
        chefs.append(LocalChef(root, url, namespace=args.namespace,
                               slots=args.jobs or default_slots(), name=chef_name(0),
                               trace=args.trace, insecure_bus=args.insecure_bus,
                               env=server.users.child_env(CHEF) if server else None,
                               pod=pod_id_for(root) if args.nats else "local"))
    try:
        return _build(root, cwd, args, server, chefs, lock, locked, waiting)
    finally:
        for chef in chefs:                         # stopped already if a pod took it over
            chef.stop()
        if server is not None and server.is_running():
            server.close()


def _build(root: Path, cwd: Path, args, server, chefs, lock, locked: bool, waiting) -> int:
    """Plan the build once, under the project lock, from one read of the
    state: answer the cold no-op, or hand the plan to an embedded pod's
    MajorDomo (:mod:`computepods.planning.request`)."""
    # Only what the cold no-op needs is imported before it is answered:
    # nats-py, miros and the charts are costly imports (python -X importtime).
    from computepods.paths import prepare_state_dir
    from computepods.planning import plancache
    from computepods.planning.plan import (check_tools, judge, load_state, remove_orphans,
                                           resolve, save_file_records, up_to_date,
                                           with_needed_steps)

    had_state_dir = (root / STATE_DIR).is_dir()
    project, plan = resolve(root, args.targets, cwd)   # errors before anything starts (exit 2)
    check_tools(project, plan)
    prepare_state_dir(root)
    if not had_state_dir:
        plancache.store_plan(root, project, plan)      # there is a place for it now
    if not locked:
        lock.acquire(on_wait=waiting)
    pod = None
    try:
        state = load_state(root)
        plan = with_needed_steps(root, project, plan, state[0])
        removed, kept = remove_orphans(root, project, plan, state[0])
        if removed:
            print(f"cpod: removed {len(removed)} outputs no rule makes any more: "
                  + ", ".join(removed[:10]) + (" …" if len(removed) > 10 else ""), file=sys.stderr)
            state = load_state(root)               # as it is without them
        for why in kept:
            print(f"cpod: keeping {why}; no rule makes it any more", file=sys.stderr)
        refreshed = up_to_date(root, plan, state)
        if refreshed is not None:                 # the cold no-op: no charts, no pod
            save_file_records(root, refreshed, remember=not kept)
            print(f"cpod: nothing to do: {counted(len(plan.steps), 'step')} up to date", file=sys.stderr)
            return 0
        from computepods.bus.client import request_build
        from computepods.pod.pod import Pod, PodOptions, default_slots
        from computepods.pod.localchef import chef_process
        from computepods.cli.progress import Progress
        pod = Pod(root, PodOptions(nats_url=args.nats, namespace=args.namespace,
                                   slots=args.jobs or default_slots(), trace=args.trace,
                                   chef_process=chef_process(), insecure_bus=args.insecure_bus,
                                   federate=bool(args.nats), sftp_listen=args.sftp,
                                   sftp_sshd=sshd_from_args(args)),
                  server=server, local_chefs=chefs)
        pod.start()
        records, files = state
        if pod.recovered:       # a crashed run's records, written as the pod started
            records = {**records, **{r.step_id: r for r in pod.recovered}}
        handed = pod.hand_plan(judge(root, project, plan, (records, files),
                                     keep_going=args.keep_going, dry_run=args.dry_run))
        progress = Progress(verbose=args.verbose, explain=args.explain,
                            flush_when_waiting=True)
        from computepods.cli.buildwatch import BuildWatch
        watch = BuildWatch(root, progress.handle)      # stops if the Store cannot write
        code = request_build(pod.bridge, args.targets, cwd, keep_going=args.keep_going,
                             dry_run=args.dry_run, on_event=args.watching(watch.on_event),
                             on_wait=progress.flush, plan=handed)
        note = watch.disk_note() if code else None
        if note:
            print(f"cpod: {note}", file=sys.stderr)
        return code
    except (Interrupted, RecordsNotWritten):
        if pod:
            pod.cancel()
        raise
    finally:
        if pod:
            pod.stop()


def cmd_nats_config(directory: Path, namespaces: list[str], args=None) -> int:
    """`cpod nats-config DIR`: a server's users for a bus the user runs, the
    routes' and leaves' logins, and its cluster and leaf blocks if asked."""
    from computepods.bus.auth import BusUsers, write_config_dir
    from computepods.bus.natsd import MAX_PAYLOAD_BYTES
    from computepods.cli.joined import config_join, write_join_files

    join = config_join(args)                   # a bad option writes nothing
    written = write_config_dir(directory, BusUsers.generate(*namespaces), MAX_PAYLOAD_BYTES)
    written += write_join_files(directory, join)
    print(f"cpod: wrote {', '.join(str(p) for p in written)} (mode 0600: they hold the "
          f"passwords)\ncpod: start the server with `nats-server -c {written[0]}`; give each "
          f"client its role's file, e.g. `env $(cat {directory}/chef.env) cpod chef --nats URL`",
          file=sys.stderr)
    return 0
