"""A Chef given runs from other pods, on the loopback bus and a SimClock:
it builds each step in its origin's tree from files fetched by hash (a fake
fetch: sha -> bytes in tmp files), keeps the outputs in a store (a fake
keep), and refuses what it cannot serve with a named reason."""
from __future__ import annotations

import hashlib
import queue
import subprocess
from pathlib import Path

import pytest

from computepods.bus import messages as m
from computepods.bus.chefwire import RunStep
from computepods.bus.loopback import LoopbackBus
from computepods.charts.chef import NO_PROJECT_TREE, ONLY_OWN_TREE, Chef
from computepods.chef.intake import NO_PROGRAM
from computepods.chef.step import rule_to_dict
from computepods.clock import SimClock
from computepods.errors import TransferError
from computepods.federation.workspace import Workspace
from computepods.project.model import Rule
from helpers import wait_for

UP = Rule("up", ("src/%.txt",), ("build/%.up",), "tr a-z A-Z < {in} > {out}")
ALL = Rule("all", ("src/a.txt",), ("out/all.txt",), "cat src/*.txt > {out}")
CC = Rule("cc", ("src/%.c",), ("src/%.o", "src/%.d"),
          "cc -MD -MF {out[1]} -c {in[0]} -o {out[0]}", depfile="src/%.d")


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Store:
    """The fakes of the pod's content store: fetch(pod, sha) reads what the
    origin pod offers (a dict, written to files); keep(path) records what
    the chef kept and answers its sha."""

    def __init__(self, directory: Path, offered: dict[str, bytes] | None = None):
        self.dir = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.offered: dict[tuple[str, str], Path] = {}
        self.asked: list[tuple[str, str]] = []
        self.kept: dict[str, bytes] = {}
        self.own: dict[str, Path] = {}       # sha -> a file the chef kept
        for pod, data in (offered or {}).items():
            self.offer(pod, data)

    def offer(self, pod: str, data: bytes) -> str:
        path = self.dir / f"{pod}-{sha(data)}"
        path.write_bytes(data)
        self.offered[(pod, sha(data))] = path
        return sha(data)

    def fetch(self, pod: str, digest: str) -> Path:
        if digest in self.own:              # the chef pod's own store: nothing to pull
            return self.own[digest]
        self.asked.append((pod, digest))
        try:
            return self.offered[(pod, digest)]
        except KeyError:
            raise TransferError(f"pod {pod}: file {digest} is not in its store") from None

    def keep(self, path: Path) -> str:
        data = path.read_bytes()
        self.kept[str(path)] = data
        self.own[sha(data)] = path
        return sha(data)


class Results:
    """steps.results, answered as a MajorDomo would; the finished ones kept."""

    def __init__(self, bus: LoopbackBus):
        self.bus, self.finished = bus, []

    def put(self, msg: m.Message) -> None:
        self.finished += [item for item in msg.data["results"] if item["event"] == "finished"]
        self.bus.respond(msg, {"ok": True})

    def all_of(self, build: str, step: str, count: int = 1) -> list[dict]:
        def found():
            got = [r for r in self.finished if (r["build"], r["id"]) == (build, step)]
            return got if len(got) >= count else None
        return wait_for(found, what=f"{count} results of {step} in {build}")

    def of(self, build: str, step: str) -> dict:
        return self.all_of(build, step)[0]


@pytest.fixture
def kitchen(tmp_path):
    """Start chefs on one loopback bus; stop them all at the end."""
    bus, clock = LoopbackBus(), SimClock()
    results = Results(bus)
    bus.listen(m.STEP_RESULTS, results)
    statuses: "queue.Queue[m.Message]" = queue.Queue()
    bus.listen(m.CHEF_STATUS, statuses)
    chefs, workspaces = [], []

    def start(name="c", root=None, workspace=True, store=None, **kw) -> Chef:
        space = None
        if workspace:
            space = Workspace(tmp_path / f"ws-{name}").acquire()
            workspaces.append(space)
        chef = Chef(name, bus, root, 2, pod=f"pod-{name}", clock=clock, workspace=space,
                    fetch=store.fetch if store else None, keep=store.keep if store else None,
                    fingerprints=kw.pop("fingerprints", lambda tools: {}), **kw)
        chefs.append(chef.start())
        return chef

    start.bus, start.results, start.statuses = bus, results, statuses
    start.workspaces = workspaces
    yield start
    for chef in chefs:
        chef.stop()
    for space in workspaces:
        space.release()
    bus.stop()


