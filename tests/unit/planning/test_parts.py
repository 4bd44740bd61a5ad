"""Input parts: only what bibtex reads of an .aux decides whether it reruns."""
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from computepods.errors import ComputePodsError
from computepods.planning.parts import PARTS, bibtex_part, part_digest, part_for

# An .aux as pdflatex writes it with hyperref, a bibliography and a toc.
AUX = (b"\\relax \n"
       b"\\providecommand\\hyper@newdestlabel[2]{}\n"
       b"\\citation{knuth84}\n"
       b"\\@writefile{toc}{\\contentsline {section}{\\numberline {1}Intro}{1}{section.1}}\n"
       b"\\newlabel{intro}{{1}{1}{Intro}{section.1}{}}\n"
       b"\\citation{lamport94,knuth84}\n"
       b"\\bibstyle{plain}\n"
       b"\\bibdata{refs}\n"
       b"\\bibcite{knuth84}{1}\n"
       b"\\gdef \\@abspage@last{3}\n")


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_bibtex_part_keeps_only_what_bibtex_reads():
    assert bibtex_part(AUX) == (b"\\citation{knuth84}\n"
                                b"\\citation{lamport94,knuth84}\n"
                                b"\\bibstyle{plain}\n"
                                b"\\bibdata{refs}\n")


def test_label_and_toc_changes_do_not_change_the_bibtex_part(tmp_path):
    a = write(tmp_path / "a.aux", AUX)
    b = write(tmp_path / "b.aux", AUX
              .replace(b"\\newlabel{intro}{{1}{1}", b"\\newlabel{intro}{{2}{4}")
              .replace(b"{Intro}{1}{section.1}", b"{Introduction}{2}{section.2}")
              .replace(b"{3}", b"{5}")
              + b"\\newlabel{fig}{{1}{2}}\n")
    assert a.read_bytes() != b.read_bytes()
    assert part_digest(a, "bibtex") == part_digest(b, "bibtex")


@pytest.mark.parametrize("change", [
    lambda aux: aux + b"\\citation{dijkstra68}\n",
    lambda aux: aux.replace(b"{plain}", b"{alpha}"),
    lambda aux: aux.replace(b"\\bibdata{refs}", b"\\bibdata{refs,more}"),
    lambda aux: aux + b"\\@input{chap1.aux}\n",   # bibtex reads that file too
])
def test_what_bibtex_reads_changes_the_part(tmp_path, change):
    a = write(tmp_path / "a.aux", AUX)
    b = write(tmp_path / "b.aux", change(AUX))
    assert part_digest(a, "bibtex") != part_digest(b, "bibtex")


def test_bibtex_part_ignores_line_endings_and_indented_commands(tmp_path):
    # bibtex takes a command only at the start of a line.
    a = write(tmp_path / "a.aux", b"\\citation{k}\n\\bibdata{refs}\n")
    b = write(tmp_path / "b.aux", b"\\citation{k}\r\n\\bibdata{refs}"
                                  b"\n  \\citation{not-read}\n")
    assert part_digest(a, "bibtex") == part_digest(b, "bibtex")


def test_bibtex_part_digest_is_plain_sha256_hex(tmp_path):
    a = write(tmp_path / "a.aux", AUX)
    assert part_digest(a, "bibtex") == hashlib.sha256(bibtex_part(AUX)).hexdigest()


def test_biber_part_is_the_whole_file(tmp_path):
    bcf = write(tmp_path / "paper.bcf",
                b'<?xml version="1.0" encoding="UTF-8"?>\n'
                b'<bcf:controlfile version="3.10">\n'
                b'  <bcf:citekey order="1" intorder="1">knuth84</bcf:citekey>\n'
                b'</bcf:controlfile>\n')
    assert part_digest(bcf, "biber") == hashlib.sha256(bcf.read_bytes()).hexdigest()


def test_missing_file_has_no_digest(tmp_path):
    assert part_digest(tmp_path / "paper.aux", "bibtex") is None
    write(tmp_path / "a-file", b"")
    assert part_digest(tmp_path / "a-file" / "x.aux", "bibtex") is None


def test_unknown_part_names_it_and_the_known_ones(tmp_path):
    aux = write(tmp_path / "paper.aux", AUX)
    for path in (aux, tmp_path / "missing.aux"):
        with pytest.raises(ComputePodsError) as caught:
            part_digest(path, "bibtek")
        assert "'bibtek'" in str(caught.value)
        assert all(name in str(caught.value) for name in PARTS)


# --- part_for -----------------------------------------------------------------

def test_part_for_a_declared_input_goes_by_its_position():
    patterns, bound = ["%.aux", "refs.bib"], ["paper.aux", "refs.bib"]
    parts = {"%.aux": "bibtex"}
    assert part_for(parts, patterns, bound, "paper.aux") == "bibtex"
    assert part_for(parts, patterns, bound, "refs.bib") is None
    assert part_for(None, patterns, bound, "paper.aux") is None
    assert part_for({}, patterns, bound, "paper.aux") is None


def test_part_for_a_declared_key_also_applies_to_discovered_inputs():
    # bibtex declares the document's .aux and discovers each \include'd
    # chapter's: all are read the same way, so all are judged by the part.
    patterns, bound = ["%.aux"], ["paper.aux"]
    parts = {"%.aux": "bibtex"}
    assert part_for(parts, patterns, bound, "chapters/intro.aux") == "bibtex"
    assert part_for(parts, patterns, bound, "refs.bib") is None
    # A declared input is judged by its own position's part, or by none.
    assert part_for(parts, ["%.aux", "extra.aux"], ["paper.aux", "extra.aux"],
                    "extra.aux") is None


def test_part_for_a_discovered_input_goes_by_the_pattern_suffix():
    # bibtex's rule declares only the database; the .aux is discovered.
    patterns = bound = ["refs.bib"]
    parts = {"%.aux": "bibtex", "%.bcf": "biber"}
    assert part_for(parts, patterns, bound, "paper.aux") == "bibtex"
    assert part_for(parts, patterns, bound, "doc/chap1.aux") == "bibtex"
    assert part_for(parts, patterns, bound, "paper.bcf") == "biber"
    assert part_for(parts, patterns, bound, "paper.log") is None
    assert part_for(parts, patterns, bound, ".aux") is None     # empty stem
    assert part_for(parts, patterns, bound, "refs.bib") is None


def test_part_for_prefers_the_shortest_stem_and_exact_keys():
    parts = {"%.aux": "biber", "build/%.aux": "bibtex", "notes/x.aux": "bibtex"}
    assert part_for(parts, [], [], "build/paper.aux") == "bibtex"
    assert part_for(parts, [], [], "paper.aux") == "biber"
    assert part_for({"notes/x.aux": "bibtex"}, [], [], "notes/x.aux") == "bibtex"
    assert part_for({"notes/x.aux": "bibtex"}, [], [], "x.aux") is None


def test_part_for_pattern_and_bound_lists_must_pair_up():
    with pytest.raises(ValueError):
        part_for({"%.aux": "bibtex"}, ["%.aux", "%.bib"], ["paper.aux"], "x")
