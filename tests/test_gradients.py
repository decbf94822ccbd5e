"""Gradients at inference: closed forms vs autograd loops, torch.func paths, Fisher, hygiene."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tutorial_utils import gradients as G
from tutorial_utils.models import SmallCNN

K = 14


@pytest.fixture(scope="module")
def small():
    torch.manual_seed(0)
    return SmallCNN(3, K).eval()


def _images(b: int = 4, size: int = 48, seed: int = 1) -> torch.Tensor:
    return torch.rand(b, 3, size, size, generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------- layer gradients
def test_layer_gradients_batch_equals_single_and_loop(small):
    x = _images(3)
    acts, grads = G.layer_activations_and_gradients(small, x, target=[1, 4, 9])
    assert acts.shape == grads.shape == (3, 64, 12, 12)
    for i, t in enumerate([1, 4, 9]):
        a1, g1 = G.layer_activations_and_gradients(small, x[i:i + 1], target=t)
        torch.testing.assert_close(a1[0], acts[i])
        torch.testing.assert_close(g1[0], grads[i])


def test_score_fn_and_logit_jacobian_agree(small):
    x = _images(2)
    acts, jac, z = G.layer_logit_gradients(small, x)
    assert jac.shape == (2, K, 64, 12, 12)
    torch.testing.assert_close(z, small(x))
    for k in (0, 7, 13):
        _, g = G.layer_activations_and_gradients(small, x,
                                                 score_fn=lambda logits, k=k: logits[:, k])
        torch.testing.assert_close(jac[:, k], g)
    with pytest.raises(ValueError, match="score_fn"):
        G.layer_activations_and_gradients(small, x, score_fn=lambda logits: logits.sum())
    with pytest.raises(ValueError, match="not both"):
        G.layer_activations_and_gradients(small, x, target=1, score_fn=lambda z: z[:, 0])


def test_capture_output_removes_its_hook_on_error(small):
    with pytest.raises(RuntimeError, match="boom"):
        with G.capture_output(small.last_conv):
            raise RuntimeError("boom")
    assert len(small.last_conv._forward_hooks) == 0


# ------------------------------------------------------------------- contrast gradients
def test_cross_entropy_gradient_is_p_minus_onehot():
    z = torch.randn(6, K, dtype=torch.float64, requires_grad=True)
    q = torch.tensor([0, 1, 5, 5, 13, 2])
    (g,) = torch.autograd.grad(F.cross_entropy(z, q, reduction="sum"), z)
    torch.testing.assert_close(g, z.softmax(1) - F.one_hot(q, K).double())


def _contrast_loop(model, x, classes):
    """∇_W CE and ∇_b CE by one autograd call per (sample, class) — the slow oracle."""
    out_w, out_b = [], []
    with torch.no_grad():
        h = model.penultimate(x)
    w, b = model.fc.weight.detach().requires_grad_(), model.fc.bias.detach().requires_grad_()
    for i in range(len(x)):
        z = F.linear(h[i:i + 1], w, b)
        rows = [torch.autograd.grad(F.cross_entropy(z, torch.tensor([q])), (w, b),
                                    retain_graph=True) for q in classes]
        out_w.append(torch.stack([r[0] for r in rows]))
        out_b.append(torch.stack([r[1] for r in rows]))
    return torch.stack(out_w), torch.stack(out_b)


def test_closed_form_equals_per_class_autograd_loop(small):
    x = _images(3)
    g, gb = G.contrast_gradients(small, x, return_bias=True)
    assert g.shape == (3, K, K, 64) and gb.shape == (3, K, K)
    ref_w, ref_b = _contrast_loop(small, x, range(K))
    torch.testing.assert_close(g, ref_w, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(gb, ref_b, atol=1e-5, rtol=1e-5)
    # signs: row q of p − e_q is ≤ 0, every other row ≥ 0; rows sum to zero
    eye = torch.eye(K, dtype=torch.bool)
    assert (gb[:, eye] <= 0).all() and (gb[:, ~eye] >= 0).all()
    torch.testing.assert_close(gb.sum(-1), torch.zeros(3, K), atol=1e-6, rtol=0)


def test_class_subsets_and_torch_func_path(small):
    x = _images(3)
    full = G.contrast_gradients(small, x)
    sub = G.contrast_gradients(small, x, classes=[5, 0])
    torch.testing.assert_close(sub, full[:, [5, 0]])
    torch.testing.assert_close(G.contrast_gradients(small, x, classes=3), full[:, [3]])
    auto = G.contrast_gradients_autograd(small, x)
    assert set(auto) == {"fc.weight", "fc.bias"}
    torch.testing.assert_close(auto["fc.weight"], full, atol=1e-6, rtol=1e-5)
    _, gb = G.contrast_gradients(small, x, return_bias=True)
    torch.testing.assert_close(auto["fc.bias"], gb, atol=1e-6, rtol=1e-5)


def test_torch_func_path_for_a_conv_layer_equals_loop(small):
    x = _images(2)
    name = "last_conv.1.0.weight"
    classes = [2, 11]
    got = G.contrast_gradients_autograd(small, x, params=name, classes=classes)[name]
    assert got.shape == (2, 2, 64, 64, 3, 3)
    weight = dict(small.named_parameters())[name]
    for i in range(2):
        for j, q in enumerate(classes):
            small.zero_grad()
            F.cross_entropy(small(x[i:i + 1]), torch.tensor([q])).backward()
            torch.testing.assert_close(got[i, j], weight.grad, atol=1e-6, rtol=1e-4)
    small.zero_grad(set_to_none=True)


def test_contrast_gradient_bad_inputs(small):
    x = _images(2)
    with pytest.raises(ValueError, match="classes class 14 is out of range"):
        G.contrast_gradients(small, x, classes=[0, 14])
    with pytest.raises(TypeError, match="classes must hold integer"):
        G.contrast_gradients(small, x, classes=[0.5])
    with pytest.raises(ValueError, match="params: 'nope'"):
        G.contrast_gradients_autograd(small, x, params="nope")
    from tutorial_utils.models import Ensemble

    ensemble = Ensemble([SmallCNN(3, K), SmallCNN(3, K)]).eval()
    with pytest.raises(ValueError, match="output of its final nn.Linear"):
        G.contrast_gradients(ensemble, x)
    conv_only = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    with pytest.raises(TypeError, match="no final nn.Linear"):
        G.contrast_gradients(conv_only, x)


# ------------------------------------------------------------------- confounding label
def _norms_loop(model, x, loss, groups):
    rows = []
    params = dict(model.named_parameters())
    for i in range(len(x)):
        model.zero_grad()
        G.confounding_loss(model(x[i:i + 1]), loss).sum().backward()
        rows.append([sum(params[n].grad.square().sum() for n in names) for names in groups])
    model.zero_grad(set_to_none=True)
    return torch.tensor(rows)


@pytest.mark.parametrize("loss", ["sigmoid", "softmax"])
def test_confounding_norms_equal_per_sample_loop(small, loss):
    x = _images(3)
    out = G.confounding_gradient_norms(small, x, loss)
    assert out.norms.shape == (3, 11) and out.names[-1] == "fc"
    assert out.names[0] == "features.0.0"
    groups = [[f"{m}.{n}" for n, _ in small.get_submodule(m).named_parameters(recurse=False)]
              for m in out.names]
    torch.testing.assert_close(out.norms, _norms_loop(small, x, loss, groups),
                               rtol=1e-4, atol=1e-10)


def test_confounding_layers_subset_and_last_layer_closed_form(small):
    x = _images(3)
    out = G.confounding_gradient_norms(small, x, "softmax", layers=[small.fc])
    assert out.names == ["fc"]
    with torch.no_grad():
        h = small.penultimate(x)
        gz = K * small.fc(h).softmax(1) - 1  # ∂/∂z of −Σ_k log p_k
    expect = gz.square().sum(1) * (h.square().sum(1) + 1)  # ‖g hᵀ‖² + ‖g‖²
    torch.testing.assert_close(out.norms[:, 0], expect, rtol=1e-4, atol=0)


def test_softmax_confounding_loss_is_k_times_gradnorm_kl():
    z = torch.randn(5, K, dtype=torch.float64)
    uniform = torch.full_like(z, 1 / K)
    kl = F.kl_div(z.log_softmax(1), uniform, reduction="none").sum(1)  # KL(u ‖ p)
    torch.testing.assert_close(G.confounding_loss(z, "softmax"), K * (kl + math.log(K)))
    torch.testing.assert_close(G.confounding_loss(z, "sigmoid"),
                               F.binary_cross_entropy_with_logits(z, torch.ones_like(z),
                                                                  reduction="none").sum(1))
    with pytest.raises(ValueError, match="loss must be one of"):
        G.confounding_loss(z, "hinge")


# ------------------------------------------------------------------- Fisher information
def test_fisher_full_diagonal_equals_diagonal_estimate(small):
    x = _images(6)
    diag = G.fisher_information(small, x, seed=3)
    full = G.fisher_information(small, x, full=True, seed=3)
    assert diag.shape == (K * 64 + K,) and full.shape == (diag.numel(),) * 2
    torch.testing.assert_close(full.diagonal(), diag)
    torch.testing.assert_close(full, full.T)
    with pytest.raises(ValueError, match="full=True"):
        G.fisher_information(small, x, params="all", full=True)


def test_score_has_zero_mean_under_the_model(small):
    """E_{y~p}[∇ log p(y|x)] = ∇ Σ_y p_y = 0, exactly (all labels enumerated)."""
    x = _images(2)
    xs = x.repeat_interleave(K, dim=0)
    ys = torch.arange(K).repeat(2)
    sv = G.score_vectors(small, xs, labels=ys)
    p = small(x).softmax(1).detach().reshape(-1, 1)
    mean = (p * sv.u).view(2, K, -1).sum(1)
    assert mean.abs().max() < 1e-6 * sv.u.abs().max()
    # and the score is −∇CE = −(p − e_y) hᵀ for the weight
    g = G.contrast_gradients(small, xs[:K])
    torch.testing.assert_close(sv.u[:K, :K * 64].view(K, K, 64), -g[0], atol=1e-6, rtol=1e-5)


def test_sampled_fisher_matches_score_covariance(small):
    x = _images(384, 16, seed=5)
    sv = G.score_vectors(small, x, seed=0)
    fisher = G.fisher_information(small, x, full=True, seed=0)
    torch.testing.assert_close(fisher, sv.u.T @ sv.u / len(x))
    cov = torch.cov(sv.u.T, correction=0)
    assert (fisher - cov).norm() / fisher.norm() < 0.05
    # given labels change the labels used (empirical Fisher)
    y = torch.zeros(384, dtype=torch.long)
    assert (G.score_vectors(small, x, labels=y).labels == 0).all()
    with pytest.raises(ValueError, match="labels class 99"):
        G.score_vectors(small, x, labels=99)


# ------------------------------------------------------------------- hygiene and inputs
def _state(model):
    return ([m.training for m in model.modules()], [p.requires_grad for p in model.parameters()],
            [(len(m._forward_hooks), len(m._backward_hooks), len(m._forward_pre_hooks))
             for m in model.modules()])


def test_every_function_restores_mode_flags_and_hooks():
    torch.manual_seed(0)
    model = SmallCNN(3, K).train()
    model.features[0][0].weight.requires_grad_(False)
    before = _state(model)
    x = _images(2, 32)
    G.layer_activations_and_gradients(model, x)
    G.layer_logit_gradients(model, x)
    G.contrast_gradients(model, x)
    G.contrast_gradients_autograd(model, x)
    G.confounding_gradient_norms(model, x)
    G.fisher_information(model, x)
    for call in (lambda: G.layer_activations_and_gradients(model, x, target=K),
                 lambda: G.contrast_gradients(model, x, classes=K),
                 lambda: G.score_vectors(model, x, labels=-1)):
        with pytest.raises(ValueError):
            call()
    assert _state(model) == before
    assert all(p.grad is None for p in model.parameters())


def test_bad_images_name_the_argument(small):
    x = _images(2)
    for fn in (G.contrast_gradients, G.confounding_gradient_norms, G.fisher_information,
               G.layer_activations_and_gradients):
        with pytest.raises(ValueError, match="x must have shape"):
            fn(small, x[0])
        with pytest.raises(TypeError, match="x must be a floating-point"):
            fn(small, x.long())
        bad = x.clone()
        bad[1, 2, 3, 4] = float("nan")
        with pytest.raises(ValueError, match="x contains NaN"):
            fn(small, bad)


def test_default_layer_errors():
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    with pytest.raises(ValueError, match="pass layer="):
        G.default_target_layer(mlp)
    with pytest.raises(TypeError, match="model must be"):
        G.default_target_layer("resnet")
