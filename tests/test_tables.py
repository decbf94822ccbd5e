"""plotting.tables.inline_table: a Styler's colours as inline styles (they survive JupyterLab's
sanitiser of untrusted notebooks), the table in a sideways-scrolling box."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from tutorial_utils.plotting.tables import inline_table


def test_colours_move_onto_the_cells():
    df = pd.DataFrame({"MSP": [0.9, 0.2], "random": [0.5, 0.51]}, index=["snow", "haze"])
    styler = df.style.format(precision=3).background_gradient(cmap="coolwarm", vmin=0, vmax=1)
    table = inline_table(styler)
    html = table._repr_html_()
    assert "<style" not in html
    cells = re.findall(r'<td[^>]*style="([^"]*)"[^>]*>\s*([0-9.]+)\s*</td>', html)
    assert len(cells) == 4 and all("background-color" in style for style, _ in cells)
    colours = {value: re.search(r"background-color: ([^;]+)", style).group(1)
               for style, value in cells}
    assert colours["0.900"] != colours["0.200"]  # the gradient itself, cell by cell
    assert html.startswith('<div style="overflow-x: auto')


def test_a_plain_frame_and_bad_input():
    html = inline_table(pd.DataFrame({"a": [1]}), max_height="20em").html
    assert "max-height: 20em" in html and "<table" in html
    with pytest.raises(TypeError, match="Styler or DataFrame"):
        inline_table([1, 2])