def run(kitchen, rule: Rule, stem: str, files: dict[str, str], origin: str = "podA",
        build: str = "b1", chef: str = "c") -> dict:
    step = RunStep(f"{rule.name}:{rule.outputs[0].replace('%', stem)}", 1, rule.name, stem,
                   dict(files), files=dict(files))
    msg = {"build": build, "chef": chef, "rules": {rule.name: rule_to_dict(rule)},
           "steps": [step.to_dict()]}
    if origin:
        msg["origin"] = origin
    answer = kitchen.bus.request_sync(m.CHEF_RUN, msg, chef=chef)
    answer.pop("v", None)
    return answer


def test_a_remote_step_is_built_from_fetched_inputs_and_its_output_kept(tmp_path, kitchen):
    store = Store(tmp_path / "offered")
    a = store.offer("podA", b"alpha\n")
    kitchen(store=store)
    assert run(kitchen, UP, "a", {"src/a.txt": a}) == {"accepted": ["up:build/a.up"],
                                                        "rejected": []}
    result = kitchen.results.of("b1", "up:build/a.up")
    assert result["ok"], result
    assert result["outputs"]["build/a.up"]["sha256"] == sha(b"ALPHA\n")
    [output] = list((tmp_path / "ws-c/trees").glob("podA-*/build/a.up"))
    assert output.read_bytes() == b"ALPHA\n" and store.kept == {str(output): b"ALPHA\n"}
    assert store.asked == [("podA", a)]


def test_a_file_in_the_tree_that_the_step_does_not_list_is_not_seen(tmp_path, kitchen):
    store = Store(tmp_path / "offered")
    a, b = store.offer("podA", b"alpha\n"), store.offer("podA", b"beta\n")
    kitchen(store=store)
    run(kitchen, UP, "b", {"src/b.txt": b})            # leaves src/b.txt in podA's tree
    assert kitchen.results.of("b1", "up:build/b.up")["ok"]
    run(kitchen, ALL, "", {"src/a.txt": a}, build="b2")  # cat src/*.txt: only what it lists
    result = kitchen.results.of("b2", "all:out/all.txt")
    assert result["ok"], result
    assert result["outputs"]["out/all.txt"]["sha256"] == sha(b"alpha\n")


def test_a_failed_fetch_fails_that_step_naming_the_pod_and_the_chef_goes_on(tmp_path, kitchen):
    store = Store(tmp_path / "offered")
    chef = kitchen(store=store)
    missing = sha(b"nowhere\n")
    run(kitchen, UP, "a", {"src/a.txt": missing})
    failed = kitchen.results.of("b1", "up:build/a.up")
    assert not failed["ok"]
    assert failed["reason"] == (f"its files could not be fetched from pod podA: pod podA: "
                                f"file {missing} is not in its store")
    a = store.offer("podA", b"alpha\n")
    run(kitchen, UP, "a", {"src/a.txt": a}, build="b2")
    assert kitchen.results.of("b2", "up:build/a.up")["ok"] and chef.crashes == []


def test_two_origins_build_one_step_in_two_trees(tmp_path, kitchen):
    store = Store(tmp_path / "offered")
    a1, a2 = store.offer("podA", b"from a\n"), store.offer("podB", b"from b\n")
    kitchen(store=store)
    run(kitchen, UP, "a", {"src/a.txt": a1}, origin="podA")
    run(kitchen, UP, "a", {"src/a.txt": a2}, origin="podB")
    both = kitchen.results.all_of("b1", "up:build/a.up", count=2)
    assert sorted(r["outputs"]["build/a.up"]["sha256"] for r in both) == sorted(
        [sha(b"FROM A\n"), sha(b"FROM B\n")])
    outputs = {p.parent.parent.name.split("-")[0]: p.read_bytes()
               for p in (tmp_path / "ws-c/trees").glob("*/build/a.up")}
    assert outputs == {"podA": b"FROM A\n", "podB": b"FROM B\n"}


