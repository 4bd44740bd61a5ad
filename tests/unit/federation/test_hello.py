"""A pod's hello: what goes on pods.hello, and what is refused on the way in."""
from __future__ import annotations

import subprocess

import pytest

from computepods.bus import messages as m
from computepods.errors import MalformedMessage
from computepods.federation.hello import PodHello, fingerprint_of, same_key
from podhellos import fake_key, hello_of


def test_a_hello_survives_the_wire_and_fits_the_schema():
    hello = hello_of("b", tools={"cc": "sha256:abc"}, slots=4)
    wire = m.decode("cp.pods.hello", m.encode(hello.to_dict()), m.PODS_HELLO)
    again = PodHello.from_dict(wire)
    assert again == hello
    assert again.sftp.pod == "b" and again.sftp.port == 2222
    assert again.expiry_s == 9.0


def test_a_hello_from_the_chef_role_is_accepted():
    assert PodHello.from_dict(hello_of("b", role="chef").to_dict()).role == "chef"
    assert PodHello.from_dict(hello_of("a", role="majordomo").to_dict()).role == "majordomo"


@pytest.mark.parametrize("change, named", [
    ({"role": "api"}, "role 'api'"),
    ({"sftp": {"host": "127.0.0.1", "port": 0, "host_key": fake_key("h")}}, "sftp.port"),
    ({"sftp": {"host": "127.0.0.1", "port": 22, "host_key": "hello"}}, "sftp.host_key"),
    ({"sftp": {"port": 22, "host_key": fake_key("h")}}, "sftp.host"),
    ({"client_key": "ssh-ed25519 not-base64!"}, "client_key"),
    ({"pod": "a b"}, "pod id"),
    ({"slots": "two"}, "'slots'"),
])
def test_a_hello_that_is_not_one_is_refused_naming_the_field(change, named):
    with pytest.raises(MalformedMessage) as err:
        PodHello.from_dict({**hello_of("b").to_dict(), **change})
    assert named in str(err.value)


def test_a_fingerprint_is_the_one_ssh_keygen_prints(tmp_path):
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "k")],
                   check=True)
    line = (tmp_path / "k.pub").read_text().strip()
    printed = subprocess.run(["ssh-keygen", "-l", "-f", str(tmp_path / "k.pub")], check=True,
                             capture_output=True, text=True).stdout.split()[1]
    assert fingerprint_of(line) == printed


def test_keys_are_compared_without_their_comments():
    assert same_key(fake_key("x", "alice@a"), fake_key("x", "bob@b"))
    assert not same_key(fake_key("x"), fake_key("y"))
    assert not same_key("junk", "junk")
