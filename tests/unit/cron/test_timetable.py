"""Schedules on fixed times: what fires, what is missed (once), what comes next."""
from __future__ import annotations

import json
import logging
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from computepods.project.model import Schedule
from computepods.cron.timetable import (MISSED_COUNT_CAP, Timetable, cron_problem, iso,
                                   load_checked, save_checked, schedule_key)

UTC = ZoneInfo("UTC")
BERLIN = ZoneInfo("Europe/Berlin")
HOURLY = Schedule("0 * * * *", ("all",))
NIGHTLY = Schedule("0 2 * * *", ("docs/manual.pdf",))


def at(*fields: int, tz=UTC) -> float:
    return datetime(*fields, tzinfo=tz).timestamp()


def checked(when: float, *schedules: Schedule) -> dict[str, float]:
    return {schedule_key(s): when for s in schedules or (HOURLY,)}


def test_a_run_fires_at_its_time_and_the_next_one_is_named():
    table = Timetable([HOURLY, NIGHTLY], UTC)
    before = table.review(checked(at(2026, 1, 1, 0, 30), HOURLY, NIGHTLY), at(2026, 1, 1, 0, 59))
    assert before.due == [] and before.missed == []
    assert before.next_at == at(2026, 1, 1, 1, 0)
    now = at(2026, 1, 1, 1, 0, 0)
    review = table.review(before.checked, now)
    assert [(d.schedule, d.at) for d in review.due] == [(HOURLY, now)]
    assert review.missed == []
    assert review.next_at == at(2026, 1, 1, 2, 0)        # hourly and nightly both; once
    again = table.review(review.checked, now + 1)
    assert again.due == [] and again.missed == []


def test_runs_that_fell_while_the_pod_was_down_are_missed_not_fired():
    table = Timetable([HOURLY], UTC)
    review = table.review(checked(at(2026, 1, 1, 0, 30)), at(2026, 1, 1, 5, 0, 10),
                          starting=True)
    assert review.due == []
    [missed] = review.missed
    assert (missed.schedule, missed.count, missed.more) == (HOURLY, 5, False)
    assert (missed.first, missed.last) == (at(2026, 1, 1, 1), at(2026, 1, 1, 5))
    # a second start right after reports nothing
    assert table.review(review.checked, at(2026, 1, 1, 5, 0, 11), starting=True).missed == []


def test_a_first_start_or_a_new_schedule_reports_nothing():
    table = Timetable([HOURLY, NIGHTLY], UTC)
    review = table.review(checked(at(2025, 1, 1), NIGHTLY), at(2026, 1, 1, 5, 30), starting=True)
    assert [m.schedule for m in review.missed] == [NIGHTLY]      # HOURLY is new
    assert set(review.checked) == {schedule_key(HOURLY), schedule_key(NIGHTLY)}


def test_a_run_noticed_too_late_is_missed_and_only_the_latest_of_several_fires():
    table = Timetable([HOURLY], UTC)
    slept = table.review(checked(at(2026, 1, 1, 0, 30)), at(2026, 1, 1, 3, 5))
    assert slept.due == []                                 # 03:00 is 5 minutes gone
    assert [(m.count, m.first, m.last) for m in slept.missed] == [
        (3, at(2026, 1, 1, 1), at(2026, 1, 1, 3))]
    woke = table.review(checked(at(2026, 1, 1, 0, 30)), at(2026, 1, 1, 3, 0, 20))
    assert [d.at for d in woke.due] == [at(2026, 1, 1, 3)]
    assert [(m.count, m.first, m.last) for m in woke.missed] == [
        (2, at(2026, 1, 1, 1), at(2026, 1, 1, 2))]


def test_a_clock_set_back_fires_nothing_twice():
    table = Timetable([HOURLY], UTC)
    fired = table.review(checked(at(2026, 1, 1, 0, 30)), at(2026, 1, 1, 1, 0, 1))
    assert len(fired.due) == 1
    back = table.review(fired.checked, at(2026, 1, 1, 0, 45))       # an hour's jump back
    assert back.due == [] and back.missed == []
    assert back.checked == fired.checked                             # the mark stays
    assert back.next_at == at(2026, 1, 1, 2)                         # not 01:00 again
    assert table.review(back.checked, at(2026, 1, 1, 1, 0, 1)).due == []


def test_missed_runs_are_counted_up_to_a_cap():
    every_second = Schedule("* * * * * *", ("a",))
    table = Timetable([every_second], UTC)
    review = table.review(checked(at(2026, 1, 1), every_second), at(2026, 1, 2), starting=True)
    [missed] = review.missed
    assert (missed.count, missed.more) == (MISSED_COUNT_CAP, True)
    assert missed.first == at(2026, 1, 1, 0, 0, 1) and missed.last == at(2026, 1, 2)


def test_cron_is_local_time_with_daylight_saving():
    table = Timetable([Schedule("30 2 * * *", ("a",))], BERLIN)
    winter = table.review({}, at(2026, 1, 10, 12, tz=BERLIN))
    assert iso(winter.next_at, BERLIN) == "2026-01-11T02:30:00+01:00"
    assert winter.next_at == at(2026, 1, 11, 1, 30)                  # in UTC
    # 2026-03-29 02:30 does not exist in Berlin: croniter fires right after the gap
    spring = table.review({}, at(2026, 3, 28, 12, tz=BERLIN))
    assert iso(spring.next_at, BERLIN) == "2026-03-29T03:00:00+02:00"


def test_a_schedule_dropped_from_the_project_is_forgotten_and_duplicates_count_once():
    table = Timetable([HOURLY, HOURLY], UTC)
    old = {**checked(at(2026, 1, 1, 0, 30)), "5 * * * * -> gone": at(2026, 1, 1)}
    review = table.review(old, at(2026, 1, 1, 3, 0, 5), starting=True)
    assert list(review.checked) == [schedule_key(HOURLY)]
    assert len(review.missed) == 1


def test_no_schedules_no_alarm():
    assert Timetable([], UTC).review({}, at(2026, 1, 1)).next_at is None


@pytest.mark.parametrize("cron, words", [
    ("0 2 * * *", None), ("@hourly", None), ("0 2 * * sun", None),
    ("0 25 * * *", "out of range"), ("H * * * *", "hash"), ("0 0 31 4 *", "never fires"),
])
def test_cron_problem_gives_croniters_reason(cron, words):
    problem = cron_problem(cron)
    assert (problem is None) if words is None else (words in problem.lower())


# --- cron.json ----------------------------------------------------------------

def test_checked_times_round_trip_atomically(tmp_path):
    path = tmp_path / ".computepods" / "cron.json"
    save_checked(path, {"0 * * * * -> all": 1767225600.5})
    assert load_checked(path) == {"0 * * * * -> all": 1767225600.5}
    assert json.loads(path.read_text())["v"] == 1
    assert [p.name for p in path.parent.iterdir()] == ["cron.json"]   # no temp left


def test_a_missing_file_is_a_first_start_without_a_warning(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, "computepods.cron"):
        assert load_checked(tmp_path / "cron.json") == {}
    assert caplog.records == []


@pytest.mark.parametrize("text", ["{not json", '["a"]', '{"v": 1, "checked": {"k": "x"}}',
                                  '{"v": 1}'])
def test_a_corrupt_file_is_a_warning_not_a_crash(tmp_path, caplog, text):
    path = tmp_path / "cron.json"
    path.write_text(text)
    with caplog.at_level(logging.WARNING, "computepods.cron"):
        assert load_checked(path) == {}
    [record] = caplog.records
    assert str(path) in record.getMessage()
    assert "cannot be reported" in record.getMessage()
