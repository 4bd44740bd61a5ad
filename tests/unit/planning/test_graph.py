"""computepods.planning.graph: dependencies, components and their order."""
from __future__ import annotations

from computepods.planning.graph import BuildGraph
from computepods.planning.resolve import Plan, bind
from computepods.project.model import Rule


def plan_of(*rules: tuple) -> Plan:
    """A plan of explicit rules (name, inputs, outputs[, discover]), in order."""
    plan = Plan()
    for index, (name, inputs, outputs, *discover) in enumerate(rules):
        rule = Rule(name=name, inputs=tuple(inputs), outputs=tuple(outputs),
                    command="true", discover=discover[0] if discover else None, index=index)
        step = bind(rule, None)
        plan.steps[step.id] = step
        for out in step.outputs:
            plan.producers.setdefault(out, step.id)
        plan.sources.update(p for p in inputs if p.startswith("src/"))
    return plan


def order(graph: BuildGraph) -> list[tuple[str, ...]]:
    return [c.steps for c in graph.components]


def test_a_chain_runs_producers_first_whatever_the_plan_order():
    graph = BuildGraph.from_plan(plan_of(("link", ["b.o"], ["app"]),
                                         ("cc", ["src/b.c"], ["b.o"])))
    assert graph.deps == {"link:app": {"cc:b.o"}, "cc:b.o": set()}
    assert graph.dependants == {"cc:b.o": {"link:app"}, "link:app": set()}
    assert order(graph) == [("cc:b.o",), ("link:app",)]
    assert not any(c.cyclic for c in graph.components)
    assert graph.component_of == {"cc:b.o": 0, "link:app": 1}


def test_independent_steps_keep_the_plan_order():
    graph = BuildGraph.from_plan(plan_of(*[(f"r{n}", [f"src/{n}"], [f"out/{n}"])
                                           for n in (3, 1, 2)]))
    assert order(graph) == [("r3:out/3",), ("r1:out/1",), ("r2:out/2",)]


def test_a_cycle_is_one_component_between_its_producers_and_its_readers():
    graph = BuildGraph.from_plan(plan_of(
        ("report", ["x", "src/style"], ["report.pdf"]),
        ("x", ["y", "src/seed"], ["x"]),
        ("y", ["x"], ["y"]),
        ("seed", ["src/s"], ["src/seed"])))
    assert order(graph) == [("seed:src/seed",), ("x:x", "y:y"), ("report:report.pdf",)]
    seed, cycle, report = graph.components
    assert cycle.cyclic and not seed.cyclic and not report.cyclic
    assert cycle.label() == "{x:x, y:y}" and report.label() == "report:report.pdf"
    assert graph.component_deps(cycle) == {seed.index}       # not itself
    assert graph.component_deps(report) == {cycle.index}
    assert graph.component_deps(seed) == set()


def test_a_tex_step_is_a_cyclic_group_of_one_from_its_first_build():
    graph = BuildGraph.from_plan(plan_of(("tex", ["src/p.tex"], ["p.pdf", "p.aux"], "fls")))
    [component] = graph.components
    assert component.cyclic and component.steps == ("tex:p.pdf",)
    assert graph.deps["tex:p.pdf"] == {"tex:p.pdf"}
    assert graph.component_deps(component) == set()


def test_discovered_inputs_add_edges_to_their_producers():
    plan = plan_of(("cc", ["src/a.c"], ["a.o"]), ("gen", ["src/h.in"], ["gen.h"]))
    assert order(BuildGraph.from_plan(plan)) == [("cc:a.o",), ("gen:gen.h",)]
    graph = BuildGraph.from_plan(plan, {"cc:a.o": ["gen.h", "src/a.h", "/usr/include/stdio.h"]})
    assert graph.deps["cc:a.o"] == {"gen:gen.h"}              # only produced files are edges
    assert graph.dependants["gen:gen.h"] == {"cc:a.o"}
    assert order(graph) == [("gen:gen.h",), ("cc:a.o",)]


def test_a_discovered_edge_can_close_a_cycle():
    plan = plan_of(("a", ["src/a"], ["a"]), ("b", ["a"], ["b"]))
    graph = BuildGraph.from_plan(plan, {"a:a": ["b"]})
    [component] = graph.components
    assert component.cyclic and component.steps == ("a:a", "b:b")


def test_a_discovered_input_of_a_step_not_in_the_plan_is_ignored():
    plan = plan_of(("a", ["src/a"], ["a"]))
    graph = BuildGraph.from_plan(plan, {"gone:x": ["a"], "a:a": ["not-produced"]})
    assert graph.deps == {"a:a": set()} and order(graph) == [("a:a",)]
