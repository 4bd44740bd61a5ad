"""The front door's own argument reading: a plain build, or the full parser."""
import pytest

from computepods.cli.quick import parse


@pytest.mark.parametrize("argv, jobs, targets", [
    (["build"], None, []),
    (["build", "-j", "2", "out/a"], 2, ["out/a"]),
    (["build", "-j3"], 3, []),
    (["build", "--jobs", "4"], 4, []),
    (["build", "--jobs=5", "-k"], 5, []),
])
def test_a_plain_build_is_read_here(argv, jobs, targets):
    args = parse(argv)
    assert args is not None and args["jobs"] == jobs and args["targets"] == targets


@pytest.mark.parametrize("argv", [
    ["build", "-j"], ["build", "-j", "0"], ["build", "-jx"], ["build", "--jobs=-1"],
    ["build", "--no-pod"], ["build", "--nats", "nats://x"], ["status"], [],
])
def test_anything_else_goes_to_the_full_parser(argv):
    assert parse(argv) is None
