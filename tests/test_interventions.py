"""Interventions: region masks, occlusion sums by hand, box prompts, attack sweeps."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tutorial_utils import attacks, cam
from tutorial_utils import interventions as I


class MeanModel(nn.Module):
    """Two classes with p_0 = mean pixel value, so an occlusion's effect is a known sum."""

    def __init__(self) -> None:
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        q = (x.mean(dim=(1, 2, 3)) + 0 * self.dummy).clamp(1e-12, 1 - 1e-12)
        return torch.stack([q.log(), (1 - q).log()], dim=1)


@pytest.fixture
def maps():
    return torch.rand(3, 6, 8, generator=torch.Generator().manual_seed(2))


# --------------------------------------------------------------------------- region masks
@pytest.mark.parametrize("fraction", [0.1, 0.25, 0.5, 1.0])
def test_every_region_has_exactly_k_pixels(maps, fraction):
    k = max(1, round(fraction * 48))
    for kind in ("top", "bottom"):
        assert (I.region_masks(maps, fraction, kind).sum((1, 2)) == k).all()
    rnd = I.region_masks(maps, fraction, "random", n=5, seed=3)
    assert rnd.shape == (5, 3, 6, 8) and (rnd.sum((2, 3)) == k).all()


def test_top_is_the_most_important_and_bottom_the_least(maps):
    top, bottom = I.region_masks(maps, 0.5, "top"), I.region_masks(maps, 0.5, "bottom")
    assert not (top & bottom).any() and (top | bottom).all()  # a partition at one half
    for b in range(3):
        assert maps[b][top[b]].min() >= maps[b][~top[b]].max()


def _translations(region, moved):
    """Every shift (dy, dx) that maps ``region`` onto ``moved`` without wrapping."""
    h, w = region.shape
    pad = torch.nn.functional.pad(region, (w, w, h, h))
    return [(dy, dx) for dy in range(-h + 1, h) for dx in range(-w + 1, w)
            if torch.equal(pad[h - dy:2 * h - dy, w - dx:2 * w - dx], moved)
            and int(moved.sum()) == int(region.sum())]


def _blobs():
    """Compact regions (a map peaked at one point per image) on a 16 × 20 image."""
    ys, xs = torch.meshgrid(torch.arange(16.0), torch.arange(20.0), indexing="ij")
    centres = [(3, 4), (8, 10), (12, 17)]
    return torch.stack([-((ys - r) ** 2 + (xs - c) ** 2) for r, c in centres])


def test_random_region_is_the_top_region_translated_inside_the_image():
    maps = _blobs()
    top = I.region_masks(maps, 0.1, "top")
    rnd = I.region_masks(maps, 0.1, "random", n=6, seed=0)
    assert rnd.shape == (6, 3, 16, 20) and (rnd.sum((2, 3)) == top.sum((1, 2))).all()
    for i in range(6):
        for b in range(3):
            shifts = _translations(top[b], rnd[i, b])
            assert shifts and shifts[0] != (0, 0)  # the same shape, moved, never split
    overlap = I.placement_overlap(top, rnd)
    assert overlap.shape == (6, 3) and overlap.max() <= I.MAX_OVERLAP
    strict = I.region_masks(maps, 0.1, "random", n=6, seed=0, max_overlap=0.0)
    assert I.placement_overlap(top, strict).max() == 0  # room enough to move clear of it
    assert torch.equal(rnd, I.region_masks(maps, 0.1, "random", n=6, seed=0))
    assert not torch.equal(rnd, I.region_masks(maps, 0.1, "random", n=6, seed=1))


def test_moved_placements_are_uniform_over_the_allowed_shifts():
    maps = torch.zeros(1, 6, 6)
    maps[0, :2, :2] = 1  # a 2 × 2 square in the corner (k = 4 of 36 pixels)
    top = I.region_masks(maps, 4 / 36, "top")
    rnd = I.region_masks(maps, 4 / 36, "random", n=3000, seed=0, max_overlap=0.0)
    shifts = [_translations(top[0], m)[0] for m in rnd[:, 0]]
    allowed = {(dy, dx) for dy in range(5) for dx in range(5) if dy >= 2 or dx >= 2}
    assert set(shifts) == allowed  # 21 placements with no pixel in common, none wrapped
    counts = torch.tensor([shifts.count(s) for s in sorted(allowed)], dtype=torch.float64)
    assert counts.min() > 0.6 * 3000 / 21 and counts.max() < 1.4 * 3000 / 21


def test_a_region_that_cannot_move_far_takes_the_least_overlap():
    maps = torch.zeros(1, 4, 4)
    maps[0, :3, :3] = 1  # 9 pixels: the diagonal shift (1, 1) still covers 4, any other 6
    top = I.region_masks(maps, 9 / 16, "top")
    rnd = I.region_masks(maps, 9 / 16, "random", n=20, seed=0)
    assert torch.allclose(I.placement_overlap(top, rnd), torch.tensor(4 / 9))
    assert all(_translations(top[0], m) == [(1, 1)] for m in rnd[:, 0])
    whole = I.region_masks(maps, 1.0, "random", n=2, seed=0)  # spans the image: cannot move
    assert whole.all()
    with pytest.raises(ValueError, match="max_overlap"):
        I.region_masks(maps, 0.5, "random", max_overlap=1.5)
    with pytest.raises(ValueError, match="moved"):
        I.placement_overlap(top, rnd[..., :3])


def test_region_mask_errors(maps):
    with pytest.raises(ValueError, match="fraction"):
        I.region_masks(maps, 0.0)
    with pytest.raises(ValueError, match="kind"):
        I.region_masks(maps, 0.1, "middle")
    with pytest.raises(TypeError, match="seed"):
        I.region_masks(maps, 0.1, "random", seed=1.5)


