"""What the pod renders for the thin client, read back as the client reads it."""
import socket

from computepods.cli.quick import _Frames
from computepods.pod.rendered import RenderedBuild


def frames_of(events, render, code):
    ours, theirs = socket.socketpair()
    shown = RenderedBuild(render, 4242, ours.sendall)
    ours.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: application/x-cpod-frames\r\n\r\n")
    for ev in events:
        shown.event(ev)
    shown.exit(code)
    ours.close()
    frames = _Frames(theirs)
    assert frames.ok()
    got = []
    while (frame := frames.next())[0] is not None:
        got.append(frame)
    theirs.close()
    return got


BUILD = [{"t": "accepted", "build": "b1"}, {"t": "plan", "steps": 2},
         {"t": "ran", "step": "copy:out/a", "command": "cp a out/a", "reason": "new",
          "progress": [1, 2, 0]},
         {"t": "fail", "step": "copy:out/b", "command": "cp b out/b", "exit_code": 1,
          "reason": "exit 1", "stdout_tail": "", "stderr_tail": "cp: no b\n"},
         {"t": "done", "ok": False, "code": 1, "ran": 1, "skipped": 0, "failed": 1,
          "blocked": 0, "not_run": 0, "duration_s": 0.1}]


def test_a_plain_log_comes_as_the_full_client_prints_it_then_the_exit_code():
    got = frames_of(BUILD, {"tty": False}, 1)
    text = b"".join(p for k, p in got if k == b"2").decode()
    assert "run  copy:out/a\n" in text and "cp: no b" in text and "build FAILED" in text
    assert got[0] == (b"i", b"cpod: the pod (pid 4242) cancels the build\n")
    assert got[-1] == (b"x", b"1")


def test_a_joined_build_says_it_goes_on_when_the_client_is_interrupted():
    got = frames_of([{"t": "accepted", "build": "b9", "joined": True}], {"tty": True}, 0)
    assert got[0][0] == b"i" and b"build b9 was asked for by another client" in got[0][1]


def test_verbose_shows_the_commands():
    got = frames_of(BUILD[:3], {"tty": False, "verbose": True}, 0)
    assert b"cp a out/a" in b"".join(p for k, p in got if k == b"2")
