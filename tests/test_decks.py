"""The offline slide decks (``scripts/build_decks.py``), opened in headless Chromium with the
network cut off (marker ``browser``).

The five decks are built into a temporary folder, each is opened from ``file://`` and every
request to anything but a local file is blocked and counted. For every deck:

* it is a slideshow: reveal.js runs, → and ← move one slide, and every slide is a horizontal
  one (one per ``slide`` cell of the chapter, so → walks through the whole talk);
* the LaTeX is typeset: MathJax drew its output and no ``$...$`` is left in the text;
* every explorer's slide shows its saved snapshot as a picture, and no code is shown but the
  exercises' (glue code hidden);
* nothing is cut off: on every slide the content lies inside the browser window and no part of
  it scrolls, and two slides per deck (the most scaled-down one and an explorer slide) are
  screenshotted and their content bounds compared with the window;
* no request left the machine, and the page logged no error.

Without Chromium or Playwright the test skips locally and fails under ``CI=true``.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from pathlib import Path

import nbformat
import pytest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import build_decks  # noqa: E402
from slides import HIDE_OUTPUT  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from _servers import CHROMIUM_ARGS, playwright  # noqa: E402
from _servers import chromium as _chromium  # noqa: E402
from _servers import no_browser as _no_browser  # noqa: E402

CHAPTERS = sorted((ROOT / "notebooks").glob("0*.ipynb"))
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
VIEWPORT = {"width": 1366, "height": 768}  # a common projector / laptop size
RAW_MATH = re.compile(r"\$[^$\s][^$]*\$")

# Every slide of the open deck: its horizontal/vertical index, the bounds of its content in
# the window, the parts of it that scroll (content hidden behind a scroll bar), its scale.
_JS_SLIDE = """() => {
  const slide = Reveal.getCurrentSlide();
  const box = {left: Infinity, top: Infinity, right: -Infinity, bottom: -Infinity};
  for (const child of slide.children) {
    const r = child.getBoundingClientRect();
    if (r.width === 0 && r.height === 0) continue;
    box.left = Math.min(box.left, r.left); box.top = Math.min(box.top, r.top);
    box.right = Math.max(box.right, r.right); box.bottom = Math.max(box.bottom, r.bottom);
  }
  // MathJax's assistive MathML is clipped on purpose (it is read by screen readers only)
  const scrolling = [...slide.querySelectorAll('*')]
    .filter(e => !e.closest('mjx-assistive-mml'))
    .filter(e => {
      const s = getComputedStyle(e), clips = ['auto', 'scroll', 'hidden'];
      return (e.scrollWidth > e.clientWidth + 1 && clips.includes(s.overflowX))
          || (e.scrollHeight > e.clientHeight + 1 && clips.includes(s.overflowY));
    }).map(e => e.className || e.tagName);
  return {indices: Reveal.getIndices(), box, scrolling, width: innerWidth, height: innerHeight,
          scale: slide.getAttribute('data-fit-scale')};
}"""
# Wait until the page has loaded, the current slide's images are decoded and the fit ran.
_JS_SETTLED = """() => document.readyState === 'complete'
  && [...Reveal.getCurrentSlide().querySelectorAll('img')].every(i => i.complete)"""



@pytest.fixture(scope="module")
def decks():
    """The five decks, built into a temporary folder (with their ``_static`` assets)."""
    with tempfile.TemporaryDirectory(prefix="tutorial-decks-") as folder:
        built = build_decks.build(CHAPTERS, Path(folder))
        yield {deck.name.split(".")[0]: deck for deck in built}


@pytest.fixture(scope="module")
def offline_page():
    """``open(url)`` → a page in headless Chromium that may load local files only; returns the
    page, the blocked requests and the page's errors."""
    executable = _chromium()
    if executable is None:
        _no_browser("no Chromium found (apt-get install chromium, or set CHROMIUM_PATH)")
    try:
        manager = playwright()
    except ImportError as exc:
        _no_browser(f"playwright is not installed ({exc}); pip install -e '.[dev]'")
    try:
        browser = manager.chromium.launch(executable_path=executable, headless=True,
                                          args=CHROMIUM_ARGS)
    except Exception as exc:
        _no_browser(f"{executable} could not be started: {exc}")
    pages = []

    def open_(url: str):
        context = browser.new_context(viewport=VIEWPORT)
        page = context.new_page()
        blocked, errors = [], []

        def route(route):
            if route.request.url.startswith(("file:", "data:", "blob:")):
                route.continue_()
            else:
                blocked.append(route.request.url)
                route.abort()

        page.route("**/*", route)
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        pages.append(context)
        page.goto(url)
        return page, blocked, errors

    try:
        yield open_
    finally:
        for context in pages:
            context.close()
        browser.close()


