"""The bus's roles: what each may say and hear, and how their logins are kept."""
from __future__ import annotations

import stat

import pytest

from computepods.bus import messages as m
from computepods.bus.auth import (API, CHEF, MAJORDOMO, ROLES, WATCHER, BusUsers, Credentials,
                                  inbox_prefix, permissions, write_config_dir)
from computepods.errors import UsageError


def matches(pattern: str, subject: str) -> bool:
    """NATS subject matching: '*' one token, '>' the rest."""
    want, have = pattern.split("."), subject.split(".")
    for i, token in enumerate(want):
        if token == ">":
            return len(have) > i
        if i >= len(have) or token not in ("*", have[i]):
            return False
    return len(have) == len(want)


def may(patterns: tuple[str, ...], subject: str) -> bool:
    return any(matches(p, subject) for p in patterns)


RUN = m.ROUTES[m.CHEF_RUN].subject("cp", chef="c1")


def test_only_the_majordomo_may_send_a_run():
    assert may(permissions(MAJORDOMO, "cp").publish, RUN)
    for role in (CHEF, WATCHER, API):
        assert not may(permissions(role, "cp").publish, RUN), role


def test_each_role_says_what_its_job_needs_and_no_more():
    subject = lambda signal, **p: m.ROUTES[signal].subject("cp", **p)   # noqa: E731
    chef, api, watcher = (permissions(r, "cp") for r in (CHEF, API, WATCHER))
    assert all(may(chef.publish, subject(s)) for s in (m.CHEF_STATUS, m.STEP_RESULTS,
                                                        m.RULES_ANNOUNCE, m.BUS_ERROR))
    assert all(may(chef.subscribe, subject(s)) for s in (m.CHEFS_QUERY, m.CHEFS_CANCEL))
    assert may(chef.subscribe, RUN)
    assert not may(chef.publish, subject(m.BUILD_REQUEST))
    assert not may(chef.publish, subject(m.API_QUERY))
    assert all(may(api.publish, subject(s)) for s in (m.BUILD_REQUEST, m.BUILD_CANCEL,
                                                       m.API_QUERY))
    assert may(api.subscribe, subject(m.BUILD_EVENTS, build="b1"))
    assert not may(api.subscribe, RUN)
    assert may(watcher.publish, subject(m.FS_CHANGED))
    assert not may(watcher.publish, subject(m.BUILD_REQUEST))


def test_every_subject_a_role_names_is_a_route():
    templates = {r.wildcard("cp") for r in m.ROUTES.values()}
    for role in ROLES:
        perms = permissions(role, "cp")
        for s in perms.publish + perms.subscribe:
            if not s.startswith("_INBOX.") and s != "cp.>":
                assert s in templates, (role, s)


def test_each_role_hears_its_answers_on_its_own_inbox_only():
    for role in ROLES:
        subs = permissions(role, "cp").subscribe
        assert may(subs, f"{inbox_prefix(role)}.abc.1")
        others = [r for r in ROLES if r != role]
        assert not any(may(subs, f"{inbox_prefix(r)}.abc.1") for r in others), role
    assert Credentials(user="chef", password="p").connect_options()["inbox_prefix"] == \
        "_INBOX.chef"
    assert inbox_prefix("a.b") is None and inbox_prefix(None) is None


def test_a_namespace_must_be_one_subject_token():
    with pytest.raises(UsageError, match="one subject token"):
        BusUsers.generate("a.b")
    users = BusUsers.generate("one", "two")
    assert may(users.permissions(CHEF).subscribe, "two.chef.x.run")


def test_passwords_are_fresh_and_never_in_a_repr():
    a, b = BusUsers.generate(), BusUsers.generate()
    assert set(a.passwords) == set(ROLES)
    assert not set(a.passwords.values()) & set(b.passwords.values())
    creds = a.credentials(CHEF)
    assert a.passwords[CHEF] not in repr(creds)


def test_config_files_are_the_owners_alone_and_round_trip(tmp_path):
    users = BusUsers.generate()
    written = write_config_dir(tmp_path / "bus", users, 1024)
    assert [p.name for p in written] == ["nats.conf", *(f"{r}.env" for r in ROLES)]
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in written)
    conf = written[0].read_text()
    assert "no_auth_user" not in conf and conf.count("allow_responses: true") == len(ROLES)
    env = dict(line.split("=", 1) for line in (tmp_path / "bus/chef.env").read_text().split())
    assert Credentials.from_env(env) == users.credentials(CHEF)
    users.save(tmp_path / "users.json")
    assert stat.S_IMODE((tmp_path / "users.json").stat().st_mode) == 0o600
    assert BusUsers.load(tmp_path / "users.json") == users
    child = users.child_env(API, {"CP_NATS_TOKEN": "old", "PATH": "/bin"})
    assert child == {"PATH": "/bin", **users.env(API)}
