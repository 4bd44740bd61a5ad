"""Gunicorn hooks (``--config python:computepods.api.gunicorn_conf``).

A gthread worker told to stop waits for its open connections, and an SSE
stream stays open until its build is done: so on SIGTERM the worker first
ends its streams (each sends nothing more and returns), then stops as
gunicorn would.  Without this, ``cpod down`` would wait out the graceful
timeout whenever a browser follows a build.
"""
from __future__ import annotations

import signal
import threading


def post_worker_init(worker) -> None:
    from computepods.api import wsgi
    previous = signal.getsignal(signal.SIGTERM)

    def on_term(signum, frame):
        # A signal handler should be short: ending the streams takes locks.
        threading.Thread(target=wsgi.bus.hub.close, name="end-streams", daemon=True).start()
        if callable(previous):
            previous(signum, frame)
    signal.signal(signal.SIGTERM, on_term)


def worker_exit(server, worker) -> None:
    from computepods.api import wsgi
    wsgi.bus.close()
