"""The discovery cache file: atomic writes, an flock of a side file, expiry."""
from __future__ import annotations

import json
import logging
import os
import random
import stat

import pytest

from computepods.clock import SimClock
from computepods.errors import CacheFileBusy
from computepods.federation import cachefile as cf
from computepods.federation.backoff import RETRY_FIRST_S, RETRY_MAX_S
from computepods.federation.cachefile import (Blocked, CacheFile, CacheLock, discovery_path,
                                              known_pods, remember_pods)
from computepods.federation.hello import PodHello


def hello(pod: str, **more) -> dict:
    return {"pod": pod, "host": "127.0.0.1", "role": "chef", "chefs": [f"{pod}-chef"],
            "slots": 2, "sftp": {"pod": pod, "host": "127.0.0.1", "port": 2222,
                                 "host_key": "ssh-ed25519 AAAA"},
            "client_key": "ssh-ed25519 BBBB", **more}


def test_the_cache_lives_under_xdg_cache_home_or_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert discovery_path("cp") == tmp_path / "computepods" / "pods-cp.json"
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", "rel")      # relative: ignored, as XDG says
    assert discovery_path("two") == tmp_path / "home" / ".cache" / "computepods" / "pods-two.json"
    with pytest.raises(ValueError, match="namespace '../x'"):
        discovery_path("../x")


