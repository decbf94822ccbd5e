"""Build the chapters' slide decks, to present offline: reveal.js and MathJax sit next to them.

    python scripts/build_decks.py                      # every chapter -> decks/
    python scripts/build_decks.py notebooks/02_explainability.ipynb --out /tmp/decks

Writes ``<out>/<chapter>.slides.html`` (default ``decks/``, git-ignored) and ``<out>/_static/``
with reveal.js and MathJax 3, copied from ``presenter/node_modules`` (``npm ci --prefix
presenter`` installs them from the npm registry; this script runs it when they are missing).
A deck needs nothing from the web: copy the whole folder to the presenting machine and open a
deck in a browser. It uses the talk layout of ``scripts/slides.py``: glue code hidden
(``slides-hide-input``), exercise verdicts hidden (``slides-hide-output``), solutions left out,
every slide horizontal (→ / Space go through the talk, Esc shows the overview), and every
explorer shows its saved snapshot as a picture. Slides taller than the screen are scaled
down to fit.
"""

from __future__ import annotations

import argparse
import copy
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
from nbconvert import SlidesExporter
from traitlets.config import Config

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from slides import HIDE_INPUT, HIDE_OUTPUT  # noqa: E402

PRESENTER = ROOT / "presenter"
NODE_MODULES = PRESENTER / "node_modules"
TEMPLATES = PRESENTER / "templates"
DEFAULT_OUT = ROOT / "decks"
STATIC = "_static"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
SLIDE_WIDTH, SLIDE_HEIGHT = 1280, 760
# what the decks need, relative to node_modules -> relative to <out>/_static
ASSETS = {
    "reveal.js/dist": "reveal.js/dist",
    "reveal.js/plugin/notes": "reveal.js/plugin/notes",
    "reveal.js/LICENSE": "reveal.js/LICENSE",
    "mathjax/es5/tex-svg-full.js": "mathjax/tex-svg-full.js",
    "mathjax/LICENSE": "mathjax/LICENSE",
}


RICH = ("image/png", "image/jpeg", "image/svg+xml", "text/html", WIDGET_VIEW)


def _is_rich(output: dict) -> bool:
    return output.get("output_type") in ("display_data", "execute_result") and any(
        mime in output.get("data", {}) for mime in RICH)


def _split_outputs(outputs: list) -> list[list]:
    """Group a cell's outputs into one group per figure or table: a picture or table opens a
    group, the text printed after it stays with it (text printed before the first one joins
    the first group)."""
    groups: list[list] = [[]]
    for output in outputs:
        if _is_rich(output) and any(_is_rich(o) for o in groups[-1]):
            groups.append([])
        groups[-1].append(output)
    return groups


def talk(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The notebook as the deck shows it (a copy; the notebook is not changed).

    * A code cell that draws several figures or tables gets one slide per figure or table
      (``_split_outputs``), so that each fits the slide at a readable size.
    * Every widget output becomes its saved snapshot: the ``image/png`` that
      :class:`tutorial_utils.widgets.Explorer` saves beside the widget view is shown as a
      plain picture (marked ``explorer``), and the notebook's widget state is dropped, so the
      deck needs no widget manager.
    * Every picture gets a text alternative.
    """
    nb = copy.deepcopy(nb)
    nb.metadata.pop("widgets", None)
    cells = []
    for cell in nb.cells:
        if cell.cell_type != "code" or HIDE_INPUT not in cell.metadata.get("tags", []):
            cells.append(cell)
            continue
        for part, outputs in enumerate(_split_outputs(cell.get("outputs", []))):
            piece = copy.deepcopy(cell) if part else cell
            if part:
                piece.id = f"{cell.id}-{part + 1}"
                piece.metadata["slideshow"] = {"slide_type": "slide"}
            piece.outputs = outputs
            cells.append(piece)
    for index, cell in enumerate(cells):
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            explorer = WIDGET_VIEW in data and "image/png" in data
            if explorer:
                del data[WIDGET_VIEW]
            for mime in ("image/png", "image/jpeg"):
                if mime in data:
                    meta = output.setdefault("metadata", {}).setdefault(mime, {})
                    meta["explorer"] = explorer
                    meta.setdefault("alt", "explorer snapshot (interactive in the notebook)"
                                    if explorer else f"figure {index + 1}")
    nb.cells = cells
    return nb


def ensure_assets() -> Path:
    """``presenter/node_modules`` with reveal.js and MathJax; runs ``npm ci`` when missing."""
    if all((NODE_MODULES / src).exists() for src in ASSETS):
        return NODE_MODULES
    npm = shutil.which("npm")
    if npm is None:
        raise SystemExit("reveal.js and MathJax are not installed and npm is missing: install "
                         "Node.js (with npm), then run  npm ci --prefix presenter")
    subprocess.run([npm, "ci", "--prefix", str(PRESENTER), "--no-audit", "--no-fund",
                    "--ignore-scripts"], check=True)
    missing = [src for src in ASSETS if not (NODE_MODULES / src).exists()]
    if missing:
        raise SystemExit(f"npm ci did not install {missing} into {NODE_MODULES}")
    return NODE_MODULES


def copy_assets(out: Path) -> None:
    """Copy reveal.js and MathJax to ``out/_static`` (replacing an older copy)."""
    modules = ensure_assets()
    for src, dst in ASSETS.items():
        source, target = modules / src, out / STATIC / dst
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(source, target)
        else:
            shutil.copy2(source, target)


def exporter() -> SlidesExporter:
    """nbconvert's slides exporter on the offline template, with the talk layout's tags."""
    config = Config()
    config.TagRemovePreprocessor.enabled = True
    config.TagRemovePreprocessor.remove_input_tags = {HIDE_INPUT}
    config.TagRemovePreprocessor.remove_all_outputs_tags = {HIDE_OUTPUT}
    config.SlidesExporter.reveal_url_prefix = f"{STATIC}/reveal.js"
    config.SlidesExporter.reveal_theme = "white"
    config.SlidesExporter.reveal_transition = "none"
    config.SlidesExporter.reveal_number = "c/t"
    config.SlidesExporter.reveal_width = str(SLIDE_WIDTH)
    config.SlidesExporter.reveal_height = str(SLIDE_HEIGHT)
    config.SlidesExporter.exclude_anchor_links = True
    return SlidesExporter(config=config, template_name="offline-reveal",
                          extra_template_basedirs=[str(TEMPLATES)])


def build(paths: list[Path], out: Path = DEFAULT_OUT) -> list[Path]:
    """Build one deck per notebook into ``out``; returns the decks' paths."""
    out.mkdir(parents=True, exist_ok=True)
    copy_assets(out)
    exp, decks = exporter(), []
    for path in paths:
        nb = talk(nbformat.read(path, as_version=4))
        resources = {"metadata": {"name": path.stem, "path": str(path.parent)},
                     "deck_static": STATIC}
        html, _ = exp.from_notebook_node(nb, resources=resources)
        deck = out / f"{path.stem}.slides.html"
        deck.write_text(html, encoding="utf-8")
        decks.append(deck)
    return decks


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("notebooks", nargs="*", type=Path)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help="output folder (default: decks/, git-ignored)")
    args = parser.parse_args(argv)
    paths = args.notebooks or sorted((ROOT / "notebooks").glob("0*.ipynb"))
    for deck in build(paths, args.out):
        print(f"{deck} ({deck.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main(sys.argv[1:])
