"""The pod's own stat of a committed output, never a chef's."""
from __future__ import annotations

import os

from computepods.bus.chefwire import LocalStat, Output
from computepods.coordinator.files import own_records
from computepods.state.hashing import sha256_file


def test_the_pod_records_its_own_stat_and_trusts_the_hash_only_for_the_same_file(tmp_path):
    out = tmp_path / "out.txt"
    out.write_text("hello\n")
    st, digest = os.stat(out), sha256_file(out)
    same = Output(digest, st.st_size, LocalStat(st.st_mtime_ns, st.st_ino, 123))
    elsewhere = Output(digest, st.st_size, LocalStat(42, 7, 123))   # a chef on another machine
    [mine] = own_records(tmp_path, {"out.txt": same})
    assert (mine.ino, mine.mtime_ns, mine.checked_ns) == (st.st_ino, st.st_mtime_ns, 123)
    [theirs] = own_records(tmp_path, {"out.txt": elsewhere})
    assert (theirs.ino, theirs.mtime_ns) == (st.st_ino, st.st_mtime_ns)     # the pod's stat
    assert theirs.checked_ns == 0 and theirs.sha256 == digest            # rehashed next time
    assert own_records(tmp_path, {"out.txt": Output(digest, st.st_size)})[0].checked_ns == 0
    assert own_records(tmp_path, {"gone.txt": same}) == []
