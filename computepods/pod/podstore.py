"""A pod's store and its two SFTP ends, shared by every namespace it joins.

A pod has one key pair, one content store, one :class:`StoreServer` and one
:class:`Puller`, however many namespaces it announces itself on (a chef pod
run with ``--namespace a --namespace b`` serves the projects of both).
Each namespace has its own :class:`Roster` (the pods heard there, their
host keys pinned there), and the two ends consult them so that one
namespace never reaches into another:

* the server lets in the client key of a live hello heard on *any* of the
  pod's namespaces (each of those pods may pull the outputs of its steps);
* a pull asks for a pod *of a namespace*: with several, the Puller knows
  pods as ``<namespace>/<pod>`` (a namespace is one subject token, so
  never holds '/'), and the endpoint comes from that namespace's roster
  alone.  A step sent on namespace ``a`` naming a pod of ``b`` as the
  origin of its files finds no such pod: nothing is pulled for it from
  ``b``'s pods, whose stores would let this pod in.  With one namespace
  the keys are the pod ids, as they always were.

What is in the store is served by hash to any pod let in, whichever
namespace put it there: a sha256 is the capability to read its content.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable, Sequence

from computepods.federation.roster import Roster
from computepods.transfer.endpoint import Endpoint
from computepods.transfer.keys import PodKeys
from computepods.transfer.pull import Puller
from computepods.transfer.server import StoreServer
from computepods.transfer.sshd import SshdServing, chroot_problem
from computepods.transfer.store import ContentStore

log = logging.getLogger("computepods.federation")

NAMESPACE_SEP = "/"          # in a Puller's pod key: "<namespace>/<pod>"


class PodStore:
    """Start with :meth:`start`, stop with :meth:`stop`; the rosters are
    there from the start (a Member seeds its own before the server runs)."""

    def __init__(self, keys_dir: Path, store_dir: Path, namespaces: Sequence[str], *,
                 lookup: Callable[[str], "Path | None"] | None = None,
                 host: str = "127.0.0.1", port: int = 0, sshd: SshdServing | None = None):
        """``sshd``: the system sshd serves our store there (transfer/sshd.py),
        so we start no StoreServer of our own."""
        if not namespaces:
            raise ValueError("a pod store serves at least one namespace")
        self.namespaces = tuple(dict.fromkeys(namespaces))
        self._rosters = {ns: Roster() for ns in self.namespaces}
        self._keys_dir, self._store_dir = Path(keys_dir), Path(store_dir)
        self._lookup, self._host, self._port = lookup, host, port
        self.sshd = sshd
        self.keys: PodKeys | None = None
        self.store: ContentStore | None = None
        self.server: StoreServer | None = None
        self.puller: Puller | None = None

    def start(self) -> "PodStore":
        try:
            self.keys = PodKeys.load_or_create(self._keys_dir)
            self.store = ContentStore(self._store_dir)
            if self.sshd is not None and (problem := chroot_problem(self._store_dir)):
                log.warning("the system sshd is to serve our store %s, but would refuse to"
                            " chroot into it: %s (sshd's ChrootDirectory and every directory"
                            " above it must be root's and written by no one else)",
                            self._store_dir, problem)
            if self.sshd is None:
                self.server = StoreServer(self.store, self.keys, self.authorized,
                                          lookup=self._lookup, host=self._host,
                                          port=self._port).start()
            self.puller = Puller(self.store, self.keys, self.endpoint)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.puller is not None:
            self.puller.close()
        if self.server is not None:
            self.server.stop()
        self.puller = self.server = None

    def served_at(self, pod: str) -> Endpoint:
        """Where our hello says our store is: our server, or the system sshd."""
        if self.sshd is not None:
            return self.sshd.endpoint(pod)
        assert self.server is not None, "PodStore.served_at before start"
        return self.server.endpoint(pod)

    # -- namespaces ---------------------------------------------------------------
    def roster(self, namespace: str) -> Roster:
        """The pods heard on `namespace`."""
        try:
            return self._rosters[namespace]
        except KeyError:
            raise ValueError(f"namespace {namespace!r} is not one this pod store serves "
                             f"({', '.join(self.namespaces)})") from None

    def authorized(self, public_line: str) -> bool:
        """Whether a live pod of any of our namespaces announced this client key."""
        return any(r.client_authorized(public_line) for r in self._rosters.values())

    def pull_key(self, namespace: str, pod: str) -> str:
        """How the Puller knows `pod` of `namespace`."""
        self.roster(namespace)
        if len(self.namespaces) == 1:
            return pod
        return f"{namespace}{NAMESPACE_SEP}{pod}"

    def endpoint(self, key: str) -> Endpoint | None:
        """The endpoint of the pod a :meth:`pull_key` names, from its
        namespace's roster only; None for a pod not live there."""
        if len(self.namespaces) == 1:
            return self._rosters[self.namespaces[0]].endpoint(key)
        namespace, sep, pod = key.partition(NAMESPACE_SEP)
        roster = self._rosters.get(namespace) if sep else None
        return roster.endpoint(pod) if roster is not None else None

    # -- pulling --------------------------------------------------------------------
    def fetch(self, namespace: str, pod: str, sha: str) -> Path:
        """A local file holding `sha`, pulled from `pod` of `namespace` if need be."""
        assert self.puller is not None, "PodStore.fetch before start"
        return self.puller.fetch(self.pull_key(namespace, pod), sha)

    def rate(self, namespace: str, pod: str) -> float | None:
        """Bytes/s measured from `pod` of `namespace`, or None."""
        return self.puller.rate(self.pull_key(namespace, pod)) if self.puller else None

    def moved_in(self) -> int:
        return self.puller.moved_in if self.puller is not None else 0

    def moved_out(self) -> int:
        return self.server.moved_out if self.server is not None else 0
