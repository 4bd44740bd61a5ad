"""One federation, two users' projects: each project's pod is on its own
namespace (`a`, `b`) of one nats-server whose users `cpod nats-config
--namespace a --namespace b` wrote, and one chef pod (`cpod chef
--namespace a --namespace b`, no project) builds for both at once, with one
store and one SFTP server.  No directory is shared: every byte a step reads
or makes moves by hash over SFTP."""
from __future__ import annotations

import concurrent.futures
import queue
import threading
import time

import pytest

from computepods.bus import messages as m
from computepods.bus.auth import CHEF, MAJORDOMO, PASSWORD_VAR, ROLES, BusUsers
from computepods.bus.bridge import NatsBridge
from computepods.bus.chefwire import RunStep
from computepods.bus.client import request_build
from computepods.charts.majordomo import MajorDomo
from computepods.chef.step import rule_to_dict
from computepods.cli.cpod import main
from computepods.pod.member import FIND_POD_S
from computepods.pod.pod import Pod, PodOptions
from computepods.project.model import Rule
from chefpods import ChefPod, one_machine_build, project, tree
from cpodrun import write
from federation import ConfiguredServer, env_file
from helpers import wait_for

NAMESPACES = ("a", "b")
STEMS = {"a": "abcdef", "b": "pqrstu"}       # two projects, no step id in common
UP_S = 30.0                # seconds the pods get to hear each other
BUILD_S = 120.0            # seconds each build may take
UP = Rule("up", ("src/%.txt",), ("out/%.txt",), "tr a-z A-Z < {in} > {out}")


def users_written(conf) -> BusUsers:
    """The bus users `cpod nats-config` wrote, as its .env files hold them."""
    return BusUsers(NAMESPACES, {role: env_file(conf / f"{role}.env")[PASSWORD_VAR]
                                 for role in ROLES})


class Heard:
    """What a pod's bridge hears of some signals on its namespace."""

    def __init__(self, bridge, *signals: str):
        self._queues: dict[str, "queue.Queue[m.Message]"] = {s: queue.Queue() for s in signals}
        self._seen: dict[str, list[dict]] = {s: [] for s in signals}
        for signal, into in self._queues.items():
            bridge.listen(signal, into)

    def __getitem__(self, signal: str) -> list[dict]:
        into = self._queues[signal]
        while not into.empty():
            self._seen[signal].append(into.get_nowait().data)
        return list(self._seen[signal])


@pytest.fixture
def shared(tmp_path, monkeypatch):
    """(pods by namespace, the chef pod): a federated Pod with no chef of its
    own on each of `a` and `b`, and one chef pod serving both."""
    conf = tmp_path / "conf"
    assert main(["nats-config", str(conf), *(f"--namespace={ns}" for ns in NAMESPACES)]) == 0
    server = ConfiguredServer(conf / "nats.conf", tmp_path / "nats.log")
    users = users_written(conf)
    for name, value in env_file(conf / f"{MAJORDOMO}.env").items():
        monkeypatch.setenv(name, value)
    chef = ChefPod(tmp_path / "podS", server.url, users, "podS", slots=2,
                   args=tuple(f"--namespace={ns}" for ns in NAMESPACES),
                   env=env_file(conf / f"{CHEF}.env"))
    pods: dict[str, Pod] = {}
    try:
        for ns in NAMESPACES:
            root = write(tmp_path / f"project-{ns}", project(STEMS[ns]))
            pods[ns] = Pod(root, PodOptions(nats_url=server.url, namespace=ns, federate=True,
                                            chefs=0, slots=2, sftp_listen="127.0.0.1")).start()
        for ns, pod in pods.items():
            md = next(c for c in pod.charts if isinstance(c, MajorDomo))
            wait_for(lambda: {c.name for c in md.chefs} == {f"podS-chef-{ns}"}
                     and pod.member.roster.is_live("podS"), timeout=UP_S,
                     what=f"the pod of namespace {ns} to hear the chef pod: {chef.output()[-600:]}")
        yield pods, chef
    finally:
        for pod in pods.values():
            pod.stop()
        chef.stop()
        stopped = server.stop()
        assert not chef.killed, "the chef pod ignored SIGTERM"
        assert stopped, server.log.read_text()


