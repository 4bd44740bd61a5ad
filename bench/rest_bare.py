"""The peer of bench/rest_rps.py: a bare Falcon app under the same gunicorn.

``GET /v1/builds/{id}`` answers a fixed build summary from memory (no bus,
no pod), and ``/healthz`` answers as the real app does, so
:func:`computepods.api.serve.start_http` can start and wait for it exactly
as it does for the real one (``app="rest_bare:app"``, bench/ on PYTHONPATH).
"""
from __future__ import annotations

import os

import falcon

SUMMARY = {"id": "00000000", "targets": ["out/all.txt"], "state": "done", "ok": True,
           "code": 0, "steps_total": 3, "steps_done": 3, "running": [], "failed": [],
           "started": "2026-01-01T00:00:00.000+00:00",
           "finished": "2026-01-01T00:00:01.000+00:00", "error": None}


class Build:
    def on_get(self, req, resp, id):
        resp.media = {**SUMMARY, "id": id}


class Health:
    def on_get(self, req, resp):
        resp.media = {"ok": True, "pod": "bare", "nats": os.environ.get("CP_NATS_URL")}


app = falcon.App()
app.add_route("/v1/builds/{id}", Build())
app.add_route("/healthz", Health())
