"""Battery row: fuzzed bus messages on every subject.

Hypothesis writes messages for each subject a pod listens on, from that
subject's schema (each field right, wrong, missing or extra, with values
picked to hurt: non-strings in lists, negative and huge numbers, NaN,
paths that escape, NUL, the pod's own chef and step names), plus garbage
(bytes that are not JSON, JSON that is not an object, nesting 100,000
deep).  They go to a real, federated pod (its Herald and Roster listen to
pods.hello and pods.discover) on a real nats-server, in batches: what the
chef role may publish (chefs.status, steps.results, pods.hello, ...) from a
client with valid chef credentials, since a fuzzer the server refuses tests
nothing; the rest from the majordomo's login (the one that may say anything).

What must hold: no chart of the pod (Store, MajorDomo, Chef, Desk)
crashes, and afterwards the pod still builds correctly: a real build after
an edit, its output checked.  A forged result or run is the bus's business
(tests/chaos/test_forged_clients.py): here the sender is trusted, so the
run messages only carry harmless commands.
"""
from __future__ import annotations

import json
import math

import hypothesis
import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st

from computepods.bus import chefwire, payloads
from computepods.bus import messages as m
from computepods.bus.auth import CHEF, permissions
from computepods.bus.bridge import NatsBridge
from computepods.bus.loopback import subject_matches
from computepods.bus.client import request_build
from computepods.charts.desk import Desk
from computepods.charts.majordomo import MajorDomo
from computepods.pod.pod import Pod, PodOptions
from cpodrun import write
from helpers import wait_for

ROW = "fuzzed bus messages on every subject (hypothesis over each schema, plus garbage)"
MUST_HOLD = "0 chart crashes, the pod still builds correctly after"
BATCH = 50                      # messages per Hypothesis example, sent then flushed at once
QUIET_TIMEOUT_S = 120.0         # seconds the pod may take to work off what it was sent
FAKE_CHEFS = ("fz0", "fz1", "fz2")
SAFE_COMMANDS = ("true", "false", "exit 3", "echo fuzz")   # what a fuzzed run may carry
PROJECT = {
    "computepods.toml": """
        [project]
        default = ["out/all.txt"]

        [[rule]]
        name = "copy"
        inputs = ["src/%.txt"]
        outputs = ["out/%.txt"]
        command = "cp {in} {out}"

        [[rule]]
        name = "all"
        inputs = ["out/a.txt", "out/b.txt"]
        outputs = ["out/all.txt"]
        command = "cat {in} > {out}"
    """,
    "src/a.txt": "a\n",
    "src/b.txt": "b\n",
}
STEPS = ("copy:out/a.txt", "copy:out/b.txt", "all:out/all.txt")


@pytest.fixture
def pod(tmp_path, nats_server):
    root = write(tmp_path / "p", PROJECT)
    pod = Pod(root, PodOptions(nats_url=nats_server.url, slots=2, watch_targets=[],
                               federate=True, sftp_listen="127.0.0.1")).start()
    desk = Desk(pod.bridge, root, pod="fuzz", fabric=pod.fabric).start()
    pod.charts.append(desk)         # stopped, and its crashes counted, with the pod's
    yield pod
    pod.stop()


def charts_of(pod: Pod) -> list:
    """The pod's charts, with its federation's (Herald, its Scouts, the cache file's)."""
    member = pod.member
    extra = [member.herald, member.cache, *member.herald.scouts.values()] if member else []
    return [*pod.charts, *(c for c in extra if c is not None)]


def crashes(pod: Pod) -> dict[str, list]:
    return {c.name: [repr(e) for e in c.crashes] for c in charts_of(pod) if c.crashes}


def caught_bugs(caplog) -> list[str]:
    """Tracebacks a chart logged and went on from (the Desk's "a bug must
    not stop the Desk"): a crash too, for this row."""
    return [f"{r.name}: {r.getMessage()}" for r in caplog.records
            if r.exc_info and r.name.startswith("computepods")]


# --- values picked to hurt ------------------------------------------------------

_NAMES: dict[int, st.SearchStrategy[str]] = {}


def names(pod: Pod) -> st.SearchStrategy[str]:
    """Strings a handler may trip on, and the pod's own names."""
    if id(pod) not in _NAMES:
        _NAMES.clear()
        _NAMES[id(pod)] = _names(pod)
    return _NAMES[id(pod)]


def _names(pod: Pod) -> st.SearchStrategy[str]:
    chef = pod.chefs[0].chef
    return st.one_of(
        st.sampled_from(["", "out/a.txt", "out/all.txt", "src/a.txt", "nope", "../x",
                         "/etc/passwd", "a\x00b", "%", "-x", "x" * 5000, ".", "..",
                         str(pod.root), chef, *FAKE_CHEFS, *STEPS, "health", "graph", "log",
                         "builds", "explain", "artefact", "check", "events", "pods"]),
        st.text(max_size=20))


