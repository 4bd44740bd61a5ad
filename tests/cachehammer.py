"""The hammering processes of the cache-file chaos row (tests/chaos/test_cachefile.py).

    python tests/cachehammer.py CACHE OUTDIR WRITERS ROUNDS SEED

One Python start, then WRITERS processes forked from it (a start per writer
would cost more than the row itself on two busy cores), released together.
It prints ``pid I PID`` for each writer, and ``exit I CODE`` as each ends
(CODE negative: killed by that signal).  Writer I writes to OUTDIR/wI.out.

Each writer's round reads the cache (no lock), then takes the lock and
adds the entry ``wI:<round>`` in a read-modify-write, checking on the way
that its own earlier entries are all there.  After each write it prints
``wrote KEY``; at the end one JSON line of what it saw (``corrupt``: the
problems its reads reported; ``lost``: its own entries missing from a
read; ``waited_s``: its time waiting for the lock).

``CP_HAMMER_HOLD=I:ROUND,...`` in the environment: that writer's write of
that round stops half-way, with the lock held and the temp file half
written; it prints ``holding KEY`` and waits for the test's SIGKILL.
"""
from __future__ import annotations

import json
import os
import random
import signal
import sys
import time
import traceback
from pathlib import Path

from computepods.federation.cachefile import CacheFile

HOLD_VAR = "CP_HAMMER_HOLD"
EXPIRY_S = 24 * 3600.0        # seconds: nothing expires while the row runs
LOCK_WAIT_S = 600.0           # seconds a writer waits for the lock before it fails


def holds() -> dict[int, int]:
    """Writer -> the round whose write it holds, from CP_HAMMER_HOLD."""
    pairs = (p.split(":") for p in os.environ.get(HOLD_VAR, "").split(",") if p)
    return {int(i): int(r) for i, r in pairs}


def writer(path: Path, index: int, rounds: int, seed: int, hold: int | None, out) -> None:
    def say(line: str) -> None:
        out.write(line + "\n")
        out.flush()

    key = ""

    def hold_here() -> None:
        if key == f"w{index}:{hold}":
            say(f"holding {key}")
            while True:
                signal.pause()            # until the SIGKILL

    cache = CacheFile(path, rng=random.Random(seed), in_write=hold_here)
    mine: list[str] = []
    lost: list[str] = []
    waited = 0.0

    def add(current: dict) -> dict:
        lost.extend(k for k in mine if k not in current)
        return {key: {"writer": f"w{index}", "round": len(mine)}}

    for r in range(rounds):
        seen = cache.read() or {}
        lost.extend(k for k in mine if k not in seen)
        key = f"w{index}:{r}"
        asked = time.monotonic()
        with cache.acquire(timeout_s=LOCK_WAIT_S) as lock:
            waited += time.monotonic() - asked
            cache.update(add, expiry_s=EXPIRY_S, lock=lock)
        mine.append(key)
        say(f"wrote {key}")
    say(json.dumps({"corrupt": cache.problems, "lost": sorted(set(lost)),
                    "waited_s": round(waited, 3)}))


def main(path: str, outdir: str, writers: int, rounds: int, seed: int) -> int:
    hold = holds()
    go_r, go_w = os.pipe()
    pids: dict[int, int] = {}
    for i in range(writers):
        pid = os.fork()
        if pid == 0:                      # the writer
            os.close(go_w)
            code = 1
            with open(Path(outdir) / f"w{i}.out", "w") as out:
                os.dup2(out.fileno(), 2)  # its warnings too
                try:
                    os.read(go_r, 1)      # released with the others (EOF)
                    writer(Path(path), i, rounds, seed + i, hold.get(i), out)
                    code = 0
                except BaseException:
                    out.write(traceback.format_exc())
            os._exit(code)
        pids[pid] = i
        print(f"pid {i} {pid}", flush=True)
    os.close(go_w)                        # go
    os.close(go_r)
    while pids:
        pid, status = os.wait()
        print(f"exit {pids.pop(pid)} {os.waitstatus_to_exitcode(status)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], *map(int, sys.argv[3:6])))