def _bounds_problem(state: dict) -> str | None:
    box, tol = state["box"], 1.5
    if (box["left"] < -tol or box["top"] < -tol or box["right"] > state["width"] + tol
            or box["bottom"] > state["height"] + tol):
        return (f"slide {state['indices']['h']}: content {box} outside the window "
                f"{state['width']}x{state['height']} (scale {state['scale']})")
    if state["scrolling"]:
        return f"slide {state['indices']['h']}: parts scroll: {state['scrolling'][:5]}"
    return None


@pytest.mark.parametrize("chapter", [p.stem for p in CHAPTERS])
def test_deck_works_offline(chapter, decks, offline_page, tmp_path_factory):
    nb = build_decks.talk(nbformat.read(ROOT / "notebooks" / f"{chapter}.ipynb", as_version=4))
    n_slides = sum(c.metadata.get("slideshow", {}).get("slide_type") == "slide" for c in nb.cells)
    explorers = [c.id for c in nbformat.read(ROOT / "notebooks" / f"{chapter}.ipynb",
                                             as_version=4).cells
                 if c.cell_type == "code" and any(WIDGET_MIME in o.get("data", {})
                                                  for o in c.get("outputs", []))]
    shots = Path(os.environ.get("BROWSER_SCREENSHOTS") or tmp_path_factory.mktemp("decks"))

    page, blocked, errors = offline_page(decks[chapter].as_uri())
    page.wait_for_selector("body[data-deck=ready]", timeout=30_000)
    page.wait_for_selector("body[data-mathjax=done]", state="attached", timeout=30_000)

    # a slideshow, every slide horizontal: → and ← move by one
    assert page.evaluate("Reveal.getTotalSlides()") == n_slides
    assert page.evaluate("Reveal.getHorizontalSlides().length") == n_slides
    assert page.evaluate("Reveal.getIndices()")["h"] == 0
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    assert page.evaluate("Reveal.getIndices()")["h"] == 2, "→ does not move to the next slide"
    page.keyboard.press("ArrowLeft")
    assert page.evaluate("Reveal.getIndices()")["h"] == 1, "← does not move back"

    # the LaTeX is typeset: MathJax output, no raw $...$ in any text cell
    markdown_math = sum(bool(RAW_MATH.search(c.source)) for c in nb.cells
                        if c.cell_type == "markdown")
    typeset = page.locator("mjx-container").count()
    assert markdown_math == 0 or typeset > 0, "MathJax did not typeset the slides"
    texts = page.evaluate("[...document.querySelectorAll('.jp-MarkdownCell')]"
                          ".map(c => c.textContent)")
    raw = [m.group(0) for t in texts for m in RAW_MATH.finditer(t)]
    assert not raw, f"raw LaTeX on the slides: {raw[:5]}"

    # glue code hidden: only the exercises' code is on the slides
    exercise_cells = sum(HIDE_OUTPUT in c.metadata.get("tags", []) for c in nb.cells)
    assert page.locator(".jp-CodeCell .jp-InputArea").count() == exercise_cells

    # every explorer's slide shows its saved picture
    for cell_id in explorers:
        picture = page.locator(f'[id="cell-id={cell_id}"] img')
        assert picture.count() == 1, f"explorer cell {cell_id}: no picture on its slide"
        assert "deck-explorer" in picture.get_attribute("class")
        assert picture.get_attribute("src").startswith("data:image/png;base64,")
        assert picture.evaluate("img => img.complete && img.naturalWidth > 100")

    # nothing is cut off, on any slide (and two of them screenshotted)
    page.evaluate("Reveal.slide(0)")
    states = []
    for h in range(n_slides):
        page.evaluate(f"Reveal.slide({h})")
        page.wait_for_function(_JS_SETTLED)
        page.evaluate("() => new Promise(r => requestAnimationFrame(() => r()))")
        states.append(page.evaluate(_JS_SLIDE))
    problems = [p for p in map(_bounds_problem, states) if p]
    assert not problems, "\n".join(problems)
    scaled = min(range(n_slides), key=lambda h: float(states[h]["scale"] or 1))
    explorer_slide = page.evaluate(
        "(id) => { const el = document.getElementById('cell-id=' + id); "
        "return el ? Reveal.getIndices(el.closest('.slides > section')).h : null; }",
        explorers[0] if explorers else "")
    for name, h in (("most-scaled", scaled), ("explorer", explorer_slide)):
        if h is None:
            continue
        page.evaluate(f"Reveal.slide({h})")
        page.wait_for_function(_JS_SETTLED)
        page.evaluate("() => new Promise(r => requestAnimationFrame(() => r()))")
        page.screenshot(path=str(shots / f"deck-{chapter}-{name}-slide{h}.png"))
        problem = _bounds_problem(page.evaluate(_JS_SLIDE))
        assert problem is None, f"{name} slide: {problem}"

    assert blocked == [], f"the deck asked the network for {blocked}"
    assert errors == [], f"errors in the page: {errors[:5]}"
