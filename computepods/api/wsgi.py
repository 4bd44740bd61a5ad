"""The gunicorn entry point: ``computepods.api.wsgi:app``.

Configured from the environment that :func:`computepods.api.serve.start_http`
gives gunicorn: ``CP_NATS_URL`` (required), ``CP_NAMESPACE`` (default cp),
``CP_API_TOKEN`` (mutating routes need it when set), ``CP_HTTP_MAX_STREAMS``
(open event streams per worker, fewer than its threads), ``CP_HTTP_HOSTS`` (the
comma-separated names a Host header may give; default localhost and the
loopback addresses) and ``CP_ROOT`` (the
project, for the log; every answer comes from the pod over the bus).  Each
worker imports this after the fork, so each has its own bus connection.
"""
from __future__ import annotations

import os
from typing import Mapping

from computepods.errors import UsageError
from computepods.api.app import DEFAULT_MAX_STREAMS, create_app
from computepods.api.podbus import PodBus
from computepods.api.resources import LOCAL_HOSTS


def from_env(env: Mapping[str, str] = os.environ) -> tuple[PodBus, object]:
    url = env.get("CP_NATS_URL")
    if not url:
        raise UsageError("computepods.api.wsgi needs CP_NATS_URL: the NATS server of the pod")
    bus = PodBus(url, env.get("CP_NAMESPACE") or "cp")
    hosts = [h for h in (env.get("CP_HTTP_HOSTS") or "").split(",") if h.strip()]
    streams = env.get("CP_HTTP_MAX_STREAMS") or ""
    return bus, create_app(bus, token=env.get("CP_API_TOKEN") or None,
                           hosts=hosts or LOCAL_HOSTS,
                           max_streams=int(streams) if streams.isdigit() else DEFAULT_MAX_STREAMS)


bus, app = from_env()
