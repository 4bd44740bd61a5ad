"""A store served by the system's sshd: what --sftp-sshd and --sftp-host-key
make, what `cpod sftp-keys` prints, a PodStore with no server of its own,
and the offers such a pod copies into its store (no sshd here: see
tests/integration/test_sshd.py)."""
from __future__ import annotations

import argparse
import io
import os

import pytest

from computepods.cli.sftpkeys import cmd_sftp_keys, sshd_from_args
from computepods.errors import MalformedMessage, UsageError
from computepods.federation.hello import PodHello
from computepods.federation.cachefile import remember_pods
from computepods.federation.offer import StoringOffers
from computepods.pod.podstore import PodStore
from computepods.transfer.endpoint import Endpoint
from computepods.transfer.sshd import (SshdServing, chroot_problem, read_host_key,
                                       sshd_config_block, sshd_serving, unique_keys)
from computepods.transfer.pull import local_user
from computepods.transfer.store import ContentStore
from podhellos import fake_key, hello_of


def host_key_file(tmp_path, comment: str = "root@host"):
    path = tmp_path / "ssh_host_ed25519_key.pub"
    path.write_text(f"{fake_key('sshd', comment)}\n")
    return path


def test_sftp_sshd_names_the_endpoint_and_the_host_key_file_its_key(tmp_path):
    got = sshd_serving("builder@10.0.0.5:2222", host_key_file(tmp_path))
    assert got == SshdServing("10.0.0.5", 2222, fake_key("sshd"), "builder")  # comment left out
    assert got.endpoint("podA") == Endpoint("podA", "10.0.0.5", 2222, fake_key("sshd"), "builder")
    assert sshd_serving("[::1]:22", host_key_file(tmp_path)).host == "::1"
    assert sshd_serving("h:22", host_key_file(tmp_path)).user == local_user()   # ours
    assert sshd_serving(None) is None and sshd_serving("") is None


@pytest.mark.parametrize("given", ["10.0.0.5", "10.0.0.5:", ":22", "host:0", "host:65536",
                                   "host:ssh", "@host:22", "u@host"])
def test_an_sftp_sshd_that_is_not_host_and_port_is_refused_by_name(tmp_path, given):
    with pytest.raises(UsageError, match=f"--sftp-sshd {given!r}: "):
        sshd_serving(given, host_key_file(tmp_path))


def test_a_host_key_file_missing_or_without_a_key_says_which_and_what_to_give(tmp_path):
    with pytest.raises(UsageError, match=r"--sftp-host-key .*nothere.pub: cannot read"):
        read_host_key(tmp_path / "nothere.pub")
    (tmp_path / "junk.pub").write_text("# not a key\nssh-ed25519 !!!\n")
    with pytest.raises(UsageError, match="holds no OpenSSH public key line"):
        sshd_serving("h:22", tmp_path / "junk.pub")


def test_the_options_give_the_serving_sshd_or_none(tmp_path):
    args = argparse.Namespace(sftp_sshd="127.0.0.1:2022",
                              sftp_host_key=str(host_key_file(tmp_path)))
    assert sshd_from_args(args) == SshdServing("127.0.0.1", 2022, fake_key("sshd"), local_user())
    assert sshd_from_args(argparse.Namespace(sftp_sshd=None, sftp_host_key=None)) is None


