"""Tests for tutorial_utils.evaluation: analytic insertion/deletion curves, AUC identities,
batched = per-step loop, Huffman bits by hand, structure-wise curves, state and errors, and the
model-parameter randomisation test (copies only, local RNG, ρ = 1 for an unchanged model)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from torch import nn
from torchvision.transforms.functional import gaussian_blur

from tutorial_utils import cam, forward, metrics
from tutorial_utils import evaluation as E
from tutorial_utils.architectures import SmallCNN
from tutorial_utils.forward import baseline_image


class MeanModel(nn.Module):
    """Two classes with p_0 = mean pixel value of the image (so p_0 is linear in the pixels)."""

    def forward(self, x):
        q = x.mean(dim=(1, 2, 3)).clamp(1e-12, 1 - 1e-12)
        return torch.stack([q.log(), (1 - q).log()], dim=1)


@pytest.fixture
def images():
    gen = torch.Generator().manual_seed(0)
    return torch.rand(3, 2, 6, 6, generator=gen)


def top_sums(x: torch.Tensor, order: torch.Tensor, counts: list[int]) -> torch.Tensor:
    """Σ of the channel-summed pixels of x (B, C, H, W) at the first n pixels of ``order``."""
    pix = x.sum(1).flatten(1).gather(1, order)
    cums = torch.cat([torch.zeros(len(x), 1), pix.cumsum(1)], dim=1)
    return cums[:, counts]


# --------------------------------------------------------------------------- analytic curves
def test_deletion_and_insertion_curves_are_known_analytically(images):
    b, c, h, w = images.shape
    sal = images.mean(1)  # brightest pixels first
    order = torch.sort(sal.flatten(1), dim=1, descending=True, stable=True).indices
    counts = [k * 3 for k in range(13)]
    total = images.sum(dim=(1, 2, 3))[:, None]
    deletion = E.deletion_curve(MeanModel(), images, sal, 0, steps=12, baseline="zeros")
    torch.testing.assert_close(deletion.fractions, torch.arange(13) / 12)
    expected = (total - top_sums(images, order, counts)) / (c * h * w)
    torch.testing.assert_close(deletion.probs, expected, atol=1e-6, rtol=1e-6)
    insertion = E.insertion_curve(MeanModel(), images, sal, 0, steps=12, baseline="zeros")
    torch.testing.assert_close(insertion.probs, top_sums(images, order, counts) / (c * h * w),
                               atol=1e-6, rtol=1e-6)
    # the brightest-first order is the best possible one for this model
    assert (E.curve_auc(*deletion) < E.curve_auc(*E.deletion_curve(
        MeanModel(), images, -sal, 0, steps=12))).all()


def test_uniform_image_gives_straight_lines_with_auc_one_half():
    x = torch.ones(1, 1, 10, 10)
    deletion = E.deletion_curve(MeanModel(), x, torch.rand(1, 10, 10), 0, steps=10)
    torch.testing.assert_close(deletion.probs[0], 1 - deletion.fractions, atol=1e-6, rtol=0)
    assert E.curve_auc(*deletion).item() == pytest.approx(0.5, abs=1e-6)
    insertion = E.insertion_curve(MeanModel(), x, torch.rand(1, 10, 10), 0, steps=10,
                                  baseline=0.0)
    assert E.curve_auc(*insertion).item() == pytest.approx(0.5, abs=1e-6)


def test_ties_are_broken_in_raster_order_and_uneven_steps_floor(images):
    counts = [0, 7, 14, 21, 28, 36]  # floor(k * 36 / 5)
    curve = E.deletion_curve(MeanModel(), images, torch.zeros(3, 6, 6), 0, steps=5)
    torch.testing.assert_close(curve.fractions, torch.tensor(counts) / 36)
    raster = torch.arange(36).expand(3, 36)
    expected = (images.sum(dim=(1, 2, 3))[:, None] - top_sums(images, raster, counts)) / 72
    torch.testing.assert_close(curve.probs, expected, atol=1e-6, rtol=1e-6)


def test_pixel_ranks():
    sal = torch.tensor([[[0.5, 0.9], [0.5, 0.1]]])
    assert forward.pixel_ranks(sal).tolist() == [[1, 0, 2, 3]]


# --------------------------------------------------------------------------- batching
def per_step_loop(model, x, sal, target, steps, start, end):
    """Reference: one forward per step, pixels moved in stable descending order."""
    b, _, h, w = x.shape
    order = torch.sort(sal.flatten(1), dim=1, descending=True, stable=True).indices
    probs = []
    with torch.no_grad():
        for k in range(steps + 1):
            n = k * h * w // steps
            moved = torch.zeros(b, h * w, dtype=torch.bool)
            moved.scatter_(1, order[:, :n], True)
            img = torch.where(moved.view(b, 1, h, w), end, start)
            probs.append(model(img).softmax(1).gather(1, target[:, None])[:, 0])
    return torch.stack(probs, 1)


def test_batched_curves_equal_a_per_step_loop():
    torch.manual_seed(0)
    model = SmallCNN(3, 14).eval()
    x, sal = torch.rand(3, 3, 24, 24), torch.rand(3, 24, 24)
    target = torch.tensor([0, 5, 13])
    blurred = baseline_image(x, "blur")
    for steps in (7, 16):
        deletion = E.deletion_curve(model, x, sal, target, steps=steps, batch_size=10)
        ref = per_step_loop(model, x, sal, target, steps, x, torch.zeros_like(x))
        torch.testing.assert_close(deletion.probs, ref, atol=1e-6, rtol=1e-5)
        insertion = E.insertion_curve(model, x, sal, target, steps=steps, batch_size=1000)
        ref = per_step_loop(model, x, sal, target, steps, blurred, x)
        torch.testing.assert_close(insertion.probs, ref, atol=1e-6, rtol=1e-5)


def test_insertion_starts_from_a_blur_and_ends_at_the_image():
    torch.manual_seed(0)
    model = SmallCNN(3, 14).eval()
    x = torch.rand(2, 3, 48, 48)
    curve = E.insertion_curve(model, x, torch.rand(2, 48, 48), steps=4)
    blurred = gaussian_blur(x, kernel_size=[19, 19], sigma=[3.0, 3.0])
    with torch.no_grad():
        target = model(x).argmax(1, keepdim=True)
        first = model(blurred).softmax(1).gather(1, target)[:, 0]
        last = model(x).softmax(1).gather(1, target)[:, 0]
    torch.testing.assert_close(curve.probs[:, 0], first)
    torch.testing.assert_close(curve.probs[:, -1], last)


def test_batch_equals_single_images():
    torch.manual_seed(0)
    model = SmallCNN(3, 14).eval()
    x, sal = torch.rand(3, 3, 24, 24), torch.rand(3, 24, 24)
    for fn in (E.deletion_curve, E.insertion_curve):
        batch = fn(model, x, sal, steps=8, baseline="mean").probs
        single = torch.cat([fn(model, x[i:i + 1], sal[i:i + 1], steps=8, baseline="mean").probs
                            for i in range(3)])
        torch.testing.assert_close(batch, single, atol=1e-6, rtol=1e-5)


# --------------------------------------------------------------------------- AUC
def test_curve_auc_identities():
    f = torch.linspace(0, 1, 11)
    assert E.curve_auc(f, torch.full((11,), 0.3)).item() == pytest.approx(0.3)
    assert E.curve_auc(f, f).item() == pytest.approx(0.5)
    both = E.curve_auc(f, torch.stack([f, 1 - f, torch.ones(11)]))
    torch.testing.assert_close(both, torch.tensor([0.5, 0.5, 1.0], dtype=torch.float64))
    # the x axis is rescaled to [0, 1]; numpy input works
    assert E.curve_auc(np.linspace(0.2, 0.6, 5), np.full(5, 0.7)).item() == pytest.approx(0.7)
    assert E.curve_auc([0, 0.5, 1], [0, 1, 0]).item() == pytest.approx(0.5)


@pytest.mark.parametrize("fractions, values", [
    ([0.0], [1.0]),
    ([0.0, 1.0], [1.0, 2.0, 3.0]),
    ([0.0, 0.6, 0.5], [1.0, 1.0, 1.0]),
    ([0.0, float("nan")], [1.0, 1.0]),
])
def test_curve_auc_rejects_bad_curves(fractions, values):
    with pytest.raises(ValueError):
        E.curve_auc(fractions, values)


# --------------------------------------------------------------------------- heatmap masking
def test_masked_prediction():
    torch.manual_seed(0)
    model = SmallCNN(3, 14).eval()
    x = torch.rand(3, 3, 24, 24)
    maps = torch.rand(3, 24, 24)
    with torch.no_grad():
        target = model(x).argmax(1, keepdim=True)
        expected = model(x * maps[:, None]).softmax(1).gather(1, target)[:, 0]
        intact = model(x).softmax(1).gather(1, target)[:, 0]
    torch.testing.assert_close(E.masked_prediction(model, x, maps, batch_size=2), expected)
    torch.testing.assert_close(E.masked_prediction(model, x, torch.ones(3, 1, 24, 24)), intact)
    # linear model: E[Y | x ⊙ S] is the mean of x ⊙ S
    torch.testing.assert_close(E.masked_prediction(MeanModel(), x, maps, 0),
                               (x * maps[:, None]).mean(dim=(1, 2, 3)))


# --------------------------------------------------------------------------- Huffman bits
@pytest.mark.parametrize("pixels, bits", [
    ([7, 7, 7, 9], 4),                      # counts (3, 1): one bit each
    ([0, 1, 2, 3] * 5, 40),                 # uniform over 4 symbols: 2 bits each
    ([5] * 9, 9),                           # a single symbol: 1 bit per pixel
    ([1] * 5 + [2] * 2 + [3] + [4], 15),    # counts (5, 2, 1, 1): lengths (1, 2, 3, 3)
    (list(range(256)), 256 * 8),            # 256 equally frequent values: 8 bits
])
def test_huffman_bits_by_hand(pixels, bits):
    image = torch.tensor(pixels, dtype=torch.uint8)
    assert E.huffman_bits(image) == bits
    assert E.huffman_bits(np.array(pixels)) == bits
    assert E.huffman_bits(image.float() / 255) == bits


def test_huffman_bits_rejects_bad_images():
    with pytest.raises(ValueError, match="0, 1"):
        E.huffman_bits(torch.tensor([0.5, 1.5]))
    with pytest.raises(ValueError, match="0..255"):
        E.huffman_bits(np.array([3, 300]))
    with pytest.raises(ValueError, match="empty"):
        E.huffman_bits(np.array([], dtype=np.uint8))
    with pytest.raises(TypeError):
        E.huffman_bits([1, 2, 3])


# --------------------------------------------------------------------------- structure-wise
def test_structure_wise_curve_matches_a_manual_loop():
    torch.manual_seed(0)
    model = SmallCNN(3, 14).eval()
    x, maps = torch.rand(4, 3, 24, 24), torch.rand(4, 24, 24)
    labels = torch.tensor([0, 3, 5, 5])
    thresholds = [0.0, 0.5, 0.9, 2.0]
    curve = E.structure_wise_curve(model, x, maps, labels, thresholds, batch_size=3)
    for i, t in enumerate(thresholds):
        masked = x * (maps >= t)[:, None]
        with torch.no_grad():
            acc = (model(masked).argmax(1) == labels).float().mean()
        ratio = np.mean([E.huffman_bits(m) / E.huffman_bits(o)
                         for m, o in zip(masked, x, strict=True)])
        assert curve.accuracy[i].item() == pytest.approx(acc.item())
        assert curve.bits_ratio[i].item() == pytest.approx(ratio, rel=1e-6)
    assert curve.bits_ratio[0] == 1  # threshold 0 keeps every pixel
    all_black = np.mean([x[0].numel() / E.huffman_bits(o) for o in x])
    assert curve.bits_ratio[-1].item() == pytest.approx(all_black, rel=1e-6)
    assert (curve.bits_ratio.diff() <= 0).all()


def test_every_masking_fills_the_removed_pixels_with_the_given_grey():
    """The chapter's rule: heatmap, structure-wise and threshold masking all take the same
    evidence-free grey; with a grey g the removed pixels hold g, never black."""
    torch.manual_seed(0)
    model = SmallCNN(3, 14).eval()
    x, maps = torch.rand(4, 3, 24, 24), torch.rand(4, 24, 24)
    g = E.least_certain_grey(model, x)
    labels = torch.tensor([0, 3, 5, 5])
    curve = E.structure_wise_curve(model, x, maps, labels, [0.5], baseline=g)
    masked = torch.where((maps >= 0.5)[:, None], x, torch.full_like(x, g))
    with torch.no_grad():
        acc = (model(masked).argmax(1) == labels).float().mean()
        target = model(x).argmax(1, keepdim=True)
        soft = model(x * maps[:, None] + g * (1 - maps[:, None])).softmax(1).gather(1, target)
    assert curve.accuracy[0].item() == pytest.approx(acc.item())
    ratio = np.mean([E.huffman_bits(m) / E.huffman_bits(o) for m, o in zip(masked, x,
                                                                           strict=True)])
    assert curve.bits_ratio[0].item() == pytest.approx(ratio, rel=1e-6)
    torch.testing.assert_close(E.masked_prediction(model, x, maps, baseline=g), soft[:, 0])
    deleted = E.structure_wise_curve(model, x, maps, labels, [0.5], baseline=g,
                                     direction="deletion")
    removed = torch.where((maps >= 0.5)[:, None], torch.full_like(x, g), x)
    with torch.no_grad():
        acc = (model(removed).argmax(1) == labels).float().mean()
    assert deleted.accuracy[0].item() == pytest.approx(acc.item())


# --------------------------------------------------------------------------- state and errors
def test_model_state_is_restored():
    model = SmallCNN(3, 14).train()
    model.fc.weight.requires_grad_(False)
    flags = [p.requires_grad for p in model.parameters()]
    x, sal = torch.rand(2, 3, 24, 24), torch.rand(2, 24, 24)
    eval_copy = SmallCNN(3, 14)
    eval_copy.load_state_dict(model.state_dict())
    curve = E.deletion_curve(model, x, sal, steps=4)
    reference = E.deletion_curve(eval_copy.eval(), x, sal, steps=4)
    torch.testing.assert_close(curve.probs, reference.probs)
    E.insertion_curve(model, x, sal, steps=4)
    E.masked_prediction(model, x, sal)
    E.structure_wise_curve(model, x, sal, [0, 1])
    with pytest.raises(ValueError):
        E.deletion_curve(model, x, sal, target=14, steps=4)
    assert model.training and all(m.training for m in model.modules())
    assert [p.requires_grad for p in model.parameters()] == flags
    assert all(not m._forward_hooks and not m._backward_hooks for m in model.modules())


@pytest.fixture
def setup():
    torch.manual_seed(0)
    return SmallCNN(3, 14).eval(), torch.rand(2, 3, 16, 16), torch.rand(2, 16, 16)


@pytest.mark.parametrize("call, error, words", [
    (lambda m, x, s: E.deletion_curve(m, x[0], s), ValueError, "x must have shape"),
    (lambda m, x, s: E.deletion_curve(m, x, s[0]), ValueError, "saliency must have shape"),
    (lambda m, x, s: E.deletion_curve(m, x, s.masked_fill(s > 0.5, math.nan)), ValueError,
     "saliency contains NaN"),
    (lambda m, x, s: E.insertion_curve(m, x.masked_fill(x > 0.5, math.nan), s), ValueError,
     "NaN"),
    (lambda m, x, s: E.deletion_curve(m, x, s, steps=0), ValueError, "steps"),
    (lambda m, x, s: E.deletion_curve(m, x, s, steps=257), ValueError, "steps"),
    (lambda m, x, s: E.deletion_curve(m, x, s, steps=2.5), TypeError, "steps"),
    (lambda m, x, s: E.deletion_curve(m, x, s, baseline="noise"), ValueError, "baseline"),
    (lambda m, x, s: E.insertion_curve(m, x, s, baseline=torch.zeros(5)), ValueError,
     "baseline"),
    (lambda m, x, s: E.deletion_curve(m, x, s, target=14), ValueError, "out of range"),
    (lambda m, x, s: E.deletion_curve(m, x, s, batch_size=0), ValueError, "batch_size"),
    (lambda m, x, s: E.deletion_curve(m, x, s, score="rank"), ValueError, "score"),
    (lambda m, x, s: E.masked_prediction(m, x, s * 2), ValueError, r"\[0, 1\]"),
    (lambda m, x, s: E.structure_wise_curve(m, x, s, [0]), ValueError, "labels"),
    (lambda m, x, s: E.structure_wise_curve(m, x, s, [0, 1], []), ValueError, "thresholds"),
    (lambda m, x, s: E.deletion_curve(None, x, s), TypeError, "model"),
])
def test_bad_input_raises_naming_the_argument(call, error, words, setup):
    with pytest.raises(error, match=words):
        call(*setup)


# --------------------------------------------------------------------------- sanity check
def test_randomization_layers_top_first():
    model = SmallCNN(3, 5)
    assert E.randomization_layers(model) == ["fc", "last_conv.1", "last_conv.0", "features.3",
                                             "features.2", "features.0"]


def test_randomization_layers_of_a_resnet_are_unique_and_exact():
    torchvision = pytest.importorskip("torchvision")
    model = torchvision.models.resnet18(num_classes=4)
    names = E.randomization_layers(model)
    assert len(names) == len(set(names)) == 21  # fc, 16 conv + BN, 3 downsamples, conv1 + bn1
    assert names[:4] == ["fc", "layer4.1.conv2+layer4.1.bn2", "layer4.1.conv1+layer4.1.bn1",
                         "layer4.0.downsample"]
    torch.manual_seed(0)
    with torch.no_grad():  # trained-looking BN so that re-initialising it shows
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.fill_(2.0)
                m.running_var.fill_(3.0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    copy = E.randomized_models(model, names[:2], seed=0)[-1][1].state_dict()
    changed = {k.rsplit(".", 1)[0] for k, v in copy.items() if not torch.equal(v, before[k])}
    assert changed == {"fc", "layer4.1.conv2", "layer4.1.bn2"}  # that stage, nothing else


def test_randomized_models_work_on_copies_with_a_local_generator():
    torch.manual_seed(0)
    model = SmallCNN(3, 5).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    copies = E.randomized_models(model, seed=3)
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert [n for n, _ in copies] == E.randomization_layers(model)
    again = E.randomized_models(model, seed=3)
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
    single = E.randomized_models(model, ["last_conv.0"], cascade=False)[0][1].state_dict()
    assert torch.equal(single["fc.weight"], before["fc.weight"])
    with pytest.raises(ValueError, match="unknown layer"):
        E.randomized_models(model, ["head"])


def test_rank_correlation_is_spearman():
    gen = torch.Generator().manual_seed(0)
    a = torch.rand(5, 6, 6, generator=gen)
    b = (a + 0.3 * torch.rand(5, 6, 6, generator=gen)).clamp(max=0.8)  # ties at 0.8
    rho = metrics.rank_correlation(a, b)
    expected = [spearmanr(a[i].flatten(), b[i].flatten())[0] for i in range(5)]
    np.testing.assert_allclose(rho.numpy(), expected, atol=1e-12)
    ones = torch.ones(5, dtype=torch.float64)
    torch.testing.assert_close(metrics.rank_correlation(a, a ** 3), ones)
    torch.testing.assert_close(metrics.rank_correlation(a, -a), -ones)
    flat = torch.zeros(2, 4, 4)
    assert metrics.rank_correlation(flat, flat).tolist() == [1.0, 1.0]
    assert metrics.rank_correlation(flat, a[:2, :4, :4]).tolist() == [0.0, 0.0]
    with pytest.raises(ValueError, match="same shape"):
        metrics.rank_correlation(a, b[:2])


def test_sanity_check_is_one_for_an_unchanged_model_and_catches_model_free_maps(x8):
    torch.manual_seed(0)
    model = SmallCNN(3, 4).eval()
    grad_cam = lambda m, x, t: cam.grad_cam(m, x, t)  # noqa: E731
    res = E.sanity_check(model, x8, grad_cam, seed=0)
    assert res.stages[0] == "original" and res.correlation.shape == (7, 8)
    torch.testing.assert_close(res.correlation[0], torch.ones(8, dtype=torch.float64))
    assert res.correlation[1].mean() < 0.9  # a new fc changes Grad-CAM's channel weights
    same = E.sanity_check(model, x8, grad_cam, layers=[])
    assert same.stages == ["original"] and (same.correlation == 1).all()
    edges = lambda m, x, t: x.mean(1)  # noqa: E731 - ignores the model: must "fail"
    res = E.sanity_check(model, x8, edges)
    assert (res.correlation == 1).all()


def test_structure_wise_deletion_removes_what_insertion_keeps():
    torch.manual_seed(0)
    model = SmallCNN(3, 14).eval()
    x, maps = torch.rand(4, 3, 24, 24), torch.rand(4, 24, 24)
    labels = torch.tensor([0, 3, 5, 5])
    thresholds = [0.0, 0.5, 0.9]
    curve = E.structure_wise_curve(model, x, maps, labels, thresholds, direction="deletion")
    for i, t in enumerate(thresholds):
        masked = x * (maps < t)[:, None]
        with torch.no_grad():
            acc = (model(masked).argmax(1) == labels).float().mean()
        ratio = np.mean([E.huffman_bits(m) / E.huffman_bits(o)
                         for m, o in zip(masked, x, strict=True)])
        assert curve.accuracy[i].item() == pytest.approx(acc.item())
        assert curve.bits_ratio[i].item() == pytest.approx(ratio, rel=1e-6)
    with pytest.raises(ValueError, match="direction"):
        E.structure_wise_curve(model, x, maps, labels, thresholds, direction="both")


def test_least_certain_grey_is_the_entropy_maximiser():
    torch.manual_seed(0)
    model = SmallCNN(3, 14).eval()
    x = torch.rand(2, 3, 24, 24)
    g = E.least_certain_grey(model, x, levels=11)
    grid = torch.linspace(0, 1, 11)
    with torch.no_grad():
        p = model(grid.view(-1, 1, 1, 1) * torch.ones(11, 3, 24, 24)).softmax(1)
    entropy = -(p * p.log()).sum(1)
    assert g == pytest.approx(float(grid[entropy.argmax()]))
    assert model.training is False
    with pytest.raises(ValueError, match="levels"):
        E.least_certain_grey(model, x, levels=1)
