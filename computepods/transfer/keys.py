"""A pod's SSH keys: an ed25519 host key for its SFTP server, and an
ed25519 client key it pulls with.  Both are OpenSSH private key files of
mode 0600 in a directory of mode 0700, made on first use and kept, so a
pod keeps its identity across restarts (others pinned its host key).
"""
from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

import paramiko
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from computepods.errors import TransferError

HOST_KEY_FILE = "host_ed25519"
CLIENT_KEY_FILE = "client_ed25519"
KEY_MODE = 0o600
DIR_MODE = 0o700


def public_line(key: paramiko.PKey) -> str:
    """The OpenSSH public line of a key: "ssh-ed25519 AAAA..."."""
    return f"{key.get_name()} {key.get_base64()}"


def key_fingerprint(public_line: str) -> str:
    """The "SHA256:..." fingerprint of an OpenSSH public line, as ssh-keygen -l prints it."""
    parts = public_line.split()
    if len(parts) < 2:
        raise ValueError(f"not an OpenSSH public key line: {public_line!r}")
    try:
        blob = base64.b64decode(parts[1], validate=True)
    except ValueError as exc:
        raise ValueError(f"not an OpenSSH public key line: {public_line!r}") from exc
    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    return f"SHA256:{digest}"


def key_from_line(public_line: str) -> paramiko.PKey:
    """A paramiko public key from its OpenSSH line (ValueError if it is not one)."""
    parts = public_line.split()
    if len(parts) < 2:
        raise ValueError(f"not an OpenSSH public key line: {public_line!r}")
    try:
        return paramiko.PKey.from_type_string(parts[0], base64.b64decode(parts[1]))
    except (paramiko.SSHException, ValueError) as exc:
        raise ValueError(f"not an OpenSSH public key line: {public_line!r}: {exc}") from exc


@dataclass(frozen=True)
class PodKeys:
    """The two keys of a pod, loaded from (or made in) one directory."""
    host_key: paramiko.PKey
    client_key: paramiko.PKey

    @property
    def host_public(self) -> str:
        return public_line(self.host_key)

    @property
    def client_public(self) -> str:
        return public_line(self.client_key)

    @classmethod
    def load_or_create(cls, directory: Path) -> "PodKeys":
        directory = Path(directory)
        directory.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        return cls(_load_or_create(directory / HOST_KEY_FILE),
                   _load_or_create(directory / CLIENT_KEY_FILE))


def _load_or_create(path: Path) -> paramiko.PKey:
    if not path.exists():
        _create(path)
    st = os.stat(path)
    if st.st_mode & 0o077:
        raise TransferError(
            f"{path}: this private key is readable by others (mode"
            f" {stat.S_IMODE(st.st_mode):04o}); fix it with `chmod 600 {path}`")
    try:
        return paramiko.Ed25519Key.from_private_key_file(str(path))
    except (paramiko.SSHException, ValueError) as exc:
        raise TransferError(
            f"{path}: not an ed25519 private key in OpenSSH format ({exc}); move it"
            f" away and the pod makes a new one (other pods must then hear its new hello)"
        ) from exc


def _create(path: Path) -> None:
    """Write a new key to a temp file and link it into place: two pods that
    start at once end up with the same key, the first one linked."""
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption())
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, KEY_MODE)
    try:
        try:
            os.write(fd, pem)
            os.fsync(fd)
        finally:
            os.close(fd)
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        os.unlink(tmp)
