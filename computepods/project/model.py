"""The project file's records: rules, schedules, the project (docs/architecture.md §2, §3).

Plain records, made by :mod:`computepods.project.load` and read by
everything else.  This module imports nothing from the package, so any
module may import it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_MAX_PASSES = 5
DISCOVERY_KINDS = ("fls", "blg")     # TeX's -recorder file and log; bibtex's or biber's log


# --- records ------------------------------------------------------------------

@dataclass(frozen=True)
class Glob:
    """An input that names files by a glob (``src/*.c``), found in the tree
    when the rule is planned (project/globs.py).  With ``to``, each match
    stands for the path ``to`` gives it: ``%`` is what the wildcards matched
    (``src/*.c`` to ``build/%.o``: ``src/x.c`` is ``build/x.o``)."""
    pattern: str
    to: str | None = None

    def __str__(self) -> str:
        return self.pattern if self.to is None else f"{self.pattern} as {self.to}"


Input = str | Glob                   # a rule's input as written


@dataclass(frozen=True)
class Rule:
    """One ``[[rule]]``: how to make its outputs from its inputs."""
    name: str
    # project-relative patterns, <= one '%' (as written: '%%' is a literal
    # '%', read through project/stems.py), and globs until planned
    inputs: tuple[Input, ...]
    outputs: tuple[str, ...]
    command: str | tuple[str, ...]   # str: shell-ish string; tuple: argv
    depfile: str | None = None       # pattern
    discover: str | None = None      # None or one of DISCOVERY_KINDS
    timeout: float | None = None     # seconds; None = no limit
    max_passes: int = DEFAULT_MAX_PASSES
    cwd: str | None = None           # may hold {dir} / {stem}
    # input pattern -> part name (docs/architecture.md §4 early cutoff); kept out of the
    # hash because a dict is not hashable.
    parts: dict[str, str] | None = field(default=None, hash=False)
    pack: str | None = None          # the pack it came from, via `use`
    index: int = 0                   # 0-based position among all rules
    # What the rule is, beside how it builds (none in its fingerprint as such):
    # the pack whose rule of this name the project's replaces;
    overrides: str | None = None
    # the inputs the project added to its pack's rule (``extend = true``), as written;
    added: tuple[str, ...] = ()
    # the inputs as written, when globs were found in the tree for these
    written: tuple[str, ...] = ()
    # a pack's rule that joins a build only when a run looked for its
    # output: its first input is what the run wrote (planning/resolve.py)
    on_demand: bool = False

    @property
    def has_globs(self) -> bool:
        return any(isinstance(i, Glob) for i in self.inputs)

    def customised(self) -> str | None:
        """What the project did to a pack's rule of this name, for explain."""
        if self.overrides is not None:
            return f"rule {self.name}: the project's, overriding pack {self.overrides}'s"
        if self.added:
            return (f"rule {self.name}: pack {self.pack}'s, with inputs the project "
                    f"added: {', '.join(self.added)}")
        return None

    @property
    def is_pattern(self) -> bool:
        """Whether the rule makes many files (make's `%` rules)."""
        # stems.has_stem, inlined: this module imports nothing from the package
        return any(out.replace("%%", "").count("%") for out in self.outputs)


@dataclass(frozen=True)
class Schedule:
    """One ``[[schedule]]``: build ``targets`` when ``cron`` fires."""
    cron: str
    targets: tuple[str, ...]


@dataclass
class Project:
    """A loaded, checked project file."""
    root: Path
    path: Path                       # root / PROJECT_FILE
    name: str
    default: tuple[str, ...]
    use: tuple[str, ...]
    ignore: tuple[str, ...]
    stream: tuple[str, ...]
    aliases: dict[str, tuple[str, ...]]
    rules: tuple[Rule, ...]          # the file's rules, then the packs'
    schedules: tuple[Schedule, ...]
    # every used pack's settings, defaults filled in ([pack.NAME] tables)
    packs: dict[str, dict[str, str]] = field(default_factory=dict)
    # tools whose fingerprints may differ between pods ([project] interchangeable)
    interchangeable: tuple[str, ...] = ()
    # a background pod stops after this long with no request ([project] pod_idle)
    pod_idle_s: float = 1800.0
