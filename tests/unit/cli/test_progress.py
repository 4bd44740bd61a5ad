"""What a person sees: the live line on a terminal, plain lines elsewhere."""
from __future__ import annotations

import io

from computepods.cli.progress import Progress


def events():
    return [
        {"t": "plan", "steps": 3, "targets": ["out/x"]},
        {"t": "start", "step": "cc:a.o", "command": "cc -c a.c", "progress": [0, 3, 1]},
        {"t": "ok", "step": "cc:a.o", "progress": [1, 3, 0]},
        {"t": "fail", "step": "cc:b.o", "command": "cc -c b.c", "exit_code": 1,
         "reason": "exit 1", "stdout_tail": "", "stderr_tail": "b.c:3: error: nope\n",
         "progress": [2, 3, 0]},
        {"t": "done", "ok": False, "code": 1, "ran": 1, "skipped": 0, "failed": 1,
         "blocked": 1, "not_run": 0, "duration_s": 0.5, "progress": [3, 3, 0]},
    ]


def test_terminal_gets_a_live_line_redrawn_in_place():
    out = io.StringIO()
    p = Progress(out, tty=True)
    p.handle(events()[0])
    p.handle(events()[1])
    p.draw(force=True)
    text = out.getvalue()
    assert "\r\x1b[K[0/3] running: cc:a.o" in text
    for ev in events()[2:]:
        p.handle(ev)
    text = out.getvalue()
    assert "FAILED cc:b.o: exit 1" in text and "b.c:3: error: nope" in text
    assert text.rstrip().endswith("build FAILED: 1 ran, 0 up to date, 1 failed, 1 not run in 0.50 s")


def test_pipe_gets_plain_lines_and_no_escape_codes():
    out = io.StringIO()
    p = Progress(out, tty=False)
    for ev in events():
        p.handle(ev)
    text = out.getvalue()
    assert "\x1b" not in text and "\r" not in text
    assert text.splitlines()[0] == "run  cc:a.o"
    assert "  command: cc -c b.c" in text


def test_verbose_echoes_the_command():
    out = io.StringIO()
    p = Progress(out, tty=False, verbose=True)
    p.handle(events()[1])
    assert out.getvalue() == "cc -c a.c\n"


def test_a_huge_failed_command_is_clipped():
    out = io.StringIO()
    p = Progress(out, tty=False)
    p.handle({"t": "fail", "step": "sum:all", "command": "cat " + "x " * 50_000,
              "reason": "cannot run /bin/sh: Argument list too long", "exit_code": None})
    text = out.getvalue()
    assert len(text) < 1000 and "more characters" in text


def test_a_step_that_ran_within_one_message_is_one_plain_line():
    out = io.StringIO()
    p = Progress(out, tty=False)
    p.handle({"t": "ran", "step": "cc:a.o", "command": "cc -c a.c", "reason": "never built",
              "duration_s": 0.1, "progress": [1, 3, 0]})
    assert out.getvalue() == "run  cc:a.o\n"


def test_plain_lines_wait_for_flush_when_asked_and_the_summary_does_not():
    out = io.StringIO()
    p = Progress(out, tty=False, flush_when_waiting=True)
    p.handle({"t": "plan", "steps": 2})
    p.handle({"t": "start", "step": "a", "command": "x"})
    p.handle({"t": "start", "step": "b", "command": "y"})
    assert out.getvalue() == ""
    p.flush()
    assert out.getvalue() == "run  a\nrun  b\n"
    p.handle({"t": "ok", "step": "a"})
    p.handle({"t": "done", "ok": True, "ran": 2, "skipped": 0})
    assert out.getvalue().splitlines()[-1].startswith("build ok: 2 ran")


def test_a_store_that_cannot_write_shows_as_a_warning_line():
    out = io.StringIO()
    p = Progress(out, tty=False)
    p.handle({"t": "store_retry", "retry_s": 2.0, "progress": [1, 3, 0],
              "problem": "cannot write the state database /p/.computepods/state.db: database "
                         "or disk is full; 1 records kept, trying again in 2 s"})
    p.handle(events()[-1])
    lines = out.getvalue().splitlines()
    assert lines[0] == ("warning: cannot write the state database /p/.computepods/state.db: "
                        "database or disk is full; 1 records kept, trying again in 2 s")
    assert lines[1].startswith("build FAILED")


def test_a_dry_run_says_what_would_run_not_what_ran():
    out = io.StringIO()
    p = Progress(out, tty=False)
    p.handle({"t": "would", "step": "cc:a.o", "command": "cc -c a.c", "reason": "never built"})
    p.handle({"t": "done", "ok": True, "code": 0, "ran": 36, "skipped": 2, "failed": 0,
              "blocked": 0, "not_run": 0, "dry_run": True, "duration_s": 0.1})
    lines = out.getvalue().splitlines()
    assert lines[0] == "would run cc:a.o (never built)"
    assert lines[-1] == "dry run: 36 would run, 2 up to date; nothing ran"
    assert not any(line.startswith("run ") or " ran," in line for line in lines)


def test_a_cyclic_group_that_gave_up_after_three_runs_says_so():
    out = io.StringIO()
    Progress(out, tty=False).handle({"t": "done", "ok": False, "code": 1, "ran": 0, "runs": 3,
                                     "skipped": 0, "failed": 1, "blocked": 0, "not_run": 0,
                                     "duration_s": 0.5})
    assert out.getvalue() == "build FAILED: 0 ran, 0 up to date, 1 failed; 3 tool runs in 0.50 s\n"


def test_tool_runs_are_told_only_when_a_step_ran_more_than_once():
    out = io.StringIO()
    p = Progress(out, tty=False)
    p.handle({"t": "done", "ok": True, "code": 0, "ran": 2, "runs": 4, "skipped": 0,
              "duration_s": 0.78})                   # pdflatex three times, bibtex once
    p.handle({"t": "done", "ok": False, "code": 1, "ran": 1, "runs": 2, "skipped": 0,
              "failed": 1, "duration_s": 0.2})       # one run each
    assert out.getvalue().splitlines() == ["build ok: 2 ran, 0 up to date; 4 tool runs in 0.78 s",
                                           "build FAILED: 1 ran, 0 up to date, 1 failed in 0.20 s"]


def test_a_cancelled_build_says_cancelled_and_counts_not_run_apart_from_failed():
    out = io.StringIO()
    p = Progress(out, tty=False)
    for ev in [{"t": "plan", "steps": 10000, "targets": ["all"]},
               {"t": "start", "step": "s1", "command": "sleep 9"},
               {"t": "cancel", "dropped": 8410},
               {"t": "cancelled", "step": "s1", "duration_s": 0.3},
               {"t": "done", "ok": False, "code": 130, "cancelled": True, "ran": 1590,
                "runs": 1591, "skipped": 0, "failed": 0, "cancelled_steps": 1,
                "blocked": 0, "not_run": 8409, "duration_s": 3.25}]:
        p.handle(ev)
    text = out.getvalue()
    assert "cancelled: no more steps start" in text and "FAILED" not in text
    assert text.rstrip().endswith(
        "build cancelled: 1590 ran, 0 up to date, 1 cancelled, 8409 not run in 3.25 s")
    assert p.running == {}
