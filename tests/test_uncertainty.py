"""Uncertainty scores: orientation on constructed cases, closed forms vs autograd, the MC-dropout
decomposition and RNG hygiene, batch-vs-single invariance, pytorch-ood oracles, bad inputs."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from _helpers import model_state
from torch import nn

from tutorial_utils import detection, ensembles, gradients, metrics
from tutorial_utils import uncertainty as U

LOGIT_SCORES = [U.max_softmax, U.neg_entropy, U.margin, U.neg_nll, U.energy]


def _score(name: str, model: nn.Module, x: torch.Tensor, **options) -> torch.Tensor:
    """The score table's detector ``name`` on ``model``, fitted (a no-op) and scored."""
    return detection.SCORES[name](model, **options).fit(x).score(x)


def _assert_clean(model: nn.Module, before) -> None:
    """Modes, hooks and requires_grad flags as before; no .grad left behind."""
    assert model_state(model) == before
    assert all(p.grad is None for p in model.parameters())


# ------------------------------------------------------------------- logit scores
@pytest.mark.parametrize("fn", LOGIT_SCORES, ids=lambda f: f.__name__)
def test_logit_scores_rank_peaked_above_flat(fn):
    peaked = torch.tensor([[8.0, 0.0, 0.0, 0.0], [4.0, 1.0, 0.0, 0.0]])
    flat = torch.tensor([[0.0, 0.0, 0.0, 0.0], [1.0, 1.0, 0.9, 0.9]])
    s_peaked, s_flat = fn(peaked), fn(flat)
    assert s_peaked.shape == s_flat.shape == (2,)
    assert (s_peaked[:, None] > s_flat[None, :]).all()


def test_logit_scores_known_values():
    k = 5
    flat = torch.zeros(3, k)
    torch.testing.assert_close(U.max_softmax(flat), torch.full((3,), 1 / k))
    torch.testing.assert_close(U.neg_entropy(flat), torch.full((3,), -math.log(k)))
    torch.testing.assert_close(U.neg_nll(flat), torch.full((3,), -math.log(k)))
    torch.testing.assert_close(U.margin(flat), torch.zeros(3))
    torch.testing.assert_close(U.energy(flat), torch.full((3,), math.log(k)))
    z = torch.tensor([[2.0, 1.0, 0.0]])
    p = z.softmax(1)[0]
    torch.testing.assert_close(U.margin(z), (p[0] - p[1])[None])
    torch.testing.assert_close(U.neg_nll(z), p[0].log()[None])
    torch.testing.assert_close(U.max_softmax(z, temperature=2.0), (z / 2).softmax(1).amax(1))