def test_the_same_build_and_step_from_two_origins_are_two_runs_not_a_repeat(tmp_path, kitchen):
    store = Store(tmp_path / "offered")
    a1, a2 = store.offer("podA", b"one\n"), store.offer("podB", b"two\n")
    kitchen(store=store)
    run(kitchen, UP, "a", {"src/a.txt": a1}, origin="podA")
    kitchen.results.of("b1", "up:build/a.up")
    run(kitchen, UP, "a", {"src/a.txt": a2}, origin="podB")
    second = kitchen.results.all_of("b1", "up:build/a.up", count=2)[1]
    assert second["outputs"]["build/a.up"]["sha256"] == sha(b"TWO\n")


def test_a_remote_compile_sees_its_listed_header_and_discovers_it(tmp_path, kitchen):
    store = Store(tmp_path / "offered")
    main = store.offer("podA", b'#include "util.h"\nint main(void) { return N; }\n')
    util = store.offer("podA", b"#define N 0\n")
    kitchen(store=store)
    run(kitchen, CC, "main", {"src/main.c": main, "src/util.h": util})
    result = kitchen.results.of("b1", "cc:src/main.o")
    assert result["ok"], result
    assert result["discovered"] == ["src/util.h"]
    assert set(result["outputs"]) == {"src/main.o", "src/main.d"}


def test_a_remote_compile_does_not_see_a_header_it_does_not_list(tmp_path, kitchen):
    store = Store(tmp_path / "offered")
    main = store.offer("podA", b'#include "util.h"\nint main(void) { return N; }\n')
    util = store.offer("podA", b"#define N 0\n")
    kitchen(store=store)
    run(kitchen, CC, "main", {"src/main.c": main, "src/util.h": util})
    assert kitchen.results.of("b1", "cc:src/main.o")["ok"]
    run(kitchen, CC, "main", {"src/main.c": main}, build="b2")   # util.h is in the tree
    failed = kitchen.results.of("b2", "cc:src/main.o")
    assert not failed["ok"] and "util.h" in failed["stderr_tail"]


def test_a_chef_without_a_workspace_refuses_another_pods_steps(tmp_path, kitchen):
    kitchen(root=tmp_path, workspace=False)
    answer = run(kitchen, UP, "a", {"src/a.txt": sha(b"x")})
    assert answer == {"accepted": [], "rejected": [{"id": "up:build/a.up",
                                                     "reason": ONLY_OWN_TREE}]}


def test_a_chef_pod_with_no_project_refuses_a_run_with_no_origin(tmp_path, kitchen):
    kitchen(store=Store(tmp_path / "offered"))
    answer = run(kitchen, UP, "a", {}, origin="")
    assert answer == {"accepted": [], "rejected": [{"id": "up:build/a.up",
                                                     "reason": NO_PROJECT_TREE}]}


def test_a_run_whose_origin_is_the_chefs_own_pod_builds_in_its_own_tree(tmp_path, kitchen):
    (tmp_path / "src").mkdir()
    (tmp_path / "src/a.txt").write_text("own\n")
    kitchen(root=tmp_path, workspace=False)
    assert run(kitchen, UP, "a", {"src/a.txt": sha(b"own\n")}, origin="pod-c")["accepted"]
    assert kitchen.results.of("b1", "up:build/a.up")["ok"]
    assert (tmp_path / "build/a.up").read_text() == "OWN\n"


def test_its_status_carries_tool_fingerprints_learnt_from_runs_and_typical_s(tmp_path,
                                                                             kitchen):
    store = Store(tmp_path / "offered")
    a = store.offer("podA", b"alpha\n")
    asked: list[set[str]] = []

    def fingerprints(tools):
        asked.append(set(tools))
        return {t: sha(t.encode()) for t in tools if t != "missing-tool"}
    chef = kitchen(store=store, tools=["missing-tool"], fingerprints=fingerprints)
    assert "missing-tool" in asked[0] and "cc" in asked[0]     # given, and the packs' tools
    run(kitchen, UP, "a", {"src/a.txt": a})
    kitchen.results.of("b1", "up:build/a.up")
    assert asked[-1] == {"tr"}                                 # the program the run starts
    chef.post(m.TICK)

    def latest() -> dict | None:
        found = None
        while not kitchen.statuses.empty():
            found = kitchen.statuses.get().data
        return found if found and found.get("typical_s") is not None else None
    status = wait_for(latest, what="a status with typical_s")
    assert status["fingerprints"]["tr"] == sha(b"tr") and "missing-tool" not in status["tools"]
    assert status["pod"] == "pod-c" and 0 < status["typical_s"] < 60


