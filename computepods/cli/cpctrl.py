"""`cpctrl`: the command-line client of a pod's REST API (docs/architecture.md §7).

Standard library only, so it starts at once; the requests themselves are
:mod:`computepods.cli.restclient`'s.  Exit codes as ``cpod``'s
(docs/architecture.md §2: 0 ok, 1 a step failed, 2 could not start — bad input, an
unknown target or id —, 130 interrupted) plus 3: the server is unreachable,
does not answer for its pod, or refused the token.  Every failure is one
line on stderr, never a traceback.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import sys
import time
from typing import Sequence
from urllib.parse import quote, urlencode

from computepods.cli.graphtext import STATE_WORDS, groups_lines, step_lines, steps_lines
from computepods.cli.podtable import federation_text
from computepods.cli.restclient import Api
from computepods.errors import (EXIT_CANNOT_START, EXIT_FAILED, EXIT_INTERRUPTED, ComputePodsError,
                                RequestRefused, ServerUnreachable)

DEFAULT_URL = "http://127.0.0.1:8765"
MAX_RUNNING_SHOWN = 3
GRAPH_LIMIT = 50            # steps, inputs or readers `cpctrl graph` lists unless asked
REDRAW_S = 0.1              # seconds between redraws of the progress line


# -- showing a build ----------------------------------------------------------------

class BuildView:
    """A progress line (steps done/total, what runs, elapsed) redrawn in place
    on a terminal; failures and log lines printed above it."""

    def __init__(self, out=sys.stderr, tty: bool | None = None):
        self.out = out
        self.tty = out.isatty() if tty is None else tty
        self.started = time.monotonic()
        self.done = self.total = 0
        self.running: dict[str, None] = {}
        self.last_draw = 0.0
        self.shown = False

    def handle(self, ev: dict) -> None:
        from computepods.cli.progress import failure_text
        t = ev.get("t")
        if isinstance(ev.get("progress"), list) and len(ev["progress"]) == 3:
            self.done, self.total = ev["progress"][0], ev["progress"][1]
        if t == "plan":
            self.total = ev.get("steps", self.total)
        elif t == "start":
            self.running[ev.get("step")] = None
            if not self.tty:
                self.say(f"run  {ev.get('step')}")
        elif t == "ran" and not self.tty:
            self.say(f"run  {ev.get('step')}")
        elif t in ("ok", "ran", "cancelled"):
            self.running.pop(ev.get("step"), None)
        elif t == "fail":
            self.running.pop(ev.get("step"), None)
            self.say(failure_text(ev))
        elif t == "log":
            self.say(f"{ev.get('step', '')}: {ev.get('line', '')}".rstrip())
        elif t in ("cycle_failed", "chef_lost"):
            self.say(ev.get("reason", t))
        elif t == "cancel":
            self.say("cancelled: no more steps start")
        elif t == "done":
            self.clear()
            self.say(self.summary(ev))
            return
        self.draw()

    def summary(self, ev: dict) -> str:
        took = f"{time.monotonic() - self.started:.1f} s"
        if ev.get("error"):
            return f"cpctrl: {ev['error']}"
        from computepods.cli.progress import counts_text
        verdict = "build ok" if ev.get("ok") else "build cancelled" if ev.get("cancelled") \
            else "build FAILED"
        return f"{verdict}: {counts_text(ev)} in {took}"

    def line(self) -> str:
        names = list(self.running)[:MAX_RUNNING_SHOWN]
        more = len(self.running) - len(names)
        text = f"[{self.done}/{self.total}] {time.monotonic() - self.started:5.1f}s"
        if names:
            text += " running: " + ", ".join(names) + (f" (+{more})" if more > 0 else "")
        return text

    def say(self, text: str) -> None:
        self.clear()
        print(text, file=self.out, flush=True)

    def clear(self) -> None:
        if self.tty and self.shown:
            self.out.write("\r\x1b[K")
            self.shown = False

    def draw(self) -> None:
        now = time.monotonic()
        if not self.tty or now - self.last_draw < REDRAW_S:
            return
        self.last_draw = now
        width = shutil.get_terminal_size((100, 20)).columns - 1
        self.out.write("\r\x1b[K" + self.line()[:width])
        self.out.flush()
        self.shown = True


def build_exit_code(ev: dict) -> int:
    code = ev.get("code")
    if isinstance(code, int):
        return code
    return 0 if ev.get("ok") else EXIT_FAILED


# -- commands ------------------------------------------------------------------------

def cmd_build(api: Api, args) -> int:
    reply = api.call("POST", "/v1/builds", {"targets": args.targets,
                                            "keep_going": args.keep_going})
    if not args.follow:
        print(json.dumps(reply) if args.json else reply["id"])
        return 0
    if not args.json:
        joined = " (joined the running build)" if reply.get("joined") else ""
        print(f"build {reply['id']}{joined}", file=sys.stderr)
    view = BuildView()
    last: dict = {}
    for ev in api.events(reply["id"]):
        last = ev
        if args.json:
            print(json.dumps(ev), flush=True)
        else:
            view.handle(ev)
    if last.get("t") != "done":
        raise ServerUnreachable(f"{api.url}: build {reply['id']} ended without a done event")
    return build_exit_code(last)


# -- the status of builds -------------------------------------------------------------

STATUS_COLUMNS = ("id", "started", "started by", "targets", "state",
                  "ran/up to date/failed", "duration")
MAX_TARGETS_SHOWN = 40      # characters of a build's targets in the table
MAX_CRITICAL_SHOWN = 8      # steps of a critical path named


def local_time(iso: str | None) -> str:
    """A time the server gives in ISO 8601, as this machine's local time."""
    if not iso:
        return "-"
    try:
        when = datetime.datetime.fromisoformat(iso)
    except ValueError:
        return iso
    return when.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def duration_text(b: dict) -> str:
    seconds = b.get("duration_s")
    if seconds is None and b.get("state") == "running" and b.get("started"):
        started = datetime.datetime.fromisoformat(b["started"])
        elapsed = (datetime.datetime.now(datetime.timezone.utc) - started).total_seconds()
        return f"{_seconds(elapsed)} so far"
    return "-" if seconds is None else _seconds(seconds)


