"""Debian's headless Chromium for tests, driven by Playwright over CDP.

The test starts ``/usr/bin/chromium`` itself, as it starts nats-server and
gunicorn: on a free DevTools port (``--remote-debugging-port=0``; Chromium
writes the port it took to ``DevToolsActivePort`` in its profile), with a
fresh profile and every background download turned off (the network is
closed).  Playwright connects to it over the DevTools protocol, so it needs
no browser of its own (no ``playwright install``).  Stopping is SIGTERM; a
browser that had to be killed fails the test.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

from helpers import wait_for

CHROMIUM = "/usr/bin/chromium"
START_TIMEOUT_S = 20.0           # a cold Chromium on a busy 2-core machine
STOP_TIMEOUT_S = 10.0            # SIGTERM → exit
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--no-default-browser-check", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-extensions",
    "--disable-dev-shm-usage", "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0", "--window-size=1400,900",
]


def chromium_binary() -> str:
    path = shutil.which("chromium") or (CHROMIUM if os.access(CHROMIUM, os.X_OK) else None)
    if path is None:
        raise AssertionError("no chromium on PATH: `make test-system-deps` installs the "
                             "Debian package `chromium`")
    return path


class Chromium:
    """One headless Chromium process and a Playwright connection to it."""

    def __init__(self, profile: Path):
        self.profile = profile
        self.proc: subprocess.Popen | None = None
        self.was_killed = False
        self._pw = None
        self.browser = None

    def start(self) -> "Chromium":
        from playwright.sync_api import sync_playwright
        self.profile.mkdir(parents=True, exist_ok=True)
        self.log_path = self.profile.parent / f"{self.profile.name}.log"
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [chromium_binary(), *FLAGS, f"--user-data-dir={self.profile}", "about:blank"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
        try:
            port_file = self.profile / "DevToolsActivePort"
            wait_for(lambda: self._alive() and port_file.is_file()
                     and len(port_file.read_text().splitlines()) >= 2,
                     timeout=START_TIMEOUT_S, what="Chromium's DevTools port")
            port, path = port_file.read_text().splitlines()[:2]
            self._pw = sync_playwright().start()
            self.browser = self._pw.chromium.connect_over_cdp(f"ws://127.0.0.1:{port}{path}")
        except BaseException as exc:
            self.stop()
            raise AssertionError(f"chromium did not start: {exc}\n{self.log_tail()}") from exc
        return self

    def _alive(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"chromium exited with {self.proc.returncode}:\n{self.log_tail()}")
        return True

    def new_page(self, **context_options):
        """A page in a fresh browser context (its own storage)."""
        return self.browser.new_context(**context_options).new_page()

    def stop(self) -> None:
        if self._pw is not None:
            try:
                if self.browser is not None:
                    self.browser.close()   # over CDP: closes our contexts, disconnects
            finally:
                self._pw.stop()
                self._pw = self.browser = None
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.was_killed = True
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        if not self.was_killed:
            # its helpers (zygote, renderers) leave with it; give them the
            # same grace, and count a straggler as a kill too
            try:
                wait_for(lambda: not _group_alive(self.proc.pid), timeout=STOP_TIMEOUT_S,
                         interval=0.02, what="Chromium's helper processes to exit")
            except AssertionError:
                self.was_killed = True
                os.killpg(self.proc.pid, signal.SIGKILL)

    def log_tail(self, size: int = 3000) -> str:
        try:
            return self.log_path.read_bytes()[-size:].decode(errors="replace")
        except (OSError, AttributeError):
            return ""


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # zombies still count for killpg; ignore groups made only of zombies
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            return True
    return False
