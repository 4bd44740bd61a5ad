"""A PodStore shared by several namespaces: who its server lets in, and which
namespace's roster a pull asks (no SFTP here: the rosters alone)."""
from __future__ import annotations

import pytest

from computepods.pod.podstore import PodStore
from podhellos import fake_key, hello_of


def store(tmp_path, *namespaces: str) -> PodStore:
    return PodStore(tmp_path / "keys", tmp_path / "store", namespaces)


def test_its_server_lets_in_the_live_pods_of_each_namespace_and_no_one_else(tmp_path):
    shared = store(tmp_path, "a", "b")
    shared.roster("a").heard(hello_of("pa", client_key=fake_key("client:pa")), now=0.0)
    shared.roster("b").heard(hello_of("pb", client_key=fake_key("client:pb")), now=0.0)
    assert shared.authorized(fake_key("client:pa"))
    assert shared.authorized(fake_key("client:pb"))
    assert not shared.authorized(fake_key("client:stranger"))
    shared.roster("a").expire(now=100.0)
    assert not shared.authorized(fake_key("client:pa"))      # gone silent: let in no more


def test_a_pull_for_one_namespace_never_finds_a_pod_of_another(tmp_path):
    shared = store(tmp_path, "a", "b")
    shared.roster("b").heard(hello_of("pb", port=2002), now=0.0)
    assert shared.endpoint(shared.pull_key("a", "pb")) is None
    assert shared.endpoint(shared.pull_key("b", "pb")).port == 2002
    assert shared.endpoint("pb") is None                      # no namespace: no pod
    assert shared.endpoint("c/pb") is None


def test_one_pod_id_in_two_namespaces_is_two_pods_each_with_its_own_endpoint(tmp_path):
    shared = store(tmp_path, "a", "b")
    shared.roster("a").heard(hello_of("same", port=2001, host_key=fake_key("ka")), now=0.0)
    shared.roster("b").heard(hello_of("same", port=2002, host_key=fake_key("kb")), now=0.0)
    a, b = (shared.endpoint(shared.pull_key(ns, "same")) for ns in "ab")
    assert (a.port, a.host_key, b.port, b.host_key) == (2001, fake_key("ka"), 2002, fake_key("kb"))


def test_with_one_namespace_the_puller_knows_pods_by_their_ids_as_before(tmp_path):
    shared = store(tmp_path, "cp")
    shared.roster("cp").heard(hello_of("pb", port=2002), now=0.0)
    assert shared.pull_key("cp", "pb") == "pb"
    assert shared.endpoint("pb").port == 2002


def test_a_namespace_it_does_not_serve_is_named_with_those_it_does(tmp_path):
    with pytest.raises(ValueError, match="'z'.*a, b"):
        store(tmp_path, "a", "b").roster("z")
    with pytest.raises(ValueError):
        store(tmp_path)
