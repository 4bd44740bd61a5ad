"""A pod's store served through the system's sshd instead of our own server.

Issue 12 scope 4: a pod serves its store read-only "by default from an
embedded paramiko SFTP server on a free port, or through the system's sshd
if configured".  Configured (``--sftp-sshd HOST:PORT``, env CP_SFTP_SSHD)
the pod starts no :class:`~computepods.transfer.server.StoreServer`: its
hello announces that sshd's address and the host key it presents there
(``--sftp-host-key FILE``, env CP_SFTP_HOST_KEY, default
:data:`DEFAULT_HOST_KEY`).  Pullers do not change: they ask for
``/sha256/<2 hex>/<hex>``, the store's own layout, which an sshd chrooted
into the store serves as is.

Who may log in is still the pods heard in live, authenticated hellos:
sshd asks ``cpod sftp-keys`` (its ``AuthorizedKeysCommand``), which prints
the client keys of the discovery cache.  :func:`sshd_config_block` is the
``sshd_config`` a pod needs (docs/architecture.md §6); for a pod run by
``builder`` whose store is ``/srv/cp/builder``::

    Match User builder
        AuthenticationMethods publickey
        PasswordAuthentication no
        KbdInteractiveAuthentication no
        AuthorizedKeysFile none
        AuthorizedKeysCommand /usr/local/bin/cpod sftp-keys --namespace cp
        AuthorizedKeysCommandUser builder
        ChrootDirectory /srv/cp/builder
        ForceCommand internal-sftp -R
        AllowTcpForwarding no
        X11Forwarding no
        PermitTTY no

sshd runs the command as ``AuthorizedKeysCommandUser`` with HOME set and
no XDG_CACHE_HOME, so that user must be the pod's, whose
``~/.cache/computepods/pods-<ns>.json`` it reads.  sshd chroots only into a
directory that, like every directory above it, is root's and written by
no one else (:func:`chroot_problem`; the pod warns at start): the store's
own directory is root's, its ``sha256/`` the pod user's, e.g.
``install -d -m 755 /srv/cp/builder; install -d -o builder
/srv/cp/builder/sha256`` and the pod's store a link to it (the user's pod
keeps its store at ``.computepods/store``, a chef pod under its
workspace's ``store``).  What the store holds is the sha256-named files
only; the user's pod copies into it the tree files it offers, which its
own server would have served from the tree.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from computepods.errors import UsageError
from computepods.transfer.endpoint import Endpoint
from computepods.transfer.keys import key_from_line
from computepods.transfer.pull import local_user

DEFAULT_HOST_KEY = Path("/etc/ssh/ssh_host_ed25519_key.pub")
HOST_KEY_ENV = "CP_SFTP_HOST_KEY"
MAX_PORT = 65535
CHROOT_BAD_MODE = 0o022          # sshd refuses a chroot any component of which others may write


def key_line(line: str) -> str | None:
    """An OpenSSH public key line as ``type base64`` (comment dropped), or None."""
    try:
        key = key_from_line(line)
    except ValueError:
        return None
    return f"{key.get_name()} {key.get_base64()}"


@dataclass(frozen=True)
class SshdServing:
    """Where the system sshd serves our store, and the host key it presents."""
    host: str
    port: int
    host_key: str                # OpenSSH public line, comment left out
    user: str | None = None      # the login sshd lets pods in as (its Match User)

    def endpoint(self, pod: str) -> Endpoint:
        """What our hello announces."""
        return Endpoint(pod, self.host, self.port, self.host_key, self.user)


def read_host_key(path: Path) -> str:
    """The OpenSSH public line in ``path`` (``type base64``; its comment left out)."""
    try:
        text = Path(path).read_text(errors="replace")
    except OSError as exc:
        raise UsageError(f"--sftp-host-key {path}: cannot read sshd's public host key "
                         f"({exc.strerror or exc}); give the .pub file sshd presents "
                         f"(its HostKey with .pub), or set {HOST_KEY_ENV}") from None
    for line in text.splitlines():
        if (key := key_line(line)) is not None:
            return key
    raise UsageError(f"--sftp-host-key {path}: holds no OpenSSH public key line "
                     f"(want e.g. 'ssh-ed25519 AAAA...'); give sshd's host key .pub file")


def sshd_serving(given: str | None, host_key_file: str | Path | None = None
                 ) -> SshdServing | None:
    """``--sftp-sshd [USER@]HOST:PORT`` with its host key file; None when not
    given.  USER is the login the pods pull as (default: ours)."""
    if not given:
        return None
    user, at, address = given.rpartition("@")
    if at and not user:
        raise UsageError(f"--sftp-sshd {given!r}: nothing before '@' (want USER@HOST:PORT)")
    host, sep, port = address.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) <= MAX_PORT:
        raise UsageError(f"--sftp-sshd {given!r}: want [USER@]HOST:PORT, where other pods "
                         f"reach this host's sshd at (port 1 to {MAX_PORT})")
    key = read_host_key(Path(host_key_file) if host_key_file else DEFAULT_HOST_KEY)
    return SshdServing(host, int(port), key, user or local_user())


def chroot_problem(directory: Path) -> str | None:
    """Why sshd would refuse ``directory`` as a ChrootDirectory, or None:
    it and every directory above it must be root's and written by no one else."""
    path = Path(os.path.realpath(directory))      # sshd is given the real path
    for part in (path, *path.parents):
        try:
            st = os.stat(part)
        except OSError as exc:
            return f"{part}: {exc.strerror or exc}"
        if st.st_uid != 0:
            return f"{part} is not owned by root"
        if st.st_mode & CHROOT_BAD_MODE:
            return f"{part} is writable by group or others (mode {st.st_mode & 0o7777:o})"
    return None


def unique_keys(lines: Iterable[str]) -> list[str]:
    """OpenSSH key lines, comments dropped, each key once, in first-seen order."""
    return list(dict.fromkeys(k for k in map(key_line, lines) if k is not None))


def sshd_config_block(user: str, store_dir: Path, keys_command: str,
                      keys_user: str | None = None) -> str:
    """The ``sshd_config`` lines that serve ``store_dir`` to the pods heard:
    public keys from ``keys_command`` only (e.g. ``/usr/local/bin/cpod
    sftp-keys --namespace cp``, run as ``keys_user``, who must read the
    pod's discovery cache), chrooted into the store, read-only SFTP, no
    password, no forwarding, no tty."""
    return f"""\
Match User {user}
    AuthenticationMethods publickey
    PubkeyAuthentication yes
    PasswordAuthentication no
    KbdInteractiveAuthentication no
    AuthorizedKeysFile none
    AuthorizedKeysCommand {keys_command}
    AuthorizedKeysCommandUser {keys_user or user}
    ChrootDirectory {os.path.realpath(store_dir)}
    ForceCommand internal-sftp -R
    AllowTcpForwarding no
    AllowStreamLocalForwarding no
    AllowAgentForwarding no
    X11Forwarding no
    PermitTunnel no
    PermitTTY no
"""
