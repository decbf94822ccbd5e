"""Tests for tutorial_utils.saliency: captum oracles, analytic RISE/SHAPE sums, invariances,
model state and hooks, and clear errors."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
from _helpers import model_state, scaled_close
from torch import nn

from tutorial_utils import explainers
from tutorial_utils import saliency as S
from tutorial_utils.architectures import SmallCNN
from tutorial_utils.forward import normalize_maps

captum_attr = pytest.importorskip("captum.attr")

TOL = 1e-5
METHODS = ("vanilla_gradient", "guided_backprop", "smoothgrad", "occlusion", "rise", "shape")


def saliency_map(model, x, method, target=None, **options):
    """Run the saliency method named ``method`` (a function of :mod:`tutorial_utils.saliency`)."""
    return getattr(S, method)(model, x, target, **options)


def tiny_cnn(seed: int = 0, inplace: bool = False) -> nn.Module:
    """A small ReLU CNN (no global pooling) whose logits vary with the input: 5 classes."""
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(inplace), nn.MaxPool2d(2),
        nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(inplace), nn.MaxPool2d(4),
        nn.Flatten(), nn.Linear(8 * 6 * 6, 5),
    )
    with torch.no_grad():
        model[-1].weight.mul_(10)
    return model.eval()


def blobs(batch: int = 3, size: int = 48, seed: int = 1) -> torch.Tensor:
    """Smooth random images (B, 3, size, size) in [0, 1]."""
    gen = torch.Generator().manual_seed(seed)
    return F.interpolate(torch.rand(batch, 3, 6, 6, generator=gen), size=size, mode="bilinear")


@pytest.fixture
def model():
    return tiny_cnn()


@pytest.fixture
def x():
    return blobs()


TARGET = torch.tensor([1, 3, 4])


def quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def captum_map(attr: torch.Tensor) -> torch.Tensor:
    return normalize_maps(attr.abs().amax(dim=1))


# --------------------------------------------------------------------------- captum oracles
def test_vanilla_gradient_matches_captum_saliency(model, x):
    raw = S.vanilla_gradient(model, x, TARGET, raw=True)
    signed = quiet(captum_attr.Saliency(model).attribute, x, target=TARGET, abs=False)
    scaled_close(raw, signed)
    absolute = quiet(captum_attr.Saliency(model).attribute, x, target=TARGET, abs=True)
    scaled_close(raw.abs(), absolute)
    maps = S.vanilla_gradient(model, x, TARGET)
    assert maps.shape == (3, 48, 48)
    torch.testing.assert_close(maps, captum_map(absolute), atol=TOL, rtol=0)


def test_guided_backprop_matches_captum(model, x):
    ref = quiet(captum_attr.GuidedBackprop(model).attribute, x, target=TARGET)
    scaled_close(S.guided_backprop(model, x, TARGET, raw=True), ref)
    torch.testing.assert_close(S.guided_backprop(model, x, TARGET), captum_map(ref),
                               atol=TOL, rtol=0)
    # and differs from the plain gradient: the clamps are active
    assert not torch.allclose(ref, S.vanilla_gradient(model, x, TARGET, raw=True))


def test_guided_backprop_handles_inplace_relu(x):
    plain, inplace = tiny_cnn(inplace=False), tiny_cnn(inplace=True)
    expected = S.guided_backprop(plain, x, TARGET, raw=True)
    torch.testing.assert_close(S.guided_backprop(inplace, x, TARGET, raw=True), expected)
    assert all(m.inplace for m in inplace.modules() if isinstance(m, nn.ReLU))


@pytest.mark.parametrize("score", ["logit", "prob"])
def test_occlusion_matches_captum(model, x, score):
    wrapped = model if score == "logit" else nn.Sequential(model, nn.Softmax(dim=1))
    ref = quiet(captum_attr.Occlusion(wrapped).attribute, x, sliding_window_shapes=(3, 12, 12),
                strides=(3, 6, 6), baselines=0.5, target=TARGET, perturbations_per_eval=64)
    raw = S.occlusion(model, x, TARGET, window=12, stride=6, baseline="grey", score=score,
                      raw=True, batch_size=17)
    scaled_close(raw, ref)
    maps = S.occlusion(model, x, TARGET, window=12, stride=6, baseline="grey", score=score)
    torch.testing.assert_close(maps, normalize_maps(ref[:, 0].clamp(min=0)), atol=TOL, rtol=0)


def test_occlusion_covers_every_pixel_when_stride_does_not_fit(model, x):
    raw = S.occlusion(model, x, window=(7, 5), stride=(5, 4), raw=True)
    assert raw.shape == x.shape and torch.isfinite(raw).all()
    # a window as large as the image: a single occlusion, the same drop everywhere
    whole = S.occlusion(model, x, TARGET, window=48, stride=1, score="logit", raw=True,
                        baseline="grey")
    with torch.no_grad():
        drop = (model(x) - model(torch.full_like(x, 0.5))).gather(1, TARGET[:, None])
    torch.testing.assert_close(whole, drop.view(3, 1, 1, 1).expand_as(x))


def test_smoothgrad_is_the_mean_of_captum_gradients_over_its_noisy_copies(model, x):
    copies = S.noisy_copies(x, n_samples=6, sigma=0.2, seed=7)
    assert copies.shape == (6, *x.shape)
    sal = captum_attr.Saliency(model)
    ref = torch.stack([quiet(sal.attribute, c, target=TARGET, abs=False) for c in copies]).mean(0)
    raw = S.smoothgrad(model, x, TARGET, n_samples=6, sigma=0.2, seed=7, raw=True, batch_size=4)
    scaled_close(raw, ref)
    torch.testing.assert_close(S.smoothgrad(model, x, TARGET, n_samples=6, sigma=0.2, seed=7),
                               captum_map(ref), atol=TOL, rtol=0)


def test_smoothgrad_matches_captum_noise_tunnel_for_one_seeded_image(model):
    # One image with intensity range exactly 1, so sigma is captum's absolute stdev; captum
    # draws its noise with torch.normal from the global RNG in the same order as our
    # generator, so seeding both identically gives the same noisy copies.
    x1 = blobs(1)
    x1[0, 0, 0, 0], x1[0, 0, 0, 1] = 0.0, 1.0
    ours = S.smoothgrad(model, x1, 2, n_samples=10, sigma=0.2, seed=3, raw=True)
    torch.manual_seed(3)
    ref = quiet(captum_attr.NoiseTunnel(captum_attr.Saliency(model)).attribute, x1,
                nt_type="smoothgrad", nt_samples=10, stdevs=0.2, target=2, abs=False)
    scaled_close(ours, ref)


def test_smoothgrad_is_deterministic_for_a_seed_and_zero_noise_is_vanilla(model, x):
    a = S.smoothgrad(model, x, n_samples=4, seed=1)
    torch.testing.assert_close(a, S.smoothgrad(model, x, n_samples=4, seed=1))
    gen = torch.Generator().manual_seed(1)
    torch.testing.assert_close(a, S.smoothgrad(model, x, n_samples=4, generator=gen))
    assert not torch.allclose(a, S.smoothgrad(model, x, n_samples=4, seed=2))
    torch.testing.assert_close(S.smoothgrad(model, x, TARGET, n_samples=3, sigma=0.0, raw=True),
                               S.vanilla_gradient(model, x, TARGET, raw=True))


# --------------------------------------------------------------------------- RISE and SHAPE
class PixelModel(nn.Module):
    """Two classes with p_0 = x[0, r, c], the value of one pixel (in (0, 1))."""

    def __init__(self, r: int, c: int) -> None:
        super().__init__()
        self.r, self.c = r, c

    def forward(self, x):
        q = x[:, 0, self.r, self.c].clamp(1e-6, 1 - 1e-6)
        return torch.stack([q.log(), (1 - q).log()], dim=1)


def test_random_masks_are_rise_masks():
    masks = S.random_masks(300, (20, 28), cells=4, p_keep=0.3, seed=0)(torch.arange(300))
    assert masks.shape == (300, 20, 28)
    assert masks.min() >= 0 and masks.max() <= 1
    assert abs(masks.mean().item() - 0.3) < 0.03
    again = S.random_masks(300, (20, 28), cells=4, p_keep=0.3, seed=0)
    torch.testing.assert_close(again(torch.arange(10, 20)), masks[10:20])


def test_rise_and_shape_equal_their_monte_carlo_sums():
    x = torch.ones(1, 3, 16, 16)
    model = PixelModel(5, 9)
    n, p = 200, 0.4
    masks = S.random_masks(n, (16, 16), cells=4, p_keep=p, seed=3)(torch.arange(n))
    q = masks[:, 5, 9].clamp(1e-6, 1 - 1e-6)
    expected_rise = torch.einsum("n,nhw->hw", q, masks) / (n * p)
    expected_shape = torch.einsum("n,nhw->hw", (1 - 1e-6) - q, 1 - masks) / (n * (1 - p))
    kw = dict(n_masks=n, cells=4, p_keep=p, seed=3, raw=True, batch_size=13)
    rise, shape = S.rise(model, x, 0, **kw), S.shape(model, x, 0, **kw)
    assert rise.shape == shape.shape == (1, 1, 16, 16)
    torch.testing.assert_close(rise[0, 0], expected_rise, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(shape[0, 0], expected_shape, atol=1e-5, rtol=1e-5)
    # both point (within a couple of pixels: masks are smooth) at the pixel the model reads
    for sal in (rise, shape):
        row, col = divmod(sal.flatten().argmax().item(), 16)
        assert max(abs(row - 5), abs(col - 9)) <= 2


def test_shape_of_an_input_independent_model_is_zero_and_rise_is_flat():
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, 4))
    with torch.no_grad():
        model[1].weight.zero_()
    x = torch.rand(2, 3, 16, 16)
    assert S.shape(model, x, n_masks=50).abs().max() == 0
    rise = S.rise(model, x, n_masks=400, raw=True)
    assert torch.allclose(rise, torch.full_like(rise, 0.25), atol=0.05)


# --------------------------------------------------------------------------- invariances
DETERMINISTIC = {
    "vanilla_gradient": {},
    "guided_backprop": {},
    "occlusion": dict(window=16, stride=8),
    "rise": dict(n_masks=24, batch_size=20),
    "shape": dict(n_masks=24, batch_size=20),
}


@pytest.mark.parametrize("method", list(DETERMINISTIC))
def test_batch_equals_single_images(method, model, x):
    opts = DETERMINISTIC[method]
    batch = saliency_map(model, x, method, TARGET, raw=True, **opts)
    single = torch.cat([saliency_map(model, x[i:i + 1], method, int(TARGET[i]), raw=True, **opts)
                        for i in range(len(x))])
    torch.testing.assert_close(batch, single, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("method", METHODS)
def test_maps_are_normalised_and_default_target_is_the_prediction(method, model, x):
    opts = DETERMINISTIC.get(method, dict(n_samples=3))
    maps = saliency_map(model, x, method, **opts)
    assert maps.shape == (3, 48, 48) and maps.dtype == x.dtype
    assert maps.min() >= 0 and maps.max() <= 1
    assert torch.allclose(maps.flatten(1).amax(1), torch.ones(3))
    with torch.no_grad():
        predicted = model(x).argmax(1)
    torch.testing.assert_close(maps, saliency_map(model, x, method, predicted, **opts))


def test_normalize_maps_constant_gives_zeros():
    maps = torch.stack([torch.full((4, 4), 3.0), torch.arange(16.0).view(4, 4)])
    out = normalize_maps(maps)
    assert out[0].abs().max() == 0
    torch.testing.assert_close(out[1], torch.arange(16.0).view(4, 4) / 15)


def test_gradient_methods_work_under_no_grad_and_leave_x_alone(model, x):
    before = x.clone()
    with torch.no_grad():
        raw = S.vanilla_gradient(model, x, TARGET, raw=True)
    assert raw.abs().sum() > 0
    assert not x.requires_grad and torch.equal(x, before)


# --------------------------------------------------------------------------- model state and hooks
@pytest.mark.parametrize("method", METHODS)
def test_model_state_is_restored(method):
    model = SmallCNN(3, 14).train()
    model.features[0][0].weight.requires_grad_(False)
    model.fc.eval()
    state, flags = model_state(model), [p.requires_grad for p in model.parameters()]
    opts = DETERMINISTIC.get(method, dict(n_samples=2))
    saliency_map(model, torch.rand(2, 3, 24, 24), method, **opts)
    assert model_state(model) == state
    assert [p.requires_grad for p in model.parameters()] == flags
    assert all(p.grad is None for p in model.parameters())


class Exploding(nn.Module):
    def forward(self, x):
        raise RuntimeError("boom")


def test_state_and_hooks_restored_after_an_exception():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(inplace=True), Exploding()).train()
    state = model_state(model)
    for method in ("vanilla_gradient", "guided_backprop", "occlusion", "rise"):
        with pytest.raises(RuntimeError, match="boom"):
            saliency_map(model, torch.rand(1, 3, 8, 8), method, target=0)
        assert model_state(model) == state
        assert model[1].inplace
    with pytest.raises(ValueError, match="target"):  # raised inside the state guard
        S.vanilla_gradient(SmallCNN(3, 14).train(), torch.rand(1, 3, 48, 48), target=99)


def test_contrast_input_gradient_is_the_cross_entropy_gradient(sign_model, picker):
    x = picker[:2]
    maps = S.contrast_input_gradient(sign_model, x, contrast=3)
    xg = x.clone().requires_grad_(True)
    loss = F.cross_entropy(sign_model(xg), torch.tensor([3, 3]), reduction="sum")
    (g,) = torch.autograd.grad(loss, xg)
    m = g.abs().amax(1)
    m = (m - m.amin((1, 2), keepdim=True)) / (m.amax((1, 2), keepdim=True)
                                              - m.amin((1, 2), keepdim=True))
    torch.testing.assert_close(maps, m, atol=1e-5, rtol=1e-4)
    assert all(p.grad is None for p in sign_model.parameters())


# --------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "call, error, words",
    [
        (lambda m, x: S.vanilla_gradient(m, x[0]), ValueError, "x must have shape"),
        (lambda m, x: S.vanilla_gradient(m, x.numpy()), TypeError, "x must be a torch.Tensor"),
        (lambda m, x: S.guided_backprop(m, x.masked_fill(x > 0.9, float("nan"))), ValueError,
         "NaN"),
        (lambda m, x: explainers.explain("lime", m, x), ValueError, "unknown explainer"),
        (lambda m, x: S.vanilla_gradient(m, x, target=5), ValueError, "out of range"),
        (lambda m, x: S.smoothgrad(m, x, target=[0, 1]), ValueError, "one class per sample"),
        (lambda m, x: S.occlusion(m, x, window=49), ValueError, "window"),
        (lambda m, x: S.occlusion(m, x, stride=0), ValueError, "stride"),
        (lambda m, x: S.occlusion(m, x, window=4, stride=5), ValueError, "stride"),
        (lambda m, x: S.occlusion(m, x, baseline="black"), ValueError, "baseline"),
        (lambda m, x: S.occlusion(m, x, score="margin"), ValueError, "score"),
        (lambda m, x: S.smoothgrad(m, x, n_samples=0), ValueError, "n_samples"),
        (lambda m, x: S.smoothgrad(m, x, sigma=-1.0), ValueError, "sigma"),
        (lambda m, x: S.rise(m, x, p_keep=1.0), ValueError, "p_keep"),
        (lambda m, x: S.rise(m, x, n_masks=0), ValueError, "n_masks"),
        (lambda m, x: S.shape(m, x, batch_size=0), ValueError, "batch_size"),
        (lambda m, x: S.vanilla_gradient("model", x), TypeError, "model"),
        (lambda m, x: S.guided_backprop(nn.Sequential(nn.Flatten(), nn.Linear(6912, 3)), x),
         ValueError, "nn.ReLU"),
    ],
)
def test_bad_input_raises_naming_the_argument(call, error, words, model, x):
    with pytest.raises(error, match=words):
        call(model, x)


def test_occlusion_default_patch_is_the_data_sets_mean_colour(digits):
    """The default patch carries no evidence for the data: for digits it is the (nearly black)
    mean colour of the training set, so the map's mass lands on the strokes, not on the ground."""
    from tutorial_utils import models

    net = models.load("digits", train_if_missing=False)
    x = digits.x_test[:16]
    strokes = (x[:, 0] > 0.3).float()
    share = {b: float((S.occlusion(net, x, window=6, stride=2, baseline=b) * strokes).sum()
                      / S.occlusion(net, x, window=6, stride=2, baseline=b).sum())
             for b in ("mean", "grey")}
    assert float(net.normalize.mean) < 0.2
    assert share["mean"] > share["grey"]
