"""Puller: fetch files by sha256 from other pods' store servers.

- **What is here moves nothing.** A sha the store has costs 0 bytes.
- **One pull per sha.** Threads that ask for a sha already being pulled
  wait for that pull and share its outcome.
- **Long-lived connections, one per pod** (an SSHClient), with a few SFTP
  channels on it for concurrent pulls of different shas.  A dead
  connection is made anew once per fetch; then the fetch fails.
- **Pinned host keys.** The host key is the one ``endpoint_of(pod)`` gives
  (the pod's authenticated hello).  paramiko's RejectPolicy refuses any
  other: an unknown pod, or a changed key, is :class:`HostKeyRefused`
  naming the pod.  We log in with our client key only.
- **Verified.** What arrives is hashed as it is written
  (:meth:`ContentStore.receive`) and installed only if it matches.
- **Measured.** ``moved_in`` counts bytes received; ``rate(pod)`` is an
  EWMA of bytes/s over transfers large enough to say something.
"""
from __future__ import annotations

import concurrent.futures
import errno
import getpass
import logging
import threading
import time
from pathlib import Path
from typing import Callable, Iterable

import paramiko

from computepods.errors import HostKeyRefused, TransferError
from computepods.transfer import tuning
from computepods.transfer.endpoint import Endpoint
from computepods.transfer.keys import PodKeys, key_fingerprint, key_from_line
from computepods.transfer.pipeline import read_pipelined
from computepods.transfer.store import ContentStore, valid_sha
from computepods.transfer.storesftp import remote_path

Fetch = Callable[[str, str], Path]   # fetch(pod, sha) -> local path holding that content

CONNECT_S = 10.0                     # seconds to connect, exchange keys and log in
STALL_S = 30.0                       # seconds a pull may wait for the next answer
CHANNELS_PER_POD = 4                 # SFTP channels (concurrent pulls) per pod
RATE_MIN_BYTES = 256 << 10           # transfers smaller than 256 KiB do not set the rate
RATE_WEIGHT = 0.3                    # weight of the newest transfer in the EWMA
FALLBACK_USER = "cpod"               # the login name when ours cannot be found

log = logging.getLogger(__name__)


class _Link:
    """One connection to one pod: its SSHClient and idle SFTP channels."""

    def __init__(self, endpoint: Endpoint, client: paramiko.SSHClient):
        self.endpoint = endpoint
        self.client = client
        self.idle: list[paramiko.SFTPClient] = []
        self.open = 0
        self.ready = threading.Condition()

    def alive(self) -> bool:
        transport = self.client.get_transport()
        return transport is not None and transport.is_active()

    def take(self) -> paramiko.SFTPClient:
        with self.ready:
            deadline = time.monotonic() + CONNECT_S
            while not self.idle and self.open >= CHANNELS_PER_POD:
                if not self.ready.wait(max(0.0, deadline - time.monotonic())):
                    raise TransferError(
                        f"pod {self.endpoint.pod!r}: no SFTP channel free after {CONNECT_S} s")
            if self.idle:
                return self.idle.pop()
            self.open += 1
        try:
            sftp = paramiko.SFTPClient.from_transport(
                self.client.get_transport(), window_size=tuning.WINDOW_BYTES,
                max_packet_size=tuning.MAX_PACKET_BYTES)
            sftp.get_channel().settimeout(STALL_S)    # a stalled pod fails the pull
            return sftp
        except BaseException:
            with self.ready:
                self.open -= 1
                self.ready.notify()
            raise

    def give_back(self, sftp: paramiko.SFTPClient, healthy: bool) -> None:
        with self.ready:
            if healthy:
                self.idle.append(sftp)
            else:
                self.open -= 1
            self.ready.notify()
        if not healthy:
            _quietly_close(sftp)

    def close(self) -> None:
        with self.ready:
            idle, self.idle = self.idle, []
            self.ready.notify_all()
        for sftp in idle:
            _quietly_close(sftp)
        _quietly_close(self.client)


def _quietly_close(thing: paramiko.SFTPClient | paramiko.SSHClient) -> None:
    """Close, on a connection that may be dead already (closing writes to it)."""
    try:
        thing.close()
    except (EOFError, OSError, paramiko.SSHException):
        pass


