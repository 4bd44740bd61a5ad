"""The ``cpod`` command's front door: a build handed to a pod, at once.

In the edit-build loop almost every ``cpod build`` goes to the pod that is
up for the project.  Building the whole command line parser (every
subcommand, and the modules they name) cost such a build a third of its
time, so this module reads the few arguments such a build takes by itself:
``[-C DIR] build [-j N] [-k] [-n] [-v] [--explain] [TARGET...]``.  When the
arguments are anything else, or no pod is up, or the pod runs other code,
:func:`computepods.cli.cpod.main` takes over with the full parser and does
what it always did (start a pod, build alone, print the usage error).
"""
from __future__ import annotations

import os
import signal
import sys
from types import SimpleNamespace

FLAGS = {"-k": "keep_going", "--keep-going": "keep_going", "-n": "dry_run",
         "--dry-run": "dry_run", "-v": "verbose", "--verbose": "verbose",
         "--explain": "explain"}


def parse(argv: list[str]) -> SimpleNamespace | None:
    """The arguments of a plain build, or None for anything else."""
    directory, rest = None, argv
    if rest[:1] == ["-C"] and len(rest) >= 2:
        directory, rest = rest[1], rest[2:]
    if rest[:1] != ["build"]:
        return None
    args = SimpleNamespace(directory=directory, targets=[], jobs=None, trace=False, nats=None,
                           **{name: False for name in FLAGS.values()})
    words = iter(rest[1:])
    for arg in words:
        if arg in FLAGS:
            setattr(args, FLAGS[arg], True)
        elif arg in ("-j", "--jobs") or arg.startswith(("-j", "--jobs=")):
            value = arg.split("=", 1)[1] if "=" in arg else arg[2:] if arg[1] == "j" else ""
            args.jobs = _count(value or next(words, ""))
            if args.jobs is None:
                return None              # the full parser says what is wrong
        elif arg.startswith("-") and arg != "-":
            return None                  # --nats, --no-pod, -h, --: the full parser
        else:
            args.targets.append(arg)
    return args


def _count(text: str) -> int | None:
    return int(text) if text.isdigit() and int(text) >= 1 else None


def _interrupt(signum, frame):
    from computepods.errors import Interrupted
    raise Interrupted(signal.Signals(signum).name)


def handed_off(args: SimpleNamespace) -> int | None:
    """Hand the build to the pod that is up and current; None when there is none."""
    from pathlib import Path
    from computepods.errors import EXIT_INTERRUPTED, ComputePodsError, Interrupted
    from computepods.paths import find_project_root
    from computepods.pod import handoff

    try:
        cwd = Path(args.directory).resolve() if args.directory else Path.cwd()
        root = find_project_root(cwd) if cwd.is_dir() else None
    except (ComputePodsError, OSError):
        return None                      # the full path says what is wrong
    info = handoff.running_pod(root) if root is not None else None
    if info is None:
        return None
    if info.get("background"):
        from computepods.pod.background import out_of_date
        if out_of_date(info, args.jobs):
            return None                  # restarted by the full path
    from computepods.cli.updown import hand_off_build
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _interrupt)
    try:
        return hand_off_build(info, cwd, args)
    except ComputePodsError as exc:
        print(f"cpod: {exc}", file=sys.stderr)
        return exc.exit_code
    except Interrupted as exc:
        print(f"cpod: interrupted ({exc})", file=sys.stderr)
        return EXIT_INTERRUPTED


def run() -> None:
    """The ``cpod`` console script."""
    args = parse(sys.argv[1:])
    code = handed_off(args) if args is not None else None
    if code is None:
        from computepods.cli.cpod import main
        code = main()
    exit_now(code)


def exit_now(code: int) -> None:
    """Leave quickly.  By the time the command returns, everything it
    started (pods, servers, chefs, databases) is stopped and closed, and only
    daemon threads are left.  The interpreter's own teardown (every module
    and object freed one by one) would then add to each build's time
    (``bench/rebuild.py``), which ``os._exit`` skips once the logs and
    standard streams are flushed.  SystemExit (--help, a usage error) and a
    crash take the ordinary way out."""
    if "threading" in sys.modules:
        import threading
        if any(t.is_alive() and not t.daemon for t in threading.enumerate()
               if t is not threading.main_thread()):
            sys.exit(code)              # someone still working: wait for them
    if "logging" in sys.modules:
        import logging
        logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):     # a closed pipe (cpod build | head)
            pass
    os._exit(int(code))
