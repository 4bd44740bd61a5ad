"""A federated MajorDomo on the loopback bus with fake chefs of other pods
(tests/federatedpod.py).  Each test reads what a user would see: the tree,
the build's events, the Store's records, which chef got what.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from computepods.bus import messages as m
from computepods.coordinator.dispatch import UNFIT_WAIT_S
from computepods.state.owners import OwnerMap
from federatedpod import OURS, SHORT_LEASE_S, Federated, made, sha
from helpers import wait_for
from loopbackpod import write_project

UPPER = {
    "computepods.toml": """
        [project]
        name = "upper"
        default = ["out/a.up", "out/b.up"]
        {extra}

        [[rule]]
        name = "up"
        inputs = ["src/%.txt"]
        outputs = ["out/%.up"]
        command = "tr a-z A-Z < {{in}} > {{out}}"
    """,
    "src/a.txt": "alpha\n",
    "src/b.txt": "beta\n",
}
STEPS = ["up:out/a.up", "up:out/b.up"]


def project(root: Path, extra: str = "", files: dict | None = None) -> None:
    text = dict(files or UPPER)
    text["computepods.toml"] = text["computepods.toml"].replace("{extra}", extra)
    write_project(root, text)


@pytest.fixture
def fed(tmp_path):
    made_ = []

    def make(prints: dict | None = None) -> Federated:
        f = Federated(tmp_path / "project", prints)
        made_.append(f)
        return f
    (tmp_path / "project").mkdir()
    yield make
    for f in made_:
        f.stop()


TR = {"tr": "OURS"}

C_PACK = {
    "computepods.toml": """
        [project]
        name = "c"
        default = ["src/a.o"]
        use = ["c"]
    """,
    "src/a.c": "int a;\n",
}


def test_a_remote_chefs_outputs_are_fetched_from_its_pod_and_committed(fed, tmp_path):
    project(tmp_path / "project")
    f = fed()
    b = f.chef("b1", "pod-b", prints=TR)
    done = f.pod.build().done()
    root = tmp_path / "project"
    assert (done["ok"], done["ran"]) == (True, 2)
    assert (root / "out/a.up").read_bytes() == made("up:out/a.up")
    assert (root / "out/b.up").read_bytes() == made("up:out/b.up")
    run = b.runs[0]
    assert run["origin"] == OURS
    assert {s["id"]: s["files"] for s in run["steps"]} == {
        "up:out/a.up": {"src/a.txt": sha(b"alpha\n")},
        "up:out/b.up": {"src/b.txt": sha(b"beta\n")}}
    assert f.offers.lookup(sha(b"alpha\n")) == root / "src/a.txt"      # our SFTP may serve it
    assert f.stores.pods_fetched() == {"pod-b"}
    records = f.pod.records()
    assert records["up:out/a.up"].outputs == {"out/a.up": sha(made("up:out/a.up"))}
    assert not list((root / ".computepods/scratch").glob("land-*"))   # nothing half-landed
    # pod-b holds the inputs it was sent and the outputs it made, and that is kept
    again = OwnerMap(f.pod.db_path)
    assert again.by_pod() == {"pod-b": (4, 6 + 5 + 2 * len(made("up:out/a.up")))}
    again.close()
    assert f.built_with.of("up:out/a.up") == TR


def test_steps_go_where_they_cost_least_queue_and_missing_bytes(fed, tmp_path):
    root = tmp_path / "project"
    project(root)
    f = fed()
    f.chef("b1", "pod-b", prints=TR, queued=30, typical_s=2.0)      # 60 s of queue
    c = f.chef("c1", "pod-c", prints=TR)
    assert f.pod.build().done()["ok"]
    assert sorted(c.steps_run()) == STEPS

    (root / "src/a.txt").write_text("alpha, bigger now\n" * 1000)
    (root / "src/b.txt").write_text("beta, bigger now\n" * 1000)
    f.owners.add("pod-b", {sha((root / "src/a.txt").read_bytes()): 18000,
                           sha((root / "src/b.txt").read_bytes()): 17000})
    f.rate["pod-c"] = 100.0                   # bytes/s: moving the inputs to c costs minutes
    assert f.pod.build().done()["ok"]
    assert sorted(c.steps_run()) == STEPS     # nothing more went to c
    assert sorted(f.chefs[0].steps_run()) == STEPS


def test_a_chef_lacking_the_tool_is_never_chosen(fed, tmp_path):
    project(tmp_path / "project")
    f = fed()
    # idle, but no tr: told of it by a run, it refuses the steps naming tr
    lacking = f.chef("b1", "pod-b", prints={"cc": "X"}, lacks=("tr",))
    having = f.chef("c1", "pod-c", prints=TR, queued=50)
    assert f.pod.build().done()["ok"]
    assert lacking.steps_run() == [] and sorted(having.steps_run()) == STEPS


def test_a_chef_pod_that_joins_later_gets_steps_whose_program_another_listed(fed, tmp_path):
    project(tmp_path / "project")
    f = fed()
    f.chef("b1", "pod-b", prints=TR, queued=50)                     # lists tr, 50 s of queue
    newcomer = f.chef("c1", "pod-c", prints={"cc": "X"})            # no run told it of tr yet
    assert f.pod.build().done()["ok"]
    assert sorted(newcomer.steps_run()) == STEPS


def test_a_program_no_chef_has_listed_yet_may_go_to_any_remote_chef(fed, tmp_path):
    project(tmp_path / "project")
    f = fed()
    b = f.chef("b1", "pod-b", prints={"cc": "X"})        # it lists tr once a run starts it
    assert f.pod.build().done()["ok"]
    assert sorted(b.steps_run()) == STEPS


def test_no_chef_with_a_pack_tool_fails_the_step_naming_the_tool(fed, tmp_path):
    project(tmp_path / "project", files=C_PACK)
    f = fed()
    f.fed.offered = lambda: {"cc": {"f" * 64}}          # (planning passes, even without cc)
    b = f.chef("b1", "pod-b", prints={"tr": "OURS"})
    build = f.pod.build()
    build.wait("plan")
    f.pod.clock.advance(UNFIT_WAIT_S + 1)
    done = build.done()
    assert not done["ok"] and b.steps_run() == []
    assert "no chef can run it: chef b1 lacks cc" in build.of("fail")[0]["reason"]


def test_another_fingerprint_is_avoided_unless_the_tool_is_interchangeable(fed, tmp_path):
    project(tmp_path / "project")
    f = fed()
    other = f.chef("b1", "pod-b", prints={"tr": "THEIRS"})            # idle
    same = f.chef("c1", "pod-c", prints=TR, queued=40)
    assert f.pod.build().done()["ok"]
    assert other.steps_run() == [] and sorted(same.steps_run()) == STEPS

    project(tmp_path / "project", 'interchangeable = ["tr"]')
    (tmp_path / "project/src/a.txt").write_text("changed\n")
    assert f.pod.build().done()["ok"]
    assert other.steps_run() == ["up:out/a.up"]


def test_a_fetch_that_fails_retries_the_step_elsewhere_naming_the_pod(fed, tmp_path):
    project(tmp_path / "project")
    f = fed()
    f.stores.failing.add("pod-b")
    b = f.chef("b1", "pod-b", prints=TR)
    c = f.chef("c1", "pod-c", prints=TR, queued=100)       # dearer: used only after b fails
    build = f.pod.build()
    done = build.done()
    assert done["ok"] and sorted(b.steps_run()) == STEPS
    failed = build.of("fetch_failed")
    assert sorted(ev["step"] for ev in failed) == STEPS
    assert all(ev["pod"] == "pod-b" and "pod pod-b" in ev["reason"] for ev in failed)
    assert {s["id"]: s["attempt"] for run in c.runs for s in run["steps"]} == \
        dict.fromkeys(STEPS, 2)
    assert (tmp_path / "project/out/a.up").read_bytes() == made("up:out/a.up")


def test_a_late_result_of_a_lost_lease_is_ignored_without_a_fetch(fed, tmp_path):
    project(tmp_path / "project")
    f = fed()
    b = f.chef("b1", "pod-b", prints=TR, lease_s=SHORT_LEASE_S, hold=True)
    build = f.pod.build()
    wait_for(lambda: sorted(b.steps_run()) == STEPS, what="b1 to take both steps")
    c = f.chef("c1", "pod-c", prints=TR)
    f.pod.clock.advance(SHORT_LEASE_S + 1)           # b1 is silent past its lease
    done = build.done()
    assert done["ok"] and sorted(c.steps_run()) == STEPS
    assert [ev["chef"] for ev in build.of("chef_lost")] == ["b1"]

    b.release()                                      # its results of attempt 1 come now
    wait_for(lambda: sum(1 for subject, data in f.pod.bus.log
                         if subject == f.pod.bus.subject(m.STEP_RESULTS)
                         and data["chef"] == "b1") == 2, what="b1's late results to arrive")
    assert "pod-b" not in f.stores.pods_fetched()
    assert f.pod.records()["up:out/a.up"].outputs == {"out/a.up": sha(made("up:out/a.up"))}


CYCLE = {
    "computepods.toml": """
        [project]
        name = "cycle"
        default = ["doc.pdf"]
        {extra}

        [[rule]]
        name = "tex"
        inputs = ["doc.tex", "doc.bbl"]
        outputs = ["doc.pdf"]
        command = "tr a-z A-Z < {{in[0]}} > {{out}}"
        discover = "fls"

        [[rule]]
        name = "bib"
        inputs = ["doc.pdf"]
        outputs = ["doc.bbl"]
        command = "tr a-z A-Z < {{in}} > {{out}}"
    """,
    "doc.tex": "text\n",
}


def test_a_cyclic_group_runs_on_one_chef_pass_after_pass(fed, tmp_path):
    project(tmp_path / "project", files=CYCLE)
    f = fed()
    b = f.chef("b1", "pod-b", prints=TR, then_queued=50)   # dear once it has the group
    c = f.chef("c1", "pod-c", prints=TR)
    build = f.pod.build()
    assert build.done()["ok"], build.of("fail")
    assert build.of("fixpoint")
    assert c.steps_run() == []                        # the group stays on b1, pass after pass
    assert b.steps_run() == ["tex:doc.pdf", "bib:doc.bbl", "tex:doc.pdf"]
    steps = [s for run in b.runs for s in run["steps"]]
    assert steps[2]["copy_in"] == {"doc.pdf": sha(made("tex:doc.pdf"))}    # its last output
    assert all(set(s.get("copy_in", {})) <= set(s["files"]) for s in steps)


DEPFILE = {
    "computepods.toml": """
        [project]
        name = "headers"
        default = ["obj/a.o"]

        [[rule]]
        name = "cc"
        inputs = ["src/%.c"]
        outputs = ["obj/%.o"]
        depfile = "obj/%.d"
        command = "tr a-z A-Z < {in} > {out}"
    """,
    "src/a.c": '#include "a.h"\n',
    "include/a.h": "#define A 1\n",
}


def test_a_first_run_that_discovers_its_inputs_runs_on_our_own_chef(fed, tmp_path):
    project(tmp_path / "project", files=DEPFILE)
    f = fed()
    busy_local = f.chef("a1", OURS, prints=TR, queued=20,
                        discovered={"cc:obj/a.o": ["include/a.h"]})
    remote = f.chef("b1", "pod-b", prints=TR, discovered={"cc:obj/a.o": ["include/a.h"]})
    assert f.pod.build().done()["ok"]
    assert busy_local.steps_run() == ["cc:obj/a.o"] and remote.steps_run() == []

    (tmp_path / "project/include/a.h").write_text("#define A 2\n")
    assert f.pod.build().done()["ok"]                # its inputs are known now: cost decides
    assert remote.steps_run() == ["cc:obj/a.o"]
    assert remote.runs[0]["steps"][0]["files"] == {
        "src/a.c": sha(b'#include "a.h"\n'), "include/a.h": sha(b"#define A 2\n")}


def test_a_first_run_with_no_chef_of_ours_is_sent_the_project_files(fed, tmp_path):
    project(tmp_path / "project", files=DEPFILE)
    f = fed()
    remote = f.chef("b1", "pod-b", prints=TR, discovered={"cc:obj/a.o": ["include/a.h"]})
    assert f.pod.build().done()["ok"]
    files = remote.runs[0]["steps"][0]["files"]
    assert files["include/a.h"] == sha(b"#define A 1\n")       # undeclared, but sent
    assert "src/a.c" in files and "computepods.toml" in files
    assert not any(p.startswith(".computepods") for p in files)
    assert (tmp_path / "project/obj/a.o").read_bytes() == made("cc:obj/a.o")


def test_planning_needs_a_pack_tool_somewhere_in_the_federation(fed, tmp_path, monkeypatch):
    (tmp_path / "empty-bin").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))      # no cc on this machine
    project(tmp_path / "project", files=C_PACK)
    f = fed()
    offered: dict = {}
    f.fed.offered = lambda: offered
    done = f.pod.build().done()
    assert not done["ok"] and done["code"] == 2
    assert "needs cc, which neither this machine nor any pod of the federation has" in \
        done["error"]

    offered["cc"] = {"f" * 64}                      # pod-b's chef has it
    b = f.chef("b1", "pod-b", prints={"cc": "OURS"})
    assert f.pod.build().done()["ok"]
    assert b.steps_run() == ["c.compile:src/a.o"]


MANY = {
    "computepods.toml": """
        [project]
        name = "many"
        default = [{targets}]

        [[rule]]
        name = "up"
        inputs = ["src/%.txt"]
        outputs = ["out/%.up"]
        command = "tr a-z A-Z < {{in}} > {{out}}"
    """.replace("{targets}", ", ".join(f'"out/{i}.up"' for i in range(20))),
    **{f"src/{i}.txt": f"{i}\n" for i in range(20)},
}


def test_remote_steps_go_in_smaller_batches_local_ones_as_before(fed, tmp_path):
    from computepods.coordinator.dispatch import REMOTE_BATCH
    project(tmp_path / "project", files=MANY)
    f = fed()
    b = f.chef("b1", "pod-b", prints=TR, slots=2)
    assert f.pod.build().done()["ok"]
    assert len(b.steps_run()) == 20
    assert max(len(run["steps"]) for run in b.runs) <= REMOTE_BATCH < 20
    assert len(list((tmp_path / "project/out").iterdir())) == 20


def test_examples_c_with_no_chef_of_ours_sends_the_headers_and_the_objects(fed, tmp_path):
    import shutil
    example = Path(__file__).resolve().parents[3] / "examples" / "c"
    root = tmp_path / "project"
    shutil.rmtree(root)
    shutil.copytree(example, root)
    f = fed()
    b = f.chef("b1", "pod-b", prints={"cc": "OURS"},
               discovered={"c.compile:src/main.o": ["src/util.h"],
                           "c.compile:src/util.o": ["src/util.h"]})
    assert f.pod.build().done()["ok"]
    sent = {s["id"]: s["files"] for run in b.runs for s in run["steps"]}
    header = sha((root / "src/util.h").read_bytes())
    assert sent["c.compile:src/main.o"]["src/util.h"] == header     # the tree, on a first run
    assert sent["link:bin/hello"] == {"src/main.o": sha(made("c.compile:src/main.o")),
                                      "src/util.o": sha(made("c.compile:src/util.o"))}

    (root / "src/util.h").write_text("/* edited */\n" + (root / "src/util.h").read_text())
    b.runs.clear()
    assert f.pod.build().done()["ok"]
    sent = {s["id"]: s["files"] for run in b.runs for s in run["steps"]}
    assert sent["c.compile:src/main.o"] == {        # known now: only what it reads
        "src/main.c": sha((root / "src/main.c").read_bytes()),
        "src/util.h": sha((root / "src/util.h").read_bytes())}


def test_an_ownership_map_that_cannot_write_only_costs_placement(fed, tmp_path, caplog):
    from computepods.errors import DiskFull

    class Full(OwnerMap):
        def add(self, pod, contents):
            raise DiskFull("state.db: the disk is full")
    project(tmp_path / "project")
    f = fed()
    f.fed.owners = Full()
    f.chef("b1", "pod-b", prints=TR)
    assert f.pod.build().done()["ok"]
    assert (tmp_path / "project/out/a.up").read_bytes() == made("up:out/a.up")
    assert "the disk is full" in caplog.text


def test_a_remote_chef_claiming_a_source_as_its_output_changes_nothing(fed, tmp_path):
    project(tmp_path / "project")
    f = fed()
    f.chef("b1", "pod-b", prints=TR, extra_outputs=("src/b.txt",))
    build = f.pod.build()
    assert not build.done()["ok"]
    assert (tmp_path / "project/src/b.txt").read_text() == "beta\n"
    assert not (tmp_path / "project/out").exists() and f.stores.calls == []
    assert "pod pod-b reported outputs the step does not make: src/b.txt" in \
        build.of("fail")[0]["reason"]


def test_a_cyclic_group_whose_chef_is_lost_moves_whole_to_one_other_chef(fed, tmp_path):
    project(tmp_path / "project", files=CYCLE)
    f = fed()
    b = f.chef("b1", "pod-b", prints=TR, lease_s=SHORT_LEASE_S, hold=True)
    build = f.pod.build()
    wait_for(lambda: b.steps_run() == ["tex:doc.pdf"], what="b1 to take the group's first step")
    c = f.chef("c1", "pod-c", prints=TR, then_queued=50)     # dear once it has a step
    d = f.chef("d1", "pod-d", prints=TR, then_queued=50)
    f.pod.clock.advance(SHORT_LEASE_S + 1)
    assert build.done()["ok"], build.of("fail")
    took = [chef for chef in (c, d) if chef.steps_run()]
    assert len(took) == 1 and took[0].steps_run() == ["tex:doc.pdf", "bib:doc.bbl",
                                                       "tex:doc.pdf"]


def test_a_fetch_that_fails_with_no_other_pod_fails_the_step_naming_the_pod(fed, tmp_path):
    project(tmp_path / "project")
    f = fed()
    f.stores.failing.add("pod-b")
    f.chef("b1", "pod-b", prints=TR)
    build = f.pod.build()
    wait_for(lambda: len(build.of("fetch_failed")) == 2, what="both fetches to fail")
    f.pod.clock.advance(UNFIT_WAIT_S + 1)
    done = build.done()
    assert not done["ok"] and not (tmp_path / "project/out").exists()
    assert all("pod pod-b failed to hand back its outputs" in ev["reason"]
               for ev in build.of("fail"))


def test_our_own_chefs_get_run_messages_as_on_one_machine(fed, tmp_path):
    project(tmp_path / "project")
    f = fed()
    a = f.chef("a1", OURS, prints=TR)
    assert f.pod.build().done()["ok"]
    assert [("origin" in run, [("files" in s) for s in run["steps"]]) for run in a.runs] == \
        [(False, [False, False])]
    assert f.stores.calls == [] and f.owners.by_pod() == {}


def test_a_chef_silent_past_its_lease_between_builds_is_given_nothing(fed, tmp_path):
    project(tmp_path / "project")
    f = fed()
    b = f.chef("b1", "pod-b", prints=TR, lease_s=SHORT_LEASE_S)
    f.pod.clock.advance(SHORT_LEASE_S + 1)           # b1 stopped while no build ran
    c = f.chef("c1", "pod-c", prints=TR, queued=50)  # busy: idle b1 would look cheaper
    assert f.pod.build().done()["ok"]
    assert b.steps_run() == [] and sorted(c.steps_run()) == STEPS


def test_a_step_refused_for_a_missing_program_no_other_chef_has_fails_naming_it(fed, tmp_path):
    project(tmp_path / "project")
    f = fed()
    f.chef("b1", "pod-b", prints={"cc": "X"}, lacks=("tr",))
    f.chef("c1", "pod-c", prints={"cc": "X"}, lacks=("tr",))
    build = f.pod.build()
    assert not build.done()["ok"]
    fails = build.of("fail")
    assert fails and all("no program 'tr'" in ev["reason"] for ev in fails), fails


def test_a_chef_holds_about_WINDOW_S_of_steps_the_rest_wait_for_the_first_free(fed, tmp_path):
    from computepods.coordinator.dispatch import WINDOW_S
    project(tmp_path / "project", files=MANY)
    f = fed()
    b = f.chef("b1", "pod-b", prints=TR, slots=2, typical_s=1.0, hold=True)
    c = f.chef("c1", "pod-c", prints=TR, slots=2, typical_s=1.0, hold=True)
    window = max(4, round(2 * WINDOW_S / 1.0))      # 2 slots of 1 s steps
    build = f.pod.build()
    md = f.pod.majordomo
    wait_for(lambda: len(b.steps_run()) == len(c.steps_run()) == window,
             what=f"each chef to hold {window} steps")
    wait_for(lambda: md.build is not None and md.build.waiting == 20 - 2 * window,
             what="the rest to wait at the MajorDomo")
    b.release()                                 # b frees first: it gets what waited
    wait_for(lambda: len(b.steps_run()) == 20 - window, what="b to get the rest")
    c.release()
    assert build.done()["ok"]
    assert len(list((tmp_path / "project/out").iterdir())) == 20
