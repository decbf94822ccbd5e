"""CAM methods: captum oracle, analytic identities, invariances, state hygiene, bad inputs."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pytest
import torch
import torch.nn.functional as F
from _helpers import model_state, random_images, scaled_close
from torch import nn

from tutorial_utils import cam, contrast, plotting
from tutorial_utils.architectures import SmallCNN
from tutorial_utils.forward import normalize_maps
from tutorial_utils.layers import default_target_layer, layer_activations_and_gradients

K = 14


@pytest.fixture(scope="module")
def resnet():
    from torchvision.models import resnet18

    torch.manual_seed(0)
    return resnet18(weights=None, num_classes=10).eval()


def _captum_gradcam(model, layer, x, target):
    from captum.attr import LayerAttribution, LayerGradCam

    raw = LayerGradCam(model, layer).attribute(x, target=target, relu_attributions=True)
    up = LayerAttribution.interpolate(raw, tuple(x.shape[-2:]), "bilinear")
    up = torch.relu(up)
    lo = up.amin(dim=(2, 3), keepdim=True)
    hi = up.amax(dim=(2, 3), keepdim=True)
    return raw[:, 0].detach(), ((up - lo) / (hi - lo))[:, 0].detach()


# ------------------------------------------------------------------- captum oracle
@pytest.mark.parametrize("target", [None, 3, [0, 5, 13, 7]])
def test_grad_cam_matches_captum_small_cnn(small, target):
    x = random_images()
    t = small(x).argmax(1) if target is None else target
    ref_raw, ref_map = _captum_gradcam(small, small.last_conv, x, t)
    raw = cam.grad_cam(small, x, target, raw=True)
    maps = cam.grad_cam(small, x, target)
    assert raw.shape == (4, 12, 12) and maps.shape == (4, 48, 48)
    scaled_close(raw, ref_raw)
    assert torch.allclose(maps, ref_map, atol=1e-5)


def test_grad_cam_matches_captum_resnet18(resnet):
    x = random_images(2, 64)
    t = resnet(x).argmax(1)
    ref_raw, ref_map = _captum_gradcam(resnet, resnet.layer4[-1], x, t)
    scaled_close(cam.grad_cam(resnet, x, raw=True), ref_raw)
    assert torch.allclose(cam.grad_cam(resnet, x), ref_map, atol=1e-5)


# ------------------------------------------------------------------- identities
def test_cross_entropy_gradient_is_p_minus_onehot():
    z = torch.randn(5, K, dtype=torch.float64, requires_grad=True)
    q = torch.tensor([0, 3, 3, 13, 7])
    (g,) = torch.autograd.grad(F.cross_entropy(z, q, reduction="sum"), z)
    assert torch.allclose(g, z.softmax(1) - F.one_hot(q, K).double(), atol=1e-12)


class _ContrastScore(nn.Module):
    """A one-output model ``s = (p.detach() − e_Q) · z``: its Grad-CAM is ContrastCAM."""

    def __init__(self, model: nn.Module, q: torch.Tensor) -> None:
        super().__init__()
        self.model, self.q = model, q

    def forward(self, x):
        z = self.model(x)
        u = z.softmax(1).detach() - F.one_hot(self.q, z.shape[1]).to(z)
        return (u * z).sum(1, keepdim=True)


@pytest.mark.parametrize("raw", [True, False])
def test_contrast_cam_is_grad_cam_of_p_minus_eq(small, raw):
    x = random_images()
    q = torch.tensor([2, 2, 9, 0])
    wrapper = _ContrastScore(small, q).eval()
    ref = cam.grad_cam(wrapper, x, target=0, layer=small.last_conv, raw=raw)
    got = cam.contrast_cam(small, x, contrast=q, raw=raw)
    scaled_close(got, ref) if raw else torch.testing.assert_close(got, ref)


def test_contrast_cam_defaults_to_the_runner_up_and_is_grad_cam_of_a_contrast_target(small):
    x = random_images()
    z = small(x).detach()
    runner_up = z.topk(2, dim=1).indices[:, 1]
    default = cam.contrast_cam(small, x)
    torch.testing.assert_close(default, cam.contrast_cam(small, x, contrast=runner_up))
    torch.testing.assert_close(default, cam.grad_cam(small, x, cam.contrast_target()))
    # target is the explained class P: the default Q is the most probable class other than P
    p = torch.tensor([3, 3, 3, 3])
    others = z.clone()
    others[:, 3] = -float("inf")
    q = others.argmax(1)
    torch.testing.assert_close(cam.contrast_cam(small, x, p),
                               cam.contrast_cam(small, x, contrast=q))
    torch.testing.assert_close(cam.contrast_cam(small, x, p, contrast=q),
                               cam.grad_cam(small, x, cam.contrast_target(q)))


def test_contrast_cam_all_matches_one_by_one(small):
    x = random_images(3)
    every = cam.contrast_cam_all(small, x)
    every_raw = cam.contrast_cam_all(small, x, raw=True)
    assert every.shape == (3, K, 48, 48) and every_raw.shape == (3, K, 12, 12)
    for q in range(K):
        torch.testing.assert_close(every[:, q], cam.contrast_cam(small, x, contrast=q), atol=1e-5,
                                   rtol=0)
        scaled_close(every_raw[:, q], cam.contrast_cam(small, x, contrast=q, raw=True),
                             1e-4)


def test_counterfactual_cam_negates_the_weights(small):
    x = random_images()
    acts, grads = layer_activations_and_gradients(small, x, target=4)
    alpha = grads.mean(dim=(2, 3))
    expect = torch.relu(torch.einsum("bc,bchw->bhw", -alpha, acts))
    got = cam.counterfactual_cam(small, x, 4, raw=True)
    scaled_close(got, expect)
    ref = cam.cam_from_weights(acts, -alpha, (48, 48))
    torch.testing.assert_close(cam.counterfactual_cam(small, x, 4), ref)
    # Grad-CAM and its counterfactual use opposite signs of one signed map
    plus = cam.grad_cam(small, x, 4, raw=True)
    both = (plus > 0) & (got > 0)
    assert not both.any()


def _gradcam_pp_reference(acts, grads):
    """Grad-CAM++ weights written element by element (float64 loops), for the oracle."""
    acts, grads = acts.double(), grads.double()
    b_, c_, h_, w_ = acts.shape
    out = torch.zeros(b_, c_, dtype=torch.float64)
    for b in range(b_):
        for c in range(c_):
            total = acts[b, c].sum()
            for i in range(h_):
                for j in range(w_):
                    g = grads[b, c, i, j]
                    denom = 2 * g**2 + total * g**3
                    a = g**2 / denom if g != 0 and denom != 0 else 0.0
                    out[b, c] += a * max(g, 0.0)
    return out


def test_grad_cam_pp_weights_match_elementwise_formula(small):
    x = random_images(2, 24)
    acts, grads = layer_activations_and_gradients(small, x, target=[1, 6])
    ref = _gradcam_pp_reference(acts, grads)
    torch.testing.assert_close(cam.gradcam_pp_weights(acts, grads).double(), ref,
                               rtol=1e-4, atol=1e-6 * ref.abs().max().item())
    expect = torch.relu(torch.einsum("bc,bchw->bhw", ref.float(), acts))
    scaled_close(cam.grad_cam_pp(small, x, [1, 6], raw=True), expect, 1e-4)


# ------------------------------------------------------------------- invariances
@pytest.mark.parametrize("method", [cam.grad_cam, cam.grad_cam_pp, cam.counterfactual_cam,
                                    cam.contrast_cam])
def test_batch_equals_single_images_and_range(small, method):
    x = random_images(3)
    batch = method(small, x, 5)
    single = torch.cat([method(small, x[i:i + 1], 5) for i in range(3)])
    torch.testing.assert_close(batch, single, atol=1e-5, rtol=0)
    assert batch.min() >= 0 and batch.max() <= 1 and torch.isfinite(batch).all()
    assert batch.device == x.device and batch.dtype == x.dtype


def test_float64_and_grayscale_inputs():
    torch.manual_seed(0)
    model = SmallCNN(1, 10).eval().double()
    x = torch.rand(2, 1, 32, 32, dtype=torch.float64)
    maps = cam.grad_cam(model, x)
    assert maps.dtype == torch.float64 and maps.shape == (2, 32, 32)


def test_constant_map_becomes_zeros_without_nan():
    maps = torch.stack([torch.zeros(6, 6), torch.full((6, 6), 3.0), torch.arange(36.).view(6, 6)])
    out = normalize_maps(maps)
    assert torch.isfinite(out).all()
    assert (out[0] == 0).all() and (out[1] == 0).all()
    assert out[2].min() == 0 and out[2].max() == 1


def test_state_restored_even_after_an_error():
    torch.manual_seed(0)
    model = SmallCNN(3, K)  # training mode on purpose
    model.fc.weight.requires_grad_(False)
    modes = [m.training for m in model.modules()]
    flags = [p.requires_grad for p in model.parameters()]
    hooks = model_state(model)
    x = random_images(2)
    for method in (cam.grad_cam, cam.grad_cam_pp, cam.counterfactual_cam, cam.contrast_cam):
        method(model, x)
    cam.contrast_cam_all(model, x)
    with pytest.raises(ValueError, match="target"):
        cam.grad_cam(model, x, target=K)
    with pytest.raises(ValueError, match="contrast"):
        cam.contrast_cam(model, x, contrast=-1)
    assert [m.training for m in model.modules()] == modes
    assert [p.requires_grad for p in model.parameters()] == flags
    assert model_state(model) == hooks
    assert all(p.grad is None for p in model.parameters())


def test_eval_mode_result_in_training_mode_model(small):
    x = random_images(2)
    expect = cam.grad_cam(small, x)
    small.train()
    try:
        torch.testing.assert_close(cam.grad_cam(small, x), expect)
    finally:
        small.eval()


# ------------------------------------------------------------------- layers
def test_default_layers_of_zoo_and_torchvision_models(small):
    from torchvision import models as tv

    assert default_target_layer(small) is small.last_conv
    r = tv.resnet18(weights=None)
    assert default_target_layer(r) is r.layer4[-1]
    v = tv.vgg11(weights=None)
    assert default_target_layer(v) is v.features[-1]
    mb = tv.mobilenet_v2(weights=None)
    assert default_target_layer(mb) is mb.features[-1]
    d = tv.densenet121(weights=None)
    assert default_target_layer(d) is d.features[-1] is d.features.norm5
    generic = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 5, 3), nn.ReLU(),
                            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(5, 2))
    assert default_target_layer(generic) is generic[2]


def test_cam_through_in_place_relu_after_the_layer():
    """DenseNet's norm5 is followed by an in-place ReLU in ``forward``: the captured
    activations must be the pre-ReLU ones, and the gradient exact (oracle: by hand)."""
    from torchvision import models as tv

    torch.manual_seed(0)
    model = tv.DenseNet(growth_rate=8, block_config=(2, 2), num_init_features=8,
                        num_classes=5).eval()
    x = random_images(2, 32)
    acts = model.features(x).detach().requires_grad_(True)
    z = model.classifier(F.adaptive_avg_pool2d(torch.relu(acts), 1).flatten(1))
    (grads,) = torch.autograd.grad(z.gather(1, z.argmax(1, keepdim=True)).sum(), acts)
    expect = torch.relu(torch.einsum("bc,bchw->bhw", grads.mean(dim=(2, 3)), acts.detach()))
    assert default_target_layer(model) is model.features.norm5
    scaled_close(cam.grad_cam(model, x, raw=True), expect)
    small_mobilenet = tv.mobilenet_v2(weights=None, num_classes=5, width_mult=0.25).eval()
    with pytest.raises(ValueError, match="1x1 output"):  # 32 px / stride 32: no spatial map
        cam.grad_cam(small_mobilenet, x)
    maps = cam.grad_cam(small_mobilenet, random_images(2, 64))  # 2x2 at its last block
    assert maps.shape == (2, 64, 64) and torch.isfinite(maps).all()


def test_generic_last_conv_with_in_place_relu_matches_explicit_relu():
    torch.manual_seed(0)
    def net(inplace):
        return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(inplace=inplace),
                             nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 3))
    a, b = net(True).eval(), net(False).eval()
    b.load_state_dict(a.state_dict())
    x = random_images(2, 16)
    torch.testing.assert_close(cam.grad_cam(a, x, raw=True), cam.grad_cam(b, x, raw=True))


# ------------------------------------------------------------------- bad inputs
def test_bad_inputs_name_the_argument(small):
    x = random_images(2)
    with pytest.raises(ValueError, match="x must have shape"):
        cam.grad_cam(small, x[0])
    with pytest.raises(TypeError, match=r"x is an 8-bit.*x.float\(\) / 255"):
        cam.grad_cam(small, (x * 255).to(torch.uint8))
    with pytest.raises(ValueError, match=r"pixels in \[0, 1\].*divide by 255"):
        cam.grad_cam(small, x * 255)
    bad = x.clone()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="x contains NaN"):
        cam.grad_cam(small, bad)
    with pytest.raises(ValueError, match="target class 14 is out of range"):
        cam.grad_cam_pp(small, x, 14)
    with pytest.raises(ValueError, match="target must give one class per sample"):
        cam.grad_cam(small, x, [1, 2, 3])
    with pytest.raises(ValueError, match="contrast class 20"):
        cam.contrast_cam(small, x, contrast=20)
    with pytest.raises(TypeError, match="layer must be an nn.Module"):
        cam.grad_cam(small, x, layer="last_conv")
    with pytest.raises(ValueError, match="layer must be a submodule"):
        cam.grad_cam(small, x, layer=nn.Conv2d(3, 3, 1))
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        cam.grad_cam(lambda t: t, x)
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(3 * 48 * 48, 3))
    with pytest.raises(ValueError, match="pass layer="):
        cam.grad_cam(mlp, x)
    with pytest.raises(ValueError, match=r"\(B, C, h, w\)"):
        cam.grad_cam(mlp, x, layer=mlp[1])


def _layer_grad(model, x, loss_fn):
    store = {}
    handle = model.last_conv.register_forward_hook(lambda m, i, o: store.setdefault("A", o))
    try:
        z = model(x.clone().requires_grad_(True))
        (g,) = torch.autograd.grad(loss_fn(z), store["A"])
    finally:
        handle.remove()
    return store["A"].detach()[0], g[0], z.detach()[0]


def test_layer_view_matches_per_class_autograd(sign_model, picker):
    x = picker[8:9]
    v = cam.layer_view(sign_model, x)
    for k in (0, 8, 13):
        a, g, _ = _layer_grad(sign_model, x, lambda z, k=k: z[0, k])
        torch.testing.assert_close(v.activations, a)
        torch.testing.assert_close(v.grads[k], g, atol=1e-6, rtol=1e-4)
    assert not any(m._forward_hooks for m in sign_model.modules())
    assert all(p.requires_grad for p in sign_model.parameters())


def test_contrast_weights_equal_cross_entropy_gradient(sign_model, picker):
    x = picker[8:9]
    v = cam.layer_view(sign_model, x)
    for q in range(14):
        _, g, _ = _layer_grad(sign_model, x, lambda z, q=q: F.cross_entropy(z, torch.tensor([q])))
        torch.testing.assert_close(v.weights("contrast", q), g.mean(dim=(1, 2)),
                                   atol=1e-7, rtol=1e-4)
    torch.testing.assert_close(v.weights("counterfactual"), -v.weights("gradcam"))


def test_maps_agree_with_cam_module(sign_model, picker):
    cam = pytest.importorskip("tutorial_utils.cam")
    x = picker[:3]
    for i in range(3):
        st = contrast.contrast_state(sign_model, x[i:i + 1])
        torch.testing.assert_close(st.gradcam, cam.grad_cam(sign_model, x[i:i + 1])[0].cpu(),
                                   atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(st.counterfactual,
                                   cam.counterfactual_cam(sign_model, x[i:i + 1])[0].cpu(),
                                   atol=1e-4, rtol=1e-4)
        for q in (0, 8, 9):
            ref = cam.contrast_cam(sign_model, x[i:i + 1], contrast=q)[0].cpu()
            torch.testing.assert_close(st.contrast[q], ref, atol=1e-4, rtol=1e-4)


def test_gradcam_steps_identity_and_recipe(sign_model, picker):
    x = picker[9:10]
    s = cam.gradcam_steps(sign_model, x)
    assert s["map"].shape == x.shape[-2:]
    assert 0 <= s["map"].min() and s["map"].max() <= 1
    torch.testing.assert_close(s["relu"], torch.relu(s["weighted"]))
    # GAP -> linear head: the gradient is flat, alpha = W[P] / (h w)
    hw = s["activations"].shape[-1] * s["activations"].shape[-2]
    torch.testing.assert_close(s["alpha"], sign_model.fc.weight[s["target"]].detach() / hw)
    # ContrastCAM = Grad-CAM of (p - e_Q) . z
    st = contrast.contrast_state(sign_model, x)
    for q in range(14):
        w = s["probs"] - torch.eye(14)[q]
        torch.testing.assert_close(cam.gradcam_steps(sign_model, x, weights=w)["map"],
                                   st.contrast[q], atol=1e-5, rtol=1e-4)
    plt.close(plotting.cam.plot_gradcam_steps(s, [str(i) for i in range(14)]))


def test_bad_inputs(sign_model, picker):
    with pytest.raises(ValueError, match="exactly one image"):
        cam.layer_view(sign_model, picker[:2])
    v = cam.layer_view(sign_model, picker[:1])
    with pytest.raises(ValueError, match="out of range"):
        v.weights("contrast", 14)
    with pytest.raises(ValueError, match="needs the contrast class"):
        v.weights("contrast")
    with pytest.raises(ValueError, match="kind must be"):
        v.weights("bogus")
    with pytest.raises(ValueError, match="K=14"):
        cam.gradcam_steps(sign_model, picker[:1], weights=torch.ones(3))
    with pytest.raises(ValueError, match="one \\(Q1, Q2\\) pair"):
        contrast.contrast_gallery(sign_model, picker[:2], [(0, 1)], picker)
