"""Two pods in one process, on one nats-server: each builds its own project,
and stopping one leaves the other building."""
from __future__ import annotations

import threading
from pathlib import Path

from computepods.bus.client import request_build
from computepods.pod.pod import Pod, PodOptions
from cpodrun import write
from helpers import wait_for

GATED = """
    [project]
    default = ["out/all.txt"]

    [[rule]]
    name = "wait"
    inputs = ["src/%.txt"]
    outputs = ["build/%.txt"]
    command = "touch started-{stem}; while [ ! -f gate ]; do sleep 0.02; done; cp {in} {out}"

    [[rule]]
    name = "all"
    inputs = ["build/a.txt", "build/b.txt"]
    outputs = ["out/all.txt"]
    command = "cat {in} > {out}"
"""


def project(root: Path, words: tuple[str, str]) -> Path:
    return write(root, {"computepods.toml": GATED,
                        "src/a.txt": f"{words[0]}\n", "src/b.txt": f"{words[1]}\n"})


class Build(threading.Thread):
    """A `cpod build` client of one pod, in the background."""

    def __init__(self, pod: Pod):
        super().__init__(name=f"build:{pod.root.name}", daemon=True)
        self.pod, self.code = pod, None
        self.start()

    def run(self) -> None:
        self.code = request_build(self.pod.bridge, [], self.pod.root)

    def result(self, timeout: float = 60.0) -> int | None:
        self.join(timeout)
        return self.code


def test_two_pods_build_their_own_projects_and_one_outlives_the_other(tmp_path, nats_url):
    one = project(tmp_path / "one", ("red", "green"))
    two = project(tmp_path / "two", ("blue", "white"))
    # Each pod has its namespace: its chefs, builds and requests are its own.
    first = Pod(one, PodOptions(nats_url=nats_url, namespace="one", slots=2)).start()
    second = Pod(two, PodOptions(nats_url=nats_url, namespace="two", slots=2)).start()
    try:
        (one / "gate").touch()
        assert Build(first).result() == 0
        assert (one / "out/all.txt").read_text() == "red\ngreen\n"
        assert not (two / "build").exists()        # the first pod's build stayed in its tree

        running = Build(second)
        wait_for(lambda: (two / "started-a").exists() and (two / "started-b").exists(),
                 what="the second pod's steps to start")
        first.stop()                               # mid-build of the other pod
        (two / "gate").touch()
        assert running.result() == 0
        assert (two / "out/all.txt").read_text() == "blue\nwhite\n"

        (two / "src/b.txt").write_text("black\n")  # and it goes on building after
        assert Build(second).result() == 0
        assert (two / "out/all.txt").read_text() == "blue\nblack\n"
    finally:
        first.stop()
        second.stop()
