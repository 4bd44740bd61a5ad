"""Pulling a 200 MB file between two pods' stores, against scp, on loopback.

    python bench/transfer.py
    python bench/transfer.py --mb 200 --repeat 3 --sweep

One run makes two pods' stores and keys (A serves, B pulls) under
``bench/work/``, puts ``--mb`` MB of random bytes in A's store, and times,
each ``--repeat`` times (B's copy removed before each), the median of:

(a) Puller from the embedded server
    :class:`StoreServer` (paramiko) on a free 127.0.0.1 port in a process
    of its own (pod A's), and B's :class:`Puller` in this one: hashed as it
    arrives, written, fsynced, renamed.
(b) scp from the system sshd
    ``/usr/sbin/sshd`` started by the bench on a free 127.0.0.1 port with
    its own config, host key and authorized_keys in the work directory:
    public keys only, the user chrooted into A's store with a read-only
    ``internal-sftp`` (how a pod serves its store through sshd).  ``scp``
    (OpenSSH's defaults) copies ``/sha256/<2 hex>/<hex>`` to a file.
(c) Puller from the system sshd
    the same Puller and store as (a), against (b)'s sshd, its host key
    pinned.

Then a pull of a hash B already has, which must move 0 bytes.  It prints
MB/s (10^6 bytes/s) and the ratios (a)/(b) (target: at least 0.4) and
(c)/(b).  ``--sweep`` adds the pipeline's rate (wire only: hashed, not
written) for 1..16 reads in flight, and paramiko's own prefetch (``getfo``,
with and without ``max_concurrent_prefetch_requests``) for comparison.

sshd needs root here (to chroot, and its /run/sshd, made if missing):
without root or /usr/sbin/sshd, (b) and (c) are shown as not available.
Everything the bench starts it stops; it exits 1 if sshd had to be killed,
a copy did not have its hash, or an equal hash moved bytes.
"""
from __future__ import annotations

import argparse
import hashlib
import multiprocessing
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import paramiko  # noqa: E402

from computepods.transfer import tuning  # noqa: E402
from computepods.transfer.endpoint import Endpoint  # noqa: E402
from computepods.transfer.keys import CLIENT_KEY_FILE, PodKeys  # noqa: E402
from computepods.transfer.pipeline import read_pipelined  # noqa: E402
from computepods.transfer.pull import Puller, connect  # noqa: E402
from computepods.transfer.server import StoreServer  # noqa: E402
from computepods.transfer.store import ContentStore  # noqa: E402
from computepods.transfer.storesftp import remote_path  # noqa: E402

SSHD = "/usr/sbin/sshd"
WORK = Path(__file__).resolve().parent / "work"
SSHD_READY_S = 10.0              # seconds sshd may take to listen
SSHD_STOP_S = 10.0               # seconds it may take to exit on SIGTERM
SCP_TIMEOUT_S = 300.0
SWEEP_IN_FLIGHT = (1, 2, 4, 8, 16)
SWEEP_PREFETCH = (None, 16, 256)  # paramiko getfo's max_concurrent_prefetch_requests
SWEEP_MB = 64                    # the sweep's file: paramiko's prefetch can be slow
MB = 1_000_000


def make_file(path: Path, mb: int) -> None:
    with open(path, "wb") as f:
        for _ in range(mb):
            f.write(os.urandom(MB))


def serve_a(root: str, keys_dir: str, client_public: str, conn) -> None:
    """Pod A's side, in its own process: its store server until told to stop."""
    keys = PodKeys.load_or_create(Path(keys_dir))
    server = StoreServer(ContentStore(Path(root)), keys,
                         lambda line: line == client_public).start()
    try:
        conn.send((server.port, keys.host_public))
        while conn.recv() == "moved?":
            conn.send(server.moved_out)
    except EOFError:
        pass
    finally:
        server.stop()


class PodA:
    """The embedded server in a child process (spawned, so it has its own GIL)."""

    def __init__(self, store: ContentStore, keys_dir: Path, client_public: str):
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=serve_a, args=(str(store.root), str(keys_dir),
                                                       client_public, child))
        self._proc.start()
        if not self._conn.poll(SSHD_READY_S):
            self.stop()
            raise SystemExit("transfer: the embedded server did not start")
        port, host_public = self._conn.recv()
        self.endpoint = Endpoint("A", "127.0.0.1", port, host_public)

    def moved_out(self) -> int:
        self._conn.send("moved?")
        return self._conn.recv()

    def stop(self) -> bool:
        """Stop it; True if it had to be killed."""
        if self._proc.is_alive():
            try:
                self._conn.send("stop")
            except OSError:
                pass
        self._proc.join(SSHD_STOP_S)
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join()
            return True
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


