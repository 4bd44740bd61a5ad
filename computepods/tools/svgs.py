"""Draw diagrams/*.svg from diagrams/*.dot, each stamped with its .dot's hash.

An SVG depends on the graphviz version that drew it, so a test cannot
compare it with a fresh drawing.  Instead each SVG carries, in an XML
comment after its declaration, the sha256 of the .dot it was drawn from::

    <!-- drawn from diagrams/store.dot sha256:6f1c... -->

and :func:`stale` names every SVG whose stamp is not its .dot's hash (the
.dot changed, as :mod:`computepods.tools.charts` regenerates it, and the
picture was not drawn again), every .dot with no SVG, and every SVG whose
.dot is gone.  tests/unit/tools/test_svgs.py keeps diagrams/ true.

``python -m computepods.tools.svgs`` (``make diagrams``) draws only the
stale ones, with graphviz's ``dot``; ``--check`` draws nothing and exits 1
naming them.
"""
from __future__ import annotations

import argparse
import hashlib
import re
import shutil
import subprocess
import sys
from pathlib import Path

from computepods.errors import DiagramError
from computepods.paths import atomic_write

ROOT = Path(__file__).resolve().parents[2]
DIAGRAMS = "diagrams"
DOT_TIMEOUT_S = 60.0          # seconds graphviz gets for one picture
STAMP = re.compile(r"<!-- drawn from (\S+) sha256:([0-9a-f]{64}) -->")
FIX = "run `make diagrams` and commit the result"


def dot_hash(dot: Path) -> str:
    """The sha256 of a .dot file's bytes: what its SVG's stamp must say."""
    return hashlib.sha256(dot.read_bytes()).hexdigest()


def stamp_of(svg_text: str) -> str | None:
    """The hash an SVG says it was drawn from; None if it has no stamp."""
    found = STAMP.search(svg_text)
    return found.group(2) if found else None


def stamped(svg_text: str, rel_dot: str, sha: str) -> str:
    """The SVG with its stamp after the XML declaration (a comment may not precede it)."""
    comment = f"<!-- drawn from {rel_dot} sha256:{sha} -->\n"
    head, sep, rest = svg_text.partition("?>\n")
    return head + sep + comment + rest if sep and head.startswith("<?xml") else comment + svg_text


def problems(root: Path = ROOT) -> dict[str, str]:
    """Each stale picture (relative path) and what is wrong with it."""
    found = {}
    folder = root / DIAGRAMS
    for dot in sorted(folder.glob("*.dot")):
        svg = dot.with_suffix(".svg")
        rel = svg.relative_to(root).as_posix()
        if not svg.is_file():
            found[rel] = f"{dot.relative_to(root).as_posix()} has no SVG"
            continue
        stamp = stamp_of(svg.read_text(errors="replace"))
        if stamp is None:
            found[rel] = "no stamp: it was not drawn by python -m computepods.tools.svgs"
        elif stamp != dot_hash(dot):
            found[rel] = f"drawn from another {dot.relative_to(root).as_posix()}"
    for svg in sorted(folder.glob("*.svg")):
        if not svg.with_suffix(".dot").is_file():
            found[svg.relative_to(root).as_posix()] = "its .dot is gone"
    return found


def stale(root: Path = ROOT) -> list[str]:
    """The SVGs to draw again (or delete), relative to `root`."""
    return sorted(problems(root))


def draw_svg(dot: Path, root: Path, command: str = "dot") -> str:
    """The stamped SVG of one .dot, drawn by graphviz."""
    rel = dot.relative_to(root).as_posix()
    sha = dot_hash(dot)        # before drawing: the stamp says what was drawn
    try:
        run = subprocess.run([command, "-Tsvg", str(dot)], capture_output=True, text=True,
                             timeout=DOT_TIMEOUT_S)
    except FileNotFoundError:
        raise DiagramError(f"{rel}: graphviz's `{command}` is not installed "
                           "(apt-get install graphviz, or make diagram-system-deps)") from None
    except subprocess.TimeoutExpired:
        raise DiagramError(f"{rel}: `{command}` took more than {DOT_TIMEOUT_S:g} s") from None
    if run.returncode != 0:
        why = (run.stderr.strip().splitlines() or [f"exit {run.returncode}"])[0]
        raise DiagramError(f"{rel}: `{command} -Tsvg` failed: {why}")
    return stamped(run.stdout, rel, sha)


def draw(root: Path = ROOT, command: str = "dot") -> list[str]:
    """Draw the stale SVGs, delete those whose .dot is gone; the paths touched."""
    touched = stale(root)
    for rel in touched:
        svg = root / rel
        dot = svg.with_suffix(".dot")
        if dot.is_file():
            atomic_write(svg, draw_svg(dot, root, command).encode())
        else:
            svg.unlink()
    return touched


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m computepods.tools.svgs",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="draw nothing; exit 1 naming the stale SVGs")
    parser.add_argument("--root", type=Path, default=ROOT, help="where diagrams/ is")
    parser.add_argument("--dot", default=shutil.which("dot") or "dot",
                        help="graphviz's dot command")
    args = parser.parse_args(argv)
    if args.check:
        bad = problems(args.root)
        print("".join(f"stale: {p}: {why}\n" for p, why in bad.items()), end="", file=sys.stderr)
        if bad:
            print(f"the diagrams changed: {FIX}", file=sys.stderr)
        return 1 if bad else 0
    try:
        touched = draw(args.root, args.dot)
    except DiagramError as exc:
        print(f"svgs: {exc}", file=sys.stderr)
        return exc.exit_code
    print("".join(f"{'drew' if (args.root / p).is_file() else 'removed'} {p}\n"
                  for p in touched), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
