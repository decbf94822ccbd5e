"""Every chapter is also a talk: the slide layout of ``scripts/slides.py`` is applied, and the
offline decks of ``scripts/build_decks.py`` build and reference nothing on the web (the browser
checks are in ``tests/test_decks.py``)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import build_decks  # noqa: E402
import slides  # noqa: E402

CHAPTERS = sorted((ROOT / "notebooks").glob("0*.ipynb"))
WEB_REFERENCE = re.compile(r"""(?:src|href)\s*=\s*["'](?:https?:)?//""", re.IGNORECASE)


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_chapter_has_the_talk_layout(path):
    nb = nbformat.read(path, as_version=4)
    for cell, next_cell in zip(nb.cells, [*nb.cells[1:], None], strict=True):
        expected = slides.layout(cell, next_cell)
        got = (cell.metadata.get("slideshow", {}).get("slide_type"),
               [t for t in cell.metadata.get("tags", []) if t in slides.SLIDE_TAGS])
        assert got == (expected[0], expected[1]), (
            f"cell {cell.id} {cell.source[:60]!r}: {got} instead of {expected}; "
            "run: python scripts/slides.py")
        rules = (cell.metadata.get(slides.FONTS, {}).get("styles", {}).get("", {})
                 .get(slides.PRESENTING, {}))
        hidden = {tag for tag, selector in slides.HIDDEN_PART.items() if selector in rules}
        assert hidden == set(expected[1]), f"cell {cell.id}: live-deck styles {rules}"
    types = [c.metadata["slideshow"]["slide_type"] for c in nb.cells]
    assert types[0] == "slide" and types.count("slide") >= 4
    assert "subslide" not in types, "vertical sub-slides: → would skip them"
    for cell in nb.cells:
        if "solution" in cell.metadata.get("tags", []):
            assert cell.metadata["slideshow"]["slide_type"] == "skip"
            assert cell.metadata.get("jupyter", {}).get("source_hidden") is True


def test_layout_rules():
    md = nbformat.v4.new_markdown_cell
    code = nbformat.v4.new_code_cell
    figure = code("plot()", outputs=[nbformat.v4.new_output(
        "display_data", data={"image/png": "", "text/plain": ""})])
    solution = code("answer = 1", metadata={"tags": ["solution"]})
    assert slides.layout(md("# Title")) == ("slide", [])
    assert slides.layout(md("### Part")) == ("slide", [])
    assert slides.layout(md("*Reading guidance:* ...")) == ("-", [])
    assert slides.layout(figure) == ("slide", [slides.HIDE_INPUT])
    assert slides.layout(code("x = 1")) == ("skip", [])
    assert slides.layout(code("answer = ..."), solution) == ("slide", [slides.HIDE_OUTPUT])
    assert slides.layout(solution) == ("skip", [])


def test_deck_styles_keep_other_styles_and_clean_up():
    metadata = {slides.FONTS: {"styles": {"": {slides.PRESENTING: {"opacity": "0.5"}}}}}
    slides.set_deck_styles(metadata, [slides.HIDE_INPUT])
    rules = metadata[slides.FONTS]["styles"][""][slides.PRESENTING]
    assert rules == {"opacity": "0.5", "& .jp-Cell-inputWrapper": {"display": "none"}}
    slides.set_deck_styles(metadata, [])
    assert metadata[slides.FONTS]["styles"][""][slides.PRESENTING] == {"opacity": "0.5"}
    bare = {slides.FONTS: {"styles": {"": {slides.PRESENTING: {}}}}}
    slides.set_deck_styles(bare, [])
    assert bare == {}


def test_split_outputs_gives_each_figure_its_slide():
    out = nbformat.v4.new_output
    text = out("stream", name="stdout", text="n = 3\n")
    fig = out("display_data", data={"image/png": "", "text/plain": ""})
    table = out("display_data", data={"text/html": "<table/>", "text/plain": ""})
    groups = build_decks._split_outputs([text, fig, text, table, text, fig])
    assert [len(g) for g in groups] == [3, 2, 1]


def test_all_five_decks_build_offline(tmp_path):
    assert len(CHAPTERS) == 5, [p.name for p in CHAPTERS]
    decks = build_decks.build(CHAPTERS, tmp_path)
    assert [d.name.split(".")[0] for d in decks] == [p.stem for p in CHAPTERS]
    for src in build_decks.ASSETS.values():
        assert (tmp_path / build_decks.STATIC / src).exists(), src
    for deck in decks:
        html = deck.read_text()
        assert "_static/reveal.js/dist/reveal.js" in html and len(html) > 10_000
        assert "_static/mathjax/tex-svg-full.js" in html
        web = WEB_REFERENCE.findall(html)
        assert not web, f"{deck.name} loads from the web: {web[:5]}"
        assert "application/vnd.jupyter.widget" not in html, "widget views need a manager"
