"""An incremental build leaves the same outputs as a clean build, whatever the edits.

Hypothesis makes small projects (3-10 steps over a few sources; a DAG plus,
sometimes, one cyclic group that converges) and a short sequence of edits
to the sources.  After each edit `cpod build` runs in the project, and a
clean build runs in a fresh copy of its sources; every output must have the
same bytes in both, and both builds must succeed.

The edits are the ones a stat cache can get wrong (docs/architecture.md §4): new
content; the same content (mtime changes, hash does not); a touch; delete
and recreate (new inode); and the racily-clean case, where a file is
rewritten in the timestamp tick in which the last build checked it, so
size, mtime and inode all stay as recorded and only the content differs.
That case is played on a simulated 2-second-timestamp filesystem: the
source gets the current tick as its mtime, a build checks it, and right
after the build one character changes and the mtime is again the tick of
that write.  Usually that is the same tick; when the build outlasted it,
the mtime honestly moves on (setting it back regardless would be a forged
stamp no build system is asked to see through).  Hypothesis's statistics
count both outcomes.

A source state already built clean in this example (after a touch, say)
is not built clean again: the tools are deterministic.

Cyclic groups are written so that their fixpoint does not depend on where
they start (a clean build starts from nothing, an incremental one from the
last fixpoint): a step's next state is ``min(prev + 1, K)`` with K taken
from its inputs, or follows a table whose every chain ends in one state.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st

from incremental import (assert_same_outputs, apply, build, edits_for, fresh_copy, projects,
                         read_outputs, rewrite_in_tick, sources_now, stamp_tick)


@settings(max_examples=12, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_incremental_build_equals_clean_build(tmp_path_factory, data):
    project = data.draw(projects(), label="project")
    edits = data.draw(edits_for(project), label="edits")
    event(f"cycle: {project.cycle}")
    note(f"computepods.toml:\n{project.toml()}")
    scratch = tmp_path_factory.mktemp("incremental")
    root = project.write(scratch / "project")
    history: list[str] = []
    build(root, "the first build", history)
    # sources -> what a clean build of them makes; the first build is one
    clean = {sources_now(root, project): read_outputs(root, project)}

    def build_and_compare() -> None:
        state = sources_now(root, project)
        if state in clean:
            # These very sources were built clean before (a touch, the same
            # content): the tools are deterministic, so that build stands.
            run = build(root, "the incremental build", history)
        else:
            fresh = fresh_copy(root, scratch / f"clean{len(clean)}")
            # Two projects, two cores: the clean build runs beside the incremental one.
            with ThreadPoolExecutor(max_workers=2) as pool:
                clean_run = pool.submit(build, fresh, "the clean build", history)
                run = build(root, "the incremental build", history)
                clean_run.result()
            clean[state] = read_outputs(fresh, project)
        assert_same_outputs(project, read_outputs(root, project), clean[state], history, run)

    for edit in edits:
        if edit.kind == "racy":
            history.append(f"{edit} (1: write, mtime = tick)")
            tick = stamp_tick(root, edit)
            build_and_compare()
            history[-1] = f"{edit} (2: same size, same tick)"
            rewrite_in_tick(root, edit, tick)
        else:
            history.append(str(edit))
            apply(root, edit)
        build_and_compare()
