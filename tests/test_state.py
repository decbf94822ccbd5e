"""No global side effects, gradients in any context, numerical edge cases.

* every function that trains or samples leaves the caller's RNG states (PyTorch CPU and CUDA,
  NumPy, ``random``) exactly as they were;
* every gradient method gives the same answer under ``torch.no_grad()`` and either the same
  answer or an error that says why under ``torch.inference_mode()``;
* constant maps normalise to zeros, an all-zero spectrum has effective rank 0, SmoothGrad of
  an image does not depend on the rest of the batch.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from torch import nn

from tutorial_utils import (
    adaptation,
    anomaly,
    attacks,
    cam,
    challenges,
    contrast,
    dashboard,
    data,
    detection,
    evaluation,
    explainers,
    forward,
    gradients,
    information,
    interventions,
    introspection,
    landscape,
    layers,
    manifolds,
    models,
    privacy,
    saliency,
    trust,
    uncertainty,
    utils,
    zoo,
)


class BNNet(nn.Module):
    """A tiny zoo-like CNN: BatchNorm, ReLU module, dropout, ``penultimate`` and ``fc``."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4),
                                      nn.ReLU(), nn.Conv2d(4, 6, 3, padding=1))
        self.relu = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.drop = nn.Dropout(0.5)
        self.fc = nn.Linear(6, 4)

    def penultimate(self, x):
        return self.pool(self.relu(self.features(x))).flatten(1)

    def forward(self, x):
        return self.fc(self.drop(self.penultimate(x)))


def _net() -> BNNet:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return BNNet().eval()


@pytest.fixture(scope="module")
def net():
    return _net()


@pytest.fixture(scope="module")
def x():
    return torch.rand(3, 3, 12, 12, generator=torch.Generator().manual_seed(1))


def _rng_state() -> tuple:
    cuda = [s.clone() for s in torch.cuda.get_rng_state_all()] if torch.cuda.is_available() else []
    np_state = np.random.get_state()
    return torch.get_rng_state().clone(), cuda, (np_state[1].copy(), np_state[2]), random.getstate()


def _same(a: tuple, b: tuple) -> bool:
    cuda = all(torch.equal(u, v) for u, v in zip(a[1], b[1], strict=True))
    return (torch.equal(a[0], b[0]) and cuda and np.array_equal(a[2][0], b[2][0])
            and a[2][1] == b[2][1] and a[3] == b[3])


# ------------------------------------------------------------------------------ RNG state
def _gradcon(x):
    digits_like = torch.rand(8, 1, 28, 28, generator=torch.Generator().manual_seed(2))
    return anomaly.train_gradcon(digits_like, epochs=1, progress=False)


def _suite(net, x):
    suite = detection.ScoreSuite(net, x, torch.tensor([0, 1, 2]),
                                 names=["MSP", "MC dropout (−MI)", "random"], mc_passes=3)
    return suite(x)


SAMPLERS = {
    "models.train_classifier": lambda net, x: models.train_classifier(
        _net(), x, torch.tensor([0, 1, 2]), epochs=1, batch_size=2, progress=False),
    "introspection.train_head": lambda net, x: introspection.train_head(
        introspection.build_heads(6, 4)[0], torch.rand(5, 6, generator=torch.Generator()),
        torch.zeros(5, 4), torch.tensor([0, 1, 2, 3, 0]), epochs=1, progress=False),
    "introspection.build_heads": lambda net, x: introspection.build_heads(6, 4),
    "anomaly.train_gradcon": lambda net, x: _gradcon(x),
    "uncertainty.mc_dropout": lambda net, x: uncertainty.mc_dropout(net, x, passes=3),
    "saliency.smoothgrad": lambda net, x: saliency.smoothgrad(net, x, n_samples=2),
    "saliency.rise": lambda net, x: saliency.rise(net, x, n_masks=4),
    "attacks.pgd": lambda net, x: attacks.pgd(net, x, None, 0.01, steps=1),
    "information.score_vectors": lambda net, x: information.score_vectors(net, x),
    "landscape.directional_change": lambda net, x: landscape.directional_change(
        net, x[:1], n_random=2),
    "landscape.loss_plane": lambda net, x: landscape.loss_plane(net, x[:1], steps=3),
    "data.load_ood": lambda net, x: data.load_ood("gaussian", 3),
    "challenges.apply_challenge": lambda net, x: challenges.apply_challenge(x, "noise", 2),
    "adaptation.evaluate_by_level": lambda net, x: adaptation.evaluate_by_level(
        net, x, [0, 1, 2], "noise", levels=[1], methods=["none", "tent"], progress=False),
    "explainers random map": lambda net, x: explainers.explain("random map", net, x),
    "detection.ScoreSuite": _suite,
    "zoo.build": lambda net, x: zoo.build("digits"),
    "models.load gradcon": lambda net, x: models.load("gradcon-3"),
    "utils.seed_everything with a bad seed": lambda net, x: pytest.raises(
        ValueError, utils.seed_everything, 2 ** 70),
}