def test_energy_limits_and_bounds():
    z = torch.randn(6, 7, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 3
    top = z.amax(1)
    torch.testing.assert_close(U.energy(z, temperature=1e-3), top, atol=1e-6, rtol=0)
    for t in (0.1, 1.0, 10.0):
        e = U.energy(z, temperature=t)
        assert (e >= top - 1e-12).all() and (e <= top + t * math.log(7) + 1e-12).all()
    torch.testing.assert_close(U.energy(z + 2.5), U.energy(z) + 2.5)  # shift-equivariant
    # softmax scores are shift-invariant, energy is not: that is the point of Liu et al.
    torch.testing.assert_close(U.max_softmax(z + 2.5), U.max_softmax(z))


def test_logit_scores_match_pytorch_ood():
    det = pytest.importorskip("pytorch_ood.detector")
    z = torch.randn(20, 6, generator=torch.Generator().manual_seed(3)) * 2
    torch.testing.assert_close(U.max_softmax(z), -det.MaxSoftmax.score(z))
    torch.testing.assert_close(U.energy(z, 2.0), -det.EnergyBased.score(z, t=2.0))
    torch.testing.assert_close(U.neg_entropy(z), -det.Entropy.score(z))


# ------------------------------------------------------------------- ODIN
def test_odin_without_perturbation_at_t1_is_msp(sign_model, signs):
    x = signs.x_test[:6]
    before = model_state(sign_model)
    torch.testing.assert_close(U.odin(sign_model, x, temperature=1.0, epsilon=0.0),
                               _score("MSP", sign_model, x))
    _assert_clean(sign_model, before)


def test_odin_perturbation_raises_tempered_confidence(tiny):
    x = 0.2 + 0.6 * torch.rand(8, 3, 12, 12, generator=torch.Generator().manual_seed(4))
    plain = U.odin(tiny, x, temperature=10.0, epsilon=0.0)
    nudged = U.odin(tiny, x, temperature=10.0, epsilon=1e-3)
    assert (nudged >= plain).float().mean() >= 0.9 and (nudged - plain).mean() > 0


def test_odin_equals_pytorch_ood(sign_model, signs):
    det = pytest.importorskip("pytorch_ood.detector")
    x = signs.x_test[::50]
    # pytorch-ood does not clamp x̃ to [0, 1]; a clamping wrapper makes the two identical
    clamped = nn.Sequential(_Clamp(), sign_model).eval()
    theirs = det.ODIN(clamped, eps=0.0014, temperature=1000.0).predict(x)
    torch.testing.assert_close(U.odin(sign_model, x), -theirs, atol=1e-6, rtol=0)
    assert all(p.grad is None for p in sign_model.parameters())


class _Clamp(nn.Module):
    """Clamps to [0, 1] in the forward pass, identity in the backward pass."""

    def forward(self, x):
        return x + (x.clamp(0, 1) - x).detach()


# ------------------------------------------------------------------- Mahalanobis
def _gaussian_classes(n: int = 200, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    means = torch.tensor([[0.0, 0.0, 0.0], [6.0, 0.0, 0.0], [0.0, 6.0, 0.0]])
    y = torch.arange(3).repeat_interleave(n)
    scale = torch.tensor([1.0, 0.5, 2.0])
    return means[y] + torch.randn(3 * n, 3, generator=gen) * scale, y, means, scale


def test_mahalanobis_on_gaussian_features_ranks_near_mean_points_higher():
    h, y, means, scale = _gaussian_classes()
    maha = U.Mahalanobis(nn.Identity()).fit_features(h, y)
    near = means + 0.1
    far = torch.tensor([[3.0, 3.0, 8.0], [-6.0, -6.0, 0.0], [20.0, 0.0, 0.0]])
    s_near, s_far = maha.score_features(near), maha.score_features(far)
    assert (s_near <= 0).all() and (s_near[:, None] > s_far[None, :]).all()
    # squared distance with the pseudo-inverse of the tied covariance (explicit oracle)
    mu = torch.stack([h[y == c].mean(0) for c in range(3)]).double()
    centred = h.double() - mu[y]
    precision = torch.linalg.pinv(centred.T @ centred / len(h))
    d = far.double()[:, None, :] - mu[None]
    ref = -torch.einsum("bcd,de,bce->bc", d, precision, d).amin(1)
    torch.testing.assert_close(maha.score_features(far.double()), ref)
    # the fit recovers the generating distribution: whitened distance of a mean ≈ 0
    assert maha.distances(means).amin(1).max() < 0.1


def test_mahalanobis_pseudo_inverse_drops_a_constant_feature():
    h, y, _, _ = _gaussian_classes()
    h = torch.cat([h, torch.ones(len(h), 1)], dim=1)  # zero-variance direction
    maha = U.Mahalanobis(nn.Identity()).fit_features(h, y)
    assert maha.whitening.shape == (4, 3)
    assert torch.isfinite(maha.score_features(h)).all()


def test_mahalanobis_unfitted_raises(tiny, x8):
    maha = U.Mahalanobis(tiny)
    with pytest.raises(U.NotFittedError, match=r"not fitted yet: call \.fit"):
        maha.score(x8)
    with pytest.raises(ValueError, match="not fitted"):  # NotFittedError is a ValueError
        maha.score_features(torch.zeros(2, 6))


def test_mahalanobis_images_match_pytorch_ood_ranking(sign_model, signs):
    det = pytest.importorskip("pytorch_ood.detector")
    from tutorial_utils.data import load_ood
    from tutorial_utils.models import features_and_logits

    x_fit, y_fit = signs.x_train[::4], signs.y_train[::4]
    x_id, x_ood = signs.x_test[::10], load_ood("go", 60)
    maha = U.Mahalanobis(sign_model).fit(x_fit, y_fit)
    theirs = det.Mahalanobis(sign_model.penultimate)
    theirs.fit_features(features_and_logits(sign_model, x_fit)[0], y_fit)
    labels = torch.cat([torch.ones(len(x_id)), torch.zeros(len(x_ood))])
    ours = torch.cat([maha.score(x_id), maha.score(x_ood)])
    with torch.no_grad():
        ref = -torch.cat([theirs.predict(x_id), theirs.predict(x_ood)])
    assert metrics.auroc(labels, ours) == pytest.approx(metrics.auroc(labels, ref), abs=1e-3)
    # same score up to pytorch-ood's scale (½ and an un-normalised covariance)
    n = len(x_fit)
    torch.testing.assert_close(ours.double() / (2 * n), ref.double(), rtol=1e-3, atol=1e-6)


# ------------------------------------------------------------------- GradNorm
def _gradnorm_autograd(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """‖∇_W KL(u ‖ softmax(f(x_b)))‖₁ by one autograd call per image (the slow oracle)."""
    w = model.fc.weight
    out = []
    for i in range(len(x)):
        z = model(x[i:i + 1])
        u = torch.full_like(z, 1 / z.shape[1])
        kl = F.kl_div(z.log_softmax(1), u, reduction="sum")  # KL(u ‖ p)
        (g,) = torch.autograd.grad(kl, w)
        out.append(g.abs().sum())
    return torch.stack(out)


def test_gradnorm_closed_form_equals_per_sample_autograd(tiny, x8, sign_model, signs):
    torch.testing.assert_close(U.gradnorm(tiny, x8), _gradnorm_autograd(tiny, x8))
    x = signs.x_test[::140]
    before = model_state(sign_model)
    torch.testing.assert_close(U.gradnorm(sign_model, x), _gradnorm_autograd(sign_model, x),
                               rtol=1e-4, atol=1e-5)
    sign_model.zero_grad(set_to_none=True)
    _assert_clean(sign_model, before)


def test_gradnorm_orientation_and_pytorch_ood(tiny, x8):
    # constructed case: a larger, more confident fc gives a larger score
    sharp = type(tiny)().eval()
    sharp.load_state_dict(tiny.state_dict())
    with torch.no_grad():
        sharp.fc.weight.mul_(10)
    assert (U.gradnorm(sharp, x8) > U.gradnorm(tiny, x8)).all()
    det = pytest.importorskip("pytorch_ood.detector")
    theirs = det.GradNorm(tiny, param_filter=lambda name: name == "fc.weight").predict(x8)
    torch.testing.assert_close(U.gradnorm(tiny, x8), -theirs, rtol=1e-5, atol=1e-7)


# ------------------------------------------------------------------- confounding labels
def test_confounding_score_sums_the_layer_norms(tiny, x8):
    norms = gradients.confounding_gradient_norms(tiny, x8, "sigmoid").norms
    torch.testing.assert_close(U.confounding_score(tiny, x8), -norms.sum(1))
    torch.testing.assert_close(U.confounding_score(tiny, x8, sign=1), norms.sum(1))
    for loss in ("sigmoid", "softmax"):  # the closed form for fc alone vs torch.func
        fc = U.confounding_score(tiny, x8, layers=[tiny.fc], loss=loss, sign=1)
        ref = gradients.confounding_gradient_norms(tiny, x8, loss, [tiny.fc]).norms[:, 0]
        torch.testing.assert_close(fc, ref, rtol=1e-5, atol=1e-8)


def test_confounding_score_matches_pytorch_ood(tiny, x8):
    det = pytest.importorskip("pytorch_ood.detector")
    # GradUncertainty: BCE(softmax(z), 1) = our "softmax" loss; it returns −Σ‖∇‖² as an
    # outlier score (large norm = ID), numerically our sign=-1 score (small norm = ID)
    theirs = det.GradUncertainty(tiny).predict(x8)
    torch.testing.assert_close(U.confounding_score(tiny, x8, loss="softmax"), theirs,
                               rtol=1e-4, atol=1e-9)


def test_confounding_detector_separates_and_says_probability(tiny):
    gen = torch.Generator().manual_seed(5)
    dark = 0.3 * torch.rand(60, 3, 12, 12, generator=gen)
    bright = 0.7 + 0.3 * torch.rand(60, 3, 12, 12, generator=gen)
    with pytest.raises(U.NotFittedError, match="fit"):
        U.ConfoundingDetector(tiny).score(dark)
    det = U.ConfoundingDetector(tiny, loss="sigmoid").fit(dark[:40], x_novel=bright[:40])
    s_id, s_novel = det.score(dark[40:]), det.score(bright[40:])
    assert s_id.shape == (20,) and ((s_id >= 0) & (s_id <= 1)).all()
    assert metrics.auroc(torch.cat([torch.ones(20), torch.zeros(20)]),
                         torch.cat([s_id, s_novel])) > 0.9
    assert det.layer_names == ["conv", "fc"]


# ------------------------------------------------------------------- MC dropout
class DropNet(nn.Module):
    """Conv → BN → ReLU → Dropout2d → pool → Dropout → fc: two dropout layers and a BatchNorm."""

    def __init__(self, k: int = 4) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.bn = nn.BatchNorm2d(6)
        self.drop2d = nn.Dropout2d(0.3)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.drop = nn.Dropout(0.5)
        self.fc = nn.Linear(6, k)
        self.bn.running_mean.fill_(0.2)
        self.bn.running_var.fill_(2.0)

    def forward(self, x):
        h = self.pool(self.drop2d(torch.relu(self.bn(self.conv(x))))).flatten(1)
        return self.fc(self.drop(h))


class SkipNet(nn.Module):
    """Dropout on one branch of a residual sum: tiling at the dropout cannot work here."""

    def __init__(self, k: int = 4) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.drop = nn.Dropout(0.5)
        self.fc = nn.Linear(6, k)

    def forward(self, x):
        h = torch.relu(self.conv(x)).mean((2, 3))
        return self.fc(self.drop(h) + h)


def _full_repeat(model, x, passes, seed):
    """Oracle: the whole batch repeated T times in train-mode dropout, same seed."""
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(seed)
        modes = [m.training for m in model.modules()]
        for m in model.modules():
            m.train(isinstance(m, nn.modules.dropout._DropoutNd))
        z = ensembles._mc_logits_full(model, x, passes)
        for m, mode in zip(model.modules(), modes, strict=True):
            m.training = mode
    return z.view(passes, len(x), -1)


@pytest.mark.parametrize("net", [DropNet, SkipNet])
def test_mc_dropout_decomposition_and_oracle(net, x8):
    torch.manual_seed(0)
    model = net().eval()
    u = U.mc_dropout(model, x8, passes=7, seed=3)
    assert u.probs.shape == (7, 8, 4) and u.mean.shape == (8, 4)
    torch.testing.assert_close(u.probs, _full_repeat(model, x8, 7, 3).softmax(-1))
    torch.testing.assert_close(u.mean, u.probs.mean(0))
    # exact identity: the sum reproduces the predictive entropy up to one rounding (1 ulp)
    torch.testing.assert_close(u.aleatoric + u.epistemic, u.predictive_entropy,
                               atol=1e-12, rtol=1.2e-7)
    assert (u.epistemic > -1e-6).all() and (u.epistemic.amax() > 1e-6)
    assert ((u.disagreement >= 0) & (u.disagreement <= 1)).all() and (u.variance >= 0).all()


def test_mc_dropout_fallback_runs_whole_passes_in_chunks(monkeypatch, x8):
    torch.manual_seed(0)
    model = SkipNet().eval()
    monkeypatch.setattr(ensembles, "MAX_ROWS", 16)  # 2 passes of 8 images per forward
    calls = []
    handle = model.conv.register_forward_pre_hook(lambda _m, i: calls.append(len(i[0])))
    u = U.mc_dropout(model, x8, passes=5, seed=0)
    handle.remove()
    assert calls == [8, 16, 16, 8]  # the failed tiled pass, then 2 + 2 + 1 passes
    assert u.probs.shape == (5, 8, 4)
    torch.testing.assert_close(u.probs, U.mc_dropout(model, x8, passes=5, seed=0).probs)


def test_mc_dropout_switches_only_dropout_and_restores_everything(x8):
    torch.manual_seed(0)
    model = DropNet().train()
    model.conv.requires_grad_(False)
    before = model_state(model)
    seen = {}
    handles = [m.register_forward_pre_hook(
        lambda mod, _i, name=name: seen.__setitem__(name, mod.training))
        for name, m in model.named_modules() if name]
    U.mc_dropout(model, x8, passes=3)
    for h in handles:
        h.remove()
    assert seen == {"conv": False, "bn": False, "drop2d": True, "pool": False, "drop": True,
                    "fc": False}
    _assert_clean(model, before)


def test_mc_dropout_seeded_and_leaves_global_rng_alone(x8):
    model = DropNet().eval()
    state = torch.get_rng_state()
    a, b = U.mc_dropout(model, x8, seed=1), U.mc_dropout(model, x8, seed=1)
    c = U.mc_dropout(model, x8, seed=2)
    assert torch.equal(torch.get_rng_state(), state)
    torch.testing.assert_close(a.probs, b.probs, rtol=0, atol=0)
    assert not torch.allclose(a.probs, c.probs)


def test_mc_dropout_on_the_zoo_ensemble_tiles_every_member(zoo_models, signs):
    ens = zoo_models["signs-ensemble"]
    x = signs.x_test[::350]
    u = U.mc_dropout(ens, x, passes=5, seed=0)
    ref = _full_repeat(ens, x, 5, 0).softmax(-1)
    torch.testing.assert_close(u.probs, ref, atol=1e-6, rtol=1e-5)


# ------------------------------------------------------------------- ensembles
class FakeEnsemble(nn.Module):
    """member_logits returns fixed logits (M, B, K) whatever the images."""

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.logits = logits

    def member_logits(self, x):
        return self.logits


def test_ensemble_decomposition_on_constructed_members():
    x = torch.rand(2, 3, 8, 8)
    agree = torch.tensor([[[3.0, 0.0], [0.0, 0.0]]]).expand(4, 2, 2)
    u = U.ensemble_uncertainty(FakeEnsemble(agree), x)
    torch.testing.assert_close(u.epistemic, torch.zeros(2), atol=1e-7, rtol=0)
    torch.testing.assert_close(u.predictive_entropy[1], torch.tensor(math.log(2)))
    assert (u.disagreement == 0).all() and (u.variance.abs() < 1e-12).all()
    split = torch.tensor([[[20.0, 0.0]], [[0.0, 20.0]]])  # two sure members, opposite classes
    v = U.ensemble_uncertainty(FakeEnsemble(split), x[:1])
    torch.testing.assert_close(v.epistemic, torch.tensor([math.log(2)]), atol=1e-6, rtol=0)
    assert v.aleatoric.item() < 1e-6 and v.disagreement.item() == 0.5
    torch.testing.assert_close(v.variance, torch.tensor([0.25]))


def test_ensemble_uncertainty_on_the_zoo(zoo_models, signs):
    ens = zoo_models["signs-ensemble"]
    x = signs.x_test[::200]
    before = model_state(ens)
    u = U.ensemble_uncertainty(ens, x)
    assert u.probs.shape == (5, 7, 14)
    with torch.no_grad():
        torch.testing.assert_close(u.mean, ens(x).softmax(1))
    torch.testing.assert_close(u.aleatoric + u.epistemic, u.predictive_entropy,
                               atol=1e-12, rtol=1.2e-7)
    assert set(torch.unique(u.disagreement * 5).round().tolist()) <= {0, 1, 2, 3, 4}
    _assert_clean(ens, before)
    torch.testing.assert_close(_score("ensemble (−MI)", ens, x), -u.epistemic)


# ------------------------------------------------------------------- invariances, hygiene
SCORE_CALLS = {
    **{name: (lambda m, x, name=name: _score(name, m, x))
       for name in ("MSP", "−entropy", "margin", "−NLL", "Energy", "GradNorm")},
    "odin": lambda m, x: U.odin(m, x),
    "odin_t1": lambda m, x: U.odin(m, x, temperature=1.0, epsilon=0.002),
    "confounding_fc": lambda m, x: U.confounding_score(m, x, layers=[m.fc], loss="softmax"),
    "confounding_all": lambda m, x: U.confounding_score(m, x),
}


@pytest.mark.parametrize("name", list(SCORE_CALLS))
def test_every_score_batch_vs_single_and_state(name, sign_model, signs):
    x = signs.x_test[::280]  # 5 images of different classes
    fn = SCORE_CALLS[name]
    sign_model.train()
    before = model_state(sign_model)
    batch = fn(sign_model, x)
    single = torch.cat([fn(sign_model, x[i:i + 1]) for i in range(len(x))])
    assert batch.shape == (len(x),) and batch.dtype == x.dtype
    scale = batch.abs().max().clamp_min(1e-6)
    torch.testing.assert_close(batch / scale, single / scale, atol=2e-5, rtol=0)
    _assert_clean(sign_model, before)
    sign_model.eval()


def test_mahalanobis_batch_vs_single(sign_model, signs):
    maha = U.Mahalanobis(sign_model).fit(signs.x_train[::6], signs.y_train[::6])
    x = signs.x_test[::280]
    single = torch.cat([maha.score(x[i:i + 1]) for i in range(len(x))])
    torch.testing.assert_close(maha.score(x), single, rtol=1e-4, atol=1e-3)


def test_odin_works_under_no_grad_and_inference_mode(sign_model, signs):
    x = signs.x_test[:3]
    ref = U.odin(sign_model, x)
    with torch.no_grad():
        torch.testing.assert_close(U.odin(sign_model, x), ref)
    with torch.inference_mode():
        torch.testing.assert_close(U.odin(sign_model, x), ref)


def test_scores_orient_the_zoo_sign_model(sign_model, signs):
    """On real data: clean test signs score above uniform noise for every score."""
    x_id = signs.x_test[::70]
    noise = torch.rand(20, 3, 48, 48, generator=torch.Generator().manual_seed(0))
    labels = torch.cat([torch.ones(len(x_id)), torch.zeros(20)])
    for name in ("MSP", "−entropy", "margin", "−NLL", "Energy", "ODIN", "GradNorm",
                 "MC dropout (−MI)"):
        s = torch.cat([_score(name, sign_model, x_id), _score(name, sign_model, noise)])
        assert metrics.auroc(labels, s) > 0.9, name


# ------------------------------------------------------------------- pytorch-ood AUROC
def test_auroc_equals_pytorch_ood_on_signs_vs_go(sign_model, signs):
    det = pytest.importorskip("pytorch_ood.detector")
    from tutorial_utils.data import load_ood

    x = torch.cat([signs.x_test[::20], load_ood("go", 40)])
    labels = torch.cat([torch.ones(70), torch.zeros(40)])
    clamped = nn.Sequential(_Clamp(), sign_model).eval()
    pairs = {
        "msp": (_score("MSP", sign_model, x), det.MaxSoftmax(sign_model)),
        "energy": (_score("Energy", sign_model, x), det.EnergyBased(sign_model)),
        "odin": (U.odin(sign_model, x), det.ODIN(clamped)),
    }
    for name, (ours, peer) in pairs.items():
        ref = -peer.predict(x).detach()
        assert metrics.auroc(labels, ours) == pytest.approx(metrics.auroc(labels, ref),
                                                            abs=1e-9), name


# ------------------------------------------------------------------- bad inputs
def _bad_cases(tiny, x8):
    z = torch.randn(4, 3)
    return [
        (lambda: U.max_softmax(z[0]), ValueError, r"logits must have shape \(B, K\).*\[None\]"),
        (lambda: U.neg_entropy(torch.randn(2, 3, 4)), ValueError, r"logits must have shape"),
        (lambda: U.margin(torch.randn(4, 1)), ValueError, "K >= 2"),
        (lambda: U.neg_nll(z.long()), TypeError, r"logits must be floating point"),
        (lambda: U.energy([[1.0, 2.0]]), TypeError, "logits must be a torch.Tensor"),
        (lambda: U.energy(torch.tensor([[1.0, float("nan")]])), ValueError, "NaN"),
        (lambda: U.energy(z, temperature=0), ValueError, "temperature must be a finite number > 0"),
        (lambda: U.max_softmax(z, -1.0), ValueError, "temperature"),
        (lambda: U.energy(z, float("inf")), ValueError, "temperature"),
        (lambda: U.energy(z, True), TypeError, "temperature must be a number"),
        (lambda: U.odin(tiny, x8, epsilon=-0.1), ValueError, "epsilon must be a finite number"),
        (lambda: U.odin(tiny, x8, temperature=0.0), ValueError, "temperature"),
        (lambda: U.odin(tiny, x8[0]), ValueError, r"unsqueeze\(0\)"),
        (lambda: U.gradnorm(tiny, x8 * 255), ValueError, "divide by 255"),
        (lambda: U.gradnorm(nn.Sequential(nn.Conv2d(3, 2, 3), nn.Flatten()), x8), TypeError,
         "no final nn.Linear"),
        (lambda: U.mc_dropout(DropNet(), x8, passes=0), ValueError, "passes must be >= 1"),
        (lambda: U.mc_dropout(DropNet(), x8, passes=2.5), TypeError, "passes must be an int"),
        (lambda: U.mc_dropout(tiny, x8), ValueError, "no dropout layer"),
        (lambda: U.ensemble_uncertainty(tiny, x8), TypeError, "member_logits"),
        (lambda: U.confounding_score(tiny, x8, sign=0), ValueError, "sign must be -1"),
        (lambda: U.confounding_score(tiny, x8, loss="mse"), ValueError, "loss must be one of"),
        (lambda: U.ConfoundingDetector(tiny).fit(x8), TypeError, "x_novel"),
        (lambda: U.Mahalanobis(tiny).fit(x8, torch.zeros(3, dtype=torch.long)), ValueError,
         r"y must have shape \(8,\)"),
        (lambda: U.Mahalanobis(tiny).fit(x8, torch.zeros(8)), TypeError, "integer class labels"),
        (lambda: U.Mahalanobis("model"), TypeError, "model must be a torch.nn.Module"),
        (lambda: U.Mahalanobis(tiny).fit_features(torch.zeros(0, 3), torch.zeros(0).long()),
         ValueError, "h is empty"),
        (lambda: U.Mahalanobis(tiny).fit_features(*_gaussian_classes()[:2]).score(x8),
         ValueError, "h has 6 features per sample but the detector was fitted on 3"),
    ]


@pytest.mark.parametrize("case", range(27))
def test_bad_inputs_name_the_argument(case, tiny, x8):
    cases = _bad_cases(tiny, x8)
    assert len(cases) == 27
    fn, error, message = cases[case]
    with pytest.raises(error, match=message):
        fn()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_scores_on_cuda_match_cpu(sign_model, signs):
    from tutorial_utils import attacks

    x = signs.x_test[::140]
    gpu = type(sign_model)(3, 14).cuda().eval()
    gpu.load_state_dict(sign_model.state_dict())
    xg = x.cuda()
    for name in ("MSP", "Energy", "GradNorm", "ODIN"):
        ours, ref = _score(name, gpu, xg), _score(name, sign_model, x)
        assert ours.device == xg.device
        torch.testing.assert_close(ours.cpu(), ref, rtol=1e-3, atol=1e-4)
    cpu_state, cuda_state = torch.get_rng_state(), torch.cuda.get_rng_state()
    a, b = U.mc_dropout(gpu, xg, seed=4), U.mc_dropout(gpu, xg, seed=4)
    assert torch.equal(a.probs, b.probs) and a.probs.device == xg.device
    assert torch.equal(torch.get_rng_state(), cpu_state)
    assert torch.equal(torch.cuda.get_rng_state(), cuda_state)
    adv = attacks.pgd(gpu, xg, None, 4 / 255, steps=3)
    assert adv.device == xg.device and (adv - xg).abs().max() <= 4 / 255 + 1e-6


def test_neg_nll_raw_is_the_authors_nll_on_raw_logits():
    """GradTrust's demo.py computes -F.nll_loss(logits, pred) on raw logits: the max logit,
    which ranks differently from log MSP (neg_nll) when the logit scale varies."""
    z = torch.tensor([[4.0, 3.9, 0.0], [1.0, -5.0, -5.0], [2.0, 0.0, 0.0]])
    pred = z.argmax(1)
    ref = -torch.nn.functional.nll_loss(z, pred, reduction="none")
    torch.testing.assert_close(U.neg_nll_raw(z), ref)
    torch.testing.assert_close(U.neg_nll_raw(z), z.amax(1))
    # row 0 has the largest logit but the lowest MSP: the two scores order the rows differently
    assert U.neg_nll_raw(z).argmax() == 0 and U.neg_nll(z).argmin() == 0
