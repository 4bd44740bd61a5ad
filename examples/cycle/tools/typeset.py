"""Typeset doc.src into pages, as a tiny LaTeX would.

    python3 typeset.py SOURCE TOC OUT HEADINGS

SOURCE holds sections: a line "# Title", then its text.  The output starts
with the table of contents read from TOC, the one the previous pass made
(none on the first pass: TOC is missing then); since the contents take
lines, they move the sections down, and HEADINGS records the page each
section really landed on, for contents.py to turn into the next TOC.
"""
import sys

LINES_PER_PAGE = 5


def main(source: str, toc: str, out: str, headings: str) -> None:
    try:
        with open(toc, encoding="utf-8") as f:
            contents = f.read().splitlines()
    except FileNotFoundError:        # the first pass: no contents yet
        contents = []
    lines = ["Contents", *contents, ""] if contents else []
    pages = []
    with open(source, encoding="utf-8") as f:
        for line in f.read().splitlines():
            if line.startswith("# "):
                title = line[2:].strip()
                pages.append(f"{title}\t{len(lines) // LINES_PER_PAGE + 1}")
                line = title.upper()
            lines.append(line)
    with open(out, "w", encoding="utf-8") as f:
        for n in range(0, len(lines), LINES_PER_PAGE):
            f.write("\n".join(lines[n:n + LINES_PER_PAGE]))
            f.write(f"\n-- page {n // LINES_PER_PAGE + 1} --\n")
    with open(headings, "w", encoding="utf-8") as f:
        f.write("".join(p + "\n" for p in pages))
    print(f"typeset: {len(contents)} contents lines, "
          f"{(len(lines) - 1) // LINES_PER_PAGE + 1} pages")


if __name__ == "__main__":
    main(*sys.argv[1:])