@pytest.mark.parametrize("call", list(SAMPLERS.values()), ids=list(SAMPLERS))
def test_training_and_sampling_leave_the_callers_rng_alone(net, x, call):
    torch.manual_seed(123)
    np.random.seed(5)
    random.seed(7)
    before = _rng_state()
    call(net, x)
    assert _same(before, _rng_state()), "the global RNG state changed"


def test_train_overfit_digits_leaves_the_rng_alone(digits):
    before = _rng_state()
    privacy.train_overfit_digits(10, 1, ds=digits)
    assert _same(before, _rng_state())


def test_missing_checkpoint_is_trained_on_the_spot_and_leaves_the_rng_alone(tmp_path, monkeypatch,
                                                                           digits):
    """By default a missing member is trained on the spot (one epoch on 120 digits
    here), recorded in its own folder, and the global RNG is left as it was."""
    small = digits.subset(range(6))
    small = data.ImageDataset(small.x_train[::20], small.y_train[::20], small.x_test[::10],
                              small.y_test[::10], small.classes)
    monkeypatch.setattr(zoo, "data_dir", lambda: tmp_path)
    monkeypatch.setattr(zoo, "zoo_dataset", lambda name: small)
    monkeypatch.setitem(zoo.ZOO_RECIPES, "digits05",
                        {**zoo.ZOO_RECIPES["digits05"], "epochs": 1})
    before = _rng_state()
    model = models.load("digits05")
    assert _same(before, _rng_state())
    assert (tmp_path / "digits05.pt").exists() and "digits05" in zoo.read_manifest()
    assert not model.training


def test_seed_everything_accepts_numpy_ints_and_reseeds():
    utils.seed_everything(np.int64(4))
    a = torch.rand(3)
    utils.seed_everything(4)
    assert torch.equal(a, torch.rand(3))


# ------------------------------------------------------------------------------ gradient context
GRADIENT_METHODS = {  # name: (call, works inside inference_mode)
    "grad_cam": (lambda m, x: cam.grad_cam(m, x), False),
    "grad_cam_pp": (lambda m, x: cam.grad_cam_pp(m, x), False),
    "counterfactual_cam": (lambda m, x: cam.counterfactual_cam(m, x), False),
    "contrast_cam": (lambda m, x: cam.contrast_cam(m, x, contrast=1), False),
    "grad_cam of a contrast target": (lambda m, x: cam.grad_cam(m, x, cam.contrast_target(1)),
                                      False),
    "contrast_cam_all": (lambda m, x: cam.contrast_cam_all(m, x), False),
    "layer_view": (lambda m, x: cam.layer_view(m, x[:1]).grads, False),
    "layer_activations_and_gradients": (
        lambda m, x: layers.layer_activations_and_gradients(m, x)[1], False),
    "vanilla_gradient": (lambda m, x: saliency.vanilla_gradient(m, x), False),
    "guided_backprop": (lambda m, x: saliency.guided_backprop(m, x), False),
    "smoothgrad": (lambda m, x: saliency.smoothgrad(m, x, n_samples=2), False),
    "confounding_gradient_norms": (
        lambda m, x: gradients.confounding_gradient_norms(m, x).norms, False),
    "contrast_input_gradient": (lambda m, x: saliency.contrast_input_gradient(m, x, contrast=1),
                                False),
    "voice": (lambda m, x: trust.voice(m, x).uncertainty, False),
    "tent": (lambda m, x: adaptation.tent(m, x), False),
    "per_sample_gradients": (lambda m, x: gradients.per_sample_gradients(
        m, x, lambda z, _xb: z.logsumexp(0))["fc.weight"], True),
    "gradtrust": (lambda m, x: trust.gradtrust(m, x), True),
    "directional_change": (lambda m, x: torch.as_tensor(
        landscape.directional_change(m, x[:1], n_random=2).gradient), True),
    "input_gradient": (lambda m, x: gradients.input_gradient(m, x, lambda z: z.logsumexp(1))[0],
                       True),
    "fgsm": (lambda m, x: attacks.fgsm(m, x, None, 0.01), True),
    "pgd": (lambda m, x: attacks.pgd(m, x, None, 0.01, steps=2), True),
    "odin": (lambda m, x: uncertainty.odin(m, x), True),
}


