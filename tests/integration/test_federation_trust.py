"""Trust on the federation, on real pods: A a Pod holding the project with
no chef of its own, B and C `cpod chef` processes in empty directories,
each on its own member of a 3-server NATS cluster, each serving its store
over SFTP on 127.0.0.1 (tests/integration/test_federation.py).

What a pod refuses, and says so naming whom: a host key nobody pinned or
that is not the one announced, a pod whose key changed since its first
hello (its build goes to the others), an SFTP path outside ``/sha256/``, a
run whose files escape the workspace, a run published by a role that may
not publish one.  And examples/c, whose compile steps discover their
headers, builds on the federation as on one machine."""
from __future__ import annotations

import contextlib
import hashlib
import logging
import queue
import shutil
import subprocess
from pathlib import Path

import pytest

from computepods.bus import messages as m
from computepods.bus.auth import API, CHEF, MAJORDOMO, WATCHER, Credentials
from computepods.bus.bridge import NatsBridge
from computepods.bus.chefwire import RunMessage, RunStep
from computepods.bus.client import request_build
from computepods.charts.majordomo import MajorDomo
from computepods.chef.step import rule_to_dict
from computepods.errors import BusError, HostKeyRefused
from computepods.federation.workspace import tree_name
from computepods.planning.resolve import bind
from computepods.pod.pod import Pod, PodOptions
from computepods.project.model import Rule
from computepods.transfer.endpoint import Endpoint
from computepods.transfer.keys import PodKeys, key_fingerprint
from computepods.transfer.pull import Puller, connect
from computepods.transfer.storesftp import remote_path
from chefpods import PROJECT, ChefPod, one_machine_build, tree
from cpodrun import write
from helpers import wait_for

EXAMPLE_C = Path(__file__).resolve().parents[2] / "examples" / "c"
WORKSPACE = Path("cache/computepods/workspace")      # a chef pod's, under its home
UP_S = 30.0                # seconds the pods get to hear each other
RUN_S = 20.0               # seconds a chef pod gets to run a one-line step
REFUSED_S = 10.0           # seconds a server or pod gets to say it refused
MARK = Rule(name="mark", inputs=(), outputs=("marks/%.txt",), command="echo ran > {out}")


def files_of(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*"))
            if p.is_file()}


def built(root: Path) -> dict[str, bytes]:
    """Every file of the tree, depfiles whole: they name project paths, not
    the scratch dir of whichever pod built the object."""
    return tree(root)


@pytest.fixture
def federation(tmp_path, nats_cluster, monkeypatch):
    """start(files) -> (A, B, C) on those project files; all stopped at the end."""
    for name, value in nats_cluster.users.env(MAJORDOMO).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "a-cache"))
    started: list = []

    def start(files: dict[str, str]):
        chefs = [ChefPod(tmp_path / pod, url, nats_cluster.users, pod)
                 for pod, url in (("podB", nats_cluster.urls[1]), ("podC", nats_cluster.urls[2]))]
        started.extend(chefs)
        a = Pod(write(tmp_path / "a", files),
                PodOptions(nats_url=nats_cluster.urls[0], federate=True, chefs=0, slots=2,
                           sftp_listen="127.0.0.1")).start()
        started.insert(0, a)
        wait_for(lambda: chef_names(a) == {"podB-chef", "podC-chef"}
                 and all(a.member.roster.is_live(c.pod) for c in chefs), timeout=UP_S,
                 what="pod A to hear both chef pods: " + " | ".join(c.output()[-400:]
                                                                  for c in chefs))
        return a, *chefs
    try:
        yield start
    finally:
        for part in started:
            part.stop()
        assert not any(getattr(c, "killed", False) for c in started), "a chef pod ignored SIGTERM"


@pytest.fixture
def bus(nats_cluster):
    """client(role or None, member) -> a NatsBridge logged in as that role; all stopped."""
    bridges: list[NatsBridge] = []

    def client(role: str | None, member: int = 1) -> NatsBridge:
        creds = nats_cluster.users.credentials(role) if role else Credentials()
        bridge = NatsBridge(nats_cluster.urls[member], name=f"test:{role}", credentials=creds)
        bridges.append(bridge)
        return bridge.start()
    yield client
    for bridge in bridges:
        bridge.stop()


def chef_names(a: Pod) -> set[str]:
    md = next(c for c in a.charts if isinstance(c, MajorDomo))
    return {c.name for c in md.chefs}


def a_tree_on(chef: ChefPod, a: Pod) -> Path:
    """Where chef pod `chef` builds the steps of pod A."""
    return chef.home / WORKSPACE / "trees" / tree_name(a.pod_id)


