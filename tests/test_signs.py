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


def test_rendering_a_subset_replays_the_same_scenes():
    labels = torch.arange(14).repeat_interleave(3)
    templates = signs.render_templates()
    full = signs.render_signs(labels, templates, seed=5)
    index = torch.tensor([40, 2, 2, 17])
    torch.testing.assert_close(signs.render_signs(labels, templates, seed=5, index=index),
                               full[index], atol=0, rtol=0)


def test_counterfactual_scene_differs_only_in_the_sign():
    labels = torch.arange(14).repeat_interleave(2)
    no_left, no_right = signs.SIGN_CLASSES.index("no left"), signs.SIGN_CLASSES.index("no right")
    index = torch.tensor([2 * no_left, 2 * no_left + 1])
    x_cf, regions = signs.counterfactual_scenes(labels, 9, index, torch.tensor([no_right] * 2))
    same, empty = signs.counterfactual_scenes(labels, 9, index, labels[index])
    assert not empty.any()  # the same class re-rendered: nothing differs
    assert regions.float().mean() < 0.06  # only the arrow differs, a few per cent of the image
    changed = (x_cf - same).abs().amax(1) > signs.DIFFERENCE_THRESHOLD
    assert torch.equal(changed, regions)
    # the background (image border) is identical
    assert torch.equal(x_cf[..., :4, :], same[..., :4, :])
    with torch.no_grad():
        import pytest

        with pytest.raises(ValueError, match="index"):
            signs.counterfactual_scenes(labels, 9, torch.tensor([99]), torch.tensor([0]))