@pytest.mark.parametrize("call, inference_ok", list(GRADIENT_METHODS.values()),
                         ids=list(GRADIENT_METHODS))
def test_gradient_methods_under_no_grad_and_inference_mode(net, x, call, inference_ok):
    reference = call(net, x)
    with torch.no_grad():
        torch.testing.assert_close(call(net, x), reference)
    with torch.inference_mode():
        if inference_ok:
            out = call(net, x)
        else:
            with pytest.raises(RuntimeError, match=r"inference_mode\(\).*outside"):
                call(net, x)
    if inference_ok:
        torch.testing.assert_close(out.clone(), reference)
    assert torch.is_grad_enabled() and not torch.is_inference_mode_enabled()


def test_gradcon_loss_works_under_no_grad():
    det = models.load("gradcon-1")
    xb = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    loss, _, _ = anomaly.gradcon_loss(det, xb)
    with torch.no_grad():
        again, _, _ = anomaly.gradcon_loss(det, xb)
    torch.testing.assert_close(again.detach(), loss.detach())


# ------------------------------------------------------------------------------ numerics
class OneByOne(nn.Module):
    def __init__(self, padding: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 5, 3, padding=padding)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(5, 4)

    def forward(self, x):
        return self.fc(self.pool(torch.relu(self.conv(x))).flatten(1))


def test_a_constant_cam_normalises_to_zeros(x):
    torch.manual_seed(0)
    net = OneByOne(padding=0).eval()
    flat = torch.full((3, 3, 12, 12), 0.5)  # no padding: every position of conv sees the same
    for method in (cam.grad_cam, cam.grad_cam_pp):
        maps = method(net, flat, target=1, layer=net.conv)
        assert maps.shape == (3, 12, 12) and torch.equal(maps, torch.zeros_like(maps))
        with pytest.raises(ValueError, match="1x1 output"):  # one number is no map
            method(net, x, target=1, layer=net.pool)
    noisy = 0.3 + 1e-8 * torch.randn(2, 6, 6, generator=torch.Generator().manual_seed(0))
    assert torch.equal(forward.normalize_maps(noisy), torch.zeros_like(noisy))
    ramp = torch.linspace(0, 1, 36).view(1, 6, 6)
    torch.testing.assert_close(forward.normalize_maps(ramp), ramp)


def test_effective_rank_of_an_all_zero_spectrum_is_zero():
    assert manifolds.effective_rank(np.zeros(4)) == 0.0
    spectrum = manifolds.covariance_spectrum(torch.ones(10, 3))
    assert manifolds.effective_rank(spectrum) == 0.0
    assert manifolds.effective_rank([1.0, 1.0]) == pytest.approx(2.0)


def test_smoothgrad_of_an_image_does_not_depend_on_the_batch(net, x):
    batch = saliency.smoothgrad(net, x, n_samples=3, raw=True)
    for i in range(len(x)):
        alone = saliency.smoothgrad(net, x[i:i + 1], n_samples=3, raw=True)
        torch.testing.assert_close(batch[i:i + 1], alone)


# ---------------------------------------------------------------- every submodule's own mode
def _dropout_only() -> BNNet:
    """A model in eval mode except its dropout, which alone is in train mode."""
    net = _net()
    net.drop.train()
    return net


def _modes(model: nn.Module) -> dict:
    return {name: m.training for name, m in model.named_modules()}


