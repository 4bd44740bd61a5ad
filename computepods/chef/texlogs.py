"""What TeX's log and the ``.blg`` of bibtex or biber say a run read or looked for.

Plain parsing of the reports' text; :mod:`computepods.chef.discover`
turns the names into project paths.
"""
from __future__ import annotations

import re

# Reports are paths, and Linux paths are bytes: undecodable bytes survive as
# surrogates and round-trip to the same file name through os functions.
REPORT_ENCODING = "utf-8"
REPORT_ERRORS = "surrogateescape"

# TeX breaks a log line once it holds max_print_line bytes (79 in TeX Live's
# texmf.cnf); the message goes on on the next line.
LOG_LINE_BYTES = 79
# LaTeX's \@input, for a file it reads only if it is there (the .bbl, .ind,
# .gls, .nls a tool makes; the .aux and .toc the run itself writes).
_LOG_NO_FILE = "No file "
# biblatex writes the .bcf for biber and reads the .bbl biber makes of it; it
# says nothing in the log when the .bbl is missing, so the .bcf says it.
BIBLATEX_CONTROL, BIBLATEX_READS = ".bcf", ".bbl"
# bibtex's log (.blg) names each file it read on a line of its own.
_BLG_READ = ("The top-level auxiliary file: ", "The style file: ")
_BLG_NUMBERED = (("A level-", " auxiliary file: "), ("Database file #", ": "))
# biber's log (.blg) names each data source it read, as it found it
# (Biber/Input/file/bibtex.pm and biblatexml.pm): relative to its working
# directory, or the absolute path kpsewhich gave.
#   [346] bibtex.pm:1518> INFO - Found BibTeX data source 'refs.bib'
_BIBER_READ = re.compile(r"> INFO - Found (?:BibTeX data source|BibLaTeXML data file) '(.+)'$")


def parse_log_missing(text: str) -> list[str]:
    """The files a TeX run looked for and did not find, as its log names them.

    LaTeX says "No file paper.ind." for each file its ``\\@input`` wanted
    and did not find.  A name too long for one log line goes on on the next
    (a line broken at :data:`LOG_LINE_BYTES`); each name is kept once.
    """
    found: dict[str, None] = {}
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith(_LOG_NO_FILE):
            while (len(lines[i].encode(REPORT_ENCODING, REPORT_ERRORS)) == LOG_LINE_BYTES
                   and i + 1 < len(lines)):
                i += 1
                line += lines[i]
            if line.endswith(".") and len(line) > len(_LOG_NO_FILE) + 1:
                found[line[len(_LOG_NO_FILE):-1]] = None
        i += 1
    return list(found)


def parse_blg(text: str) -> list[str]:
    """The files bibtex or biber read, from its log (``.blg``), in order,
    deduplicated.

    bibtex's: the top-level ``.aux``, each ``\\@input`` one (``A level-1
    auxiliary file: chapters/intro.aux``, the \\include'd chapters), the
    style and each database.  biber's: each data source (``Found BibTeX data
    source 'refs.bib'``); the ``.bcf`` it read is its declared input.  Names
    are as the tool wrote them: the style and the databases were looked up
    on its search path, so a name is the project's file only if it is there
    (:func:`computepods.chef.discover.discover_blg` checks).
    """
    found: dict[str, None] = {}
    for line in text.splitlines():
        name = next((line[len(p):] for p in _BLG_READ if line.startswith(p)), None)
        if name is None and (biber := _BIBER_READ.search(line)):
            name = biber.group(1)
        for head, sep in _BLG_NUMBERED:
            if name is None and line.startswith(head) and sep in line:
                number, _, rest = line[len(head):].partition(sep)
                if number.isdigit():
                    name = rest
        if name:
            found[name] = None
    return list(found)