def test_an_output_that_cannot_be_kept_fails_its_step(tmp_path, kitchen):
    store = Store(tmp_path / "offered")
    a = store.offer("podA", b"alpha\n")

    def full(path):
        raise OSError(28, "No space left on device")
    store.keep = full
    chef = kitchen(store=store)
    run(kitchen, UP, "a", {"src/a.txt": a})
    failed = kitchen.results.of("b1", "up:build/a.up")
    assert not failed["ok"] and failed["reason"].startswith(
        "its output build/a.up could not be kept in the pod's store: ")
    assert "No space left" in failed["reason"] and chef.crashes == []


BOTH = Rule("both", ("src/a.txt", "src/b.txt"), ("out/both.txt",), "cat {in} > {out}")


def test_a_file_replaced_by_another_builds_step_as_this_one_starts_is_seen_as_listed(
        tmp_path, kitchen):
    """An old build's step re-materialises src/a.txt with other content while
    this step fetches src/b.txt: the step still sees the a.txt it listed."""
    store = Store(tmp_path / "offered")
    a, b = store.offer("podA", b"listed a\n"), store.offer("podA", b"b\n")
    other = store.offer("podA", b"another build's a\n")
    fetch = store.fetch

    def intruding(pod, digest):
        if digest == b and not intruded:
            intruded.append(True)
            space = kitchen.workspaces[0]
            space.materialise(space.tree("podA"), {"src/a.txt": other}, fetch, "podA")
        return fetch(pod, digest)
    intruded: list[bool] = []
    store.fetch = intruding
    kitchen(store=store)
    run(kitchen, BOTH, "", {"src/a.txt": a, "src/b.txt": b})
    result = kitchen.results.of("b1", "both:out/both.txt")
    assert intruded and result["ok"], result
    assert result["outputs"]["out/both.txt"]["sha256"] == sha(b"listed a\nb\n")


def test_examples_c_builds_remotely_and_the_link_fetches_nothing_it_made(tmp_path, kitchen):
    """examples/c on a chef pod: its two compiles from the sources by hash,
    then the link from the objects it kept (its own store: 0 pulled)."""
    from computepods.project.load import load_project
    example = Path(__file__).parents[3] / "examples/c"
    rules = {r.name: r for r in load_project(example).rules}
    store = Store(tmp_path / "offered")
    sources = {p: store.offer("podA", (example / p).read_bytes())
               for p in ("src/main.c", "src/util.c", "src/util.h")}
    kitchen(store=store)
    objects = {}
    for stem in ("src/main", "src/util"):
        files = {f"{stem}.c": sources[f"{stem}.c"], "src/util.h": sources["src/util.h"]}
        run(kitchen, rules["c.compile"], stem, files)
        result = kitchen.results.of("b1", f"c.compile:{stem}.o")
        assert result["ok"], result
        assert result["discovered"] == ["src/util.h"]
        objects[f"{stem}.o"] = result["outputs"][f"{stem}.o"]["sha256"]
    pulled = list(store.asked)
    run(kitchen, rules["link"], "", objects)
    linked = kitchen.results.of("b1", "link:bin/hello")
    assert linked["ok"], linked
    assert store.asked == pulled                       # the objects came from its own store
    [program] = (tmp_path / "ws-c/trees").glob("podA-*/bin/hello")
    assert subprocess.run([program], capture_output=True, timeout=30).returncode == 0


def test_another_pods_step_whose_program_is_not_on_path_is_refused_naming_it(tmp_path,
                                                                             kitchen):
    """Not run to a bare exit 127: the MajorDomo hears which program is missing."""
    store = Store(tmp_path / "offered")
    a = store.offer("podA", b"alpha\n")
    kitchen(store=store)
    gone = Rule("gone", ("src/%.txt",), ("build/%.up",), "onlyonb {in} > {out}")
    answer = run(kitchen, gone, "a", {"src/a.txt": a})
    assert answer == {"accepted": [], "rejected": [
        {"id": "gone:build/a.up", "reason": NO_PROGRAM.format(program="onlyonb")}]}
    assert "'onlyonb'" in answer["rejected"][0]["reason"]
    assert run(kitchen, UP, "a", {"src/a.txt": a})["accepted"] == ["up:build/a.up"]
