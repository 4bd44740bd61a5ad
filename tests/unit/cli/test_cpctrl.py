"""cpctrl's plain parts: the progress line, exit codes, one-line errors."""
from __future__ import annotations

import io
import re

import pytest

from computepods.cli.cpctrl import BuildView, build_exit_code, main
from computepods.errors import RequestRefused


def test_the_progress_line_on_a_terminal():
    out = io.StringIO()
    view = BuildView(out, tty=True)
    view.handle({"t": "plan", "steps": 3, "progress": [0, 3, 0]})
    view.last_draw = 0
    view.handle({"t": "start", "step": "cc:a.o", "progress": [0, 3, 1]})
    assert "[0/3]" in out.getvalue() and "running: cc:a.o" in out.getvalue()
    view.handle({"t": "fail", "step": "cc:a.o", "reason": "exit 1", "command": "cc a.c",
                 "stderr_tail": "a.c:1: error\n", "progress": [1, 3, 0]})
    view.handle({"t": "done", "ok": False, "code": 1, "ran": 0, "failed": 1})
    text = out.getvalue()
    assert "FAILED cc:a.o: exit 1" in text and "a.c:1: error" in text
    assert re.search(r"build FAILED: 0 ran, 0 up to date, 1 failed in \d+\.\d s$", text.rstrip())


def test_plain_lines_elsewhere():
    out = io.StringIO()
    view = BuildView(out, tty=False)
    for ev in ({"t": "start", "step": "a"}, {"t": "ran", "step": "b"}, {"t": "ok", "step": "a"},
               {"t": "done", "ok": True, "code": 0, "ran": 2}):
        view.handle(ev)
    assert out.getvalue().splitlines()[:2] == ["run  a", "run  b"]
    assert "\x1b" not in out.getvalue()


@pytest.mark.parametrize("ev, code", [({"ok": True, "code": 0}, 0), ({"ok": False, "code": 1}, 1),
                                      ({"ok": False, "code": 130}, 130), ({"ok": False}, 1),
                                      ({"ok": False, "code": 2, "error": "no rule"}, 2)])
def test_exit_codes_follow_the_build(ev, code):
    assert build_exit_code(ev) == code


@pytest.mark.parametrize("status, code", [(400, 2), (404, 2), (409, 2), (413, 2), (401, 3),
                                          (503, 3), (500, 1)])
def test_exit_codes_of_error_statuses(status, code):
    assert RequestRefused(status, "title").exit_code == code


def test_a_bad_url_is_one_line(capsys):
    assert main(["--url", "ftp://x", "status"]) == 2
    assert capsys.readouterr().err.count("\n") == 1