def numbers() -> st.SearchStrategy:
    return st.one_of(st.sampled_from([0, -1, -5, 1, 2, 10**18, -10**18, 2**63, 1e308,
                                      math.nan, math.inf, -math.inf, 0.5]),
                     st.integers(), st.floats())


def junk(pod: Pod) -> st.SearchStrategy:
    """Any JSON value, a little nested."""
    leaf = st.one_of(st.none(), st.booleans(), numbers(), names(pod))
    return st.recursive(leaf, lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(names(pod), inner, max_size=4)),
        max_leaves=8)


def typed(pod: Pod, types: tuple[type, ...], items: tuple[type, ...]) -> st.SearchStrategy:
    """A value of one of `types` (a list or object of `items`, if given)."""
    item = typed(pod, items, ()) if items else junk(pod)
    choices = []
    for t in types:
        if t is str:
            choices.append(names(pod))
        elif t is bool:
            choices.append(st.booleans())
        elif t in (int, float):
            choices.append(numbers())
        elif t is list:
            choices.append(st.lists(item, max_size=5))
        elif t is dict:
            choices.append(st.dictionaries(names(pod), item, max_size=4))
        elif t is type(None):
            choices.append(st.none())
    return st.one_of(*choices)


def step(pod: Pod) -> st.SearchStrategy[dict]:
    """A run's step: mostly well-formed, naming a fuzzed rule."""
    return st.fixed_dictionaries(
        {"id": names(pod), "attempt": st.one_of(st.integers(-2, 3), junk(pod)),
         "rule": st.sampled_from(["fz", "copy", "nope"])},
        optional={"stem": st.one_of(st.none(), names(pod)),
                  "inputs": st.dictionaries(names(pod), st.one_of(st.none(), names(pod)),
                                            max_size=3),
                  "known_outputs": st.one_of(st.lists(names(pod), max_size=3), junk(pod)),
                  "copy_in": st.one_of(st.dictionaries(names(pod), names(pod), max_size=2),
                                       junk(pod)),
                  "rule_fp": junk(pod)})


def rule() -> st.SearchStrategy[dict]:
    """A rule a fuzzed run carries: its command always one of SAFE_COMMANDS."""
    path = st.text("abc%/._-", max_size=8).map(lambda s: f"fuzz/{s}")
    return st.fixed_dictionaries(
        {"name": st.sampled_from(["fz", "copy"]), "command": st.sampled_from(SAFE_COMMANDS)},
        optional={"inputs": st.lists(path, max_size=2), "outputs": st.lists(path, max_size=2),
                  "tools": st.lists(st.text(max_size=4), max_size=2)})


def payload(pod: Pod, signal: str) -> st.SearchStrategy[dict]:
    """A payload for `signal`: mostly well-formed (every required field of
    its schema of the right type, the optional ones right or missing);
    else each field right, wrong or missing, "v" off now and then, and
    sometimes a field more."""
    schema = m.SCHEMAS[signal]
    right, rough = {}, {}
    for key, spec in schema.fields.items():
        value = typed(pod, spec.types, spec.items)
        if signal == m.CHEF_RUN and key == "rules":
            value = st.dictionaries(st.sampled_from(["fz", "copy"]), rule(), max_size=2)
        elif signal == m.CHEF_RUN and key == "steps":
            value = st.lists(step(pod), max_size=4)
        right[key] = value
        rough[key] = st.one_of(value, value, value, junk(pod))
    good = st.fixed_dictionaries(
        {k: v for k, v in right.items() if schema.fields[k].required},
        optional={k: v for k, v in right.items() if not schema.fields[k].required})
    bad = st.fixed_dictionaries({}, optional=rough)
    extra = st.dictionaries(names(pod).filter(lambda k: k not in schema.fields), junk(pod),
                            max_size=2)
    v = st.sampled_from([1, 1, 1, 1, 1, 1, 1, 0, 2, "1", None, True])
    return st.tuples(st.one_of(good, good, bad), extra, v).map(
        lambda t: {**t[1], **t[0], "v": t[2]})


def garbage() -> st.SearchStrategy[bytes]:
    deep = st.integers(m.MAX_DEPTH, 100_000).map(lambda n: b"[" * n + b"]" * n)
    deep_field = st.integers(m.MAX_DEPTH, 5000).map(
        lambda n: b'{"v": 1, "targets": ' + b"[" * n + b"]" * n + b"}")
    return st.one_of(st.binary(max_size=64), deep, deep_field,
                     st.sampled_from([b"", b"null", b"[]", b"1", b'"x"', b"{", b'{"v": 1',
                                      b'{"v": 1e999}', b'{"v": NaN}', b"\xff\xfe",
                                      b'{"v": 1, "targets": ["\\ud800"]}']))