def test_sftp_keys_prints_each_live_pods_client_key_once_of_the_namespaces_asked(
        tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    remember_pods("cp", [hello_of("gone")], now=0.0, expiry_s=1.0)      # long expired
    remember_pods("cp", [hello_of("b"), hello_of("c", client_key=fake_key("client:b", "again"))])
    remember_pods("other", [hello_of("d")])
    out = io.StringIO()
    assert cmd_sftp_keys(argparse.Namespace(namespaces=None), out) == 0
    assert out.getvalue() == f"restrict {fake_key('client:b')}\n"
    out = io.StringIO()
    cmd_sftp_keys(argparse.Namespace(namespaces=["other", "cp"]), out)
    assert out.getvalue().splitlines() == [f"restrict {fake_key('client:d')}",
                                           f"restrict {fake_key('client:b')}"]


def test_a_hello_says_which_login_its_sshd_takes_and_a_bad_one_is_refused():
    hello = hello_of("a")
    sshd = SshdServing("127.0.0.1", 2022, fake_key("sshd"), "builder")
    with_user = PodHello(**{**hello.__dict__, "sftp": sshd.endpoint("a")}).to_dict()
    assert with_user["sftp"]["user"] == "builder"
    assert PodHello.from_dict(with_user).sftp.user == "builder"
    assert "user" not in hello.to_dict()["sftp"]                # our own server: any login
    assert PodHello.from_dict(hello.to_dict()).sftp.user is None
    for bad in ("root;rm", "", 7, "x" * 40):
        with pytest.raises(MalformedMessage, match="sftp.user must be a login name"):
            PodHello.from_dict({**with_user, "sftp": {**with_user["sftp"], "user": bad}})


def test_unique_keys_drops_comments_repeats_and_what_is_not_a_key():
    assert unique_keys([fake_key("a", "x"), "junk", fake_key("a", "y"), fake_key("b")]) == \
        [fake_key("a"), fake_key("b")]


def test_a_chroot_directory_others_may_write_is_named_first(tmp_path):
    d = tmp_path / "store"
    d.mkdir()
    os.chmod(d, 0o777)
    assert chroot_problem(d) in (f"{d} is writable by group or others (mode 777)",
                                 f"{d} is not owned by root")          # as root, or not


def test_the_sshd_config_block_chroots_into_the_store_read_only_by_the_keys_command(tmp_path):
    block = sshd_config_block("builder", tmp_path / "store", "/usr/local/bin/cpod sftp-keys")
    lines = [line.split(None, 1) for line in block.splitlines()]
    want = {"ChrootDirectory": str(tmp_path / "store"), "ForceCommand": "internal-sftp -R",
            "AuthorizedKeysCommand": "/usr/local/bin/cpod sftp-keys",
            "AuthorizedKeysCommandUser": "builder", "PasswordAuthentication": "no",
            "AllowTcpForwarding": "no", "X11Forwarding": "no", "AuthorizedKeysFile": "none"}
    assert lines[0] == ["Match", "User builder"]
    assert {k: v for k, v in dict(line for line in lines[1:]).items() if k in want} == want


def test_a_pod_store_served_by_sshd_starts_no_server_and_announces_that_sshd(tmp_path):
    sshd = SshdServing("127.0.0.1", 2022, fake_key("sshd"))
    shared = PodStore(tmp_path / "keys", tmp_path / "store", ["cp"], sshd=sshd).start()
    try:
        assert shared.server is None and shared.puller is not None
        assert shared.served_at("podA") == Endpoint("podA", "127.0.0.1", 2022, fake_key("sshd"))
        assert shared.moved_out() == 0
    finally:
        shared.stop()


def test_a_store_sshd_could_not_chroot_into_is_warned_of_at_start(tmp_path, caplog):
    os.chmod(tmp_path, 0o777)
    sshd = SshdServing("127.0.0.1", 2022, fake_key("sshd"))
    with caplog.at_level("WARNING", logger="computepods.federation"):
        PodStore(tmp_path / "keys", tmp_path / "store", ["cp"], sshd=sshd).start().stop()
    assert "would refuse to chroot into it" in caplog.text      # the store, or tmp_path above


def test_offers_a_sshd_serves_are_copied_into_the_store_once(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src/a.txt").write_text("a\n")
    store = ContentStore(tmp_path / "store")
    sha = ContentStore(tmp_path / "scratch").add(tmp_path / "src/a.txt")
    offers = StoringOffers(tmp_path, store)
    offers.offer({"src/a.txt": sha})
    assert store.path(sha).read_text() == "a\n"
    first = os.stat(store.path(sha)).st_ino
    offers.offer({"src/a.txt": sha})
    assert os.stat(store.path(sha)).st_ino == first                 # not copied again
    assert offers.lookup(sha) == tmp_path / "src/a.txt"


@pytest.mark.parametrize("command", [["build"], ["up"], ["chef"]])
def test_build_up_and_chef_take_the_sshd_options_or_their_environment(
        tmp_path, monkeypatch, command):
    from computepods.cli.cpod import build_parser
    key = host_key_file(tmp_path)
    args = build_parser().parse_args([*command, "--sftp-sshd", "b@h:2022",
                                      "--sftp-host-key", str(key)])
    assert sshd_from_args(args) == SshdServing("h", 2022, fake_key("sshd"), "b")
    monkeypatch.setenv("CP_SFTP_SSHD", "h:2200")
    monkeypatch.setenv("CP_SFTP_HOST_KEY", str(key))
    assert sshd_from_args(build_parser().parse_args(command)).port == 2200


class _Posts:
    def __init__(self):
        self.posted = []

    def post(self, signal, payload):
        self.posted.append(payload.entries)


@pytest.mark.parametrize("sshd", [None, SshdServing("127.0.0.1", 2022, fake_key("sshd"), "b")])
def test_a_pod_gone_silent_leaves_the_cache_sshd_reads_at_once(tmp_path, sshd):
    from computepods.pod.member import Member, MemberOptions
    member = Member(None, MemberOptions("podA", "majordomo", tmp_path / "keys", tmp_path / "s"),
                    shared=PodStore(tmp_path / "keys", tmp_path / "s", ["cp"], sshd=sshd))
    member.cache = _Posts()
    member._on_pod("podB", hello_of("podB"))
    member._on_pod("podB", None)
    assert member.cache.posted == [{"podB": hello_of("podB").to_dict()}] + \
        ([{"podB": None}] if sshd else [])       # our own server asks the roster, not the cache