def local_user() -> str:
    """Our login name, as ssh would send it.  Our store server checks only
    the key; a system sshd serving a store also checks the name."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return FALLBACK_USER


def connect(endpoint: Endpoint, keys: PodKeys, username: str | None = None
            ) -> paramiko.SSHClient:
    """A logged-in SSHClient to ``endpoint``, refusing any host key but its own."""
    pod = endpoint.pod
    try:
        pinned = key_from_line(endpoint.host_key)
    except ValueError as exc:
        raise HostKeyRefused(f"pod {pod!r} announced a host key that is not one: {exc}")
    client = paramiko.SSHClient()
    name = endpoint.host if endpoint.port == 22 else f"[{endpoint.host}]:{endpoint.port}"
    client.get_host_keys().add(name, pinned.get_name(), pinned)
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    where = f"{endpoint.host}:{endpoint.port}"
    try:
        # a system sshd takes the login its pod's hello names; our server any
        client.connect(endpoint.host, endpoint.port,
                       username=endpoint.user or username or local_user(),
                       pkey=keys.client_key, allow_agent=False, look_for_keys=False,
                       timeout=CONNECT_S, banner_timeout=CONNECT_S, auth_timeout=CONNECT_S,
                       transport_factory=tuning.transport)
    except paramiko.BadHostKeyException as exc:
        _quietly_close(client)
        got = f"{exc.key.get_name()} {exc.key.get_base64()}"
        raise HostKeyRefused(
            f"pod {pod!r} at {where} presented host key {key_fingerprint(got)}, not"
            f" {key_fingerprint(endpoint.host_key)} that its hello announced: refused."
            f" If that pod made new keys, it is trusted again once it announces them"
            f" in an authenticated hello") from None
    except paramiko.AuthenticationException as exc:
        _quietly_close(client)
        raise TransferError(
            f"pod {pod!r} at {where} refused our client key"
            f" {key_fingerprint(keys.client_public)} ({exc}): it accepts the keys of pods"
            f" whose hellos it heard; has it heard ours?") from None
    except (paramiko.SSHException, OSError, EOFError) as exc:
        _quietly_close(client)
        raise TransferError(f"pod {pod!r}: cannot reach its store server at {where}:"
                            f" {exc or type(exc).__name__}") from None
    return client


class Puller:
    """Fetches content by sha from pods into ``store``."""

    def __init__(self, store: ContentStore, keys: PodKeys,
                 endpoint_of: Callable[[str], Endpoint | None], username: str | None = None):
        self._username = username or local_user()
        self._store = store
        self._keys = keys
        self._endpoint_of = endpoint_of
        self._lock = threading.Lock()
        self._links: dict[str, _Link] = {}
        self._connecting: dict[str, threading.Lock] = {}
        self._pulls: dict[str, concurrent.futures.Future] = {}
        self._rates: dict[str, float] = {}
        self._moved_in = 0
        self._closed = False

    @property
    def moved_in(self) -> int:
        """Bytes received since this Puller was made."""
        return self._moved_in

    def rate(self, pod: str) -> float | None:
        """Bytes/s measured to ``pod`` (an EWMA), or None before a large enough transfer."""
        with self._lock:
            return self._rates.get(pod)

    def fetch(self, pod: str, sha: str) -> Path:
        """A local path with the content of ``sha``, pulled from ``pod`` if need be."""
        if not valid_sha(sha):
            raise TransferError(f"pod {pod!r}: cannot fetch {sha!r}: not a sha256")
        if self._store.has(sha):
            return self._store.path(sha)
        with self._lock:
            if self._closed:
                raise TransferError(f"pod {pod!r}: cannot fetch {sha}: the puller is closed")
            pending = self._pulls.get(sha)
            mine = pending is None
            if mine:
                pending = self._pulls[sha] = concurrent.futures.Future()
        if not mine:
            return pending.result()
        try:
            if not self._store.has(sha):          # it may have landed since we looked
                self._pull(pod, sha)
            pending.set_result(self._store.path(sha))
        except BaseException as exc:
            pending.set_exception(exc)
            raise
        finally:
            with self._lock:
                del self._pulls[sha]
        return self._store.path(sha)

    def fetch_many(self, pod: str, shas: Iterable[str]) -> dict[str, Path]:
        """fetch() for each sha (each once), up to CHANNELS_PER_POD at a time:
        small files cost round trips and fsyncs more than bytes, and those
        overlap.  sha -> local path; the first failure is raised."""
        wanted = list(dict.fromkeys(shas))
        missing = [sha for sha in wanted if valid_sha(sha) and not self._store.has(sha)]
        if len(missing) > 1:
            pool = concurrent.futures.ThreadPoolExecutor(
                max_workers=min(CHANNELS_PER_POD, len(missing)), thread_name_prefix="pull")
            try:
                for done in [pool.submit(self.fetch, pod, sha) for sha in missing]:
                    done.result()
            finally:
                pool.shutdown(wait=True, cancel_futures=True)
        return {sha: self.fetch(pod, sha) for sha in wanted}

    def probe(self, endpoint: Endpoint) -> str | None:
        """None if ``endpoint`` accepts our client key with the host key it
        announced and opens SFTP; else what went wrong."""
        try:
            client = connect(endpoint, self._keys, self._username)
        except TransferError as exc:
            return str(exc)
        try:
            client.open_sftp().close()
            return None
        except (paramiko.SSHException, OSError, EOFError) as exc:
            return f"pod {endpoint.pod!r}: its store server opened no SFTP session: {exc}"
        finally:
            _quietly_close(client)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            links, self._links = list(self._links.values()), {}
        for link in links:
            link.close()

    # --- internals --------------------------------------------------------------------

    def _pull(self, pod: str, sha: str) -> None:
        for attempt in (1, 2):
            link = self._link(pod)
            try:
                self._pull_over(link, pod, sha)
                return
            except (paramiko.SSHException, EOFError, OSError) as exc:
                if isinstance(exc, OSError) and exc.errno in (errno.ENOENT, errno.EACCES):
                    raise self._refused(pod, sha, exc) from None
                if attempt == 2 or link.alive():
                    raise TransferError(f"pod {pod!r}: pulling {sha} failed:"
                                        f" {exc or type(exc).__name__}") from None
                log.info("pod %s: connection lost (%s); connecting again", pod, exc)
                self._drop(pod, link)

    def _pull_over(self, link: _Link, pod: str, sha: str) -> None:
        sftp = link.take()
        healthy = False
        try:
            started = time.monotonic()
            with self._store.receive(sha) as out:
                moved = read_pipelined(sftp, remote_path(sha), out, progress=self._count)
            healthy = True
            self._measure(pod, moved, time.monotonic() - started)
        except TransferError as exc:             # the hash did not match
            healthy = True
            raise TransferError(f"pod {pod!r}: {exc}") from None
        except OSError as exc:
            healthy = exc.errno in (errno.ENOENT, errno.EACCES)
            raise
        finally:
            link.give_back(sftp, healthy and link.alive())

    def _link(self, pod: str) -> _Link:
        endpoint = self._endpoint_of(pod)
        if endpoint is None:
            raise HostKeyRefused(
                f"pod {pod!r} is unknown: no authenticated hello announced its store"
                f" server and host key, so nothing is pulled from it")
        with self._lock:
            link = self._links.get(pod)
            if link is not None and link.endpoint == endpoint and link.alive():
                return link
            gate = self._connecting.setdefault(pod, threading.Lock())
        with gate:                               # one connect per pod at a time
            with self._lock:
                link = self._links.get(pod)
                if link is not None and link.endpoint == endpoint and link.alive():
                    return link
            stale = link
            fresh = _Link(endpoint, connect(endpoint, self._keys, self._username))
            with self._lock:
                if self._closed:
                    fresh.close()
                    raise TransferError(f"pod {pod!r}: the puller is closed")
                self._links[pod] = fresh
        if stale is not None:
            stale.close()
        return fresh

    def _drop(self, pod: str, link: _Link) -> None:
        with self._lock:
            if self._links.get(pod) is link:
                del self._links[pod]
        link.close()

    def _count(self, n: int) -> None:
        with self._lock:
            self._moved_in += n

    def _measure(self, pod: str, moved: int, seconds: float) -> None:
        if moved < RATE_MIN_BYTES or seconds <= 0:
            return
        sample = moved / seconds
        with self._lock:
            old = self._rates.get(pod)
            self._rates[pod] = sample if old is None else (
                RATE_WEIGHT * sample + (1 - RATE_WEIGHT) * old)

    @staticmethod
    def _refused(pod: str, sha: str, exc: OSError) -> TransferError:
        if exc.errno == errno.ENOENT:
            return TransferError(f"pod {pod!r} does not hold {sha} in its store")
        return TransferError(f"pod {pod!r} refused to serve {sha}: {exc.strerror or exc}")