def _seconds(s: float) -> str:
    return f"{s:.1f} s" if s < 60 else f"{int(s // 60)} min {s % 60:02.0f} s"


def _targets(b: dict) -> str:
    text = " ".join(b.get("targets") or []) or "(default)"
    return text if len(text) <= MAX_TARGETS_SHOWN else text[:MAX_TARGETS_SHOWN - 1] + "…"


def status_table(builds: list[dict]) -> list[str]:
    """One row a build under a header, columns as wide as their widest cell."""
    rows = [STATUS_COLUMNS] + [
        (b["id"], local_time(b.get("started")), b.get("started_by", "?"), _targets(b),
         b["state"], "{ran}/{up_to_date}/{failed}".format(**b["counts"]), duration_text(b))
        for b in builds]
    widths = [max(len(row[i]) for row in rows) for i in range(len(STATUS_COLUMNS))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]


def build_text(b: dict) -> list[str]:
    """One build, field by field, its times local."""
    c = b["counts"]
    lines = [f"build {b['id']}: {b['state']}, started by {b.get('started_by', '?')}",
             f"  targets   {' '.join(b['targets']) or '(default)'}",
             f"  started   {local_time(b.get('started'))}",
             f"  finished  {local_time(b.get('finished'))}  ({duration_text(b)})",
             f"  steps     {b['steps_done']}/{b['steps_total']}: {c['ran']} ran, "
             f"{c['up_to_date']} up to date, {c['failed']} failed, {c['not_run']} not run, "
             f"{c['cancelled']} cancelled"]
    lines += [f"  {key:9} {', '.join(b[key])}" for key in ("running", "failed") if b[key]]
    if b.get("error"):
        lines.append(f"  error     {b['error']}")
    return lines


