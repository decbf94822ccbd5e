"""Every explorer's frame: controls that wrap and keep their width, pictures shown at the size
they are drawn, and a bad value reported in the explorer's own text line, then recovered."""

from __future__ import annotations

import ipywidgets
import matplotlib.pyplot as plt
import pytest

from tutorial_utils import widgets
from tutorial_utils.plotting.style import to_png


def _explorer(fail_on=("bad",)):
    fig, ax = plt.subplots(figsize=(3, 2), dpi=50)
    plt.close(fig)

    def render(name: str, level: int):
        if name in fail_on or name is None:
            raise ValueError(f"no such name {name!r}")
        ax.clear()
        ax.set_title(f"{name} {level}")
        return to_png(fig), f"<code>{name} {level}</code>", (name, level)

    return widgets.Explorer({"name": ipywidgets.Dropdown(options=["a", "b", "bad"], value="a",
                                                         description="name"),
                             "level": widgets._slider(2, 5)}, render)


def test_controls_wrap_and_keep_a_usable_width():
    explorer = _explorer()
    row = explorer.children[0]
    assert row.layout.flex_flow == "row wrap"
    for control in explorer.controls.values():
        assert control.layout.flex == "0 0 auto"  # never squeezed: the row wraps instead
        assert int(control.layout.min_width.removesuffix("px")) >= 200


def test_picture_is_shown_at_its_drawn_size():
    explorer = _explorer()
    assert explorer.image.layout.width == f"{widgets._png_width(explorer.image.value)}px"
    assert explorer.image.layout.max_width == "100%"
    assert widgets._png_width(explorer.image.value) == 150  # 3 in × 50 dpi


def test_a_bad_dropdown_value_is_named_in_the_text_line_and_recovered():
    explorer = _explorer()
    picture, calls = explorer.image.value, explorer.state["calls"]
    explorer.controls["name"].value = "bad"
    assert "name" in explorer.info.value and "'bad' cannot be shown" in explorer.info.value
    assert "one of a, b, bad" in explorer.info.value
    assert explorer.controls["name"].value == "a"  # back to the last value drawn
    assert explorer.image.value == picture and explorer.state["calls"] == calls
    explorer.controls["name"].value = None  # a dropdown with nothing picked
    assert "None cannot be shown" in explorer.info.value
    assert explorer.controls["name"].value == "a"
    explorer.controls["level"].value = 4  # and it still works
    assert explorer.state["last"] == ("a", 4) and "a 4" in explorer.info.value
    assert len(explorer.state["errors"]) == 2


def test_an_empty_slider_value_from_the_page_is_refused_and_reported():
    explorer = _explorer()
    slider = explorer.controls["level"]
    slider.set_state({"value": None})  # what a squeezed slider's drag sent
    assert slider.value == 2
    assert "level: the control sent an empty value" in explorer.info.value
    assert "from 0 to 5" in explorer.info.value
    slider.set_state({"value": 3})  # a real value from the page still redraws
    assert explorer.state["last"] == ("a", 3)


def test_the_first_view_still_raises():
    with pytest.raises(ValueError, match="no such name"):
        _explorer(fail_on=("a",))