def mark_run(origin: str, *stems: str, files: dict[str, dict[str, str]] | None = None,
             chef: str = "podB-chef") -> dict:
    """A run message: for each stem a step writing marks/<stem>.txt."""
    steps = [RunStep(bind(MARK, s).id, 1, MARK.name, s, {}, files=(files or {}).get(s, {}))
             for s in stems]
    return RunMessage("trust-test", chef, {MARK.name: rule_to_dict(MARK)}, steps,
                      origin).to_dict()


# -- 1. host keys ---------------------------------------------------------------------

def test_a_host_key_nobody_pinned_or_not_the_one_announced_is_refused_naming_the_pod(
        federation, tmp_path):
    a, b, c = federation(PROJECT)
    other = PodKeys.load_or_create(tmp_path / "other-keys").host_public
    real = a.member.roster.endpoint("podB")
    assert real is not None
    sha = "0" * 64

    with pytest.raises(HostKeyRefused, match="pod 'podX' is unknown"):
        a.member.puller.fetch("podX", sha)                  # a pod no hello announced

    wrong = Puller(a.member.store, a.member.keys,
                   lambda pod: Endpoint(pod, real.host, real.port, other))
    try:
        with pytest.raises(HostKeyRefused, match="pod 'podB' at 127.0.0.1") as refused:
            wrong.fetch("podB", sha)                        # B's server, another key pinned
    finally:
        wrong.close()
    assert key_fingerprint(real.host_key) in str(refused.value)     # what B presented
    assert key_fingerprint(other) in str(refused.value)             # what was pinned

    problem = a.member.puller.probe(Endpoint("podB", real.host, real.port, other))
    assert problem is not None and "'podB'" in problem and "refused" in problem
    wait_for(lambda: a.member.puller.probe(real) is None, timeout=UP_S,   # once B heard A,
             what="podB to let pod A in with the key it announced")      # the real one is in


# -- 2. a changed host key ------------------------------------------------------------

def test_a_chef_pod_with_new_keys_is_refused_and_the_build_goes_to_the_others(
        federation, nats_cluster, tmp_path, caplog):
    a, b, c = federation(PROJECT)
    expected = one_machine_build(tmp_path / "alone", PROJECT)
    b.stop()
    shutil.rmtree(b.home / WORKSPACE / "keys")             # its keys, made anew on start
    with caplog.at_level(logging.WARNING, "computepods.federation"), \
            contextlib.ExitStack() as stack:
        again = ChefPod(b.home, nats_cluster.urls[1], nats_cluster.users, "podB")
        stack.callback(again.stop)
        wait_for(lambda: a.member.roster.refused > 0 and "podB-chef" in chef_names(a),
                 timeout=UP_S, what="pod A to refuse podB's new hello: " + again.output()[-400:])
        said = [r.getMessage() for r in caplog.records if "'podB'" in r.getMessage()]
        assert said and "pinned" in said[0] and "forget" in said[0], caplog.messages
        assert not a.member.roster.trusts("podB") and a.member.roster.trusts("podC")

        assert request_build(a.bridge, [], a.root) == 0, again.output() + c.output()
        assert built(a.root) == expected
        held = {pod for pod, (n, _) in a.federation.owners.by_pod().items() if n}
        assert "podC" in held and "podB" not in held, held
        assert not a_tree_on(again, a).exists()              # nothing was placed on B
    assert not again.killed


# -- 3. path escapes ------------------------------------------------------------------

ESCAPES = ("/etc/passwd", "../../../../etc/passwd", "src/a.txt", "/src/a.txt",
           "computepods.toml", "/sha256/../src/a.txt", "/sha256/../../etc/passwd",
           "/sha256/" + hashlib.sha256(Path("/etc/passwd").read_bytes()).hexdigest(),
           "/.computepods/state.db", "/sha256", "/")


def test_an_sftp_path_escape_is_refused_by_the_store_server(federation, tmp_path):
    a, b, c = federation(PROJECT)
    b_keys = PodKeys.load_or_create(b.home / WORKSPACE / "keys")    # an authorised client
    kept = tmp_path / "kept.txt"
    kept.write_text("in A's store\n")
    sha = a.member.store.add(kept)
    client = connect(a.member.server.endpoint(a.pod_id), b_keys)
    try:
        sftp = client.open_sftp()
        with sftp.open(remote_path(sha)) as f:               # B is let in: what is refused
            assert f.read() == b"in A's store\n"             # below is refused by its path
        for path in ESCAPES:
            with pytest.raises(OSError):
                sftp.open(path).read()
            with pytest.raises(OSError):
                sftp.stat(path)
        for verb in (lambda: sftp.listdir("/"), lambda: sftp.listdir("/sha256"),
                     lambda: sftp.open("/sha256/" + "1" * 64, "w"),
                     lambda: sftp.remove(remote_path(sha)), lambda: sftp.mkdir("/x"),
                     lambda: sftp.rename(remote_path(sha), "/x")):
            with pytest.raises(OSError):
                verb()
        assert a.member.store.has(sha)
        sftp.close()
    finally:
        client.close()