def test_what_is_written_is_read_back_until_it_expires(tmp_path):
    cache = CacheFile(tmp_path / "c" / "pods.json")
    assert cache.read(now=100.0) is None                        # no file yet
    cache.write({"a": 1, "b": {"x": [1, 2]}}, now=100.0, expiry_s=60)
    assert cache.read(now=159.0) == {"a": 1, "b": {"x": [1, 2]}}
    assert cache.read(now=160.0) == {}
    assert stat.S_IMODE(cache.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(cache.path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(cache.lock_path.stat().st_mode) == 0o600


def test_an_update_keeps_the_others_expiry_and_drops_what_expired(tmp_path):
    cache = CacheFile(tmp_path / "pods.json")
    cache.write({"old": 1, "kept": 2}, now=100.0, expiry_s=10)
    cache.update(lambda cur: {"new": cur["kept"] + 1}, now=105.0, expiry_s=10)
    assert cache.read(now=109.0) == {"old": 1, "kept": 2, "new": 3}
    assert cache.read(now=111.0) == {"new": 3}
    cache.update(lambda cur: {"gone": 0}, now=112.0)            # "old" expired: not written back
    doc = json.loads(cache.path.read_text())
    assert sorted(doc["entries"]) == ["gone", "new"]
    assert cache.update(lambda cur: {"new": None}, now=113.0) == {"gone": 0}


def test_a_clock_set_back_does_not_keep_entries_for_ever(tmp_path):
    cache = CacheFile(tmp_path / "pods.json")
    cache.write({"a": 1}, now=1e9, expiry_s=60)
    assert cache.read(now=1e9 - 30 * 24 * 3600) == {}


@pytest.mark.parametrize("content, problem", [
    (b'{"v": 1, "entries": {"a": {"until": 2e9, "val', "not JSON"),
    (b"[1, 2]", "not a version 1 cache"),
    (b'{"v": 1, "entries": {"a": 5}}', "entry 'a' has no 'until'"),
    (b"\xff\xfe", "not JSON"),
])
def test_a_corrupt_file_is_reported_once_by_name_and_read_as_empty(tmp_path, caplog,
                                                                  content, problem):
    cache = CacheFile(tmp_path / "pods.json")
    cache.path.write_bytes(content)
    os.chmod(cache.path, 0o600)
    with caplog.at_level(logging.WARNING, "computepods.cachefile"):
        assert cache.read() == {}
        assert cache.read() == {}
        assert known_pods("cp", cache=CacheFile(cache.path)) == []     # another reader
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and str(cache.path) in warnings[0] and problem in warnings[0]
    cache.update(lambda cur: {"a": 1})                          # the next write replaces it
    assert cache.read() == {"a": 1}


def test_a_file_others_could_have_written_is_not_trusted(tmp_path):
    cache = CacheFile(tmp_path / "pods.json")
    cache.write({"a": 1})
    os.chmod(cache.path, 0o666)
    assert cache.read() == {}
    assert "not the user's own" in cache.problems[0] and "mode 666" in cache.problems[0]
    os.chmod(cache.path, 0o600)
    target = tmp_path / "elsewhere.json"
    os.replace(cache.path, target)
    cache.path.symlink_to(target)
    assert cache.read() == {}
    assert "symbolic link" in cache.problems[1]
    cache.path.unlink()
    os.mkfifo(cache.path, 0o600)                     # would block a plain open()
    assert cache.read() == {}
    assert "not a regular file" in cache.problems[2]
    cache.path.unlink()
    cache.path.mkdir()
    assert cache.read() == {} and "not a regular file" in cache.problems[3]


def test_a_held_lock_blocks_at_once_and_names_its_holder(tmp_path):
    cache = CacheFile(tmp_path / "pods.json")
    other = CacheFile(tmp_path / "pods.json")            # another open file: another holder
    lock = cache.try_acquire()
    assert isinstance(lock, CacheLock) and lock
    blocked = other.try_acquire()
    assert isinstance(blocked, Blocked) and not blocked and blocked.holder == os.getpid()
    lock.release()
    again = other.try_acquire()
    assert isinstance(again, CacheLock)
    again.release()


def test_acquire_waits_with_growing_random_delays_then_says_who_holds_it(tmp_path):
    clock, waits = SimClock(), []

    def sleep(s: float) -> None:
        waits.append(s)
        clock.advance(s)

    cache = CacheFile(tmp_path / "pods.json")
    waiting = CacheFile(tmp_path / "pods.json", clock=clock, rng=random.Random(7), sleep=sleep)
    with cache.try_acquire():
        with pytest.raises(CacheFileBusy) as err:
            waiting.acquire(timeout_s=20)
        assert f"locked by process {os.getpid()} after 20 s" in str(err.value)
        assert str(waiting.lock_path) in str(err.value)
    assert 0.001 <= waits[0] <= RETRY_FIRST_S
    assert max(waits) <= RETRY_MAX_S and sum(waits) == pytest.approx(20)
    with waiting.acquire(timeout_s=0):                # free now: taken at once
        pass


def test_an_update_with_a_released_lock_is_refused(tmp_path):
    cache = CacheFile(tmp_path / "pods.json")
    lock = cache.try_acquire()
    cache.update(lambda cur: {"a": 1}, lock=lock)
    assert lock.held                                  # the caller's lock stays the caller's
    lock.release()
    with pytest.raises(ValueError, match="already released"):
        cache.update(lambda cur: {"b": 1}, lock=lock)


def test_a_writer_killed_mid_write_leaves_the_old_file_and_its_temp_is_swept(tmp_path):
    class Killed(BaseException):
        pass

    def die() -> None:
        raise Killed                      # stands for SIGKILL: nothing after it runs

    path = tmp_path / "pods.json"
    CacheFile(path).write({"a": 1})
    with pytest.raises(Killed):
        CacheFile(path, in_write=die).update(lambda cur: {"b": 2})
    assert CacheFile(path).read() == {"a": 1}
    # a SIGKILLed writer runs no cleanup: its temp stays until the next write
    debris = tmp_path / f"pods.json.{os.getpid() + 1}.tmp"
    debris.write_bytes(b'{"v": 1, "entr')
    CacheFile(path).update(lambda cur: {"c": 3})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pods.json", "pods.json.lock"]


def test_pods_are_remembered_by_id_and_forgotten_after_the_expiry(tmp_path):
    cache = CacheFile(tmp_path / "pods-cp.json")
    remember_pods("cp", [hello("b"), hello("a")], now=1000.0, cache=cache)
    remember_pods("cp", [hello("b", slots=8)], now=1030.0, cache=cache)
    pods = known_pods("cp", now=1059.0, cache=cache)
    assert [(p["pod"], p["slots"]) for p in pods] == [("a", 2), ("b", 8)]
    assert [p["pod"] for p in known_pods("cp", now=1061.0, cache=cache)] == ["b"]
    assert known_pods("cp", now=1091.0, cache=cache) == []
    assert cf.POD_EXPIRY_S == 60.0


def test_known_pods_leaves_out_what_is_not_a_hello(tmp_path):
    cache = CacheFile(tmp_path / "pods-cp.json")
    cache.write({"a": hello("a"), "b": {"pod": "b"}, "c": "text"}, now=0.0)
    assert [p["pod"] for p in known_pods("cp", now=1.0, cache=cache)] == ["a"]
    with pytest.raises(ValueError, match="not a pod hello"):
        remember_pods("cp", [{"pod": "x"}], cache=cache)


def test_known_pods_reads_the_namespaces_own_file(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    remember_pods("one", [hello("p1")])
    assert [p["pod"] for p in known_pods("one")] == ["p1"]
    assert known_pods("two") == []
    assert (tmp_path / "computepods" / "pods-one.json").exists()


def test_pods_not_remembered_for_a_held_lock_cost_a_warning_not_a_failure(tmp_path, caplog):
    clock = SimClock()
    cache = CacheFile(tmp_path / "pods-cp.json", clock=clock, sleep=clock.advance)
    with CacheFile(cache.path).try_acquire(), \
            caplog.at_level(logging.WARNING, "computepods.cachefile"):
        assert remember_pods("cp", [hello("a")], cache=cache, wait_s=5) is False
    assert "pods not remembered" in caplog.text and "still locked" in caplog.text
    assert remember_pods("cp", [hello("a")], cache=cache) is True
    assert [p["pod"] for p in known_pods("cp", cache=cache)] == ["a"]


def test_a_podhello_goes_in_and_comes_back_as_its_dict(tmp_path):
    cache = CacheFile(tmp_path / "pods-cp.json")
    pod = PodHello.from_dict(hello("a", tools={"cc": "sha256:ab"}))
    assert remember_pods("cp", [pod], cache=cache)
    assert [PodHello.from_dict(d) for d in known_pods("cp", cache=cache)] == [pod]
