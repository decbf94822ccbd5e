"""Every chapter is also a talk: slide metadata on every cell, and the decks build."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "notebooks").glob("0*.ipynb"))


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_every_cell_has_slide_metadata_and_solutions_are_hidden(path):
    nb = nbformat.read(path, as_version=4)
    types = [c.metadata.get("slideshow", {}).get("slide_type") for c in nb.cells]
    assert None not in types, "run: python scripts/slides.py"
    assert types[0] == "slide" and types.count("slide") >= 4
    for cell in nb.cells:
        if "solution" in cell.metadata.get("tags", []):
            assert cell.metadata["slideshow"]["slide_type"] == "skip"
            assert cell.metadata.get("jupyter", {}).get("source_hidden") is True


def test_all_five_decks_build(tmp_path):
    assert len(CHAPTERS) == 5, [p.name for p in CHAPTERS]
    cmd = [sys.executable, "-m", "jupyter", "nbconvert", "--to", "slides", "--output-dir",
           str(tmp_path), *map(str, CHAPTERS)]
    subprocess.run(cmd, check=True, capture_output=True, timeout=300)
    decks = sorted(tmp_path.glob("*.slides.html"))
    assert [d.name.split(".")[0] for d in decks] == [p.stem for p in CHAPTERS]
    for deck in decks:
        html = deck.read_text()
        assert "reveal" in html.lower() and len(html) > 10_000