def message(pod: Pod) -> st.SearchStrategy[tuple[str, bytes, str]]:
    """(subject, bytes, reply) on one of the subjects the pod listens on;
    each subject's strategy is built once (building them is what costs)."""
    ns, chef = pod.bridge.ns, pod.chefs[0].chef
    reply = st.sampled_from(["", "", "_INBOX.majordomo.fuzz"])   # answers go nowhere
    trash = garbage()
    per_subject = []
    for signal, route in sorted(m.ROUTES.items()):
        subject = route.subject(ns, chef=chef, build="b0")
        encoded = payload(pod, signal).map(lambda p: json.dumps(p).encode())
        per_subject.append(st.tuples(st.just(subject), st.one_of(encoded, encoded, encoded,
                                                                 trash), reply))
    return st.one_of(*per_subject)


# --- the row ----------------------------------------------------------------------

def test_fuzzed_bus_messages_crash_no_chart_and_the_pod_still_builds(pod, chaos, caplog,
                                                                    nats_server):
    row = chaos.row(ROW, MUST_HOLD)
    total = chaos.examples(full=10_000, short=200)
    row.count += total
    failures_before = len(row.failures)
    assert request_build(pod.bridge, [], pod.root) == 0          # a pod with a past
    fuzzer = NatsBridge(pod.url, name="fuzzer").start()          # the majordomo's login
    as_chef = NatsBridge(pod.url, name="chef-fuzzer",
                         credentials=nats_server.users.credentials(CHEF)).start()
    chef_may = permissions(CHEF, pod.bridge.ns).publish
    sent = 0

    @settings(max_examples=max(1, total // BATCH), database=None, deadline=None,
              phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    @hypothesis.seed(chaos.seed)
    @hypothesis.given(st.lists(message(pod), min_size=BATCH, max_size=BATCH))
    def send(batch):
        nonlocal sent
        chefs = [msg for msg in batch if any(subject_matches(p, msg[0]) for p in chef_may)]
        as_chef.publish_raw_batch([(subject, data, "") for subject, data, _ in chefs])
        fuzzer.publish_raw_batch([msg for msg in batch if msg not in chefs])
        sent += len(batch)
        row.tried(len(batch))
        found = crashes(pod)
        if found:
            row.failed(f"seed {chaos.seed}: after {sent} messages, charts crashed: {found}")
            raise AssertionError(found)
        row.held(len(batch))

    try:
        try:
            send()
        except AssertionError:
            pass                     # named in the row's failures; the pod is still checked
        builds_after(pod, fuzzer, row, caplog)
        handled = pod.bridge.stats.received - pod.bridge.stats.malformed
        # (Hypothesis leans to the rough payloads: about one in six is well-formed.)
        assert handled >= sent // 10, f"only {handled} of {sent} messages reached a chart"
    finally:
        fuzzer.stop()
        as_chef.stop()
    failures = row.failures[failures_before:]
    assert not failures, (f"chaos row {ROW!r} (replay with CP_CHAOS_SEED={chaos.seed}):\n  "
                          + "\n  ".join(failures))


def builds_after(pod: Pod, fuzzer: NatsBridge, row, caplog) -> None:
    """Once the pod has worked off the fuzz, a real build after an edit is right."""
    row.tried()
    md = next(c for c in pod.charts if isinstance(c, MajorDomo))
    try:
        wait_for(lambda: md.build is None and not len(md.requests), timeout=QUIET_TIMEOUT_S,
                 what="the MajorDomo to finish the builds the fuzz asked for")
        chef = pod.chefs[0].chef          # every chef the fuzz made up says goodbye
        for name in {*FAKE_CHEFS, *(c.name for c in md.chefs)} - {chef}:
            fuzzer.publish(m.CHEF_STATUS, chefwire.chef_status(name, "fuzz", 1, gone="fuzz over"))
        fuzzer.publish(m.CHEFS_QUERY, {})
        wait_for(lambda: [c.name for c in md.chefs] == [chef], what="only the pod's chef known")
        edited = pod.root / "src/b.txt"
        edited.write_text("b, edited\n")
        info = edited.stat()                # what the pod's watcher would say
        seen = md.requests.freshness.generation
        fuzzer.publish(m.FS_CHANGED, payloads.FsChanged(
            "fuzz", str(pod.root), "src/b.txt", "modified", size=info.st_size,
            mtime_ns=info.st_mtime_ns).to_dict())
        # The edit itself, not a late fuzzed change (the fuzzer's connection is not
        # the build request's, so a request could overtake the edit and be fresh).
        freshness = md.requests.freshness
        wait_for(lambda: freshness.generation > seen and "src/b.txt" in freshness.last_changes,
                 what="the MajorDomo to hear of the edit")
        assert request_build(pod.bridge, [], pod.root) == 0
        assert (pod.root / "out/all.txt").read_text() == "a\nb, edited\n"
        assert crashes(pod) == {}
        assert caught_bugs(caplog) == []
    except AssertionError as exc:
        row.failed(f"after the fuzz: {exc}")
        return
    row.held()