# --------------------------------------------------------------------------- occlusion
def test_occlusion_drops_are_the_occluded_pixel_sums():
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(4, 2, 8, 8, generator=gen)
    maps = torch.rand(4, 8, 8, generator=gen)
    res = I.occlusion_interventions(MeanModel(), x, maps, 0, fractions=(0.1, 0.5),
                                    n_random=3, baseline="zeros", seed=5)
    assert res.top.shape == (2, 4) and res.random.shape == (2, 3, 4)
    torch.testing.assert_close(res.clean, x.mean((1, 2, 3)))
    pix = x.sum(1)  # a removed pixel takes all its channels with it
    for i, f in enumerate((0.1, 0.5)):
        top, bottom = I.region_masks(maps, f, "top"), I.region_masks(maps, f, "bottom")
        rnd = I.region_masks(maps, f, "random", n=3, seed=5 + i)
        for mask, got in ((top, res.top[i]), (bottom, res.bottom[i])):
            torch.testing.assert_close(res.clean - got, (pix * mask).sum((1, 2)) / 128)
        torch.testing.assert_close(res.clean - res.random[i],
                                   (pix * rnd).sum((2, 3)) / 128)
    drops = res.drops()
    assert (drops["top"] + drops["bottom"])[1].allclose(res.clean)  # halves add up at 0.5


def test_occluding_everything_is_the_same_whatever_the_kind(tiny, x8):
    res = I.occlusion_interventions(tiny, x8, torch.rand(8, 12, 12), fractions=(1.0,),
                                    n_random=2)
    torch.testing.assert_close(res.top, res.bottom)
    torch.testing.assert_close(res.random[:, 0], res.top)


def test_occlusion_leaves_model_state_and_global_rng(tiny, x8):
    tiny.train()
    maps = torch.rand(8, 12, 12)
    rng = torch.get_rng_state()
    I.occlusion_interventions(tiny, x8, maps, n_random=2)
    assert tiny.training and torch.equal(torch.get_rng_state(), rng)


# --------------------------------------------------------------------------- box prompts
def test_box_mask_area_and_clipping():
    assert I.box_mask((20, 20), (10, 10), 6).sum() == 36
    corner = I.box_mask((20, 20), (0, 0), 6)
    assert corner.sum() == 9 and corner[:3, :3].all()
    with pytest.raises(ValueError, match="outside"):
        I.box_mask((20, 20), (20, 3), 4)


def test_box_landscape_equals_one_box_at_a_time(tiny, x8):
    land = I.box_landscape(tiny, x8[0], sizes=(3, 5), centres=(1, 6, 10), baseline=0.0,
                           batch_size=4)
    assert land.shape == (2, 3, 3, 4)
    for s, size in enumerate((3, 5)):
        for i, r in enumerate((1, 6, 10)):
            for j, c in enumerate((1, 6, 10)):
                box = I.box_mask((12, 12), (r, c), size)
                p = tiny(torch.where(box, 0.0, x8[:1])).softmax(1)[0]
                torch.testing.assert_close(land[s, i, j], p.detach(), atol=1e-6, rtol=1e-5)


# --------------------------------------------------------------------------- attacks
def test_attack_sweep_matches_the_attacks(tiny, x8):
    y = tiny(x8).argmax(1)
    sweep = I.attack_sweep(tiny, x8, y, [0.0, 0.05], pgd_steps=3, batch_size=3)
    again = I.attack_sweep(tiny, x8, y, [0.0, 0.05], pgd_steps=3, batch_size=8)
    torch.testing.assert_close(again.images["PGD"], sweep.images["PGD"])  # batch-independent
    assert sweep.accuracy["FGSM"][0] == 1.0 == sweep.accuracy["PGD"][0]
    torch.testing.assert_close(sweep.images["FGSM"][1], attacks.fgsm(tiny, x8, y, 0.05))
    torch.testing.assert_close(sweep.images["PGD"][1], attacks.pgd(tiny, x8, y, 0.05, steps=3))
    with pytest.raises(ValueError, match="attacks"):
        I.attack_sweep(tiny, x8, y, [0.1], attacks=("CW",))


def test_attack_view_and_masking_view(tiny, x8):
    view = I.attack_view(tiny, x8[0], 1, 0.1)
    assert view.image.shape == (3, 12, 12) and view.probs.shape == (4,)
    assert (view.image - x8[0]).abs().max() <= 0.1 + 1e-6
    for m in (view.gradcam_clean, view.gradcam, view.contrast):
        assert m.shape == (12, 12) and 0 <= m.min() and m.max() <= 1
    torch.testing.assert_close(view.gradcam_clean, cam.grad_cam(tiny, x8[:1])[0])
    maps = {"a": torch.rand(12, 12), "b": torch.zeros(12, 12)}
    masked, probs, kept = I.masking_view(tiny, x8[0], maps, 0.0)
    p = tiny(x8[:1]).softmax(1)[0].detach()
    torch.testing.assert_close(probs, p.max().expand(2))
    assert (kept == 1).all() and torch.equal(masked[0], x8[0])
    masked, _, kept = I.masking_view(tiny, x8[0], maps, 0.5)
    assert kept[1] == 0 and (masked[1] == 0).all()
    masked, _, kept = I.masking_view(tiny, x8[0], maps, 0.5, baseline=0.3)  # the chapter's grey
    assert kept[1] == 0 and torch.allclose(masked[1], torch.tensor(0.3))
    keep = maps["a"] >= 0.5
    assert torch.equal(masked[0][:, keep], x8[0][:, keep])
    assert torch.allclose(masked[0][:, ~keep], torch.tensor(0.3))
