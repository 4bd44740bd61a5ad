"""The pod's own chef as a child process: ``cpod chef`` on the pod's bus.

``cpod build`` runs its chef this way.  In a process of its own, the
slots' Python work (starting steps, hashing and committing outputs) does
not queue for the GIL behind the MajorDomo's and the bus's, which kept the
processors partly idle in a build of many small steps (``bench/run.py``
with ``CP_CHEF_PROCESS=0`` shows it); and launched as
soon as the bus's address is known, before cpod imports and plans, its own
start-up runs on the other processor meanwhile.

The child dies with cpod (``setpriv --pdeathsig``), runs its steps in
process groups of their own like any chef, and is stopped with SIGTERM.
If it dies on its own, :class:`LocalChef` says so at once (the pod then
launches another and sends the dead one's goodbye, so the MajorDomo gives
its steps to the new one instead of waiting out the dead one's lease).
Only the standard library is imported here: cpod launches it before the
heavy imports.
"""
from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Callable, Mapping

from computepods.bus.auth import insecure_env
from computepods.bus.natsd import _pdeathsig_prefix

log = logging.getLogger("computepods.pod.pod")

STOP_S = 10.0              # seconds a chef gets to stop its steps before SIGKILL


def chef_process() -> bool:
    """The pod's chef runs in a child process (its own GIL), for `cpod build`
    and `cpod up` alike, unless CP_CHEF_PROCESS=0 keeps it in the pod's (one
    process to debug)."""
    return os.environ.get("CP_CHEF_PROCESS", "1") != "0"


def default_slots() -> int:
    """Steps run at once when -j is not given: the processors this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def chef_name(index: int = 0) -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{index}"


class LocalChef:
    """One ``cpod chef`` child serving ``root`` on the bus at ``url``.

    ``env``: its environment (default: ours), which holds its login to the
    bus (``BusUsers.child_env``): a password on its command line would show
    in ``ps``.  ``insecure_bus``: the bus asks for no login, and the pod
    has said so (the child joins it without a second warning)."""

    def __init__(self, root: Path, url: str, *, namespace: str, slots: int, name: str,
                 trace: bool = False, env: Mapping[str, str] | None = None,
                 insecure_bus: bool = False, pod: str = "local"):
        self.url, self.name, self.pod = url, name, pod
        argv = [*_pdeathsig_prefix(), sys.executable, "-m", "computepods.cli", "-C", str(root),
                "chef", "--nats", url, "--namespace", namespace, "-j", str(slots),
                "--name", name]
        if pod != "local":
            argv += ["--pod", pod]           # federated: its steps are this pod's own
        if trace:
            argv.append("--trace")
        if insecure_bus:
            env = insecure_env(os.environ if env is None else env)
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                     env=dict(env) if env is not None else None)
        self.stopping = False

    def watch(self, on_death: Callable[["LocalChef", str], "LocalChef | None"]) -> None:
        """Call ``on_death(chef, why)`` from a thread if the child exits
        before :meth:`stop` (a crash, a kill, a broken install).  It may
        launch a replacement, on that thread, and return it: the thread then
        watches that one.  (A child dies with the thread that launched it,
        by pdeathsig: this thread lives until its last chef has exited.)"""
        def wait() -> None:
            chef: LocalChef | None = self
            while chef is not None:
                code = chef.proc.wait()
                if chef.stopping:
                    return
                why = f"its process {chef.proc.pid} exited with code {code}"
                log.error("the pod's chef %s is gone: %s", chef.name, why)
                chef = on_death(chef, why)
        threading.Thread(target=wait, name=f"watch:{self.name}", daemon=True).start()

    def terminate(self) -> None:
        """Ask it to stop (once): it kills its running steps and leaves."""
        if not self.stopping and self.proc.poll() is None:
            self.proc.terminate()
        self.stopping = True

    def stop(self, timeout: float = STOP_S) -> None:
        """Terminate and wait; SIGKILL if it does not stop in ``timeout``."""
        self.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("the pod's chef %s did not stop in %.0f s: killing it",
                        self.name, timeout)
            self.proc.kill()
            self.proc.wait()
