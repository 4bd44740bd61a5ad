"""Discovered dependencies: depfiles from a real cc, .fls files and logs from
TeX, .blg files from bibtex and biber."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from computepods.chef.discover import (Discovered, discover_blg, discover_depfile,
                                       discover_fls, parse_depfile, parse_fls,
                                       project_paths, rewrite_depfile)
from computepods.chef.texlogs import LOG_LINE_BYTES, parse_blg, parse_log_missing
from computepods.errors import BuildFailed

TOOL_TIMEOUT_S = 120    # seconds, for one cc or pdflatex run

# The shape of a real pdflatex -recorder file (second pass: the .aux is read
# at \begin{document} and written again at the end), trimmed.
HAND_FLS = """\
PWD /tmp/x
INPUT /usr/share/texlive/texmf-dist/web2c/texmf.cnf
INPUT /var/lib/texmf/web2c/pdftex/pdflatex.fmt
INPUT paper.tex
OUTPUT paper.log
INPUT /usr/share/texlive/texmf-dist/tex/latex/base/article.cls
INPUT /usr/share/texlive/texmf-dist/tex/latex/base/article.cls
INPUT /usr/share/texlive/texmf-dist/tex/latex/base/size10.clo
INPUT paper.aux
INPUT paper.aux
OUTPUT paper.aux
INPUT ./chapter1.tex
INPUT ./chapter1.tex
INPUT chapter1.tex
OUTPUT paper.pdf
INPUT /var/lib/texmf/fonts/map/pdftex/updmap/pdftex.map
INPUT paper.aux
INPUT /usr/share/texlive/texmf-dist/fonts/type1/public/amsfonts/cm/cmr10.pfb
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def run(argv: list[str], cwd: Path) -> None:
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True,
                          timeout=TOOL_TIMEOUT_S)
    assert done.returncode == 0, (argv, done.stdout[-2000:], done.stderr[-2000:])


# --- parse_depfile ------------------------------------------------------------

def test_depfile_continuations_several_rules_and_phony_targets():
    text = ("build/main.o: src/main.c src/util.h \\\n"
            "  include/config.h \\\n"
            " /usr/include/stdio.h\n"
            "\n"
            "build/util.o build/util.pic.o : src/util.c src/util.h\n"
            "src/util.h:\n"
            "include/config.h:\n")
    assert parse_depfile(text) == ["src/main.c", "src/util.h",
                                   "include/config.h", "/usr/include/stdio.h",
                                   "src/util.c"]


def test_depfile_escapes_as_gcc_writes_them():
    # gcc: space -> "\ ", '#' -> "\#", '$' -> "$$", and it doubles the
    # backslashes that precede an escaped space.
    text = ("out.o: my\\ file.c d$$x\\#y.h back\\\\\\ slash.h "
            "trailing\\\\ next.h plain\\name.h\n")
    assert parse_depfile(text) == ["my file.c", "d$x#y.h", "back\\ slash.h",
                                   "trailing\\", "next.h", "plain\\name.h"]


def test_depfile_comments_crlf_double_colon_and_empty():
    assert parse_depfile("") == []
    assert parse_depfile("# made by hand\n\n") == []
    text = "a.o: a.c \\\r\n b.h # trailing comment\r\nc.o:: c.c a.c\r\n"
    assert parse_depfile(text) == ["a.c", "b.h", "c.c"]


@pytest.mark.parametrize("text, problem", [
    ("a.c b.h\n", "line 1: expected ':' after 'a.c b.h'"),
    ("out.o: a.c\n\n: b.h\n", "line 3: no target before ':'"),
])
def test_depfile_that_cannot_be_read_fails_the_step(text, problem):
    with pytest.raises(BuildFailed, match=problem):
        parse_depfile(text)


def test_real_cc_depfile_keeps_project_headers_and_drops_system_ones(tmp_path):
    root = tmp_path / "proj"
    write(root / "src" / "util.h", "#define ANSWER 42\n")
    write(root / "include" / "config.h", "#define NAME \"app\"\n")
    write(root / "src" / "main.c", '#include <stdio.h>\n#include "util.h"\n'
          '#include "config.h"\n'
          'int main(void) { printf(NAME "%d\\n", ANSWER); return 0; }\n')
    (root / "build").mkdir()
    run(["cc", "-MD", "-MP", "-MF", "build/main.o.d", "-Iinclude",
         "-c", "src/main.c", "-o", "build/main.o"], root)
    assert "/usr/include/stdio.h" in parse_depfile(
        (root / "build" / "main.o.d").read_text())

    found = discover_depfile(root / "build" / "main.o.d", root)
    assert found == Discovered(["src/main.c", "src/util.h", "include/config.h"], [])