_Y = torch.tensor([0, 1, 2])
MODE_CALLS = {
    "models.predict_logits": lambda n, x: models.predict_logits(n, x),
    "models.predict_proba": lambda n, x: models.predict_proba(n, x),
    "models.features_and_logits": lambda n, x: models.features_and_logits(n, x),
    "models.accuracy": lambda n, x: models.accuracy(n, x, _Y),
    "models.decision": lambda n, x: models.decision(n, x[0]),
    "forward.logits": lambda n, x: forward.logits(n, x),
    "adaptation.tta_predict": lambda n, x: adaptation.tta_predict(n, x),
    "adaptation.bn_adapt": lambda n, x: adaptation.bn_adapt(n, x),
    "adaptation.tent": lambda n, x: adaptation.tent(n, x, steps=1),
    "adaptation.evaluate_by_level": lambda n, x: adaptation.evaluate_by_level(
        n, x, _Y, "noise", levels=[0, 1], methods=("none", "tta", "bn", "tent"), tent_steps=1,
        progress=False),
    "contrast.representatives": lambda n, x: contrast.representatives(n, x, _Y),
    "contrast.contrast_state": lambda n, x: contrast.contrast_state(n, x[:1]),
    "uncertainty.odin": lambda n, x: uncertainty.odin(n, x),
    "uncertainty.gradnorm": lambda n, x: uncertainty.gradnorm(n, x),
    "uncertainty.confounding_score": lambda n, x: uncertainty.confounding_score(n, x),
    "uncertainty.Mahalanobis": lambda n, x: uncertainty.Mahalanobis(n).fit(
        x, torch.tensor([0, 0, 1])).score(x),
    "uncertainty.mc_dropout": lambda n, x: uncertainty.mc_dropout(n, x, passes=2),
    "detection.ScoreSuite": lambda n, x: detection.ScoreSuite(
        n, x, _Y, names=["MSP", "ODIN", "GradNorm", "MC dropout (−MI)"], mc_passes=2)(x),
    "trust.gradtrust": lambda n, x: trust.gradtrust(n, x),
    "trust.voice": lambda n, x: trust.voice(n, x),
    "attacks.fgsm": lambda n, x: attacks.fgsm(n, x, _Y, 4 / 255),
    "attacks.pgd": lambda n, x: attacks.pgd(n, x, _Y, 4 / 255, steps=2),
    "privacy.loss_threshold_scores": lambda n, x: privacy.loss_threshold_scores(n, x, _Y),
    "evaluation.deletion_curve": lambda n, x: evaluation.deletion_curve(
        n, x, torch.rand(3, 12, 12), steps=2),
    "evaluation.sanity_check": lambda n, x: evaluation.sanity_check(n, x, "Grad-CAM"),
    "interventions.attack_sweep": lambda n, x: interventions.attack_sweep(n, x, _Y, [0, 0.01]),
    "interventions.occlusion_interventions": lambda n, x: interventions.occlusion_interventions(
        n, x, torch.rand(3, 12, 12), n_random=2),
    "cam.grad_cam": lambda n, x: cam.grad_cam(n, x),
    "cam.layer_view": lambda n, x: cam.layer_view(n, x[:1]),
    "saliency.smoothgrad": lambda n, x: saliency.smoothgrad(n, x, n_samples=2),
    "information.fisher_information": lambda n, x: information.fisher_information(n, x),
    "information.exact_last_layer_fisher": lambda n, x: information.exact_last_layer_fisher(n, x),
    "landscape.directional_change": lambda n, x: landscape.directional_change(
        n, x[:1], n_random=2),
    "dashboard.build_reference + dashboard_view": lambda n, x: dashboard.dashboard_view(
        n, dashboard.build_reference(n, x, torch.tensor([0, 0, 1]), x), x[:1],
        deletion_steps=2),
}


@pytest.mark.parametrize("call", list(MODE_CALLS.values()), ids=list(MODE_CALLS))
def test_a_model_with_only_its_dropout_in_train_mode_comes_back_exactly_so(x, call):
    """Restoring with ``model.train(flag)`` would switch every submodule to ``flag``; each
    submodule's own ``training`` flag (and every ``requires_grad``) must come back as it was."""
    net = _dropout_only()
    net.fc.weight.requires_grad_(False)
    before = _modes(net)
    call(net, x)
    assert _modes(net) == before
    assert [p.requires_grad for p in net.parameters()] == [
        name != "fc.weight" for name, _ in net.named_parameters()]
