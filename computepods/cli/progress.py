"""What a person sees while a build runs.

On a terminal: one live line (``[12/40] running: compile:build/a.o, …``)
redrawn in place, with finished failures printed above it.  Elsewhere (CI
logs, pipes): plain lines, one per event worth reading.  Either way a failed
step shows its command, its exit code and the tails of its stdout and stderr
(pdflatex reports its errors on stdout).
"""
from __future__ import annotations

import shutil
import sys
import time
from typing import TextIO

from computepods.words import counted

MAX_RUNNING_SHOWN = 3
MAX_COMMAND_SHOWN = 400      # characters of a failed step's command shown
REDRAW_S = 0.1          # seconds between live-line redraws


class Progress:
    def __init__(self, out: TextIO = sys.stderr, *, verbose: bool = False,
                 explain: bool = False, tty: bool | None = None,
                 flush_when_waiting: bool = False, columns: int | None = None):
        self.out = out
        self.columns = columns          # the terminal's width (None: this process's)
        self.verbose = verbose
        self.explain = explain
        self.tty = out.isatty() if tty is None else tty
        self.running: dict[str, str] = {}
        self.done = 0
        self.total = 0
        self.last_draw = 0.0
        self.line_shown = False
        self.cycle = ""
        # Plain lines (not a terminal's) go out one by one, unless the caller
        # promises to call flush() before it waits for more events: then one
        # write for a batch (a thousand steps need not be a thousand writes).
        self.flush_when_waiting = flush_when_waiting
        self.pending: list[str] = []

    # -- events ------------------------------------------------------------------
    def handle(self, ev: dict) -> None:
        t = ev.get("t")
        if "progress" in ev:
            self.done, self.total, _ = ev["progress"]
        if t == "plan":
            self.total = ev.get("steps", 0)
        elif t in ("start", "ran"):
            if t == "start":
                self.running[ev["step"]] = ev.get("command", "")
            if self.explain:
                self.say(f"run  {ev['step']}: {ev.get('reason', '')}")
            if self.verbose:
                self.say(f"{ev['command']}")
            elif not self.tty and not self.explain:
                self.say(f"run  {ev['step']}")
        elif t in ("ok", "cancelled"):
            self.running.pop(ev["step"], None)
        elif t == "cancel":
            self.say("cancelled: no more steps start; those running are stopped")
        elif t == "would":
            self.say(f"would run {ev['step']} ({ev['reason']})")
            if self.verbose:
                self.say(f"  {ev['command']}")
        elif t == "fail":
            self.running.pop(ev["step"], None)
            self.say(failure_text(ev))
        elif t == "pass":
            self.cycle = f"pass {ev['pass']}/{ev['max']} of {ev['cycle']}"
            if ev["pass"] > 1 or not self.tty:
                self.say(self.cycle)
        elif t == "fixpoint":
            self.cycle = ""
            self.say(f"fixpoint of {ev['cycle']} after pass {ev['pass']}")
        elif t == "chef_lost":
            then = "rescheduling" if ev.get("rescheduled") else "failing"
            self.say(f"{ev['reason']}: {then} {counted(len(ev.get('steps', [])), 'step')}")
        elif t == "store_retry":
            self.say(f"warning: {ev['problem']}")
        elif t == "note":
            self.say(ev.get("text", ""))
        elif t == "cycle_failed":
            self.cycle = ""
            self.say(f"FAILED {ev['reason']}")
        elif t == "done":
            self.clear_line()
            self.say(summary_text(ev))
            self.flush()
            return
        self.draw()

    # -- output ------------------------------------------------------------------
    def say(self, text: str) -> None:
        self.clear_line()
        if self.flush_when_waiting and not self.tty:   # a terminal's live line stays in order
            self.pending.append(text + "\n")
        else:
            print(text, file=self.out, flush=True)

    def flush(self) -> None:
        """Write what :meth:`say` kept back, at once."""
        if self.pending:
            text, self.pending = "".join(self.pending), []
            self.out.write(text)
        self.out.flush()

    def clear_line(self) -> None:
        if self.tty and self.line_shown:
            self.out.write("\r\x1b[K")
            self.line_shown = False

    def draw(self, force: bool = False) -> None:
        if not self.tty:
            return
        now = time.monotonic()
        if not force and now - self.last_draw < REDRAW_S:
            return
        self.last_draw = now
        names = list(self.running)[:MAX_RUNNING_SHOWN]
        more = len(self.running) - len(names)
        text = f"[{self.done}/{self.total}]"
        if self.cycle:
            text += f" {self.cycle}"
        if names:
            text += " running: " + ", ".join(names) + (f" (+{more})" if more > 0 else "")
        width = (self.columns or shutil.get_terminal_size((100, 20)).columns) - 1
        self.out.write("\r\x1b[K" + text[:width])
        self.out.flush()
        self.line_shown = True


def failure_text(ev: dict) -> str:
    lines = [f"FAILED {ev['step']}: {ev.get('reason', '')}"]
    if ev.get("command"):
        lines.append(f"  command: {clip(ev['command'])}")
    for name in ("stdout", "stderr"):
        tail = (ev.get(f"{name}_tail") or "").rstrip("\n")
        if tail:
            lines.append(f"  --- {name} (last lines) ---")
            lines.extend("  " + line for line in tail.splitlines())
    return "\n".join(lines)


def clip(text: str, limit: int = MAX_COMMAND_SHOWN) -> str:
    """A command of 10,000 paths is not read by anyone: show its start."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]} … ({len(text) - limit:,} more characters; `cpod explain -v` shows it)"


def summary_text(ev: dict) -> str:
    if ev.get("error"):
        return f"cpod: {ev['error']}"
    if ev.get("dry_run") and not ev.get("fresh"):
        return (f"dry run: {ev.get('ran', 0)} would run, {ev.get('skipped', 0)} up to date"
                + "".join(f", {p}" for p in outcome_parts(ev)[2:]) + "; nothing ran")
    if ev.get("fresh"):
        return f"nothing to do: {counted(ev.get('skipped', 0), 'step')} up to date (nothing changed since)"
    verdict = "build ok" if ev.get("ok") else "build cancelled" if ev.get("cancelled") \
        else "build FAILED"
    return f"{verdict}: {counts_text(ev)} in {ev.get('duration_s', 0):.2f} s"


def counts_text(ev: dict) -> str:
    """``2 ran, 1 up to date, 1 failed, 3 not run`` from a done event, and the
    tool runs when a step ran more than once (a cyclic group's passes): a
    group that ran three times and gave up is not just "0 ran, 1 failed"."""
    text = ", ".join(outcome_parts(ev))
    runs = ev.get("runs", 0)
    if runs > ev.get("ran", 0) + ev.get("failed", 0) + ev.get("cancelled_steps", 0):
        text += f"; {runs} tool runs"
    return text


def outcome_parts(ev: dict) -> list[str]:
    """What became of the steps: ran, up to date, then failed, cancelled (a
    cancel stopped them as they ran) and not run, if any."""
    parts = [f"{ev.get('ran', 0)} ran", f"{ev.get('skipped', 0)} up to date"]
    if ev.get("failed"):
        parts.append(f"{ev['failed']} failed")
    if ev.get("cancelled_steps"):
        parts.append(f"{ev['cancelled_steps']} cancelled")
    if ev.get("blocked") or ev.get("not_run"):
        parts.append(f"{ev.get('blocked', 0) + ev.get('not_run', 0)} not run")
    return parts
