"""diagrams/*.svg are drawn from the current diagrams/*.dot (docs/architecture.md §8).

An SVG cannot be compared with a fresh drawing (it depends on graphviz's
version), so each carries the sha256 of the .dot it was drawn from; these
tests draw with the real graphviz `dot`.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from computepods.tools import charts, svgs

ROOT = Path(__file__).resolve().parents[3]


def test_every_committed_svg_is_drawn_from_its_dot():
    assert (ROOT / "diagrams/architecture.dot").is_file()
    assert svgs.problems(ROOT) == {}, "the diagrams changed: run `make diagrams` and commit"


def generated(tmp_path: Path) -> Path:
    """A tree with every .dot the code makes, and their pictures drawn."""
    charts.main(["--root", str(tmp_path)])
    drawn = svgs.draw(tmp_path)
    assert drawn == sorted(f"diagrams/{dot.stem}.svg" for dot in (tmp_path / "diagrams").glob("*.dot"))
    return tmp_path


def test_a_drawn_svg_is_stamped_with_its_dots_hash_and_is_still_svg(tmp_path):
    root = generated(tmp_path)
    svg = (root / "diagrams/store.svg").read_text()
    sha = svgs.dot_hash(root / "diagrams/store.dot")
    assert f"<!-- drawn from diagrams/store.dot sha256:{sha} -->" in svg
    assert svg.startswith("<?xml")
    assert ET.fromstring(svg.encode()).tag == "{http://www.w3.org/2000/svg}svg"
    assert svgs.stale(root) == []


def test_an_edited_dot_a_missing_svg_an_unstamped_one_and_an_orphan_are_stale(tmp_path):
    root = generated(tmp_path)
    d = root / "diagrams"
    (d / "chef.dot").write_text((d / "chef.dot").read_text().replace("chef_idle", "chef_resting"))
    (d / "store.svg").unlink()
    (d / "cron.svg").write_text((d / "cron.svg").read_text().split("\n", 1)[0] + "\n<svg/>\n")
    (d / "gone.svg").write_text("<svg/>\n")
    assert svgs.problems(root) == {
        "diagrams/chef.svg": "drawn from another diagrams/chef.dot",
        "diagrams/cron.svg": "no stamp: it was not drawn by python -m computepods.tools.svgs",
        "diagrams/gone.svg": "its .dot is gone",
        "diagrams/store.svg": "diagrams/store.dot has no SVG",
    }


def test_drawing_again_touches_only_the_stale_ones(tmp_path):
    root = generated(tmp_path)
    d = root / "diagrams"
    untouched = (d / "majordomo.svg").stat().st_mtime_ns, (d / "majordomo.svg").read_text()
    (d / "chef.dot").write_text((d / "chef.dot").read_text().replace("chef_idle", "chef_resting"))
    (d / "gone.svg").write_text("<svg/>\n")
    assert svgs.draw(root) == ["diagrams/chef.svg", "diagrams/gone.svg"]
    assert "chef_resting" in (d / "chef.svg").read_text() and not (d / "gone.svg").exists()
    assert ((d / "majordomo.svg").stat().st_mtime_ns, (d / "majordomo.svg").read_text()) == untouched
    assert svgs.draw(root) == []


def test_check_names_each_stale_svg_and_the_fix(tmp_path, capsys):
    root = generated(tmp_path)
    (root / "diagrams/store.dot").write_text("digraph x { a -> b }\n")
    assert svgs.main(["--check", "--root", str(root)]) == 1
    err = capsys.readouterr().err
    assert "stale: diagrams/store.svg: drawn from another diagrams/store.dot" in err
    assert "make diagrams" in err
    assert svgs.main(["--root", str(root)]) == 0 and svgs.main(["--check", "--root", str(root)]) == 0


def test_a_dot_graphviz_refuses_or_a_missing_graphviz_is_one_line(tmp_path, capsys):
    (tmp_path / "diagrams").mkdir()
    (tmp_path / "diagrams/bad.dot").write_text("digraph { a -> \n")
    assert svgs.main(["--root", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("svgs: diagrams/bad.dot: `") and "failed: " in err and "\n" not in err
    assert svgs.main(["--root", str(tmp_path), "--dot", str(tmp_path / "no-such-dot")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("svgs: diagrams/bad.dot: graphviz's `") and "not installed" in err
    assert not (tmp_path / "diagrams/bad.svg").exists()
