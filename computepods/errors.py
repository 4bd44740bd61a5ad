"""The error hierarchy of computepods: one root, a few families.

Every error a user can meet carries enough to act on: the file, the rule and
the key for a project-file error; the step, its command and its output tails
for a failed step.  Each class knows the ``cpod`` exit code it maps to
(docs/architecture.md §2); the REST boundary maps them to HTTP errors in one place.
"""
from __future__ import annotations

import errno

# Exit codes of cpod and cpctrl (docs/architecture.md §2).
EXIT_OK = 0
EXIT_FAILED = 1          # a step failed or a cyclic group did not converge
EXIT_CANNOT_START = 2    # usage, project file, unknown target, lock held, ...
EXIT_UNREACHABLE = 3     # cpctrl: server unreachable or token refused
EXIT_INTERRUPTED = 130


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived (raised by cpod's signal handler).  Not a
    ComputePodsError: it is what the user asked for, not a fault.  A
    BaseException, as KeyboardInterrupt is: an ``except Exception`` that
    turns failures into messages (in nats-py's import, in the bridge's
    connect) must not swallow a stop request (a chef stopped while it
    started up used to carry on)."""


class ComputePodsError(Exception):
    """Root of every error computepods raises on purpose."""

    exit_code = EXIT_CANNOT_START

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


# --- could not start (exit 2) -------------------------------------------------

class UsageError(ComputePodsError):
    """The command line is wrong."""


class ProjectNotFound(ComputePodsError):
    """No computepods.toml at or above the working directory."""


class ProjectError(ComputePodsError):
    """The project file is malformed: names the file, the rule and the key."""

    def __init__(self, path: str, problem: str, rule: str | None = None,
                 key: str | None = None):
        self.path, self.rule, self.key, self.problem = path, rule, key, problem
        where = [str(path)]
        if rule is not None:
            where.append(f"rule {rule!r}")
        if key is not None:
            where.append(f"key {key!r}")
        super().__init__(": ".join(where) + ": " + problem)


class PackError(ComputePodsError):
    """A rule pack of the user's own (``register_pack``, ``CP_PACKS``) is
    malformed, or takes the name of one computepods ships."""


class UnknownTarget(ComputePodsError):
    """A target that no rule builds and that is not a source on disk."""


class PathEscapesWorkspace(ComputePodsError):
    """A path that would leave the project (or a chef's workspace)."""


class NoChefCanBuild(ComputePodsError):
    """No chef offers the tool a step needs."""


class WatchError(ComputePodsError):
    """A tree cannot be watched: not a directory, or the inotify limits are reached."""


# --- the disk and the state database (exit 2) ---------------------------------

DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
NOT_WRITABLE_ERRNOS = (errno.EACCES, errno.EPERM, errno.EROFS)


class DiskFull(ComputePodsError, OSError):
    """A write failed for want of space or quota (ENOSPC, EDQUOT).  The
    message names the disk and what was not written (:func:`computepods.paths.
    disk_full`).  An OSError too, with its errno, so that code which already
    copes with a failed write (a cache it may skip) still does."""

    def __init__(self, message: str, err: int = errno.ENOSPC):
        OSError.__init__(self, err, message)
        self.message = message


class NotWritable(ComputePodsError, OSError):
    """A file or directory computepods must write is read-only, or not the
    user's to write (EACCES, EPERM, EROFS): a permission problem, to say so."""

    def __init__(self, message: str, err: int = errno.EACCES):
        OSError.__init__(self, err, message)
        self.message = message


class StateCorrupt(ComputePodsError):
    """``.computepods/state.db`` cannot be read as a state database."""


class RecordsNotWritten(ComputePodsError):
    """``cpod build`` stops: the Store could not write the records of
    finished steps (a pod under ``cpod up`` waits and tries again)."""


# --- the build ran and failed (exit 1) ----------------------------------------

class BuildFailed(ComputePodsError):
    exit_code = EXIT_FAILED


# --- the bus ------------------------------------------------------------------

class BusError(ComputePodsError):
    """NATS is unreachable, or a request got no answer after its retries."""


class MalformedMessage(ComputePodsError):
    """A bus message that is not JSON, lacks `v`, or breaks its schema."""

    def __init__(self, subject: str, problem: str):
        self.subject, self.problem = subject, problem
        super().__init__(f"malformed message on {subject!r}: {problem}")


# --- federation: pods, their stores and transfers ------------------------------

class TransferError(ComputePodsError):
    """A file could not be moved between pods: the pod is unreachable, the
    file is not in its store, or what arrived does not have its hash."""


class HostKeyRefused(TransferError):
    """A pod's SFTP host key is unknown, or not the one it announced."""


class NatsServerError(ComputePodsError):
    """The embedded nats-server could not be started."""


# --- the REST API (mapped to HTTP statuses in computepods/api/app.py) ------

class HttpServerError(ComputePodsError):
    """The REST app's gunicorn could not be started (address taken, ...)."""


class NotFound(ComputePodsError):
    """A build, step or artefact the pod does not know."""


class BuildFinished(ComputePodsError):
    """A request for a running build (a cancel) came after it finished."""


class BuildRunning(ComputePodsError):
    """A request for what a build has once it ends (its timeline) came while it runs."""


class ServerUnreachable(ComputePodsError):
    """cpctrl: no server answers at the URL, or it refused the token."""

    exit_code = EXIT_UNREACHABLE


class RequestRefused(ComputePodsError):
    """cpctrl: the server answered with an error status (the exit code follows it)."""

    def __init__(self, status: int, title: str, description: str = ""):
        super().__init__(f"{title}: {description}" if description else title)
        self.status = status
        self.exit_code = (EXIT_UNREACHABLE if status in (401, 403, 503)
                          else EXIT_FAILED if status >= 500 else EXIT_CANNOT_START)


# --- charts -------------------------------------------------------------------

class ChartQueueFull(ComputePodsError):
    """An event could not be queued in time: the chart is not keeping up."""


# --- developer tools ------------------------------------------------------------

class DiagramError(ComputePodsError):
    """A diagram could not be drawn: names the .dot and what graphviz said."""


# --- chefpod (federation) ---

class WorkspaceBusy(ComputePodsError):
    """Another chef pod holds this workspace: two would overwrite each
    other's trees and store."""

    def __init__(self, root: str, holder: str):
        self.root, self.holder = root, holder
        super().__init__(f"workspace {root} is in use by {holder}; give this chef "
                         "another one with --workspace DIR, or stop that one")

# --- end chefpod ---


# --- cluster (federation) ---------------------------------------------------------

class ClusterConfigError(UsageError):
    """--nats-routes, --nats-leaf or --nats-cluster-port cannot make a server
    config: a URL that is not one, a port out of range, a missing login."""
# --- end cluster ---


# --- cachefile (federation) ---

class CacheFileBusy(ComputePodsError):
    """The discovery cache's lock stayed held past the wait: names the file,
    the holder's pid, and what to do."""

# --- end cachefile ---