def test_a_run_whose_files_escape_the_workspace_is_refused_by_the_chef_pod(federation, bus):
    a, b, c = federation(PROJECT)
    sha = hashlib.sha256(b"x").hexdigest()
    escapes = {"up": {"../../outside.txt": sha}, "abs": {"/tmp/outside.txt": sha},
               "state": {".computepods/state.db": sha}}
    client, results = bus(MAJORDOMO), queue.Queue()
    client.listen(m.STEP_RESULTS, results)
    reply = client.request_sync(
        m.CHEF_RUN, mark_run(a.pod_id, "ok", *escapes, files=escapes), chef=b.chef)
    rejected = {r["id"]: r["reason"] for r in reply["rejected"]}
    assert set(rejected) == {bind(MARK, s).id for s in ("up", "abs")}, reply
    assert "'../../outside.txt' is not inside" in rejected[bind(MARK, "up").id]
    assert "'/tmp/outside.txt' is not inside" in rejected[bind(MARK, "abs").id]

    # The state dir is refused as the files are put in place: that step fails, unrun.
    finished: dict[str, dict] = {}

    def heard_both() -> bool:
        while not results.empty():
            for item in results.get_nowait().data.get("results", []):
                if item.get("event") == "finished":
                    finished[item["id"]] = item
        return {bind(MARK, "ok").id, bind(MARK, "state").id} <= set(finished)
    wait_for(heard_both, timeout=RUN_S, what="podB's results: " + b.output()[-600:])
    assert finished[bind(MARK, "ok").id]["ok"]
    state = finished[bind(MARK, "state").id]
    assert not state["ok"] and ".computepods/state.db" in state["reason"], state
    tree_b = a_tree_on(b, a)
    assert (tree_b / "marks/ok.txt").exists()
    for stem in escapes:
        assert not (tree_b / f"marks/{stem}.txt").exists()
    assert not (tree_b / ".computepods/state.db").exists()
    assert not (tree_b.parent.parent / "outside.txt").exists()
    assert not Path("/tmp/outside.txt").exists()


# -- 4. unauthorised runs -------------------------------------------------------------

def test_a_run_published_by_a_role_that_may_not_runs_nothing(federation, bus):
    a, b, c = federation(PROJECT)
    for role in (WATCHER, API, CHEF):           # a chef pod may not make another run either
        client = bus(role)
        client.publish(m.CHEF_RUN, mark_run(a.pod_id, role), chef=b.chef)
        wait_for(lambda: any("permissions violation" in e.lower() for e in client.stats.errors),
                 timeout=REFUSED_S, what=f"the server to refuse the {role} role's run")
    with pytest.raises(BusError, match="refused a client without credentials"):
        bus(None)
    # The same run from the role that may send one does run (so the test can fail).
    bus(MAJORDOMO).publish(m.CHEF_RUN, mark_run(a.pod_id, "majordomo"), chef=b.chef)
    tree_b = a_tree_on(b, a)
    wait_for(lambda: (tree_b / "marks/majordomo.txt").exists(), timeout=RUN_S,
             what="the majordomo's run to run on podB: " + b.output()[-600:])
    assert sorted(p.name for p in (tree_b / "marks").iterdir()) == ["majordomo.txt"]


# -- 5. examples/c --------------------------------------------------------------------

def test_examples_c_builds_on_the_federation_as_on_one_machine(federation, tmp_path):
    project = files_of(EXAMPLE_C)
    a, b, c = federation(project)
    assert request_build(a.bridge, [], a.root) == 0, b.output() + c.output()
    assert built(a.root) == one_machine_build(tmp_path / "alone", project)
    for source in ("main", "util"):               # each found the header it includes
        assert "src/util.h" in (a.root / f"src/{source}.d").read_text().split()
    before = built(a.root)

    # A header edit that changes every object including it.
    edited = {**project, "src/util.h": project["src/util.h"].replace(
        "#endif", 'static const char util_h[] __attribute__((used)) = "v2";\n\n#endif')}
    (a.root / "src/util.h").write_text(edited["src/util.h"])
    assert request_build(a.bridge, [], a.root) == 0, b.output() + c.output()
    after = built(a.root)
    assert after == one_machine_build(tmp_path / "alone-edited", edited)
    changed = {k for k in after if after[k] != before.get(k)}
    assert {"src/util.h", "src/main.o", "src/util.o", "bin/hello"} <= changed, changed
    run = subprocess.run([str(a.root / "bin/hello"), "pods"], capture_output=True, text=True,
                         timeout=10)
    assert run.stdout == "Hello, pods!\n"
