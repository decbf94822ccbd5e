"""FGSM and PGD: they raise the loss (PGD at least as much), respect the ε-ball and [0, 1],
are seeded, leave the model as they found it, and reject bad input with clear errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from _helpers import model_state

from tutorial_utils import attacks as A
from tutorial_utils import gradients

EPS = 4 / 255


@pytest.fixture(scope="module")
def batch(signs):
    """16 test signs (a few of every class) and their labels."""
    idx = torch.arange(0, len(signs.y_test), len(signs.y_test) // 16)[:16]
    return signs.x_test[idx], signs.y_test[idx]


def _loss(model, x, y):
    with torch.no_grad():
        return F.cross_entropy(model(x), y, reduction="none")


def test_fgsm_raises_the_loss_and_pgd_raises_it_more(sign_model, batch):
    x, y = batch
    clean = _loss(sign_model, x, y)
    x_fgsm = A.fgsm(sign_model, x, y, EPS)
    x_pgd = A.pgd(sign_model, x, y, EPS, steps=10)
    l_fgsm, l_pgd = _loss(sign_model, x_fgsm, y), _loss(sign_model, x_pgd, y)
    assert (l_fgsm > clean).float().mean() >= 0.9 and l_fgsm.mean() > clean.mean()
    assert l_pgd.mean() >= l_fgsm.mean()
    more = _loss(sign_model, A.pgd(sign_model, x, y, EPS, steps=20), y)
    assert more.mean() >= 0.95 * l_pgd.mean()
    # and PGD changes decisions: accuracy drops
    with torch.no_grad():
        acc = lambda xs: (sign_model(xs).argmax(1) == y).float().mean().item()  # noqa: E731
        assert acc(x_pgd) <= acc(x_fgsm) <= acc(x)


@pytest.mark.parametrize("attack", ["fgsm", "pgd"])
def test_adversarials_stay_in_the_ball_and_in_range(attack, sign_model, batch):
    x, y = batch
    fn = A.fgsm if attack == "fgsm" else A.pgd
    for eps in (1 / 255, 8 / 255):
        adv = fn(sign_model, x, y, eps)
        assert adv.shape == x.shape and adv.dtype == x.dtype and not adv.requires_grad
        assert adv.min() >= 0 and adv.max() <= 1
        assert (adv - x).abs().max() <= eps + 1e-6
    assert torch.equal(fn(sign_model, x, y, 0.0), x)
    assert torch.equal(fn(sign_model, x, None, 0), x)


def test_fgsm_equals_the_formula(tiny, x8):
    y = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])
    xg = x8.clone().requires_grad_()
    (g,) = torch.autograd.grad(F.cross_entropy(tiny(xg), y, reduction="sum"), xg)
    torch.testing.assert_close(A.fgsm(tiny, x8, y, 0.05), (x8 + 0.05 * g.sign()).clamp(0, 1))
    torch.testing.assert_close(A.fgsm(tiny, x8, y, 0.05, targeted=True),
                               (x8 - 0.05 * g.sign()).clamp(0, 1))
    g2, z = gradients.input_gradient(tiny, x8,
                                     lambda z: F.cross_entropy(z, y, reduction="none"))
    torch.testing.assert_close(g2, g)
    torch.testing.assert_close(z, tiny(x8).detach())


def test_y_none_means_the_prediction(sign_model, batch):
    x, _ = batch
    with torch.no_grad():
        pred = sign_model(x).argmax(1)
    torch.testing.assert_close(A.fgsm(sign_model, x, None, EPS), A.fgsm(sign_model, x, pred, EPS))
    torch.testing.assert_close(A.pgd(sign_model, x, None, EPS, steps=3),
                               A.pgd(sign_model, x, pred, EPS, steps=3))


def test_targeted_pgd_moves_towards_the_target(sign_model, batch):
    x, _ = batch
    target = torch.full((len(x),), 5)
    before = _loss(sign_model, x, target)
    adv = A.pgd(sign_model, x, target, 8 / 255, steps=10, targeted=True)
    after = _loss(sign_model, adv, target)
    assert (after < before).float().mean() >= 0.9
    with torch.no_grad():
        hits = (sign_model(adv).argmax(1) == 5).float().mean()
        assert hits > (sign_model(x).argmax(1) == 5).float().mean()


def test_pgd_random_start_is_seeded_and_local(tiny, x8):
    state = torch.get_rng_state()
    a = A.pgd(tiny, x8, None, 0.03, steps=2, seed=1)
    b = A.pgd(tiny, x8, None, 0.03, steps=2, seed=1)
    c = A.pgd(tiny, x8, None, 0.03, steps=2, seed=2)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(a, b) and not torch.equal(a, c)
    # without a random start, PGD's first step is FGSM with step α
    first = A.pgd(tiny, x8, None, 0.03, alpha=0.01, steps=1, random_start=False)
    torch.testing.assert_close(first, A.fgsm(tiny, x8, None, 0.01))


def test_batch_vs_single(sign_model, batch):
    x, y = batch[0][:4], batch[1][:4]
    for fn in (A.fgsm, lambda *a: A.pgd(*a, random_start=False, steps=3)):
        adv = fn(sign_model, x, y, EPS)
        single = torch.cat([fn(sign_model, x[i:i + 1], y[i:i + 1], EPS) for i in range(4)])
        # a pixel whose gradient is ~0 may flip sign between batched and single kernels
        assert (adv != single).float().mean() < 1e-3


def test_model_state_restored_and_no_grad_contexts(sign_model, batch):
    x, y = batch[0][:4], batch[1][:4]
    sign_model.train()
    sign_model.fc.requires_grad_(False)
    before = model_state(sign_model)
    ref = A.fgsm(sign_model, x, y, EPS)
    with torch.no_grad():
        torch.testing.assert_close(A.fgsm(sign_model, x, y, EPS), ref)
    with torch.inference_mode():
        adv = A.pgd(sign_model, x, y, EPS, steps=2)
    assert (adv - x).abs().max() <= EPS + 1e-6
    assert model_state(sign_model) == before
    assert all(p.grad is None for p in sign_model.parameters())
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in sign_model.modules())
    sign_model.fc.requires_grad_(True)
    sign_model.eval()


@pytest.mark.parametrize("call, error, message", [
    (lambda m, x: A.fgsm(m, x, None, -0.1), ValueError, "epsilon must be a finite number >= 0"),
    (lambda m, x: A.fgsm(m, x, None, float("nan")), ValueError, "epsilon must be a finite"),
    (lambda m, x: A.fgsm(m, x, None, 8), ValueError, "did you mean epsilon=8/255"),
    (lambda m, x: A.fgsm(m, x, None, "0.1"), TypeError, "epsilon must be a float"),
    (lambda m, x: A.fgsm(m, x, None, 0.1, targeted=True), ValueError, "targeted attack needs y"),
    (lambda m, x: A.fgsm(m, x, None, 0.1, targeted=1), TypeError, "targeted must be True"),
    (lambda m, x: A.fgsm(m, x, 9, 0.1), ValueError, "y class 9 is out of range"),
    (lambda m, x: A.fgsm(m, x, [0, 1], 0.1), ValueError, "y must give one class per sample"),
    (lambda m, x: A.fgsm(m, x[0], None, 0.1), ValueError, r"unsqueeze\(0\)"),
    (lambda m, x: A.fgsm(m, x * 255, None, 0.1), ValueError, "divide by 255"),
    (lambda m, x: A.pgd(m, x, None, 0.1, steps=0), ValueError, "steps must be >= 1"),
    (lambda m, x: A.pgd(m, x, None, 0.1, alpha=0), ValueError, "alpha must be a finite number > 0"),
    (lambda m, x: A.pgd(m, x, None, 0.1, random_start=None), TypeError, "random_start"),
    (lambda m, x: A.pgd(m, x, 1.5, 0.1), TypeError, "y must be an int class index"),
])
def test_bad_inputs_name_the_argument(call, error, message, tiny, x8):
    with pytest.raises(error, match=message):
        call(tiny, x8)
