"""The command line of a pod whose store the system's sshd serves.

``--sftp-sshd HOST:PORT`` (env CP_SFTP_SSHD) and ``--sftp-host-key FILE``
(env CP_SFTP_HOST_KEY) on ``cpod build``, ``up`` and ``chef``: the pod
starts no SFTP server of its own and announces that sshd instead
(computepods/transfer/sshd.py).  ``cpod sftp-keys [--namespace NS]`` is
that sshd's ``AuthorizedKeysCommand``: it prints one authorized_keys line
(``restrict KEY``) per client key of the pods in the discovery cache
(unexpired, from authenticated hellos), and nothing else.

Only the standard library at import: every cpod start builds the parser.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from computepods.transfer.sshd import SshdServing

SSHD_ENV, HOST_KEY_ENV = "CP_SFTP_SSHD", "CP_SFTP_HOST_KEY"   # as in transfer/sshd.py
KEY_OPTIONS = "restrict"      # authorized_keys: no forwarding, pty or rc, whatever sshd_config says
DEFAULT_HOST_KEY = "/etc/ssh/ssh_host_ed25519_key.pub"   # for --help; transfer/sshd.py reads it


def add_sshd_arguments(parser: argparse.ArgumentParser) -> None:
    """--sftp-sshd and --sftp-host-key on a pod's subcommand."""
    parser.add_argument("--sftp-sshd", metavar="[USER@]HOST:PORT",
                        default=os.environ.get(SSHD_ENV),
                        help="serve this pod's store through the system's sshd there instead "
                             "of a server of its own, pods logging in as USER (default: "
                             "ours): sshd chrooted into the store, "
                             f"`cpod sftp-keys` its AuthorizedKeysCommand (env {SSHD_ENV})")
    parser.add_argument("--sftp-host-key", metavar="FILE",
                        default=os.environ.get(HOST_KEY_ENV),
                        help="the public host key that sshd presents, announced to the pods"
                             f" (env {HOST_KEY_ENV}; default {DEFAULT_HOST_KEY})")


def add_parser(sub) -> None:
    """`cpod sftp-keys`."""
    k = sub.add_parser("sftp-keys", help="print the client keys of the pods heard "
                       "(an sshd's AuthorizedKeysCommand, with --sftp-sshd)")
    k.add_argument("--namespace", dest="namespaces", action="append", metavar="NS",
                   help="the namespace whose pods may log in (repeatable; default: cp)")


def sshd_from_args(args: argparse.Namespace) -> "SshdServing | None":
    """The sshd the options name, its host key read; None for our own server."""
    given = getattr(args, "sftp_sshd", None)
    if not given:
        return None
    from computepods.transfer.sshd import sshd_serving
    return sshd_serving(given, getattr(args, "sftp_host_key", None))


def cmd_sftp_keys(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    """Print the client keys sshd may let in: those of the pods remembered in
    the discovery cache of each namespace, unexpired, each key once."""
    from computepods.bus.messages import DEFAULT_NAMESPACE
    from computepods.federation.cachefile import known_pods
    from computepods.transfer.sshd import unique_keys

    lines = [hello["client_key"] for ns in dict.fromkeys(args.namespaces or [DEFAULT_NAMESPACE])
             for hello in known_pods(ns)]
    for key in unique_keys(lines):
        out.write(f"{KEY_OPTIONS} {key}\n")
    return 0
