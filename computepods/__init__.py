"""computepods: an incremental, distributed build system that builds cycles.

The public API, for a pod process of your own (README "Embedding")::

    from computepods import Pod, PodOptions, Chef, FSWatcher, NatsBridge, SystemClock

Each name is imported the first time it is asked for (a module-level
``__getattr__``, PEP 562), so ``import computepods`` loads nothing but this
file: a ``cpod build`` handed to a running pod never pays for miros, nats or
networkx.  What is public, and what may change, is said in README.rst and
docs/architecture.md §8.
"""
from __future__ import annotations

# typing's flag, without importing typing (a handed-off `cpod build` loads
# none; type checkers know this name).
TYPE_CHECKING = False

from computepods.version import __version__

# Public name -> the module that defines it.  Only these are public; the
# rest of the package may change between versions without notice.
_PUBLIC = {
    # a whole pod, as `cpod build` and `cpod up` run one
    "Pod": "computepods.pod.pod",
    "PodOptions": "computepods.pod.pod",
    # the charts a pod is made of, and their base
    "Chart": "computepods.charts.base",
    "Fabric": "computepods.charts.base",
    "Chef": "computepods.charts.chef",
    "FSWatcher": "computepods.charts.watcher",
    "MajorDomo": "computepods.charts.majordomo",
    "Store": "computepods.charts.store",
    # the bus: the protocol, NATS, and the in-process one for tests
    "Bus": "computepods.bus.protocol",
    "NatsBridge": "computepods.bus.bridge",
    "LoopbackBus": "computepods.bus.loopback",
    "NatsServer": "computepods.bus.natsd",
    # time: the protocol, real time, and the one a test moves
    "Clock": "computepods.clock",
    "SystemClock": "computepods.clock",
    "SimClock": "computepods.clock",
    "Alarm": "computepods.clock",
    # a chef pod of your own: its pack, its workspace, its membership of a federation
    "register_pack": "computepods.project.packs",
    "Workspace": "computepods.federation.workspace",
    "join_as_chef_pod": "computepods.pod.federated",
    # the root of every error computepods raises on purpose
    "ComputePodsError": "computepods.errors",
}

__all__ = ["__version__", "Pod", "PodOptions", "Chart", "Fabric", "Chef", "FSWatcher",
           "MajorDomo", "Store", "Bus", "NatsBridge", "LoopbackBus", "NatsServer", "Clock",
           "SystemClock", "SimClock", "Alarm", "register_pack", "Workspace",
           "join_as_chef_pod", "ComputePodsError"]

if TYPE_CHECKING:      # for type checkers and editors; never run
    from computepods.bus.bridge import NatsBridge
    from computepods.bus.loopback import LoopbackBus
    from computepods.bus.natsd import NatsServer
    from computepods.bus.protocol import Bus
    from computepods.charts.base import Chart, Fabric
    from computepods.charts.chef import Chef
    from computepods.charts.majordomo import MajorDomo
    from computepods.charts.store import Store
    from computepods.charts.watcher import FSWatcher
    from computepods.clock import Alarm, Clock, SimClock, SystemClock
    from computepods.errors import ComputePodsError
    from computepods.federation.workspace import Workspace
    from computepods.pod.federated import join_as_chef_pod
    from computepods.project.packs import register_pack
    from computepods.pod.pod import Pod, PodOptions


def __getattr__(name: str) -> object:
    """Import a public name's module on first use, and keep the name here."""
    module = _PUBLIC.get(name)
    if module is None:
        # An AttributeError lets `from computepods import errors` go on to
        # import the submodule, as it would without this function.
        raise AttributeError(f"module 'computepods' has no attribute {name!r}")
    # __import__ is the import statement's own path, which -X importtime
    # reports (importlib.import_module's is not): the tests that count what
    # a command loads see what a name costs.
    value = getattr(__import__(module, fromlist=[name]), name)
    globals()[name] = value           # the next lookup skips this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_PUBLIC})