def critical_text(api: Api, b: dict) -> list[str]:
    """A finished build's critical path, when its timeline is kept."""
    try:
        tl = api.call("GET", f"/v1/builds/{quote(b['id'], safe='')}/timeline")
    except RequestRefused:              # running, or its timeline no longer kept
        return []
    path = tl["critical_path"]
    if not path["steps"]:
        return []
    return [f"  critical  {len(path['steps'])} runs, {_seconds(path['duration_s'])} of "
            f"{_seconds(tl['duration_s'])}: {' -> '.join(path['steps'][:MAX_CRITICAL_SHOWN])}"
            + (" -> …" if len(path["steps"]) > MAX_CRITICAL_SHOWN else "")]


def cmd_status(api: Api, args) -> int:
    if args.build:
        b = api.call("GET", f"/v1/builds/{quote(args.build, safe='')}")
        print(json.dumps(b) if args.json else "\n".join(build_text(b) + critical_text(api, b)))
        return 0
    query = {"limit": args.limit, **({"before": args.before} if args.before else {})}
    reply = api.call("GET", "/v1/builds?" + urlencode(query))
    if args.json:
        print(json.dumps(reply))
        return 0
    if not reply["builds"]:
        print("no builds in this project's history" + (" before that one" if args.before else ""))
        return 0
    print("\n".join(status_table(reply["builds"])))
    if reply.get("next"):
        print(f"(older builds: cpctrl status --before {reply['next']})")
    return 0


def cmd_cancel(api: Api, args) -> int:
    reply = api.call("DELETE", f"/v1/builds/{quote(args.build, safe='')}")
    print(json.dumps(reply) if args.json else f"build {reply['id']}: {reply['state']}")
    return 0


def cmd_artefacts(api: Api, args) -> int:
    query = "?" + urlencode({"prefix": args.prefix}) if args.prefix else ""
    reply = api.call("GET", "/v1/artefacts" + query)
    if args.json:
        print(json.dumps(reply))
        return 0
    for a in reply["artefacts"]:
        print(f"{a['path']}  {a['size']}  {a['sha256'][:12]}  {a['step'] or 'source'}")
    return 0


def graph_query(args, **more) -> str:
    params = [("target", t) for t in args.targets]
    params += [(k, str(v).lower() if isinstance(v, bool) else v)
               for k, v in more.items() if v not in (None, False, "")]
    return "?" + urlencode(params) if params else ""


def cmd_graph(api: Api, args) -> int:
    """The groups with their counts, as the page's first screen; a page of
    steps (--group, --state, --ran, --search); one step and its neighbours
    (--step); or Graphviz (--dot)."""
    if args.dot:
        sys.stdout.write(api.call("GET", "/v1/graph" + graph_query(args, format="dot")))
        return 0
    if args.step:
        reply = api.call("GET", f"/v1/steps/{quote(args.step, safe='')}"
                         + graph_query(args, limit=args.limit))
        lines = step_lines(reply)
    elif args.group or args.state or args.ran or args.search:
        reply = api.call("GET", "/v1/steps" + graph_query(
            args, group=args.group, state=args.state, ran=args.ran, q=args.search,
            offset=args.offset, limit=args.limit))
        lines = steps_lines(reply)
    else:
        reply = api.call("GET", "/v1/graph" + graph_query(args))
        lines = groups_lines(reply)
    if args.json:
        print(json.dumps(reply))
    else:
        print("\n".join(lines))
    return 0


def cmd_log(api: Api, args) -> int:
    reply = api.call("GET", f"/v1/steps/{quote(args.step, safe='')}/log")
    if args.json:
        print(json.dumps(reply))
        return 0
    print(f"{reply['step']}: {reply['status']}, exit code {reply['exit_code']}"
          + (f" ({reply['reason']})" if reply.get("reason") else ""))
    print(f"command: {reply['command']}")
    for key in ("stdout", "stderr"):
        if reply[key]:
            print(f"--- {key} ---")
            print(reply[key].rstrip("\n"))
    return 0


