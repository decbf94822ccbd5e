"""Give every chapter its talk layout: slide metadata and the tags that hide glue code on slides.

    python scripts/slides.py                 # all chapters, in place (outputs untouched)
    python scripts/slides.py notebooks/02_explainability.ipynb

The rule is the same for every chapter and depends only on each cell's kind, its first line,
its tags and whether it has outputs, so it can be re-applied to any version of a chapter (run it
after editing or re-executing one):

* a markdown cell that opens with ``#``, ``##`` or ``###`` starts a new slide; other markdown
  continues the slide it follows (the reading guidance stays under its figure);
* a code cell with outputs gets a slide of its own that shows its outputs (the figure, the
  table, the checked sentence) but not its code: tag ``slides-hide-input``;
* an exercise cell (the code cell right before a hidden solution) gets a slide that shows the
  code to complete but not the "not attempted" verdict: tag ``slides-hide-output``;
* a code cell without outputs, and every hidden solution (tag ``solution``), is left out.

Every slide is a horizontal (``slide``) one, so → and Space walk through the whole talk in
the order of the chapter; there are no vertical sub-slides to find with ↓. The tags only act on
slides: the notebook itself shows every cell's code. ``scripts/build_decks.py`` builds the
offline decks from this layout. For the live talk in JupyterLab (``jupyterlab-slideshow``'s deck
mode) the same two tags become a cell style that hides the code (or the verdict) only while
presenting (cell metadata ``@deathbeds/jupyterlab-fonts``; other styles there are kept).
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
HIDE_INPUT = "slides-hide-input"
HIDE_OUTPUT = "slides-hide-output"
SLIDE_TAGS = (HIDE_INPUT, HIDE_OUTPUT)
# jupyterlab-slideshow styles a cell through jupyterlab-fonts' cell metadata (JSS, nested):
# these rules apply only while the deck is presenting
FONTS = "@deathbeds/jupyterlab-fonts"
PRESENTING = "body[data-jp-deck-mode='presenting'] &"
HIDDEN_PART = {HIDE_INPUT: "& .jp-Cell-inputWrapper", HIDE_OUTPUT: "& .jp-Cell-outputWrapper"}


def _tags(cell: nbformat.NotebookNode) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def _is_solution(cell: nbformat.NotebookNode | None) -> bool:
    return cell is not None and "solution" in _tags(cell)


def layout(cell: nbformat.NotebookNode, next_cell: nbformat.NotebookNode | None = None
           ) -> tuple[str, list[str]]:
    """The ``slideshow.slide_type`` of ``cell`` and the slide tags it gets (``next_cell`` is the
    cell after it, ``None`` for the last one)."""
    if _is_solution(cell):
        return "skip", []
    if cell.cell_type == "markdown":
        first = cell.source.lstrip().split("\n", 1)[0]
        return ("slide" if first.startswith(("# ", "## ", "### ")) else "-"), []
    if cell.cell_type != "code" or not cell.source.strip():
        return "skip", []
    if _is_solution(next_cell):
        return "slide", [HIDE_OUTPUT]
    if not cell.get("outputs"):
        return "skip", []
    return "slide", [HIDE_INPUT]


def set_deck_styles(metadata: dict, tags: list[str]) -> None:
    """Hide the parts named by the slide ``tags`` in the live deck; remove rules for parts that
    are no longer hidden, and empty containers, keeping every other style."""
    fonts = metadata.get(FONTS, {})
    rules = fonts.get("styles", {}).get("", {}).get(PRESENTING, {})
    for tag, selector in HIDDEN_PART.items():
        if tag in tags:
            rules[selector] = {"display": "none"}
        else:
            rules.pop(selector, None)
    if rules:  # assigned last: a notebook node copies a dict when it is set
        fonts.setdefault("styles", {}).setdefault("", {})[PRESENTING] = rules
        metadata[FONTS] = fonts
        return
    styles = fonts.get("styles", {})
    styles.get("", {}).pop(PRESENTING, None)
    if "" in styles and not styles[""]:
        del styles[""]
    if "styles" in fonts and not styles:
        del fonts["styles"]
    if FONTS in metadata and not fonts:
        del metadata[FONTS]


def annotate(path: Path) -> int:
    """Set the slide metadata and slide tags of every cell of ``path`` (other tags and metadata
    are kept); returns the number of slides."""
    nb = nbformat.read(path, as_version=4)
    for cell, next_cell in zip(nb.cells, [*nb.cells[1:], None], strict=True):
        slide_type, tags = layout(cell, next_cell)
        metadata = cell.setdefault("metadata", {})
        metadata["slideshow"] = {"slide_type": slide_type}
        kept = [t for t in metadata.get("tags", []) if t not in SLIDE_TAGS] + tags
        if kept:
            metadata["tags"] = kept
        else:
            metadata.pop("tags", None)
        set_deck_styles(metadata, tags)
    nbformat.write(nb, path)
    return sum(c.metadata["slideshow"]["slide_type"] == "slide" for c in nb.cells)


def main(argv: list[str]) -> None:
    paths = [Path(a) for a in argv] or sorted((ROOT / "notebooks").glob("0*.ipynb"))
    for path in paths:
        print(f"{path.name}: {annotate(path)} slides")


if __name__ == "__main__":
    main(sys.argv[1:])
