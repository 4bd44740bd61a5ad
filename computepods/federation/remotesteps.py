"""Steps from another pod: materialise their files, run them, keep their outputs.

A run message whose ``origin`` is another pod carries, for each step, the
sha256 of every file it reads (``RunStep.files``).  :class:`RemoteSteps`
builds such a step in that origin's tree of the workspace: it puts the
files there by hash (:meth:`Workspace.materialise`, through a ``fetch``
such as the Puller's), takes a view of only those files
(:func:`computepods.chef.scratch.make_sparse_view`), runs the step there
as any other (:func:`computepods.chef.step.execute`), and keeps each output it
committed in the pod's served content store (``keep(path) -> sha``), so the
origin can pull it back by that hash.  A file that cannot be fetched fails
the step, with the transfer's own words; the chef goes on.
"""
from __future__ import annotations

import dataclasses
import logging
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable

from computepods.bus.chefwire import Output, StepResult
from computepods.chef import scratch
from computepods.chef.step import StepJob, execute, failed_item
from computepods.errors import ComputePodsError, TransferError
from computepods.federation.prefetch import Prefetcher
from computepods.federation.workspace import Fetch, Workspace

if TYPE_CHECKING:
    from computepods.chef.slot import Slot

log = logging.getLogger("computepods.chef")

Keep = Callable[[Path], str]       # keep(path) -> its sha256, once in the served store


class RemoteSteps:
    """Runs steps whose files come from other pods, in ``workspace``."""

    def __init__(self, workspace: Workspace, fetch: Fetch, keep: Keep | None = None,
                 prefetch: bool = False):
        """``prefetch``: :meth:`prefetch` pulls ahead (for a fetch that keeps
        what it pulled and pulls each sha once, as the Puller does)."""
        self.workspace = workspace
        self.fetch = fetch
        self.keep = keep
        self.prefetcher = Prefetcher(fetch) if prefetch else None

    def prefetch(self, jobs: Iterable[StepJob]) -> int:
        """Start pulling the files of ``jobs`` (queued, not yet in a slot)
        from their origins, in their order; how many were asked for."""
        if self.prefetcher is None:
            return 0
        return sum(self.prefetcher.ask(job.origin, job.files.values())
                   for job in jobs if job.origin and job.files)

    def close(self) -> None:
        """End the prefetch threads."""
        if self.prefetcher is not None:
            self.prefetcher.close()

    def tree(self, job: StepJob) -> Path:
        return self.workspace.tree(job.origin)

    def run(self, job: StepJob, slot_for: Callable[[Path], "Slot"],
            on_started: Callable[[int], None] | None = None,
            lapsed: Callable[[], str | None] = lambda: None) -> StepResult:
        """Materialise ``job``'s files, run it in its origin's tree (in the slot
        ``slot_for(tree)`` gives), keep its outputs; the result to report."""
        tree, work = self.tree(job), None
        try:
            self.workspace.materialise(tree, job.files, self.fetch, job.origin)
            work = scratch.make_scratch(tree, job.step.id)
            with self.workspace.holding(tree):
                # Checked again, and seen, with no other materialise between.
                self.workspace.materialise(tree, job.files, self.fetch, job.origin)
                scratch.make_sparse_view(tree, work, job.files,
                                         (*job.step.outputs, *job.known_outputs),
                                         copy_in=list(job.copy_in), cwd=job.step.cwd or "")
        except TransferError as exc:
            log.warning("step %s from pod %s: %s", job.step.id, job.origin, exc)
            return self._failed(job, work, f"its files could not be fetched from pod "
                                           f"{job.origin}: {exc}")
        except (OSError, ComputePodsError, ValueError) as exc:
            return self._failed(job, work, f"its files could not be put in the workspace: {exc}")
        item = execute(tree, job, slot_for(tree), on_started=on_started, lapsed=lapsed,
                       work=work)
        return self.kept(tree, item) if item.ok else item

    @staticmethod
    def _failed(job: StepJob, work: Path | None, reason: str) -> StepResult:
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)
        return failed_item(job.step.id, job.attempt, reason)

    def kept(self, tree: Path, item: StepResult) -> StepResult:
        """``item`` with each output kept in the served store, its sha256 the
        store's; a failure to keep one fails the step (its origin could not
        pull it back)."""
        if self.keep is None:
            return item
        outputs: dict[str, Output] = {}
        for path, out in item.outputs.items():
            try:
                sha = self.keep(tree / path)
            except (OSError, ComputePodsError, ValueError) as exc:
                return dataclasses.replace(
                    item, ok=False, outputs={}, discovered=[],
                    reason=f"its output {path} could not be kept in the pod's store: {exc}")
            outputs[path] = dataclasses.replace(out, sha256=sha)
        return dataclasses.replace(item, outputs=outputs)


def directory_fetch(directory: Path) -> Fetch:
    """A fetch from a content-store directory on this machine
    (``directory/sha256/<2 hex>/<64 hex>``, the layout of transfer/store.py),
    such as a store on a shared disk.  TransferError when the file is not
    there."""
    root = Path(directory)

    def fetch(pod: str, sha: str) -> Path:
        path = root / "sha256" / sha[:2] / sha
        if len(sha) != 64 or not path.is_file():
            raise TransferError(f"pod {pod}: file {sha} is not in the store {root}")
        return path
    return fetch


def no_fetch(pod: str, sha: str) -> Path:
    """The fetch of a chef pod that has no way to pull from other pods."""
    raise TransferError(f"pod {pod}: file {sha}: this chef pod has no way to pull files "
                        "from other pods (no SFTP puller)")
