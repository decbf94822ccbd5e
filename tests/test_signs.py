"""The sign renderer: class templates differ by the parts that define the class."""

from __future__ import annotations

import torch

from tutorial_utils import signs


def test_no_left_and_no_right_templates_are_mirror_images_in_the_arrow_only():
    t = signs.render_templates(("no left", "no right"))
    assert not torch.allclose(t[0], t[1])
    # the two differ only inside the ring: everything outside radius 0.75 is identical
    size = t.shape[-1]
    yy, xx = torch.meshgrid(torch.linspace(-1.05, 1.05, size), torch.linspace(-1.05, 1.05, size),
                            indexing="ij")
    outer = (xx**2 + yy**2).sqrt() > 0.78
    assert torch.allclose(t[0][:, outer], t[1][:, outer], atol=2e-2)
