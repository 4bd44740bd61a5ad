"""Turn HEADINGS (title TAB page, one a line) into a table of contents.

    python3 contents.py HEADINGS TOC

The TOC is what typeset.py prints at the top on its next pass.
"""
import sys

WIDTH = 32


def main(headings: str, toc: str) -> None:
    with open(headings, encoding="utf-8") as f:
        entries = [line.split("\t") for line in f.read().splitlines()]
    with open(toc, "w", encoding="utf-8") as f:
        for n, (title, page) in enumerate(entries, 1):
            left = f"{n}. {title} "
            f.write(left + "." * (WIDTH - len(left) - len(page)) + f" {page}\n")


if __name__ == "__main__":
    main(*sys.argv[1:])
