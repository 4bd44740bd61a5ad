"""[project] pod_idle: durations as a person writes them."""
from __future__ import annotations

import pytest

from computepods.errors import ProjectError
from computepods.project.durations import as_duration, parse_duration
from computepods.project.load import load_project


@pytest.mark.parametrize("text, seconds", [("90s", 90), ("30m", 1800), ("2h", 7200),
                                           ("1.5h", 5400), (" 1s ", 1)])
def test_durations_in_seconds_minutes_hours(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("value", ["30", "m", "5 days", "-3m", "", 30, None, "0s"])
def test_a_bad_duration_names_the_file_and_the_key(value):
    with pytest.raises(ProjectError) as err:
        as_duration(value, "/p/computepods.toml", "project.pod_idle")
    assert "/p/computepods.toml" in str(err.value) and "project.pod_idle" in str(err.value)


def test_pod_idle_is_read_from_the_project_and_defaults_to_30_minutes(tmp_path):
    (tmp_path / "computepods.toml").write_text('[project]\nname = "t"\n')
    assert load_project(tmp_path).pod_idle_s == 1800
    (tmp_path / "computepods.toml").write_text('[project]\nname = "t"\npod_idle = "90s"\n')
    assert load_project(tmp_path).pod_idle_s == 90
    (tmp_path / "computepods.toml").write_text('[project]\nname = "t"\npod_idle = "soon"\n')
    with pytest.raises(ProjectError, match="project.pod_idle"):
        load_project(tmp_path)
