"""Parameter gradients: closed forms vs autograd loops, torch.func, confounding norms, hygiene."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from _helpers import model_state, random_images
from torch import nn

from tutorial_utils import gradients as G
from tutorial_utils import information, layers
from tutorial_utils.architectures import SmallCNN

K = 14


# ------------------------------------------------------------------- layer gradients


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
    x = random_images(3)
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
    x = random_images(3)
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
    x = random_images(2)
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
    x = random_images(2)
    with pytest.raises(ValueError, match="classes class 14 is out of range"):
        G.contrast_gradients(small, x, classes=[0, 14])
    with pytest.raises(TypeError, match="classes must hold integer"):
        G.contrast_gradients(small, x, classes=[0.5])
    with pytest.raises(ValueError, match="params: 'nope'"):
        G.contrast_gradients_autograd(small, x, params="nope")
    from tutorial_utils.architectures import Ensemble

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
    x = random_images(3)
    out = G.confounding_gradient_norms(small, x, loss)
    assert out.norms.shape == (3, 11) and out.names[-1] == "fc"
    assert out.names[0] == "features.0.0"
    groups = [[f"{m}.{n}" for n, _ in small.get_submodule(m).named_parameters(recurse=False)]
              for m in out.names]
    torch.testing.assert_close(out.norms, _norms_loop(small, x, loss, groups),
                               rtol=1e-4, atol=1e-10)


def test_confounding_layers_subset_and_last_layer_closed_form(small):
    x = random_images(3)
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


# ------------------------------------------------------------------- hygiene and inputs
def test_every_function_restores_mode_flags_and_hooks():
    torch.manual_seed(0)
    model = SmallCNN(3, K).train()
    model.features[0][0].weight.requires_grad_(False)
    before = model_state(model)
    x = random_images(2, 32)
    layers.layer_activations_and_gradients(model, x)
    layers.layer_logit_gradients(model, x)
    G.contrast_gradients(model, x)
    G.contrast_gradients_autograd(model, x)
    G.confounding_gradient_norms(model, x)
    information.fisher_information(model, x)
    for call in (lambda: layers.layer_activations_and_gradients(model, x, target=K),
                 lambda: G.contrast_gradients(model, x, classes=K),
                 lambda: information.score_vectors(model, x, labels=-1)):
        with pytest.raises(ValueError):
            call()
    assert model_state(model) == before
    assert all(p.grad is None for p in model.parameters())


def test_bad_images_name_the_argument(small):
    x = random_images(2)
    for fn in (G.contrast_gradients, G.confounding_gradient_norms, information.fisher_information,
               layers.layer_activations_and_gradients):
        with pytest.raises(ValueError, match="x must have shape"):
            fn(small, x[0])
        with pytest.raises(TypeError, match="x must be a floating-point"):
            fn(small, x.long())
        bad = x.clone()
        bad[1, 2, 3, 4] = float("nan")
        with pytest.raises(ValueError, match="x contains NaN"):
            fn(small, bad)


@pytest.mark.parametrize("loss", ["sigmoid", "softmax"])
def test_hooked_norms_equal_vmap_norms(small, loss):
    x = random_images(5)
    hooks = G.confounding_gradient_norms(small, x, loss, method="hooks")
    vmapped = G.confounding_gradient_norms(small, x, loss, method="vmap")
    assert hooks.names == vmapped.names
    torch.testing.assert_close(hooks.norms, vmapped.norms, rtol=1e-4, atol=1e-6)
    sub = G.confounding_gradient_norms(small, x, loss, layers=[small.last_conv[1][0], small.fc],
                                       method="hooks")
    torch.testing.assert_close(sub.norms, vmapped.norms[:, [vmapped.names.index(n)
                                                            for n in sub.names]],
                               rtol=1e-4, atol=1e-6)
    assert not any(m._forward_hooks or m._backward_hooks for m in small.modules())


def test_hooked_norms_strided_dilated_padded_convs_equal_vmap():
    model = nn.Sequential(nn.Conv2d(3, 5, 3, stride=2, padding=1), nn.ReLU(),
                          nn.Conv2d(5, 4, (3, 2), dilation=2, padding=(2, 1)), nn.ReLU(),
                          nn.Conv2d(4, 6, 3, stride=(2, 1), bias=False), nn.Flatten(),
                          nn.LazyLinear(3))
    x = random_images(3)
    model(x)  # materialise the lazy layer
    model.eval()
    hooks = G.confounding_gradient_norms(model, x, method="hooks")
    vmapped = G.confounding_gradient_norms(model, x, method="vmap")
    torch.testing.assert_close(hooks.norms, vmapped.norms, rtol=1e-4, atol=1e-7)


def test_in_place_after_a_layer_falls_back_to_vmap():
    """ReLU(inplace=True) rewrites the conv's output: its gradient would be the ReLU's."""
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(inplace=True), nn.Flatten(),
                          nn.Linear(4 * 46 * 46, 3)).eval()
    x = random_images(2)
    with pytest.raises(ValueError, match="in place"):
        G.confounding_gradient_norms(model, x, method="hooks")
    auto = G.confounding_gradient_norms(model, x)
    vmapped = G.confounding_gradient_norms(model, x, method="vmap")
    torch.testing.assert_close(auto.norms, vmapped.norms)


def test_hooked_norms_refuse_unsupported_layers():
    model = nn.Sequential(nn.Conv2d(3, 4, 3, groups=1), nn.Flatten(), nn.LayerNorm(4 * 46 * 46),
                          nn.Linear(4 * 46 * 46, 3)).eval()
    x = random_images(2)
    with pytest.raises(ValueError, match="method='vmap'"):
        G.confounding_gradient_norms(model, x, method="hooks")
    auto = G.confounding_gradient_norms(model, x)  # falls back to vmap
    assert auto.norms.shape == (2, 3)
    with pytest.raises(ValueError, match="method"):
        G.confounding_gradient_norms(model, x, method="fast")
