"""Charts stepped on the test's own thread: golden traces (miros' spy lists).

A chart started with :func:`start_stepped` never gets miros' thread:
``HsmWithQueues.start_at`` enters its initial state, its fabric
subscriptions are made as :meth:`Chart.start` makes them, and :func:`settle`
runs the events queued, one run-to-completion step at a time, until none is
left.  So a trace depends only on what the test posted and in what order,
never on thread timing, and a scenario runs in milliseconds (miros' own
tests pin a chart's behaviour as its expected ``spy()`` list; sismic steps
its charts with ``execute_once()``).  Time is a SimClock's: its alarms fire
on the test's thread, inside ``clock.advance``, and post to the chart.
"""
from __future__ import annotations

from miros import Event, signals
from miros.hsm import HsmWithQueues

from computepods.charts.base import Chart
from helpers import wait_for

MAX_STEPS = 1_000          # events one settle() may handle: a loop fails, it does not hang
NO_TRACE = dict(live_spy=True, trace_sink=lambda line: None)   # spy() kept, nothing printed


def start_stepped(chart: Chart) -> list[str]:
    """Enter the chart's initial state without a thread; the spy lines of that."""
    assert chart.instrumented, "make the chart with **NO_TRACE (live_spy) to read its spy()"
    HsmWithQueues.start_at(chart, type(chart).initial_state)
    for sig in chart.subscriptions:
        chart.subscribe(Event(signal=getattr(signals, sig)))
    return taken(chart)


def settle(chart: Chart, max_steps: int = MAX_STEPS) -> list[str]:
    """Handle every queued event (and those they post), in order; the spy lines."""
    for _ in range(max_steps):
        if not chart.events_waiting():
            break
        chart.next_rtc()
    else:
        raise AssertionError(f"{chart.name}: still busy after {max_steps} events")
    assert not chart.crashes, f"{chart.name} crashed: {chart.crashes!r}"
    return taken(chart)


def taken(chart: Chart) -> list[str]:
    """The spy lines since the last call."""
    lines = chart.spy()
    chart.clear_spy()
    return lines


def state_of(chart: Chart) -> str:
    return chart.state.fun.__name__


def start_own(chart: Chart) -> list[str]:
    """Run the chart's own ``start()`` (its routes, alarms and first posts, which
    stay queued) with the stepped entry instead of miros' thread."""
    assert chart.instrumented, "make the chart with **NO_TRACE (live_spy) to read its spy()"
    chart.start_at = lambda state: HsmWithQueues.start_at(chart, state)
    try:
        chart.start()
    finally:
        del chart.start_at
    return taken(chart)


def settle_all(*charts: Chart, idle=lambda: True, max_steps: int = MAX_STEPS) -> None:
    """Step several charts, one event of each in turn, until none has any
    left and ``idle()`` (say, a chef's workers are done) holds; ``idle`` is
    waited on before each round, so what a worker thread posts lands at the
    same place in every run.  Read each chart's lines with :func:`taken`."""
    for _ in range(max_steps):
        wait_for(idle, what="the charts' worker threads to finish")
        busy = [c for c in charts if c.events_waiting()]
        if not busy:
            return
        for chart in busy:
            chart.next_rtc()
            assert not chart.crashes, f"{chart.name} crashed: {chart.crashes!r}"
    raise AssertionError(f"{', '.join(c.name for c in charts)}: still busy after "
                         f"{max_steps} rounds")


def workers_done(chef) -> bool:
    """An ``idle`` for :func:`settle_all`: nothing a Chef's workers hold is
    still running (each step it took has finished, or is held, sent ahead,
    until a step it follows lands) and the STEP_DONE they owe it, if any,
    is queued."""
    return chef is None or (len(chef.done) + len(chef.ahead) == len(chef.in_flight)
                            and (not chef.done_posted or chef.events_waiting() > 0))
