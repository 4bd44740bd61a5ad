"""The ``cpod`` command's front door: a build handed to a pod, at once.

In the edit-build loop almost every ``cpod build`` goes to the pod that is
up for the project, and the client's own start is then most of the time
the build takes.  So this module is a thin client that imports nothing but
what the interpreter has already loaded (``os``, ``sys``) and three modules
written in C (``_socket``, ``_signal``, ``_json``), plus the package's code
stamp: no ``json`` (which imports ``re``), no ``pathlib``, no ``socket``
(which imports ``enum``).  It reads the few arguments such a build takes,
``[-C DIR] build [-j N] [-k] [-n] [-v] [--explain] [TARGET...]``, finds the
pod in ``.computepods/pod.addr``, and asks it to build *and* to render: the
pod answers with the very text to print (:mod:`computepods.pod.rendered`).

Anything else (other arguments, no pod, a pod out of date, one that does
not answer) goes to :func:`computepods.cli.cpod.main`, which does what it
always did: start or restart a pod, build alone, or say what is wrong.
"""
from __future__ import annotations

import os
import sys

FLAGS = {"-k": "keep_going", "--keep-going": "keep_going", "-n": "dry_run",
         "--dry-run": "dry_run", "-v": "verbose", "--verbose": "verbose",
         "--explain": "explain"}
PROJECT_FILE = "computepods.toml"        # computepods.paths, which imports pathlib
POD_ADDRESS = ".computepods/pod.addr"
ADDRESS_HEADER = "cpod-pod 1"
CONNECT_TIMEOUT_S = 5.0
EXIT_CANNOT_START = 2                    # computepods.errors, which imports more
EXIT_INTERRUPTED = 130


def parse(argv: list[str]) -> dict | None:
    """The arguments of a plain build, or None for anything else."""
    directory, rest = None, argv
    if rest[:1] == ["-C"] and len(rest) >= 2:
        directory, rest = rest[1], rest[2:]
    if rest[:1] != ["build"]:
        return None
    args = {"directory": directory, "targets": [], "jobs": None,
            **{name: False for name in FLAGS.values()}}
    words = iter(rest[1:])
    for arg in words:
        if arg in FLAGS:
            args[FLAGS[arg]] = True
        elif arg in ("-j", "--jobs") or arg.startswith(("-j", "--jobs=")):
            value = arg.split("=", 1)[1] if "=" in arg else arg[2:] if arg[1] == "j" else ""
            args["jobs"] = _count(value or next(words, ""))
            if args["jobs"] is None:
                return None              # the full parser says what is wrong
        elif arg.startswith("-") and arg != "-":
            return None                  # --nats, --no-pod, -h, --: the full parser
        else:
            args["targets"].append(arg)
    return args


def _count(text: str) -> int | None:
    return int(text) if text.isdigit() and int(text) >= 1 else None


# -- finding the pod ---------------------------------------------------------------------
def project_root(start: str) -> str | None:
    here = os.path.realpath(start)
    while True:
        if os.path.isfile(os.path.join(here, PROJECT_FILE)):
            return here
        up = os.path.dirname(here)
        if up == here:
            return None
        here = up


def pod_address(root: str) -> dict | None:
    """What pod.addr says of a live pod, else None."""
    try:
        with open(os.path.join(root, POD_ADDRESS), encoding="utf-8") as f:
            header, pid, path, code, slots, background = f.read().split("\n")[:6]
        if header != ADDRESS_HEADER:
            return None
        pod = {"pid": int(pid), "socket": path, "code": code, "slots": int(slots),
               "background": background == "1"}
    except (OSError, ValueError):
        return None
    return pod if _alive(pod["pid"]) else None


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def current(pod: dict, jobs: int | None) -> bool:
    """Whether this pod takes the build as asked: a background pod runs this
    client's code and its -j; a ``cpod up`` pod ignores another -j, which the
    full path says."""
    if jobs is not None and jobs != pod["slots"]:
        return False
    if pod["background"]:
        from computepods.codestamp import code_hash
        return pod["code"] == code_hash()
    return True


