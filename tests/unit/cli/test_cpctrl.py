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


def build(**kw) -> dict:
    b = {"id": "3fa2c1d0", "targets": ["out/all.txt"], "started_by": "rest", "state": "done",
         "ok": True, "code": 0, "steps_total": 4, "steps_done": 4, "running": [], "failed": [],
         "counts": {"ran": 3, "up_to_date": 1, "failed": 0, "not_run": 0, "cancelled": 0},
         "started": "2026-12-03T13:03:12.000+00:00", "finished": "2026-12-03T13:03:13.250+00:00",
         "duration_s": 1.25, "error": None}
    return {**b, **kw}


@pytest.fixture
def paris(monkeypatch):
    import time
    monkeypatch.setenv("TZ", "Europe/Paris")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_status_is_a_table_with_headers_and_local_times(paris):
    from computepods.cli.cpctrl import status_table
    rows = status_table([
        build(),
        build(id="77aa0011", started_by="cron", targets=[], state="cancelled", duration_s=95.0,
              counts={"ran": 1590, "up_to_date": 0, "failed": 0, "not_run": 8409,
                      "cancelled": 1})])
    assert rows[0].split("  ")[0] == "id" and "started by" in rows[0]
    assert "ran/up to date/failed" in rows[0] and rows[0].endswith("duration")
    assert "2026-12-03 14:03:12" in rows[1]          # 13:03 UTC is 14:03 in Paris
    assert rows[1].split() == ["3fa2c1d0", "2026-12-03", "14:03:12", "rest", "out/all.txt",
                               "done", "3/1/0", "1.2", "s"]
    assert "(default)" in rows[2] and "1590/0/0" in rows[2] and "1 min 35 s" in rows[2]
    col = rows[0].index("state")
    assert rows[1][col:].startswith("done") and rows[2][col:].startswith("cancelled")


def test_one_build_shows_its_counts_and_local_times(paris):
    from computepods.cli.cpctrl import build_text
    text = "\n".join(build_text(build(state="failed", failed=["cc:b.o"])))
    assert "build 3fa2c1d0: failed, started by rest" in text
    assert "started   2026-12-03 14:03:12" in text and "14:03:13" in text
    assert "3 ran, 1 up to date, 0 failed, 0 not run, 0 cancelled" in text
    assert "failed    cc:b.o" in text
