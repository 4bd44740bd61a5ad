"""A pod whose store the system's sshd serves (--sftp-sshd): pod A, a
federated Pod with no chef of its own, announces a real /usr/sbin/sshd
chrooted into its store; chef pod B (a `cpod chef` process) builds A's
steps, pulling their inputs from that sshd, which lets B in because
`cpod sftp-keys` (its AuthorizedKeysCommand) prints B's client key from
A's discovery cache.  A key no pod announced is refused by sshd; an sshd
presenting another host key than the one announced is refused by the
Puller.  Needs root (sshd chroots): without it the test fails, naming why."""
from __future__ import annotations

import shutil

import pytest

from computepods.bus.client import request_build
from computepods.charts.majordomo import MajorDomo
from computepods.errors import HostKeyRefused, TransferError
from computepods.federation.cachefile import known_pods
from computepods.pod.pod import Pod, PodOptions
from computepods.transfer.endpoint import Endpoint
from computepods.transfer.keys import PodKeys, key_fingerprint
from computepods.transfer.pull import Puller, connect
from computepods.transfer.store import ContentStore
from chefpods import PROJECT, SOURCES, ChefPod, tree
from cpodrun import write
from helpers import wait_for
from sshd import SystemSshd, chroot_able_dir, needs

UP_S = 20.0                # seconds the pods get to hear each other


def expected_outputs() -> dict[str, bytes]:
    """What `cpod build` of PROJECT makes: each source upper-cased, then all joined."""
    outs = {p.replace("src/", "out/"): t.upper().encode() for p, t in SOURCES.items()}
    return {**outs, "out/all.txt": b"".join(outs[f"out/{n}.txt"] for n in "abcdefgh")}


@pytest.fixture
def base(tmp_path):
    missing = needs()
    if missing:
        pytest.fail(missing)
    where = chroot_able_dir(tmp_path)
    yield where
    shutil.rmtree(where, ignore_errors=True)


@pytest.fixture
def served(base, tmp_path, nats_server, monkeypatch):
    """(A, B, sshd): A's store served by sshd, B a chef pod that heard A."""
    root = write(base / "a", PROJECT)
    store_dir = root / ".computepods" / "store"
    store_dir.mkdir(parents=True)
    sshd = SystemSshd(base / "sshd", store_dir, cache_home=tmp_path / "a-cache")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "a-cache"))
    a = b = None
    try:
        sshd.start()
        # B's own login name is not the one A's sshd takes: it logs in as A's hello says
        b = ChefPod(tmp_path / "podB", nats_server.url, nats_server.users, "podB",
                    env={"LOGNAME": "not-a-user", "USER": "not-a-user"})
        a = Pod(root, PodOptions(nats_url=nats_server.url, federate=True, chefs=0, slots=2,
                                 sftp_sshd=sshd.serving())).start()
        md = next(c for c in a.charts if isinstance(c, MajorDomo))
        wait_for(lambda: {c.name for c in md.chefs} == {"podB-chef"}
                 and a.member.roster.is_live("podB")
                 and any(h["pod"] == "podB" for h in known_pods("cp")),
                 timeout=UP_S, what="pod A to hear chef pod B: " + b.output()[-400:])
        yield a, b, sshd
    finally:
        if a is not None:
            a.stop()
        if b is not None:
            b.stop()
        sshd.stop()
        assert not (b and b.killed), "the chef pod ignored SIGTERM"
        assert not sshd.killed, "sshd ignored SIGTERM"


def test_a_chef_pod_builds_from_a_store_the_system_sshd_serves(served):
    a, b, sshd = served
    hello = a.member.hello()
    assert a.member.server is None                      # no server of A's own
    assert hello.sftp == Endpoint(a.pod_id, "127.0.0.1", sshd.port, sshd.host_public, sshd.user)

    assert request_build(a.bridge, [], a.root) == 0, b.output()[-2000:] + sshd.log()[-2000:]
    assert {p: t for p, t in tree(a.root).items() if p.startswith("out/")} == expected_outputs()
    assert {p for p, (n, _) in a.federation.owners.by_pod().items() if n} == {"podB"}
    b_key = next(h["client_key"] for h in known_pods("cp") if h["pod"] == "podB")
    # sshd let B in by the key `cpod sftp-keys` gave it: B pulled the sources from it
    assert f"Accepted publickey for {sshd.user}" in sshd.log()
    assert key_fingerprint(b_key) in sshd.log()
    assert a.member.moved_out() == 0                    # nothing left through another server


def test_sshd_refuses_a_key_no_pod_announced_and_the_puller_a_host_key_not_announced(
        served, tmp_path):
    a, _, sshd = served
    stranger = PodKeys.load_or_create(tmp_path / "stranger")
    at = Endpoint(a.pod_id, "127.0.0.1", sshd.port, sshd.host_public, sshd.user)
    with pytest.raises(TransferError, match="refused our client key"):
        connect(at, stranger).close()

    wrong = Endpoint(a.pod_id, "127.0.0.1", sshd.port, stranger.host_public, sshd.user)
    puller = Puller(ContentStore(tmp_path / "c-store"), stranger, {a.pod_id: wrong}.get)
    try:
        with pytest.raises(HostKeyRefused, match="not .* that its hello announced"):
            puller.fetch(a.pod_id, "0" * 64)
    finally:
        puller.close()