def test_real_cc_depfile_from_a_subdirectory_cwd(tmp_path):
    root = tmp_path / "proj"
    write(root / "lib" / "util.h", "int twice(int);\n")
    write(root / "lib" / "util.c", '#include <stdlib.h>\n#include "util.h"\n'
          'int twice(int x) { return 2 * x; }\n')
    run(["cc", "-MMD", "-MF", "util.o.d", "-c", "util.c", "-o", "util.o"],
        root / "lib")
    found = discover_depfile(root / "lib" / "util.o.d", root, cwd="lib")
    assert found.inputs == ["lib/util.c", "lib/util.h"]
    assert found.outputs == []


def test_missing_or_bad_depfile_names_the_file(tmp_path):
    with pytest.raises(BuildFailed, match="did not write its depfile"):
        discover_depfile(tmp_path / "gone.d", tmp_path)
    bad = write(tmp_path / "bad.d", "just words\n")
    with pytest.raises(BuildFailed, match=f"{bad}: depfile line 1"):
        discover_depfile(bad, tmp_path)


# --- rewrite_depfile: what lands in the tree ------------------------------------

def test_real_cc_depfile_from_scratch_is_rewritten_to_project_paths(tmp_path):
    """cc run as a step runs: in the root, -o into the step's scratch, an
    include directory given absolute; the tree's copy names project paths."""
    root = tmp_path / "proj"
    write(root / "include" / "util.h", "int twice(int);\n")
    write(root / "src" / "util.c", '#include <stdio.h>\n#include "util.h"\n'
          'int twice(int x) { return 2 * x; }\n')
    out = root / ".computepods" / "scratch" / "c.compile_src_util.o-1234" / "out"
    (out / "src").mkdir(parents=True)
    depfile = out / "src" / "util.d"
    run(["cc", f"-I{root}/include", "-MD", "-MF", str(depfile), "-c", "src/util.c",
         "-o", str(out / "src" / "util.o")], root)
    assert str(out) in depfile.read_text()                 # as cc wrote it

    found = discover_depfile(depfile, root, out_dir=out, rewrite=True)
    assert found.inputs == ["src/util.c", "include/util.h"]
    text = depfile.read_text()
    assert str(root) not in text and ".computepods" not in text
    assert text.startswith("src/util.o: src/util.c \\\n")
    assert parse_depfile(text)[:1] == ["src/util.c"]
    assert "include/util.h" in parse_depfile(text)
    assert "/usr/include/stdio.h" in parse_depfile(text)   # outside: kept as written
    # the same file read again is already the tree's form
    assert rewrite_depfile(text, root, out_dir=out) == text


def test_rewritten_depfile_names_are_relative_to_the_root_and_escaped(tmp_path):
    root, view = tmp_path / "proj", tmp_path / "proj/.computepods/scratch/s/view"
    text = (f"{view}/lib/a.o: a.c ../include/my\\ file.h {view}/lib/d$$x\\#y.h "
            "../../outside.h /usr/include/stdio.h\n"
            "a.c:\n")
    tree = rewrite_depfile(text, root, cwd="lib", view=view)
    assert tree == ("lib/a.o: lib/a.c \\\n include/my\\ file.h \\\n lib/d$$x\\#y.h \\\n"
                    " ../outside.h \\\n /usr/include/stdio.h\n"
                    "lib/a.c:\n")
    assert parse_depfile(tree) == ["lib/a.c", "include/my file.h", "lib/d$x#y.h",
                                   "../outside.h", "/usr/include/stdio.h"]
    with pytest.raises(BuildFailed, match="line 1"):
        rewrite_depfile("just words\n", root)


def test_a_depfile_in_a_view_is_read_through_the_view(tmp_path):
    root = tmp_path / "proj"
    view = root / ".computepods" / "scratch" / "s" / "view"
    depfile = write(view / "a.d", f"a.o: {view}/a.c {view}/inc/b.h\n")
    assert discover_depfile(depfile, root, view=view).inputs == ["a.c", "inc/b.h"]
    assert depfile.read_text() == f"a.o: {view}/a.c {view}/inc/b.h\n"   # not rewritten


