"""A count in a message reads as English: "1 step", "2 steps"."""
from computepods.words import counted


def test_one_is_singular_and_every_other_count_plural():
    assert [counted(n, "step") for n in (0, 1, 2)] == ["0 steps", "1 step", "2 steps"]
    assert counted(2, "directory", "directories") == "2 directories"
