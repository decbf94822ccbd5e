"""The live talk (marker ``browser``): a chapter presented from JupyterLab itself, with
``jupyterlab-slideshow``'s deck mode, keeps its widgets alive.

RISE (``jupyterlab-rise``) renders the slides in a separate page whose JupyterLab build lacks
modules the widget manager of ipywidgets 8 needs ("Shared module @jupyterlab/console doesn't
exist in shared scope default"), so its explorers show only their snapshot. The deck mode of
``jupyterlab-slideshow`` presents the notebook panel itself: the widgets are the notebook's own.

Chapter 5, served by the session's JupyterLab of ``tests/test_browser.py``: Run All Cells,
start the deck on the first cell, walk with → through the slides in the chapter's order (every
slide of ``scripts/slides.py`` is horizontal) to the dashboard's slide, check that its code is
hidden and its controls are there, pick another source in a dropdown, and the picture must
change. Screenshots of the slide before and after go to the session's screenshot folder.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from test_browser import (  # noqa: E402,F401 (fixtures)
    _JS_CELLS,
    _JS_RUN_ALL,
    CHAPTER_TIMEOUT,
    _errors,
    _pixels_changed,
    _wait_idle,
    browser,
    lab,
    notebook_page,
    scratch,
    shots,
)

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
CHAPTER = "05_conclusions"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
# the cells on screen: their index in the notebook
_JS_ON_SCREEN = """() => {
  const panel = window.jupyterapp.shell.currentWidget;
  return panel.content.widgets.map((cell, index) => ({index, node: cell.node}))
    .filter(({node}) => {
      const r = node.getBoundingClientRect();
      const style = getComputedStyle(node);
      return r.height > 0 && r.bottom > 0 && r.top < innerHeight
        && style.display !== 'none' && style.visibility !== 'hidden';
    }).map(({index}) => index);
}"""


def test_live_deck_keeps_the_explorers_alive(notebook_page, shots):  # noqa: F811
    nb = nbformat.read(ROOT / "notebooks" / f"{CHAPTER}.ipynb", as_version=4)
    starts = [i for i, c in enumerate(nb.cells)
              if c.metadata.get("slideshow", {}).get("slide_type") == "slide"]
    explorer = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code" and any(
        WIDGET_MIME in o.get("data", {}) for o in c.get("outputs", [])))
    page = notebook_page(CHAPTER)
    if not page.evaluate("window.jupyterapp.commands.hasCommand('deck:start')"):
        pytest.fail("jupyterlab-slideshow is not installed in the server's environment "
                    "(pip install -e .)", pytrace=False)

    page.evaluate(_JS_RUN_ALL)
    page.wait_for_function("() => window.__runAll !== undefined",
                           timeout=CHAPTER_TIMEOUT * 1000, polling=1000)
    assert page.evaluate("() => window.__runAll") == {"ok": True}
    _wait_idle(page, 60)
    errors = _errors(page.evaluate(_JS_CELLS))
    assert not errors, "\n".join(errors)

    page.evaluate("() => { window.jupyterapp.shell.currentWidget.content.activeCellIndex = 0; }")
    page.evaluate("window.jupyterapp.commands.execute('deck:start')")
    page.wait_for_selector("body[data-jp-deck-mode='presenting']", state="attached",
                           timeout=30_000)
    page.wait_for_function(f"() => ({_JS_ON_SCREEN})().includes(0)", timeout=30_000)

    # → walks through the slides in the chapter's order
    for previous, current in zip(starts, starts[1:], strict=False):
        if previous >= explorer:
            break
        page.keyboard.press("ArrowRight")
        page.wait_for_function(f"() => ({_JS_ON_SCREEN})().includes({current})",
                               timeout=30_000)
        shown = page.evaluate(_JS_ON_SCREEN)
        assert previous not in shown or previous == current, (
            f"→ from the slide of cell {previous}: cells {shown} on screen")
    assert explorer in page.evaluate(_JS_ON_SCREEN)

    cell = page.locator(".jp-Notebook .jp-Cell").nth(explorer)
    assert cell.locator(".jp-Cell-inputWrapper").evaluate(
        "e => getComputedStyle(e).display") == "none", "the explorer's code shows on its slide"
    picture = cell.locator("img.widget-image").first
    picture.wait_for(state="visible", timeout=60_000)
    page.wait_for_function("img => img.complete && img.naturalWidth > 0",
                           arg=picture.element_handle())
    select = cell.locator(".widget-dropdown select").nth(1)  # source: test image, GO sign, ...
    assert select.count() == 1, "no live controls on the explorer's slide"
    before = picture.screenshot(path=str(shots / "live-deck-explorer-before.png"))
    page.screenshot(path=str(shots / "live-deck-explorer-slide.png"))
    old = picture.get_attribute("src")
    options = select.locator("option").all_inner_texts()
    index = select.evaluate("s => s.selectedIndex")
    select.select_option(index=(index + 1) % len(options))
    page.wait_for_function("([img, old]) => img.getAttribute('src') !== old && img.complete",
                           arg=[picture.element_handle(), old], timeout=120_000)
    _wait_idle(page, 60)
    after = picture.screenshot(path=str(shots / "live-deck-explorer-after.png"))
    changed = _pixels_changed(before, after)
    print(f"\nlive deck: {options[index]!r} → {options[(index + 1) % len(options)]!r}, "
          f"{changed:.1%} of the picture changed")
    assert changed > 0.001, "the explorer's picture did not change in the live deck"
    page.evaluate("window.jupyterapp.commands.execute('deck:stop')")
