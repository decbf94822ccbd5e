"""Give every chapter slide metadata, so each one is also a talk (RISE / nbconvert slides).

    python scripts/slides.py            # all chapters, in place (outputs untouched)

The rule, the same for every chapter: a markdown cell that opens with ``#`` or ``##`` starts a
new slide, one that opens with ``###`` a sub-slide (one idea each); code cells get a sub-slide of
their own (the figure they draw); other markdown continues the slide it follows; hidden exercise
solutions (tag ``solution``) are skipped in the talk. Build a deck with
``jupyter nbconvert --to slides notebooks/02_explainability.ipynb``; present live with RISE in
JupyterLab (the ``jupyterlab-rise`` extension).
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]


def slide_type(cell: nbformat.NotebookNode) -> str:
    """The ``slideshow.slide_type`` of one cell under the rule above."""
    if "solution" in cell.get("metadata", {}).get("tags", []):
        return "skip"
    if cell.cell_type == "code":
        return "subslide"
    first = cell.source.lstrip().split("\n", 1)[0]
    if first.startswith(("# ", "## ")):
        return "slide"
    if first.startswith("### "):
        return "subslide"
    return "-"


def annotate(path: Path) -> int:
    """Set the slide metadata of every cell of ``path``; returns the number of slides."""
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        cell.setdefault("metadata", {})["slideshow"] = {"slide_type": slide_type(cell)}
    nbformat.write(nb, path)
    return sum(c.metadata["slideshow"]["slide_type"] in ("slide", "subslide") for c in nb.cells)


def main(argv: list[str]) -> None:
    paths = [Path(a) for a in argv] or sorted((ROOT / "notebooks").glob("0*.ipynb"))
    for path in paths:
        print(f"{path.name}: {annotate(path)} slides")


if __name__ == "__main__":
    main(sys.argv[1:])