class Sshd:
    """A system sshd of our own: its config, keys and pidfile in ``home``."""

    def __init__(self, home: Path, chroot: Path, client_public: str):
        self.home = home
        self.port = free_port()
        home.mkdir()
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f",
                        str(home / "host_ed25519")], check=True)
        self.host_public = " ".join((home / "host_ed25519.pub").read_text().split()[:2])
        (home / "authorized_keys").write_text(client_public + "\n")
        (home / "known_hosts").write_text(f"[127.0.0.1]:{self.port} {self.host_public}\n")
        user = os.environ.get("USER") or "root"
        (home / "sshd_config").write_text(f"""\
Port {self.port}
ListenAddress 127.0.0.1
HostKey {home / 'host_ed25519'}
PidFile {home / 'sshd.pid'}
AuthorizedKeysFile {home / 'authorized_keys'}
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UsePAM no
StrictModes no
AllowUsers {user}
AllowTcpForwarding no
X11Forwarding no
ChrootDirectory {chroot}
ForceCommand internal-sftp -R
Subsystem sftp internal-sftp -R
LogLevel ERROR
""")
        self.user = user
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Sshd":
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)   # its privilege-separation dir
        self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(self.home / "sshd_config")],
                                     stderr=open(self.home / "sshd.log", "wb"))
        deadline = time.monotonic() + SSHD_READY_S
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise SystemExit(f"transfer: sshd did not listen on {self.port}:"
                                     f" {(self.home / 'sshd.log').read_text()[-500:]}")
                time.sleep(0.02)

    def stop(self) -> bool:
        """Stop it with SIGTERM; True if it had to be killed."""
        if self.proc is None or self.proc.poll() is not None:
            return False
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(SSHD_STOP_S)
            return False
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return True

    def scp(self, key_file: Path, remote: str, local: Path) -> None:
        subprocess.run(["scp", "-q", "-P", str(self.port), "-i", str(key_file),
                        "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
                        "-o", f"UserKnownHostsFile={self.home / 'known_hosts'}",
                        "-o", "GlobalKnownHostsFile=/dev/null",
                        "-o", "StrictHostKeyChecking=yes",
                        f"{self.user}@127.0.0.1:{remote}", str(local)],
                       check=True, timeout=SCP_TIMEOUT_S)


def sha_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def pull_times(puller: Puller, store: ContentStore, pod: str, sha: str,
               repeat: int, problems: list[str], cpu: list[float]) -> list[float]:
    """Wall times of ``repeat`` pulls; this process's CPU seconds go to ``cpu``."""
    times = []
    for _ in range(repeat):
        if store.has(sha):
            os.unlink(store.path(sha))
        c0 = time.process_time()
        times.append(timed(lambda: puller.fetch(pod, sha)))
        cpu.append(time.process_time() - c0)
        if sha_of(store.path(sha)) != sha:
            problems.append(f"the pull from {pod} does not have its hash")
    return times


class _HashSink:
    def __init__(self):
        self.h = hashlib.sha256()

    def write(self, data) -> None:
        self.h.update(data)


