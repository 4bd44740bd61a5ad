"""Running steps: the wire form of a step, slots and the worker pool, scratch space, commit, discovery, the process runner."""