# -- the build ---------------------------------------------------------------------------
def _text(value: str) -> str:
    import _json
    return _json.encode_basestring_ascii(value)


def request_body(args: dict, cwd: str) -> bytes:
    tty = os.isatty(2)
    try:
        columns = os.get_terminal_size(2).columns if tty else 0
    except OSError:
        columns = 0
    flag = {True: "true", False: "false"}
    render = (f'{{"tty":{flag[tty]},"columns":{columns or "null"},'
              f'"verbose":{flag[args["verbose"]]},"explain":{flag[args["explain"]]}}}')
    return (f'{{"targets":[{",".join(_text(t) for t in args["targets"])}],'
            f'"cwd":{_text(cwd)},"keep_going":{flag[args["keep_going"]]},'
            f'"dry_run":{flag[args["dry_run"]]},"render":{render}}}').encode()


class _Lost(Exception):
    """The pod did not answer, or stopped answering."""


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def handed_off(args: dict) -> int | None:
    """Build in the pod up for this project and print what it renders; the
    exit code, or None when there is no such pod (the full path then runs)."""
    try:
        cwd = os.path.realpath(args["directory"] or os.getcwd())
    except OSError:
        return None
    root = project_root(cwd) if os.path.isdir(cwd) else None
    pod = pod_address(root) if root is not None else None
    if pod is None or not current(pod, args["jobs"]):
        return None
    import _signal
    import _socket
    _signal.signal(_signal.SIGTERM, _interrupt)
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    on_interrupt = b""
    try:
        try:
            sock.settimeout(CONNECT_TIMEOUT_S)
            sock.connect(pod["socket"])
            sock.settimeout(None)
            body = request_body(args, cwd)
            sock.sendall(b"POST /build HTTP/1.0\r\nHost: cpod\r\nContent-Type: "
                         b"application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            frames = _Frames(sock)
            if not frames.ok():
                return None              # not built: the full path asks again and says why
        except OSError:
            return None
        while True:
            kind, payload = frames.next()
            if kind == b"2":
                _write(payload)
            elif kind == b"i":
                on_interrupt = payload
            elif kind == b"x":
                return int(payload)
            elif kind is None:
                os.write(2, f"cpod: the pod (pid {pod['pid']}) stopped before the build "
                            "finished; `cpod down` (or killing that pid) lets cpod build "
                            "alone\n".encode())
                return EXIT_CANNOT_START
    except (KeyboardInterrupt, _Lost, OSError) as exc:
        if isinstance(exc, KeyboardInterrupt):
            os.write(2, b"\r\x1b[K" * os.isatty(2) + (on_interrupt or
                     f"cpod: the pod (pid {pod['pid']}) cancels the build\n".encode()))
            return EXIT_INTERRUPTED
        os.write(2, f"cpod: lost the pod (pid {pod['pid']}) during the build: {exc}\n".encode())
        return EXIT_CANNOT_START
    finally:
        sock.close()                     # a build still running is cancelled by the pod


def _write(data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(2, view):]


class _Frames:
    """The pod's answer: an HTTP/1.0 head, then frames (pod/rendered.py)."""

    def __init__(self, sock):
        self._sock, self._buf = sock, b""

    def _more(self) -> bool:
        data = self._sock.recv(65536)
        self._buf += data
        return bool(data)

    def ok(self) -> bool:
        while b"\r\n\r\n" not in self._buf:
            if not self._more():
                return False
        head, self._buf = self._buf.split(b"\r\n\r\n", 1)
        return head.split(b" ", 2)[1:2] == [b"200"] and b"x-cpod-frames" in head

    def next(self) -> tuple[bytes | None, bytes]:
        while b":" not in self._buf[:24]:
            if len(self._buf) >= 24:
                raise _Lost("a malformed answer")
            if not self._more():
                return None, b""
        size, rest = self._buf[1:].split(b":", 1)
        kind, n = self._buf[:1], int(size)
        while len(rest) < n:
            data = self._sock.recv(65536)
            if not data:
                return None, b""
            rest += data
        self._buf = rest[n:]
        return kind, rest[:n]


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
