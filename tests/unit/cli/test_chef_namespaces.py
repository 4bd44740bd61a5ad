"""`cpod chef --namespace`: one as before, several for a chef pod only; each
checked before anything starts."""
from __future__ import annotations

import pytest

from computepods.cli.cpod import build_parser, main

UNUSED_URL = "nats://127.0.0.1:1"     # never reached: each case is refused first
PROJECT = '[[rule]]\nname="x"\noutputs=["x"]\ncommand="true"\n'


def parse(*argv: str):
    return build_parser().parse_args(list(argv))


def test_namespace_is_repeatable_and_cp_when_not_given():
    assert parse("chef").namespaces is None
    assert parse("chef", "--namespace", "a", "--namespace", "b").namespaces == ["a", "b"]


def test_several_namespaces_in_a_project_are_refused_naming_the_project(tmp_path, capsys):
    (tmp_path / "computepods.toml").write_text(PROJECT)
    assert main(["-C", str(tmp_path), "chef", "--nats", UNUSED_URL,
                 "--namespace", "a", "--namespace", "b"]) == 2
    err = capsys.readouterr().err
    assert "--namespace a --namespace b" in err and str(tmp_path) in err
    assert "give one --namespace" in err


def test_several_namespaces_with_fetch_dir_are_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["chef", "--nats", UNUSED_URL, "--fetch-dir", str(tmp_path),
                 "--workspace", str(tmp_path / "ws"), "--namespace", "a",
                 "--namespace", "b"]) == 2
    assert "with --fetch-dir" in capsys.readouterr().err
    assert not (tmp_path / "ws").exists()                # refused before it took a workspace


@pytest.mark.parametrize("bad", ["a.b", "a b", "*"])
def test_a_namespace_that_is_not_one_subject_token_is_refused(tmp_path, capsys, bad,
                                                              monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["chef", "--nats", UNUSED_URL, "--namespace", "a", "--namespace", bad]) == 2
    assert repr(bad) in capsys.readouterr().err


def test_the_help_says_a_chef_pod_serves_several(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["chef", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--namespace NS" in text and "repeatable for a chef pod" in text
