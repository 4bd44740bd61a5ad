"""Planning a build: resolving targets to steps, the (cyclic) graph, what is stale, the scheduler that runs it to a fixpoint, the plan cache and explain."""