def test_one_chef_pod_builds_two_namespaces_projects_at_once_each_as_one_machine_would(
        shared, tmp_path):
    pods, chef = shared
    expected = {ns: one_machine_build(tmp_path / f"alone-{ns}", project(STEMS[ns]))
                for ns in NAMESPACES}
    heard = {ns: Heard(pod.bridge, m.PODS_HELLO, m.CHEF_RUN, m.STEP_RESULTS)
             for ns, pod in pods.items()}
    spans: dict[str, list[float]] = {ns: [] for ns in NAMESPACES}
    lock = threading.Lock()

    def build(ns: str) -> int:
        def seen(event: dict) -> None:
            with lock:
                spans[ns].append(time.monotonic())
        return request_build(pods[ns].bridge, [], pods[ns].root, on_event=seen)

    with concurrent.futures.ThreadPoolExecutor(len(NAMESPACES)) as pool:
        done = {ns: pool.submit(build, ns) for ns in NAMESPACES}
        codes = {ns: f.result(timeout=BUILD_S) for ns, f in done.items()}
    assert codes == {"a": 0, "b": 0}, chef.output()[-2000:]
    for ns, pod in pods.items():
        assert tree(pod.root) == expected[ns]
        assert set(pod.federation.owners.by_pod()) == {"podS"}     # the chef pod built it all
    assert max(s[0] for s in spans.values()) < min(s[-1] for s in spans.values()), \
        "the two builds did not overlap"

    for ns, pod in pods.items():                     # neither saw the other's pods or steps
        ours = {f"up:out/{n}.txt" for n in STEMS[ns]}
        # two of our own hellos: a whole hello period, in which every pod
        # this namespace can hear said hello at least once
        wait_for(lambda: [h["pod"] for h in heard[ns][m.PODS_HELLO]].count(pod.pod_id) >= 2
                 and "podS" in {h["pod"] for h in heard[ns][m.PODS_HELLO]}, timeout=UP_S,
                 what=f"a hello period heard on namespace {ns}")
        hellos = {h["pod"] for h in heard[ns][m.PODS_HELLO]}
        assert hellos == {"podS", pod.pod_id}, hellos
        assert {p.pod for p in pod.member.roster.pods()} == {"podS"}
        runs = heard[ns][m.CHEF_RUN]
        assert runs and {r["chef"] for r in runs} == {f"podS-chef-{ns}"}
        assert {r["origin"] for r in runs} == {pod.pod_id}
        results = [r["id"] for msg in heard[ns][m.STEP_RESULTS] for r in msg["results"]]
        assert results and not any(r.startswith("up:") and r not in ours for r in results), \
            results

    # one store and one SFTP server for both: the chef pod announced the same
    # endpoint on each namespace
    endpoints = {ns: pod.member.roster.endpoint("podS") for ns, pod in pods.items()}
    assert endpoints["a"] == endpoints["b"]


class Answering:
    """steps.results as a MajorDomo hears them: each answered, the finished kept."""

    def __init__(self, bridge):
        self.bridge, self.finished = bridge, queue.Queue()

    def put(self, msg: m.Message) -> None:
        for item in msg.data["results"]:
            if item["event"] == "finished":
                self.finished.put(item)
        self.bridge.respond(msg, {"ok": True})


def test_a_step_sent_on_one_namespace_cannot_pull_the_files_of_a_pod_of_the_other(shared):
    """A user of `a` names the pod of `b` as the origin of a step's files,
    with the hash of a file b's store holds: the chef pod, which b's store
    server lets in (b built on it), must not pull it for them, for b's pod
    is not a pod of `a`."""
    pods, chef = shared
    victim = pods["b"]
    assert request_build(victim.bridge, [], victim.root) == 0    # the chef pod knows b's pod
    secret = victim.root / "secret.txt"
    secret.write_bytes(b"b's own\n")
    sha = victim.member.store.add(secret)                # only b's store has it
    before = victim.member.moved_out()
    rogue = NatsBridge(pods["a"].url, namespace="a", name="rogue").start()
    try:
        results = Answering(rogue)
        rogue.listen(m.STEP_RESULTS, results)
        step = RunStep("up:out/p.txt", 1, "up", "p", {"src/p.txt": sha},
                       files={"src/p.txt": sha})
        run = {"build": "rogue-1", "chef": "podS-chef-a", "rules": {"up": rule_to_dict(UP)},
               "steps": [step.to_dict()], "origin": victim.pod_id}
        answer = rogue.request_sync(m.CHEF_RUN, run, chef="podS-chef-a", timeout=10)
        assert answer["accepted"] == ["up:out/p.txt"], answer
        result = results.finished.get(timeout=FIND_POD_S + 20)
    finally:
        rogue.stop()
    assert not result["ok"] and "could not be fetched" in result["reason"], result
    assert victim.pod_id in result["reason"] and "unknown" in result["reason"], result
    assert victim.member.moved_out() == before           # b's store served nothing more
    assert not list((chef.home / "cache").rglob(sha))     # and the chef pod holds no copy