# --- parse_fls ------------------------------------------------------------------

def test_fls_lists_in_order_deduplicated_with_the_aux_in_both():
    pwd, inputs, outputs = parse_fls(HAND_FLS)
    assert pwd == "/tmp/x"
    assert inputs == [
        "/usr/share/texlive/texmf-dist/web2c/texmf.cnf",
        "/var/lib/texmf/web2c/pdftex/pdflatex.fmt",
        "paper.tex",
        "/usr/share/texlive/texmf-dist/tex/latex/base/article.cls",
        "/usr/share/texlive/texmf-dist/tex/latex/base/size10.clo",
        "paper.aux",
        "./chapter1.tex",
        "chapter1.tex",
        "/var/lib/texmf/fonts/map/pdftex/updmap/pdftex.map",
        "/usr/share/texlive/texmf-dist/fonts/type1/public/amsfonts/cm/cmr10.pfb",
    ]
    assert outputs == ["paper.log", "paper.aux", "paper.pdf"]


def test_fls_paths_with_spaces_blank_and_unknown_lines():
    text = "INPUT my paper.tex\n\nFUTURE thing\nPWD /a\nPWD /b\nOUTPUT out dir/x.pdf\n"
    assert parse_fls(text) == ("/a", ["my paper.tex"], ["out dir/x.pdf"])
    assert parse_fls("") == (None, [], [])


def test_discover_hand_written_fls_keeps_only_project_files(tmp_path):
    fls = write(tmp_path / "paper.fls", HAND_FLS)
    write(tmp_path / "paper.log", "This is pdfTeX\n")
    found = discover_fls(fls, tmp_path)
    assert found.inputs == ["paper.tex", "paper.aux", "chapter1.tex"]
    assert found.outputs == ["paper.log", "paper.aux", "paper.pdf"]


# --- what a TeX run looked for: its log, and biblatex's .bcf ---------------------

def test_log_names_what_latex_looked_for_even_across_a_broken_line():
    long = "chapters/" + "x" * 80 + ".ind"
    line = f"No file {long}."
    first = line[:LOG_LINE_BYTES]
    text = ("(./paper.aux)\nNo file paper.ind.\nNo file paper.bbl.\n"
            f"{first}\n{line[LOG_LINE_BYTES:]}\n"
            "No file paper.ind.\nThere is No file here.\nNo file \n")
    assert parse_log_missing(text) == ["paper.ind", "paper.bbl", long]


def test_discover_fls_adds_what_the_log_looked_for_and_the_bbl_of_a_bcf(tmp_path):
    doc = tmp_path / "doc"
    fls = write(doc / "paper.fls", "PWD /x\nINPUT paper.tex\nOUTPUT paper.log\n"
                                   "OUTPUT paper.idx\nOUTPUT paper.bcf\nOUTPUT paper.pdf\n")
    write(doc / "paper.log", "No file paper.aux.\nNo file paper.ind.\n")
    found = discover_fls(fls, tmp_path, cwd="doc")
    assert found.inputs == ["doc/paper.tex", "doc/paper.aux", "doc/paper.ind", "doc/paper.bbl"]
    assert found.outputs == ["doc/paper.log", "doc/paper.idx", "doc/paper.bcf", "doc/paper.pdf"]
    (doc / "paper.log").unlink()
    with pytest.raises(BuildFailed, match="did not write its log"):
        discover_fls(fls, tmp_path, cwd="doc")


def test_real_pdflatex_log_names_the_index_and_bibliography_it_lacks(tmp_path):
    write(tmp_path / "paper.tex",
          "\\documentclass{article}\\usepackage{makeidx}\\makeindex\n"
          "\\begin{document}\nA\\index{a} \\cite{k}.\n\\printindex\n"
          "\\bibliographystyle{plain}\\bibliography{refs}\n\\end{document}\n")
    run(["pdflatex", "-interaction=nonstopmode", "-recorder", "paper.tex"], tmp_path)
    found = discover_fls(tmp_path / "paper.fls", tmp_path)
    assert {"paper.ind", "paper.bbl"} <= set(found.inputs)
    assert {"paper.idx", "paper.aux"} <= set(found.outputs)


# --- bibtex's log -----------------------------------------------------------------

