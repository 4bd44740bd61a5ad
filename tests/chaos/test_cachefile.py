"""Battery row: the discovery cache file hammered by many processes, some
SIGKILLed mid-write.

Every process (forked by tests/cachehammer.py) does read-modify-write
rounds on one cache file, each adding its own entry.  One in ten is told
to stop half-way through one write, holding the lock with its temp file
half written; the test checks it holds the lock and SIGKILLs it there.
What must hold: no read saw a corrupt file or lost an entry; the final
file holds exactly the entries whose writes returned (every survivor's,
and the killed ones' before their kill) and none of the killed writes; the
lock is free at once after the kills, and the next write sweeps the
killed writers' temp files.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from computepods.federation.cachefile import CacheFile, CacheLock
from helpers import pid_is_gone, wait_for

ROOT = Path(__file__).resolve().parents[2]
HAMMER = ROOT / "tests" / "cachehammer.py"
ROUNDS = 3                   # read-modify-write rounds per process
KILLED_SHARE = 10            # one process in this many is SIGKILLed mid-write
ROW_TIMEOUT_S = 300.0        # seconds a round may take at most (short mode: ~5 s)


def lines(out: Path) -> list[str]:
    return out.read_text().splitlines() if out.exists() else []


def said(out: Path, word: str) -> dict[int, int]:
    """The launcher's ``pid I PID`` / ``exit I CODE`` lines, as I -> number."""
    found = {}
    for line in lines(out):
        parts = line.split()
        if len(parts) == 3 and parts[0] == word:
            found[int(parts[1])] = int(parts[2])
    return found


def test_the_cache_file_survives_its_hammering_processes_one_in_ten_killed_mid_write(
        tmp_path, chaos):
    processes = chaos.examples(full=200, short=50)
    for rnd in chaos.rounds("the discovery cache file hammered", full=1, short=1,
                            must_hold=f"{processes} processes, 1 in {KILLED_SHARE} SIGKILLed "
                                      "mid-write holding the lock: 0 corrupt reads, exact "
                                      "final content, no stuck lock"):
        with rnd:
            here = tmp_path / f"r{rnd.index}"
            here.mkdir()
            path = here / "cache" / "pods-cp.json"
            doomed = {i: rnd.rng.randrange(ROUNDS)
                      for i in rnd.rng.sample(range(processes), processes // KILLED_SHARE)}
            outs = {i: here / f"w{i}.out" for i in range(processes)}
            log = here / "launcher.out"
            env = {**os.environ, "CP_HAMMER_HOLD": ",".join(f"{i}:{r}" for i, r in doomed.items()),
                   "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
            reader = CacheFile(path)
            killed: set[int] = set()
            holders: list[bool] = []      # each doomed writer held the lock when killed
            reads = 0
            began = time.monotonic()
            with open(log, "w") as sink:
                launcher = subprocess.Popen(
                    [sys.executable, str(HAMMER), str(path), str(here), str(processes),
                     str(ROUNDS), str(rnd.seed)], stdout=sink, stderr=subprocess.STDOUT, env=env)
            try:
                pids = wait_for(lambda: len(said(log, "pid")) == processes and said(log, "pid"),
                                timeout=60, what=f"the launcher to fork {processes} writers")

                def progress() -> bool:
                    nonlocal reads
                    reader.read()         # a reader racing the writers
                    reads += 1
                    for i in set(doomed) - killed:
                        if any(line.startswith("holding ") for line in lines(outs[i])):
                            held = reader.try_acquire()
                            holders.append(getattr(held, "holder", None) == pids[i])
                            if isinstance(held, CacheLock):
                                held.release()
                            os.kill(pids[i], signal.SIGKILL)
                            killed.add(i)
                    return launcher.poll() is not None    # it has reaped every writer

                wait_for(progress, timeout=ROW_TIMEOUT_S, interval=0.01,
                         what="every writer to finish or be killed mid-write")
            finally:
                ended = said(log, "exit")
                for i, pid in said(log, "pid").items():
                    if i not in ended and not pid_is_gone(pid):
                        os.kill(pid, signal.SIGKILL)
                if launcher.poll() is None:
                    launcher.kill()
                launcher.wait()
            seconds = time.monotonic() - began

            exits = said(log, "exit")
            assert launcher.returncode == 0 and len(exits) == processes, lines(log)[-5:]
            assert len(holders) == len(doomed) and all(holders), \
                f"writers killed mid-write that did not hold the lock: {holders}"
            # no stuck lock: free at once, though its holders were killed holding it
            lock = CacheFile(path).try_acquire()
            assert isinstance(lock, CacheLock), f"the lock is still held: {lock}"
            lock.release()

            wrote, corrupt, lost, failed, waits = set(), [], [], [], []
            for i in range(processes):
                told = lines(outs[i])
                wrote |= {line.split()[1] for line in told if line.startswith("wrote ")}
                expected = -signal.SIGKILL if i in doomed else 0
                if exits[i] != expected or (i not in doomed and not told[-1].startswith("{")):
                    failed.append((i, exits[i], told[-5:]))
                elif i not in doomed:
                    summary = json.loads(told[-1])
                    corrupt += summary["corrupt"]
                    lost += summary["lost"]
                    waits.append(summary["waited_s"])
            assert not failed, f"{len(failed)} writers failed, e.g. {failed[:3]}"
            assert not corrupt and not reader.problems, (corrupt + reader.problems)[:5]
            assert not lost, f"entries lost between writes: {lost[:10]}"

            final = CacheFile(path).read()
            survivors = {f"w{i}:{r}" for i in range(processes) if i not in doomed
                         for r in range(ROUNDS)}
            held_writes = {f"w{i}:{r}" for i, r in doomed.items()}
            assert survivors <= wrote and not held_writes & wrote
            assert set(final) == wrote, (f"missing {sorted(wrote - set(final))[:5]}, "
                                         f"unexpected {sorted(set(final) - wrote)[:5]}")
            assert all(final[k]["writer"] == k.split(":")[0] for k in final)
            print(f"\ncache hammer: {processes} processes, {len(wrote)} writes in {seconds:.1f} s;"
                  f" wait for the lock per write: mean {sum(waits) / len(waits) / ROUNDS:.3f} s,"
                  f" the longest writer's {max(waits):.2f} s in all; {reads} reads by the test")

            # the killed writers' half-written temp files go with the next write
            assert len(list(path.parent.glob("*.tmp"))) <= len(doomed)
            CacheFile(path).update(lambda current: {})
            assert sorted(p.name for p in path.parent.iterdir()) == \
                ["pods-cp.json", "pods-cp.json.lock"]
