"""What a watching pod may answer without looking, and when it must build."""
from __future__ import annotations

from computepods.watch.freshness import Freshness, request_key

KEY = request_key("/p", ["out/a"])


SOURCES = ["src/a.c"] + [f"src/{n}.c" for n in range(50)]


def built(f: Freshness, outputs: dict, key=KEY, ok=True, steps=3) -> None:
    gen = f.build_started(outputs, SOURCES)
    f.recorded_outputs(outputs)
    f.build_finished(key, gen, ok, steps)


def test_a_success_is_fresh_until_a_change_is_heard():
    f = Freshness()
    assert f.fresh_steps(KEY) is None
    built(f, {"out/a": (3, 10)})
    assert f.fresh_steps(KEY) == 3
    assert f.heard("src/a.c", (5, 11))
    assert f.fresh_steps(KEY) is None


def test_a_failed_build_is_never_fresh():
    f = Freshness()
    built(f, {}, ok=False)
    assert f.fresh_steps(KEY) is None


def test_the_echo_of_our_own_commit_is_not_a_change():
    f = Freshness()
    built(f, {"out/a": (3, 10)})
    f.want_follow_up()
    assert not f.heard("out/a", (3, 10))
    assert f.fresh_steps(KEY) == 3
    assert not f.want_follow_up()
    # but the user overwriting the output is
    assert f.heard("out/a", (4, 12))
    assert f.fresh_steps(KEY) is None


def test_an_echo_that_beats_its_result_is_held_then_explained():
    f = Freshness()
    gen = f.build_started(["out/a", "out/b"])
    assert not f.heard("out/a", (3, 10))          # before the chef's result arrived
    assert not f.heard("out/b", (7, 99))          # someone else wrote it meanwhile
    f.recorded_outputs({"out/a": (3, 10), "out/b": (7, 20)})
    f.build_finished(KEY, gen, True, 2)
    assert f.fresh_steps(KEY) is None            # out/b's write was not ours
    assert f.last_changes == ["out/b"]


def test_held_reports_no_result_explains_are_changes_at_the_end():
    f = Freshness()
    gen = f.build_started(["out/a"])
    f.heard("out/a", None)                       # deleted while its step never ran
    f.build_finished(KEY, gen, True, 1)
    assert f.fresh_steps(KEY) is None
    assert f.want_follow_up()


def test_changes_during_a_build_want_exactly_one_follow_up():
    f = Freshness()
    gen = f.build_started([], SOURCES)
    for n in range(50):
        f.heard(f"src/{n}.c", (n, n))
    f.build_finished(KEY, gen, True, 1)
    assert f.fresh_steps(KEY) is None            # they came after it started
    assert f.want_follow_up()
    assert not f.want_follow_up()


def test_files_no_build_used_change_nothing_but_the_project_file_does():
    f = Freshness()
    built(f, {"out/a": (3, 10)})
    f.want_follow_up()
    assert not f.heard("notes.txt", (1, 1))
    assert not f.heard(".#swapfile", None)
    assert f.fresh_steps(KEY) == 3 and not f.want_follow_up()
    assert f.heard("computepods.toml", (9, 9))
    assert f.fresh_steps(KEY) is None


def test_an_input_discovered_by_a_run_counts_from_then_on():
    f = Freshness()
    gen = f.build_started(["build/a.o"], ["src/a.c"])
    f.recorded_outputs({"build/a.o": (1, 1)}, discovered=["include/a.h"])
    f.build_finished(KEY, gen, True, 1)
    assert f.heard("include/a.h", (2, 2))


def test_a_new_file_a_glob_of_the_build_would_find_is_a_change():
    f = Freshness()
    gen = f.build_started({"out/list": (1, 1)}, ["src/a.c"], globs=["src/*.c"])
    f.recorded_outputs({"out/list": (1, 1)})
    f.build_finished(KEY, gen, True, 1)
    assert not f.heard("src/notes.txt", (1, 2))      # no glob finds it
    assert not f.heard("src/sub/b.c", (1, 2))
    assert f.fresh_steps(KEY) == 1
    assert f.heard("src/b.c", (1, 2))
    assert f.fresh_steps(KEY) is None
