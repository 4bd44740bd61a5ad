"""The routes of where a finished build's time went (docs/architecture.md §7).

``/v1/builds/{id}/profile``: Chrome trace-event JSON, which Perfetto opens;
``/v1/builds/{id}/timeline``: the same runs for the page, with the build's
critical path.  Both come from the timeline the history keeps
(:mod:`computepods.coordinator.timeline`); a build still running is a 409.
"""
from __future__ import annotations

from computepods.api.resources import Resource, name
from computepods.coordinator.timeline import trace_events


class BuildProfile(Resource):
    """A finished build's timeline as Chrome trace-event JSON (Perfetto opens it)."""

    def on_get(self, req, resp, id):
        reply = self.bus.query("profile", id=name(id, "build id"))
        resp.media = trace_events(reply["build"], reply["profile"])


class BuildTimeline(Resource):
    """A finished build's runs on its chefs' slots, and its critical path."""

    def on_get(self, req, resp, id):
        resp.media = self.bus.query("timeline", id=name(id, "build id"))