def cmd_explain(api: Api, args) -> int:
    reply = api.call("GET", f"/v1/explain/{quote(args.target, safe='')}")
    print(json.dumps(reply) if args.json else "\n".join(reply["lines"]))
    return 0


def cmd_pods(api: Api, args) -> int:
    reply = api.call("GET", "/v1/pods")
    if args.json:
        print(json.dumps(reply))
        return 0
    for pod in reply["pods"]:
        if pod.get("ours"):
            print(f"{pod['pod']}  pid {pod['pid']}  {pod['root']}  nats {pod['nats']}  "
                  f"http {pod['http']}")
    for line in federation_text(reply):
        print(line)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cpctrl", description="Talk to a computepods pod's REST API.")
    p.add_argument("--url", default=os.environ.get("CP_URL") or DEFAULT_URL,
                   help=f"the pod's API (env CP_URL; default {DEFAULT_URL})")
    p.add_argument("--token", default=os.environ.get("CP_API_TOKEN"),
                   help="bearer token for builds and cancels (env CP_API_TOKEN)")
    p.add_argument("--json", action="store_true", help="print the server's JSON")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    b = sub.add_parser("build", help="start (or join) a build")
    b.add_argument("targets", nargs="*", metavar="TARGET")
    b.add_argument("-f", "--follow", action="store_true", help="show it to the end; exit with its code")
    b.add_argument("-k", "--keep-going", action="store_true")
    s = sub.add_parser("status", help="recent builds as a table (local times), or one build")
    s.add_argument("build", nargs="?", metavar="BUILD")
    s.add_argument("-n", "--limit", type=int, default=20, metavar="N",
                   help="builds shown, newest first (default 20, at most 1000)")
    s.add_argument("--before", metavar="BUILD", help="the builds older than this one")
    c = sub.add_parser("cancel", help="cancel a build")
    c.add_argument("build", metavar="BUILD")
    a = sub.add_parser("artefacts", help="files the pod has records of")
    a.add_argument("prefix", nargs="?", default="", metavar="PREFIX")
    g = sub.add_parser("graph", help="the graph's groups with their counts by state; "
                                      "a group's steps; one step's inputs and readers")
    g.add_argument("targets", nargs="*", metavar="TARGET")
    g.add_argument("--group", metavar="GROUP", help="list this group's steps")
    g.add_argument("--state", choices=list(STATE_WORDS), help="list the steps in this state")
    g.add_argument("--ran", action="store_true", help="list the steps the latest build ran")
    g.add_argument("--search", metavar="TEXT", help="find steps by id or path")
    g.add_argument("--step", metavar="STEP", help="one step: its inputs, outputs, readers")
    g.add_argument("--offset", type=int, default=0, help="skip this many steps")
    g.add_argument("--limit", type=int, default=GRAPH_LIMIT,
                   help=f"list at most this many (default {GRAPH_LIMIT})")
    g.add_argument("--dot", action="store_true", help="the whole graph as Graphviz text")
    lg = sub.add_parser("log", help="what a step printed the last time it ran")
    lg.add_argument("step", metavar="STEP")
    e = sub.add_parser("explain", help="why a target's steps are up to date or would run")
    e.add_argument("target", metavar="TARGET")
    pods = sub.add_parser("pods", help="the pods of the federation: chefs, slots, load, "
                                       "tools, bytes moved")
    pods.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                      help="print the server's JSON")
    return p


COMMANDS = {"build": cmd_build, "status": cmd_status, "cancel": cmd_cancel,
            "artefacts": cmd_artefacts, "graph": cmd_graph, "log": cmd_log,
            "explain": cmd_explain, "pods": cmd_pods}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_CANNOT_START
    try:
        return COMMANDS[args.command](Api(args.url, args.token), args)
    except ComputePodsError as exc:
        print(f"cpctrl: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("cpctrl: interrupted (the build goes on; `cpctrl cancel BUILD` stops it)",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
