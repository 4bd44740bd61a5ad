"""What each kind of pod builds to take part in a federation (docs/architecture.md §6).

* the user's pod (``cpod up --nats URL``, ``cpod build --nats URL``): a
  :class:`~computepods.pod.member.Member` in the ``majordomo`` role that
  offers the tree's files by hash, and the MajorDomo's
  :class:`~computepods.federation.federation.Federation` (ownership map,
  built-with table, the Puller's fetch and rates, the tools pods offer);
* a chef pod (``cpod chef`` outside a project): a Member in the ``chef``
  role whose store keeps its chef's outputs for the user's pod to pull;
  one Member per namespace it serves, all over the one
  :class:`~computepods.pod.podstore.PodStore` of its workspace
  (:func:`chef_pod_store`): one key pair, store and SFTP server.

A pod's keys live under the cache directory, by pod id, not in
``.computepods/``: ``cpod clean`` must not give a pod a new host key,
which every other pod would refuse as changed.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Callable, Mapping, Sequence

from computepods.federation.federation import Federation
from computepods.federation.offer import OfferIndex, StoringOffers
from computepods.federation.workspace import cache_dir
from computepods.paths import STATE_DB
from computepods.federation.podid import pod_id_for
from computepods.pod.member import Member, MemberOptions, reachable_host
from computepods.pod.podstore import PodStore
from computepods.state.owners import BuiltWith, OwnerMap
from computepods.transfer.sshd import SshdServing
from computepods.transfer.store import ContentStore

if TYPE_CHECKING:
    from computepods.bus.protocol import Bus
    from computepods.federation.workspace import Workspace

STORE_DIR = "store"          # under .computepods/: the user's pod's content store
KEYS_DIR = "keys"


def listen_address(given: str | None, bus_urls: list[str]) -> tuple[str, int]:
    """Where our SFTP server listens: ``--sftp HOST[:PORT]``, else the
    address we reach the bus from, on a free port."""
    if not given:
        return reachable_host(bus_urls), 0
    host, _, port = given.rpartition(":") if given.count(":") == 1 else (given, "", "0")
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        from computepods.errors import UsageError
        raise UsageError(f"--sftp {given!r}: want HOST or HOST:PORT")
    return host.strip("[]") or reachable_host(bus_urls), int(port)


def keys_dir(pod_id: str) -> Path:
    return cache_dir() / "pods" / pod_id / KEYS_DIR


def join_as_majordomo(bridge: "Bus", root: Path, opts, state: Path,
                      chefs: Callable[[], list[str]], chart_kw: dict
                      ) -> tuple[str, Member, Federation, list[Callable[[], None]]]:
    """(our pod id, our Member, the MajorDomo's Federation, what to close at
    stop), for the pod of `root` with PodOptions `opts`."""
    pod_id = pod_id_for(root)
    join = opts.nats_join
    urls = [opts.nats_url or "", *(join.routes if join else ()), *(join.leaf_remotes if join else ())]
    host, port = listen_address(opts.sftp_listen, [u for u in urls if u])
    sshd: SshdServing | None = opts.sftp_sshd
    offers = (OfferIndex(root) if sshd is None       # sshd sees the store, not the tree
              else StoringOffers(root, ContentStore(state / STORE_DIR)))
    member = Member(bridge, MemberOptions(
        pod=pod_id, role="majordomo", keys_dir=keys_dir(pod_id), store_dir=state / STORE_DIR,
        namespace=opts.namespace, listen_host=host, listen_port=port,
        slots=opts.slots * opts.chefs, chefs=chefs, lookup=offers.lookup, sshd=sshd),
        chart_kw=chart_kw).start()
    owners, built = OwnerMap(root / STATE_DB), BuiltWith(root / STATE_DB)
    federation = Federation(pod_id, member.fetch, owners, rates=member.rate,
                            offered=member.roster.tools, offers=offers, built_with=built,
                            trusts=member.roster.trusts)
    return pod_id, member, federation, [owners.close, built.close]


def chef_pod_store(workspace: "Workspace", namespaces: Sequence[str], *, bus_urls: list[str],
                   sftp: str | None, sshd: SshdServing | None = None) -> PodStore:
    """A chef pod's PodStore, started: its workspace's keys and store, served
    over SFTP to the pods it hears on any of `namespaces` (by the system
    sshd at `sshd` if given)."""
    host, port = listen_address(sftp, bus_urls)
    return PodStore(workspace.keys_dir, workspace.store_dir, namespaces,
                    host=host, port=port, sshd=sshd).start()


def join_as_chef_pod(bridge: "Bus", workspace: "Workspace", pod_id: str, *, namespace: str,
                     bus_urls: list[str], sftp: str | None, slots: int,
                     chefs: Callable[[], list[str]],
                     tools: Callable[[], Mapping[str, str]] | None = None,
                     chart_kw: dict | None = None, shared: PodStore | None = None,
                     sshd: SshdServing | None = None) -> Member:
    """A chef pod's Member on `bridge`'s namespace: its store (what its
    chef's steps read, and their outputs) served to the pods it hears.
    ``shared``: the pod's PodStore when it serves several namespaces;
    ``tools``: the fingerprints its hello offers (default: every pack's
    tools found on this PATH, registered packs included, as a new Chef's).
    Public (README "Embedding"): a pod process of your own joins with it,
    and gives its Chef the Member's ``fetch`` and ``store.add``."""
    if tools is None:
        from computepods.chef.tools import ChefTools
        own = ChefTools()
        own.fingerprint_all()
        tools = lambda: own.fingerprints        # noqa: E731
    host, port = listen_address(sftp, bus_urls)
    return Member(bridge, MemberOptions(
        pod=pod_id, role="chef", keys_dir=workspace.keys_dir, store_dir=workspace.store_dir,
        namespace=namespace, listen_host=host, listen_port=port, slots=slots, chefs=chefs,
        tools=tools, sshd=sshd), chart_kw=chart_kw or {}, shared=shared).start()
