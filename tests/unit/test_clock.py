"""The simulated clock fires alarms in deadline order; the system one fires for real."""
from __future__ import annotations

import threading

from computepods.clock import SimClock, SystemClock, Ticker


def test_sim_alarm_fires_only_when_time_reaches_it():
    clock = SimClock(start=10.0)
    fired = []
    alarm = clock.alarm(lambda: fired.append(clock.monotonic()))
    alarm.set(10.5)
    clock.advance(0.4)
    assert fired == []
    clock.advance(0.2)
    assert fired == [10.5]
    assert clock.monotonic() == 10.6


def test_sim_alarms_fire_in_deadline_order_and_may_rearm():
    clock = SimClock(start=0.0)
    order = []
    a = clock.alarm(lambda: order.append("a"))
    b = clock.alarm(lambda: (order.append("b"), b.set(clock.monotonic() + 1.0)))
    a.set(2.0)
    b.set(0.5)
    clock.advance(3.0)
    assert order == ["b", "b", "a", "b"]
    assert clock.next_deadline() == 3.5


def test_setting_again_moves_the_deadline_and_cancel_forgets_it():
    clock = SimClock(start=0.0)
    fired = []
    alarm = clock.alarm(lambda: fired.append(clock.monotonic()))
    alarm.set(1.0)
    alarm.set(5.0)
    clock.advance(2.0)
    assert fired == []
    alarm.cancel()
    clock.advance(10.0)
    assert fired == []


def test_system_alarm_fires_on_its_thread():
    clock = SystemClock()
    done = threading.Event()
    alarm = clock.alarm(done.set)
    try:
        alarm.set(clock.monotonic() + 0.01)
        assert done.wait(5.0)
    finally:
        alarm.close()


def test_a_ticker_fires_each_period_from_its_start_until_stopped():
    clock = SimClock(start=0.0)
    fired = []
    ticker = Ticker(clock, 1.0, lambda: fired.append(clock.monotonic()))
    clock.advance(5.0)
    assert fired == []                                  # not started yet
    ticker.start()
    clock.advance(3.5)
    assert fired == [6.0, 7.0, 8.0]
    ticker.stop()
    clock.advance(10.0)
    assert fired == [6.0, 7.0, 8.0] and clock.next_deadline() is None
    ticker.start()                                       # a period after the new start
    clock.advance(1.0)
    assert fired[-1] == 19.5
    ticker.close()


def test_a_system_ticker_fires_on_its_thread_until_closed():
    clock = SystemClock()
    twice = threading.Semaphore(0)
    ticker = Ticker(clock, 0.01, twice.release)
    try:
        ticker.start()
        assert twice.acquire(timeout=5.0) and twice.acquire(timeout=5.0)
    finally:
        ticker.close()