def sweep(endpoint: Endpoint, keys: PodKeys, store: ContentStore, tmp: Path) -> None:
    """Print the rate of each read setting."""
    make_file(tmp / "sweep", SWEEP_MB)
    sha = store.add(tmp / "sweep")
    size = (tmp / "sweep").stat().st_size
    print(f"sweep ({size / MB:.0f} MB, hashed, not written; embedded server):")
    client = connect(endpoint, keys)
    try:
        for n in SWEEP_IN_FLIGHT:
            sftp = paramiko.SFTPClient.from_transport(
                client.get_transport(), window_size=tuning.WINDOW_BYTES,
                max_packet_size=tuning.MAX_PACKET_BYTES)
            sink = _HashSink()
            dt = timed(lambda: read_pipelined(sftp, remote_path(sha), sink, in_flight=n))
            sftp.close()
            assert sink.h.hexdigest() == sha
            print(f"  pipeline, {n:2d} x {tuning.READ_BYTES >> 10} KiB in flight"
                  f"  {size / dt / MB:7.1f} MB/s")
        # paramiko's prefetch thread may still be sending requests when
        # getfo has its bytes and the file closes; it then dies with "Socket
        # is closed".  Counted, not printed as a traceback.
        late: list[str] = []
        default_hook = threading.excepthook
        threading.excepthook = lambda hook_args: late.append(str(hook_args.exc_value))
        for limit in SWEEP_PREFETCH:
            sftp = paramiko.SFTPClient.from_transport(
                client.get_transport(), window_size=tuning.WINDOW_BYTES,
                max_packet_size=tuning.MAX_PACKET_BYTES)
            sink = _HashSink()
            dt = timed(lambda: sftp.getfo(remote_path(sha), sink, prefetch=True,
                                          max_concurrent_prefetch_requests=limit))
            sftp.close()
            assert sink.h.hexdigest() == sha
            print(f"  paramiko getfo, max_concurrent_prefetch_requests={limit}"
                  f"  {size / dt / MB:7.1f} MB/s")
        threading.excepthook = default_hook
        if late:
            print(f"  ({len(late)} of paramiko's prefetch threads failed after their file"
                  f" closed: {late[0]})")
    finally:
        client.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mb", type=int, default=200, help="file size in MB (default 200)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--sweep", action="store_true", help="also sweep reads in flight")
    args = ap.parse_args()
    WORK.mkdir(exist_ok=True)
    problems: list[str] = []
    with_sshd = os.path.exists(SSHD) and os.geteuid() == 0 and shutil.which("scp")
    tmp = Path(tempfile.mkdtemp(prefix="transfer-", dir=WORK))
    os.chmod(tmp, 0o755)                 # sshd's chroot: root-owned, not writable by others
    try:
        a_store, b_store = ContentStore(tmp / "a" / "store"), ContentStore(tmp / "b" / "store")
        b_keys = PodKeys.load_or_create(tmp / "b" / "keys")
        make_file(tmp / "big", args.mb)
        sha = a_store.add(tmp / "big")
        size = (tmp / "big").stat().st_size
        os.unlink(tmp / "big")
        pod_a = PodA(a_store, tmp / "a" / "keys", b_keys.client_public)
        sshd = Sshd(tmp / "sshd", a_store.root, b_keys.client_public) if with_sshd else None
        killed = []
        try:
            endpoint = pod_a.endpoint
            endpoints = {"A": endpoint}
            puller = Puller(b_store, b_keys, endpoints.get)
            try:
                embedded = pull_times(puller, b_store, "A", sha, args.repeat, problems,
                                      cpu_a := [])
                moved = puller.moved_in
                puller.fetch("A", sha)
                equal_moved = puller.moved_in - moved
                if equal_moved:
                    problems.append("a pull of a hash B has moved bytes")
                served = pod_a.moved_out()
                if args.sweep:
                    sweep(endpoint, b_keys, a_store, tmp)
                scp_t = via_sshd = None
                if sshd is not None:
                    sshd.start()
                    endpoints["sshd"] = Endpoint("sshd", "127.0.0.1", sshd.port,
                                                 sshd.host_public)
                    out = tmp / "scp-copy"
                    scp_t = []
                    for _ in range(args.repeat):
                        out.unlink(missing_ok=True)
                        scp_t.append(timed(lambda: sshd.scp(
                            tmp / "b" / "keys" / CLIENT_KEY_FILE, remote_path(sha), out)))
                    if sha_of(out) != sha:
                        problems.append("scp's copy does not have its hash")
                    via_sshd = pull_times(puller, b_store, "sshd", sha, args.repeat,
                                          problems, cpu_c := [])
            finally:
                puller.close()
        finally:
            if pod_a.stop():
                killed.append("the embedded server's process")
            if sshd is not None and sshd.stop():
                killed.append("sshd")
        problems += [f"{what} had to be killed" for what in killed]
        if served != size * args.repeat:
            problems.append(f"pod A served {served} bytes, not one copy per pull")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    def rate(times: list[float]) -> float:
        return size / statistics.median(times) / MB

    print(f"pulling {size / MB:.0f} MB on loopback, median of {args.repeat}, load average"
          f" {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
          f" (cipher {tuning.CIPHERS[0]}, {tuning.READS_IN_FLIGHT} x"
          f" {tuning.READ_BYTES >> 10} KiB reads in flight, window"
          f" {tuning.WINDOW_BYTES >> 20} MiB, packets {tuning.MAX_PACKET_BYTES >> 10} KiB):")
    print(f"  (a) Puller <- embedded paramiko server  {rate(embedded):7.1f} MB/s"
          f"   (puller CPU {statistics.median(cpu_a):.2f} s)")
    if scp_t is None:
        print("  (b) scp <- system sshd                  not available"
              " (needs root, /usr/sbin/sshd and scp)")
    else:
        print(f"  (b) scp <- system sshd                  {rate(scp_t):7.1f} MB/s")
        print(f"  (c) Puller <- system sshd               {rate(via_sshd):7.1f} MB/s"
              f"   (puller CPU {statistics.median(cpu_c):.2f} s)")
        ratio = rate(embedded) / rate(scp_t)
        print(f"  ratios: (a)/(b) {ratio:.2f} (target >= 0.4: "
              f"{'met' if ratio >= 0.4 else 'NOT met'}), (c)/(b)"
              f" {rate(via_sshd) / rate(scp_t):.2f}")
    print(f"  a pull of a hash B already has: {equal_moved} bytes moved")
    for problem in problems:
        print(f"transfer: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