def test_blg_names_every_aux_the_style_and_the_databases():
    text = ("This is BibTeX, Version 0.99d (TeX Live 2022/Debian)\n"
            "The top-level auxiliary file: paper.aux\n"
            "A level-1 auxiliary file: chapters/intro.aux\n"
            "A level-2 auxiliary file: chapters/deep.aux\n"
            "The style file: plain.bst\n"
            "Database file #1: refs.bib\nDatabase file #2: more.bib\n"
            "Warning--I didn't find a database entry for \"x\"\n"
            "A level-1 auxiliary file: chapters/intro.aux\n")
    assert parse_blg(text) == ["paper.aux", "chapters/intro.aux", "chapters/deep.aux",
                               "plain.bst", "refs.bib", "more.bib"]
    assert parse_blg("Database file #x: y\n") == []


def test_real_bibtex_log_keeps_the_project_files_it_read(tmp_path):
    """An \\include'd chapter's .aux is read by bibtex (its \\citation lines):
    it is in the log, as is the project's .bib; TeX Live's plain.bst is not ours."""
    doc = tmp_path / "doc"
    write(doc / "paper.tex", "\\documentclass{article}\n\\begin{document}\n"
                             "\\include{chapters/intro}\n\\bibliographystyle{plain}\n"
                             "\\bibliography{refs}\n\\end{document}\n")
    write(doc / "chapters" / "intro.tex", "Knuth~\\cite{knuth84}.\n")
    write(doc / "refs.bib", "@book{knuth84, author={D. Knuth}, title={The TeXbook},"
                            " publisher={AW}, year={1984}}\n")
    run(["pdflatex", "-interaction=nonstopmode", "paper.tex"], doc)
    run(["bibtex", "paper.aux"], doc)
    found = discover_blg(doc / "paper.blg", tmp_path, cwd="doc")
    assert found == Discovered(["doc/paper.aux", "doc/chapters/intro.aux", "doc/refs.bib"])
    with pytest.raises(BuildFailed, match="did not write its log"):
        discover_blg(doc / "other.blg", tmp_path, cwd="doc")


def test_biber_log_names_each_data_source_it_found():
    text = ("[0] Config.pm:306> INFO - This is Biber 2.18\n"
            "[184] Biber.pm:418> INFO - Reading 'paper.bcf'\n"
            "[339] Biber.pm:4592> INFO - Looking for bibtex file 'refs.bib' for section 0\n"
            "[346] bibtex.pm:1518> INFO - Found BibTeX data source 'refs.bib'\n"
            "[432] bibtex.pm:1518> INFO - Found BibTeX data source 'sub/my refs.bib'\n"
            "[440] biblatexml.pm:118> INFO - Found BibLaTeXML data file 'more.bltxml'\n"
            "[466] bbl.pm:654> INFO - Writing 'paper.bbl' with encoding 'UTF-8'\n")
    assert parse_blg(text) == ["refs.bib", "sub/my refs.bib", "more.bltxml"]


def test_real_biber_log_keeps_the_project_databases_it_read(tmp_path):
    doc = tmp_path / "doc"
    write(doc / "paper.tex", "\\documentclass{article}\n\\usepackage{biblatex}\n"
                             "\\addbibresource{refs.bib}\n\\addbibresource{sub/more.bib}\n"
                             "\\begin{document}\n\\cite{knuth84,x2000}\n"
                             "\\printbibliography\n\\end{document}\n")
    write(doc / "refs.bib", "@book{knuth84, author={D. Knuth}, title={The TeXbook},"
                            " publisher={AW}, year={1984}}\n")
    write(doc / "sub" / "more.bib", "@book{x2000, author={A. B}, title={T},"
                                    " publisher={P}, year={2000}}\n")
    run(["pdflatex", "-interaction=nonstopmode", "paper.tex"], doc)
    run(["biber", "paper"], doc)
    assert discover_blg(doc / "paper.blg", tmp_path, cwd="doc") == Discovered(
        ["doc/refs.bib", "doc/sub/more.bib"])


def test_discover_fls_missing_is_an_error(tmp_path):
    with pytest.raises(BuildFailed, match="did not write its recorder"):
        discover_fls(tmp_path / "paper.fls", tmp_path)


