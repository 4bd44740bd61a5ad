"""A system sshd of a test's own, serving one pod's store as a pod's
--sftp-sshd asks (computepods/transfer/sshd.py): its config, host key,
pidfile and log in its own directory, a free 127.0.0.1 port, public keys
from `cpod sftp-keys` only, the login chrooted into the store with a
read-only internal-sftp.  :meth:`SystemSshd.stop` ends it (SIGTERM, then
SIGKILL, which the test reports).

sshd needs root to chroot, and every directory above the chroot must be
root's and written by no one else: :func:`chroot_able_dir` finds a place
for the project (/tmp, which anyone may write, is not one)."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

from computepods.transfer.pull import local_user
from computepods.transfer.sshd import SshdServing, chroot_problem, sshd_config_block
from helpers import wait_for

SSHD = "/usr/sbin/sshd"
READY_S = 10.0               # seconds sshd may take to listen
STOP_S = 10.0                # seconds it may take to exit on SIGTERM
CHROOT_BASES = ("/run", "/var/lib", "/root")   # root's, written by no one else, usually
REPO = Path(__file__).resolve().parents[1]


def needs() -> str | None:
    """What this machine lacks to run the sshd tests, or None."""
    if os.geteuid() != 0:
        return ("the sshd tests need root: sshd chroots the login into the pod's store "
                "(run the suite as root, as `make test` in the project's container does)")
    if not os.access(SSHD, os.X_OK):
        return (f"the sshd tests need {SSHD}: `scripts/system-deps sshd:openssh-server` "
                "(make test-deps) installs it")
    return None


def chroot_able_dir(tmp_path: Path) -> Path:
    """A new empty directory sshd would chroot below (the caller removes it)."""
    for base in (tmp_path, *map(Path, CHROOT_BASES)):
        if base.is_dir() and chroot_problem(base) is None:
            return Path(tempfile.mkdtemp(prefix="cp-sshd-", dir=base))
    raise AssertionError(f"no directory to chroot sshd into: {chroot_problem(tmp_path)}, and "
                         f"none of {', '.join(CHROOT_BASES)} is root's and unwritable by others")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SystemSshd:
    """`sshd -D` serving ``store_dir`` to the client keys `cpod sftp-keys`
    prints for namespace ``namespace`` from the discovery cache under
    ``cache_home`` (the serving pod's $XDG_CACHE_HOME)."""

    def __init__(self, home: Path, store_dir: Path, cache_home: Path, namespace: str = "cp"):
        self.home = Path(home)
        self.home.mkdir(mode=0o700)
        self.port = free_port()
        self.user = local_user()
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "test-sshd",
                        "-f", str(self.home / "host_ed25519")], check=True)
        keys_command = self.home / "sftp-keys"
        keys_command.write_text(
            "#!/bin/sh\n"
            f"export XDG_CACHE_HOME='{cache_home}' PYTHONPATH='{REPO}'\n"
            f"exec '{sys.executable}' -m computepods.cli sftp-keys --namespace {namespace}\n")
        keys_command.chmod(0o755)
        (self.home / "sshd_config").write_text(f"""\
Port {self.port}
ListenAddress 127.0.0.1
HostKey {self.home / 'host_ed25519'}
PidFile {self.home / 'sshd.pid'}
UsePAM no
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
AuthorizedKeysFile none
AllowUsers {self.user}
Subsystem sftp internal-sftp -R
LogLevel VERBOSE
""" + sshd_config_block(self.user, store_dir, str(keys_command), keys_user=self.user))
        self.proc: subprocess.Popen | None = None
        self.killed = False

    @property
    def host_public(self) -> str:
        return " ".join((self.home / "host_ed25519.pub").read_text().split()[:2])

    def serving(self) -> SshdServing:
        """What the pod's --sftp-sshd 127.0.0.1:PORT --sftp-host-key FILE make."""
        return SshdServing("127.0.0.1", self.port, self.host_public, self.user)

    def log(self) -> str:
        return (self.home / "sshd.log").read_text(errors="replace")

    def start(self) -> "SystemSshd":
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)   # its privilege-separation dir
        check = subprocess.run([SSHD, "-t", "-f", str(self.home / "sshd_config")],
                               capture_output=True, text=True)
        assert check.returncode == 0, f"sshd refuses its config: {check.stderr}"
        with open(self.home / "sshd.log", "wb") as log:
            self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(self.home / "sshd_config")],
                                         stdin=subprocess.DEVNULL, stderr=log)

        def listening() -> bool:
            assert self.proc is not None and self.proc.poll() is None, \
                f"sshd exited: {self.log()[-500:]}"
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return True
            except OSError:
                return False
        wait_for(listening, timeout=READY_S, what=f"sshd to listen on {self.port}")
        return self

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(STOP_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            self.killed = True
