"""Colour-coded tables that keep their colours in a notebook that has not run yet.

A pandas ``Styler`` writes its colours into a ``<style>`` block keyed by cell ids. JupyterLab
sanitises the HTML of an untrusted notebook — every freshly cloned chapter — and drops that
block, so a table whose text says "red cells detect" shows no red until the chapter runs.
Inline ``style`` attributes (``background-color``, ``color``, ...) survive the sanitiser.
:func:`inline_table` moves the Styler's rules onto the cells themselves and wraps the table in
a box that scrolls sideways instead of being cut off in a narrow window.
"""

from __future__ import annotations

import html as html_lib
import re

__all__ = ["InlineTable", "inline_table"]

_STYLE_BLOCK = re.compile(r"<style[^>]*>(.*?)</style>", re.S | re.I)
_RULE = re.compile(r"([^{}]+)\{([^{}]*)\}")
_ID_ATTR = re.compile(r'<(t[dh])([^>]*?)\bid="([^"]+)"([^>]*)>', re.I)


class InlineTable:
    """HTML of a table with inline styles: ``html`` (str); a notebook shows it as the table."""

    def __init__(self, html: str) -> None:
        self.html = html

    def _repr_html_(self) -> str:
        return self.html

    def __str__(self) -> str:
        return self.html


def _rules(css: str) -> dict[str, str]:
    """``{cell id: "prop: value; ..."}`` from the Styler's ``#id`` rules (others are dropped)."""
    out: dict[str, list[str]] = {}
    for selectors, body in _RULE.findall(css):
        body = " ".join(body.split()).strip().rstrip(";")
        if not body:
            continue
        for selector in selectors.split(","):
            selector = selector.strip()
            if re.fullmatch(r"#[\w-]+", selector):
                out.setdefault(selector[1:], []).append(body)
    return {k: "; ".join(v) for k, v in out.items()}


def inline_table(table, max_height: str | None = None) -> InlineTable:
    """A pandas ``Styler`` (or a ``DataFrame``) as HTML whose colours are inline styles.

    Every ``#cell-id {...}`` rule of the Styler's ``<style>`` block becomes that cell's
    ``style`` attribute (merged with any it has); the block is removed. The table sits in a
    ``<div>`` that scrolls horizontally (``overflow-x: auto``) — and vertically above
    ``max_height`` (a CSS length), if given. Raises ``TypeError`` for anything else.
    """
    to_html = getattr(table, "to_html", None)
    if not callable(to_html):
        raise TypeError(f"table must be a pandas Styler or DataFrame, got {type(table).__name__}")
    if hasattr(table, "_compute"):  # a Styler
        text = table.to_html()
    else:
        text = table.to_html(border=0)
    rules: dict[str, str] = {}
    for css in _STYLE_BLOCK.findall(text):
        rules.update(_rules(css))
    text = _STYLE_BLOCK.sub("", text)

    def attach(match: re.Match) -> str:
        tag, before, cell_id, after = match.groups()
        style = rules.get(cell_id)
        attrs = f"{before} id=\"{cell_id}\"{after}"
        if style:
            found = re.search(r'\bstyle="([^"]*)"', attrs)
            if found:
                merged = found.group(1).rstrip("; ") + "; " + style
                attrs = attrs.replace(found.group(0), f'style="{html_lib.escape(merged)}"')
            else:
                attrs += f' style="{html_lib.escape(style)}"'
        return f"<{tag}{attrs}>"

    text = _ID_ATTR.sub(attach, text)
    box = "overflow-x: auto; max-width: 100%"
    if max_height is not None:
        box += f"; overflow-y: auto; max-height: {max_height}"
    return InlineTable(f'<div style="{box}">{text.strip()}</div>')
