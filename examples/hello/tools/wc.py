"""Count lines, words and bytes of a file and write them as JSON.

Usage: python3 tools/wc.py INPUT OUTPUT

The output depends only on the input's content (no timestamps), so an
unchanged result lets the build cut off early.
"""
import hashlib
import json
import sys


def main(source: str, target: str) -> None:
    with open(source, "rb") as f:
        data = f.read()
    stats = {
        "file": source,
        "lines": data.count(b"\n"),
        "words": len(data.split()),
        "bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    with open(target, "w") as f:
        json.dump(stats, f, indent=2, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: wc.py INPUT OUTPUT")
    main(sys.argv[1], sys.argv[2])
