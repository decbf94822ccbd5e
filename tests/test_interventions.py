"""Interventions: region masks, occlusion sums by hand, box prompts, attack sweeps, and the
model-parameter randomisation test (copies only, local RNG, ρ = 1 for an unchanged model)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from torch import nn

from tutorial_utils import attacks, cam
from tutorial_utils import interventions as I
from tutorial_utils.architectures import SmallCNN


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


def test_random_region_is_the_top_region_moved(maps):
    top = I.region_masks(maps, 0.2, "top")
    rnd = I.region_masks(maps, 0.2, "random", n=4, seed=0)
    for i in range(4):
        for b in range(3):
            shifts = [(dy, dx) for dy in range(6) for dx in range(8)
                      if torch.equal(torch.roll(top[b], (dy, dx), (0, 1)), rnd[i, b])]
            assert shifts  # some wrapping shift of the top region gives it
    assert torch.equal(rnd, I.region_masks(maps, 0.2, "random", n=4, seed=0))
    assert not torch.equal(rnd, I.region_masks(maps, 0.2, "random", n=4, seed=1))


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


# --------------------------------------------------------------------------- sanity check
def test_randomization_layers_top_first():
    model = SmallCNN(3, 5)
    assert I.randomization_layers(model) == ["fc", "last_conv.1", "last_conv.0", "features.3",
                                             "features.2", "features.0"]


def test_randomized_models_work_on_copies_with_a_local_generator():
    torch.manual_seed(0)
    model = SmallCNN(3, 5).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    copies = I.randomized_models(model, seed=3)
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert [n for n, _ in copies] == I.randomization_layers(model)
    again = I.randomized_models(model, seed=3)
    for (_, a), (_, b) in zip(copies, again, strict=True):
        assert all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())
    # cascade: copy 1 has fc and last_conv.1 re-initialised, everything below as trained
    m1 = copies[1][1].state_dict()
    assert not torch.equal(m1["fc.weight"], before["fc.weight"])
    assert not torch.equal(m1["last_conv.1.0.weight"], before["last_conv.1.0.weight"])
    assert torch.equal(m1["last_conv.1.1.running_var"], torch.ones(64))
    assert torch.equal(m1["last_conv.0.0.weight"], before["last_conv.0.0.weight"])
    bound = 1 / np.sqrt(64 * 9)
    assert m1["last_conv.1.0.weight"].abs().max() <= bound
    single = I.randomized_models(model, ["last_conv.0"], cascade=False)[0][1].state_dict()
    assert torch.equal(single["fc.weight"], before["fc.weight"])
    with pytest.raises(ValueError, match="unknown layer"):
        I.randomized_models(model, ["head"])


def test_rank_correlation_is_spearman():
    gen = torch.Generator().manual_seed(0)
    a = torch.rand(5, 6, 6, generator=gen)
    b = (a + 0.3 * torch.rand(5, 6, 6, generator=gen)).clamp(max=0.8)  # ties at 0.8
    rho = I.rank_correlation(a, b)
    expected = [spearmanr(a[i].flatten(), b[i].flatten())[0] for i in range(5)]
    np.testing.assert_allclose(rho.numpy(), expected, atol=1e-12)
    torch.testing.assert_close(I.rank_correlation(a, a ** 3), torch.ones(5, dtype=torch.float64))
    torch.testing.assert_close(I.rank_correlation(a, -a), -torch.ones(5, dtype=torch.float64))
    flat = torch.zeros(2, 4, 4)
    assert I.rank_correlation(flat, flat).tolist() == [1.0, 1.0]
    assert I.rank_correlation(flat, a[:2, :4, :4]).tolist() == [0.0, 0.0]
    with pytest.raises(ValueError, match="same shape"):
        I.rank_correlation(a, b[:2])


def test_sanity_check_is_one_for_an_unchanged_model_and_catches_model_free_maps(x8):
    torch.manual_seed(0)
    model = SmallCNN(3, 4).eval()
    grad_cam = lambda m, x, t: cam.grad_cam(m, x, t)  # noqa: E731
    res = I.sanity_check(model, x8, grad_cam, seed=0)
    assert res.stages[0] == "original" and res.correlation.shape == (7, 8)
    torch.testing.assert_close(res.correlation[0], torch.ones(8, dtype=torch.float64))
    assert res.correlation[1].mean() < 0.9  # a new fc changes Grad-CAM's channel weights
    same = I.sanity_check(model, x8, grad_cam, layers=[])
    assert same.stages == ["original"] and (same.correlation == 1).all()
    edges = lambda m, x, t: x.mean(1)  # noqa: E731 - ignores the model: must "fail"
    res = I.sanity_check(model, x8, edges)
    assert (res.correlation == 1).all()
