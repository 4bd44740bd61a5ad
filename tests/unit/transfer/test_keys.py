"""PodKeys: made once, kept private, read back the same; fingerprints as ssh-keygen's."""
from __future__ import annotations

import stat
import subprocess

import pytest

from computepods.errors import TransferError
from computepods.transfer.keys import PodKeys, key_fingerprint, key_from_line


def test_keys_are_made_once_and_read_back_the_same(tmp_path):
    first = PodKeys.load_or_create(tmp_path / "keys")
    again = PodKeys.load_or_create(tmp_path / "keys")
    assert first.host_public == again.host_public
    assert first.client_public == again.client_public
    assert first.host_public != first.client_public
    assert first.host_public.startswith("ssh-ed25519 AAAA")
    for f in (tmp_path / "keys").iterdir():
        assert stat.S_IMODE(f.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "keys").stat().st_mode) == 0o700


def test_a_key_readable_by_others_is_refused_naming_the_fix(tmp_path):
    PodKeys.load_or_create(tmp_path / "keys")
    (tmp_path / "keys" / "host_ed25519").chmod(0o644)
    with pytest.raises(TransferError, match="chmod 600"):
        PodKeys.load_or_create(tmp_path / "keys")


def test_the_fingerprint_is_the_one_ssh_keygen_prints(tmp_path):
    keys = PodKeys.load_or_create(tmp_path / "keys")
    pub = tmp_path / "host.pub"
    pub.write_text(keys.host_public + "\n")
    printed = subprocess.run(["ssh-keygen", "-l", "-E", "sha256", "-f", str(pub)],
                             capture_output=True, text=True, check=True).stdout
    assert printed.split()[1] == key_fingerprint(keys.host_public)


def test_a_public_line_reads_back_as_its_key(tmp_path):
    keys = PodKeys.load_or_create(tmp_path / "keys")
    assert key_from_line(keys.host_public) == keys.host_key
    with pytest.raises(ValueError):
        key_from_line("ssh-ed25519 not-base64!")
    with pytest.raises(ValueError):
        key_fingerprint("nothing")
