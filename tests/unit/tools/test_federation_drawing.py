"""diagrams/federation.dot: two pods and the subjects between their charts,
drawn from the code's bridge calls (tools/federation.py)."""
from __future__ import annotations

from computepods.bus import messages as m
from computepods.tools.charts import MARK, wiring
from computepods.tools.federation import federation_dot


def edges(dot: str) -> set[tuple[str, str, str]]:
    found = set()
    for line in dot.splitlines():
        if " -> " in line and "label=" in line:
            a, rest = line.strip().split(" -> ", 1)
            b = rest.split(" [", 1)[0]
            label = rest.split('label="', 1)[1].split('"', 1)[0]
            found.add((a.strip('"'), b.strip('"'), label))
    return found


def test_the_user_pods_majordomo_runs_steps_on_both_pods_chefs_and_hears_their_results():
    drawn = edges(federation_dot(wiring(), MARK))
    run, results = m.ROUTES[m.CHEF_RUN].template, m.ROUTES[m.STEP_RESULTS].template
    hello = m.ROUTES[m.PODS_HELLO].template
    assert {("user:MajorDomo", "user:Chef", run), ("user:MajorDomo", "chefpod:Chef", run),
            ("chefpod:Chef", "user:MajorDomo", results),
            ("user:Herald", "chefpod:Herald", hello), ("chefpod:Herald", "user:Herald", hello),
            ("user:MajorDomo", "user:Store", "RECORD")} <= drawn
    # a chef pod has no MajorDomo, and no chart hears a subject from itself
    assert not any(b == "chefpod:MajorDomo" or a == b for a, b, _ in drawn)
    # the fabric stays inside a pod
    assert not any(label == "RECORD" and a.split(":")[0] != b.split(":")[0]
                   for a, b, label in drawn)


def test_a_subject_no_chart_hears_draws_no_arrow():
    announce = m.ROUTES[m.RULES_ANNOUNCE].template       # published; read by nobody
    assert not any(label == announce for *_, label in edges(federation_dot(wiring(), MARK)))