def test_real_pdflatex_recorder_in_a_subdirectory_of_a_symlinked_root(tmp_path):
    real = tmp_path / "real"
    write(real / "shared" / "macros.tex", "\\newcommand{\\project}{cp}\n")
    write(real / "doc" / "chapters" / "one.tex", "\\section{One}\\label{one}\n")
    write(real / "doc" / "paper.tex",
          "\\documentclass{article}\n\\input{../shared/macros}\n"
          "\\begin{document}\n\\tableofcontents\n\\input{chapters/one}\n"
          "See \\ref{one} in \\project.\n\\end{document}\n")
    root = tmp_path / "link"
    root.symlink_to(real)
    for _ in range(2):      # the second pass reads the .aux and .toc back
        run(["pdflatex", "-interaction=nonstopmode", "-recorder", "paper.tex"],
            root / "doc")

    fls = root / "doc" / "paper.fls"
    assert parse_fls(fls.read_text())[0] == str(real / "doc")   # getcwd()
    found = discover_fls(fls, root, cwd="doc")
    assert found.inputs == ["doc/paper.tex", "shared/macros.tex", "doc/paper.aux",
                            "doc/paper.toc", "doc/chapters/one.tex"]
    assert set(found.outputs) == {"doc/paper.log", "doc/paper.aux",
                                  "doc/paper.toc", "doc/paper.pdf"}


# --- project_paths --------------------------------------------------------------

def test_project_paths_relative_to_cwd_normalized_and_deduplicated(tmp_path):
    paths = ["a.tex", "./a.tex", "sub/../a.tex", f"{tmp_path}/doc/a.tex",
             "../top.h", "../../outside.h", f"{tmp_path}/doc/../b.tex", ""]
    assert project_paths(paths, tmp_path, cwd="doc") == ["doc/a.tex", "top.h",
                                                         "b.tex"]
    assert project_paths([".", "./", "x/.."], tmp_path) == []     # the root


def test_project_paths_drop_system_files_state_and_the_root(tmp_path):
    paths = ["/usr/share/texlive/texmf-dist/tex/latex/base/article.cls",
             "/usr/include/stdio.h", "/dev/null", str(tmp_path),
             f"{tmp_path}/.computepods/scratch/s/out/x.o",
             ".computepods/state.db", ".computepods",
             f"{tmp_path}-sibling/a.c", "kept.c"]
    assert project_paths(paths, tmp_path) == ["kept.c"]


def test_project_paths_through_a_symlinked_root(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    link = tmp_path / "link"
    link.symlink_to(real)
    paths = [f"{real}/src/a.c", f"{link}/src/b.c", f"{link}/../real/src/c.c"]
    assert project_paths(paths, link) == ["src/a.c", "src/b.c", "src/c.c"]
    assert project_paths(paths, real) == ["src/a.c", "src/c.c"]


def test_project_paths_of_a_scratch_view(tmp_path):
    root = tmp_path / "proj"
    view = root / ".computepods" / "scratch" / "latex-paper.pdf" / "view"
    (view / "doc").mkdir(parents=True)
    alias = tmp_path / "view-alias"
    alias.symlink_to(view)
    paths = [f"{view}/doc/paper.aux", f"{root}/doc/paper.tex",
             "chapters/one.tex", f"{view}/../out/stray.o",
             f"{os.path.realpath(view)}/doc/paper.toc"]
    assert project_paths(paths, root, cwd="doc", view=view) == [
        "doc/paper.aux", "doc/paper.tex", "doc/chapters/one.tex", "doc/paper.toc"]
    # A view reached through a symlink: its real path maps too.
    assert project_paths([f"{view}/doc/x.tex"], root, view=alias) == ["doc/x.tex"]
    # Without the view, its paths are state under .computepods/: dropped.
    assert project_paths([f"{view}/doc/paper.aux"], root) == []


def test_discover_fls_of_a_step_run_in_a_view(tmp_path):
    root = tmp_path / "proj"
    view = root / ".computepods" / "scratch" / "s" / "view"
    fls = write(view / "paper.fls",
                f"PWD {view}\nINPUT {view}/paper.tex\nINPUT ./fig.tex\n"
                f"OUTPUT {view}/paper.aux\nOUTPUT paper.pdf\n"
                "INPUT /usr/share/texlive/texmf-dist/tex/latex/base/article.cls\n")
    found = discover_fls(fls, root, view=view)
    assert found == Discovered(["paper.tex", "fig.tex"], ["paper.aux", "paper.pdf"])
