"""The part of an input a rule cares about, for early cutoff (docs/architecture.md §4).

A LaTeX run rewrites its ``.aux`` every pass: page numbers, labels, the
table of contents.  bibtex reads only the lines that say which entries are
cited and from which database and style, so rerunning it (and then LaTeX
again, since the ``.bbl`` is its input) whenever a page number moves would
make most edits cost a full cycle.  A rule says
``parts = {"%.aux" = "bibtex"}``; that input's staleness is then decided by
the digest of its bibtex part instead of its whole content.

An extractor maps a file's bytes to the bytes that matter; it must be
deterministic and cheap.  Digests are plain sha256 hex, so a caller that
records them beside whole-file hashes adds its own marker (``part:``).
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable, Mapping, Sequence

from computepods.errors import ComputePodsError
from computepods.planning.resolve import pattern_stem
from computepods.project import stems

Extractor = Callable[[bytes], bytes]

# The .aux commands bibtex acts on (bibtex.web, get_aux_command_and_process:
# the text from the start of a line to its first '{' must be one of them, so
# only lines that begin with one count).  \@input names a sub-aux file
# (from \include) that bibtex goes on to read: adding or removing one
# changes what bibtex sees, so the line belongs to the part.
BIBTEX_AUX_COMMANDS = (b"\\citation{", b"\\bibdata{", b"\\bibstyle{",
                       b"\\@input{")


def bibtex_part(data: bytes) -> bytes:
    """The lines of an ``.aux`` that bibtex reads, in order, each ending "\\n".

    Line content is kept byte for byte; terminators are normalised so that a
    last line gaining its newline (or CRLF turning into LF) is no change to
    bibtex either.  The contents of ``\\@input`` sub-aux files are not
    followed: only this file's lines decide.
    """
    return b"".join(line + b"\n" for line in data.splitlines()
                    if line.startswith(BIBTEX_AUX_COMMANDS))


def biber_part(data: bytes) -> bytes:
    """The whole file: biber's input, the ``.bcf``, is already only what it needs.

    biblatex writes the ``.bcf`` (its control file, XML) for biber alone:
    the cited keys, the data sources, the options — no page numbers or
    labels — and writes it identically when none of those change.  So there
    is nothing to strip; the part exists so that ``parts = {"%.bcf" =
    "biber"}`` says so explicitly and so its digest equals the plain content
    hash of the file.
    """
    return data


PARTS: dict[str, Extractor] = {
    "bibtex": bibtex_part,
    "biber": biber_part,
}


def part_digest(path: Path, part: str) -> str | None:
    """sha256 hex of ``part`` of the file at ``path``; None if it is missing.

    An unknown part name is an error naming it and the known ones (checked
    first, so a typo is reported even while the file does not exist yet).
    """
    try:
        extract = PARTS[part]
    except KeyError:
        raise ComputePodsError(
            f"unknown part {part!r}; known parts: {', '.join(sorted(PARTS))}"
        ) from None
    try:
        data = Path(path).read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        return None
    return hashlib.sha256(extract(data)).hexdigest()


def part_for(parts: Mapping[str, str] | None, pattern_inputs: Sequence[str],
             bound_inputs: Sequence[str], path: str) -> str | None:
    """Which part of the bound input ``path`` decides its staleness, if any.

    ``parts`` maps input patterns, as written in the rule's ``inputs``
    (``"%.aux"``), to part names; ``pattern_inputs[i]`` is bound to
    ``bound_inputs[i]``.  A declared input takes the part of its position's
    pattern, and only that: declared inputs are named by position.

    Any other input is *discovered* (bibtex's chapter ``.aux`` files, found
    through its log), and every key applies to it by matching the path
    itself, since the rule's part says how the tool reads that kind of file:
    ``"%.aux"`` matches any path ending in ``.aux`` (``prefix%suffix`` needs
    both, with a non-empty stem, as in make), and a key without ``%``
    matches that exact path.  So bibtex's part of ``paper.aux`` is also its
    part of ``chapters/intro.aux``: a page number moving in a chapter does
    not rerun bibtex.  If several keys match, the shortest stem wins, as
    make prefers the most specific pattern.
    """
    if not parts:
        return None
    declared = False
    for pattern, bound in zip(pattern_inputs, bound_inputs, strict=True):
        if bound == path:
            if pattern in parts:
                return parts[pattern]
            declared = True
    if declared:
        return None
    best: tuple[int, str] | None = None
    for key, part in parts.items():
        if not stems.has_stem(key):
            stem_len = 0 if stems.literal(key) == path else None
        else:
            stem = pattern_stem(key, path)
            stem_len = None if stem is None else len(stem)
        if stem_len is not None and (best is None or stem_len < best[0]):
            best = (stem_len, part)
    return None if best is None else best[1]
