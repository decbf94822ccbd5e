"""Tests for tutorial_utils.trust: GradTrust (gradient path vs logit oracle) and VOICE."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tutorial_utils import cam, metrics, trust
from tutorial_utils.forward import normalize_maps

# ------------------------------------------------------------------------------ GradTrust


def test_last_layer_gradients_equal_a_per_image_backward_loop(tiny, x8):
    """The batched torch.func gradient is what demo.py's per-image backward leaves in .grad."""
    grads, z = trust.last_layer_gradients(tiny, x8)
    k = z.shape[1]
    assert grads.shape == (8, k, tiny.fc.in_features)
    for b in range(len(x8)):
        tiny.zero_grad()
        out = tiny(x8[b:b + 1])
        F.mse_loss(out, torch.full_like(out, 1 / k)).backward()
        torch.testing.assert_close(grads[b], tiny.fc.weight.grad, rtol=1e-5, atol=1e-7)
    # ... and it has the closed form (2/K) (z - 1/K) h^T of a linear layer
    h = tiny.penultimate(x8).detach()
    closed = (2 / k) * (z - 1 / k)[:, :, None] * h[:, None, :]
    torch.testing.assert_close(grads, closed, rtol=1e-5, atol=1e-7)


def test_gradtrust_gradient_path_equals_logit_oracle(tiny, x8, sign_model, signs):
    for model, x in ((tiny, x8), (sign_model, signs.x_test[::25])):
        with torch.no_grad():
            z = model.eval()(x)
        got = trust.gradtrust(model, x)
        torch.testing.assert_close(got, trust.gradtrust_from_logits(z), rtol=1e-4, atol=1e-6)
        assert (got >= 1 - 1e-6).all() and (got <= z.shape[1] + 1e-4).all()


def test_gradtrust_is_per_sample(sign_model, signs):
    x = signs.x_test[::40]
    batch = trust.gradtrust(sign_model, x)
    single = torch.cat([trust.gradtrust(sign_model, x[i:i + 1]) for i in range(len(x))])
    torch.testing.assert_close(batch, single, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(trust.gradtrust(sign_model, x, batch_size=3), batch,
                               rtol=1e-5, atol=1e-6)
    # the authors' batch-mean gradient would give one number for the whole batch, not these
    grads, _ = trust.last_layer_gradients(sign_model, x)
    mixed = trust.gradtrust_from_gradients(grads.mean(0, keepdim=True))
    assert not torch.allclose(mixed.expand_as(batch), batch)


def test_gradtrust_from_logits_hand_cases():
    k = 4
    z = torch.full((3, k), 1 / k)
    z[1, 2] += 1.0  # one logit away from 1/K: max d^4 / mean d^4 = K
    z[2] += torch.tensor([1.0, -1.0, 0.0, 0.0])  # two equal |d|: K / 2
    torch.testing.assert_close(trust.gradtrust_from_logits(z), torch.tensor([1.0, 4.0, 2.0]))
    g = torch.zeros(2, 3, 5)  # all-zero gradients: 0/0 is defined as 1
    torch.testing.assert_close(trust.gradtrust_from_gradients(g), torch.ones(2))


def test_gradtrust_feeds_auac(tiny, x8):
    t = trust.gradtrust(tiny, x8)
    correct = torch.tensor([1, 0, 1, 1, 0, 1, 1, 0], dtype=torch.bool)
    curve = metrics.auac(t, correct)
    assert 0 <= curve.area <= 1 and curve.values[0] == pytest.approx(5 / 8)


class _Scalar(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.fc = nn.Linear(4, 1)

    def forward(self, x):
        return self.fc(self.conv(x).mean((2, 3)))


def test_gradtrust_bad_inputs(tiny, x8, zoo_models, signs):
    with pytest.raises(ValueError, match="K >= 2"):
        trust.gradtrust_from_logits(torch.zeros(3, 1))
    with pytest.raises(ValueError, match="logits"):
        trust.gradtrust_from_logits(torch.zeros(3))
    with pytest.raises(ValueError, match="grads"):
        trust.gradtrust_from_gradients(torch.zeros(3, 4))
    with pytest.raises(ValueError, match="K >= 2"):
        trust.gradtrust(_Scalar(), x8)
    with pytest.raises(TypeError, match="no final nn.Linear"):
        trust.gradtrust(nn.Sequential(nn.Conv2d(3, 2, 3), nn.Flatten()), x8)
    with pytest.raises(ValueError, match="not the model's output"):
        trust.gradtrust(zoo_models["signs-ensemble"], signs.x_test[:2])
    with pytest.raises(TypeError, match="layer"):
        trust.gradtrust(tiny, x8, layer=tiny.conv)
    with pytest.raises(ValueError, match="submodule"):
        trust.gradtrust(tiny, x8, layer=nn.Linear(6, 4))
    with pytest.raises(ValueError, match="x must have shape"):
        trust.gradtrust(tiny, x8[0])
    with pytest.raises(ValueError, match="batch_size"):
        trust.gradtrust(tiny, x8, batch_size=0)


def test_gradtrust_restores_model_state_and_leaves_no_hooks(tiny, x8):
    tiny.train()
    tiny.conv.weight.requires_grad_(False)
    trust.gradtrust(tiny, x8)
    assert tiny.training and not tiny.conv.weight.requires_grad and tiny.fc.weight.requires_grad
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in tiny.modules())
    assert tiny.fc.weight.grad is None  # no .grad written


# ------------------------------------------------------------------------------ VOICE


def test_voice_variance_equals_a_loop_over_contrast_classes(tiny, x8):
    out = trust.voice(tiny, x8)
    with torch.no_grad():
        pred = tiny(x8).argmax(1)
    k = 4
    for b in range(len(x8)):
        maps = torch.stack([cam.contrast_cam(tiny, x8[b:b + 1], contrast=q)[0]
                            for q in range(k) if q != int(pred[b])])
        var = ((maps - maps.mean(0)) ** 2).mean(0)
        torch.testing.assert_close(out.uncertainty[b], normalize_maps(var), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(out.explanation, cam.grad_cam(tiny, x8), atol=1e-6, rtol=1e-5)
    assert out.explanation.shape == out.uncertainty.shape == (8, 12, 12)
    assert out.iou.shape == out.snr.shape == (8,)
    assert ((out.iou >= 0) & (out.iou <= 1)).all() and (out.snr >= 0).all()
    assert out.uncertainty.min() >= 0 and out.uncertainty.max() <= 1


def test_voice_is_per_sample_and_summaries_follow_the_maps(sign_model, picker):
    x = picker[:5]
    batch = trust.voice(sign_model, x)
    single = trust.voice(sign_model, x[2:3])
    torch.testing.assert_close(single.uncertainty[0], batch.uncertainty[2], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(batch.iou, trust.explanation_iou(batch.explanation,
                                                                batch.uncertainty, 0.1))
    torch.testing.assert_close(batch.snr, trust.map_snr(batch.uncertainty))


def test_voice_with_two_classes_has_no_uncertainty(x8):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                        nn.Flatten(), nn.Linear(6, 2)).eval()
    out = trust.voice(net, x8)  # a single contrast class: zero variance everywhere
    assert torch.equal(out.uncertainty, torch.zeros_like(out.uncertainty))
    assert torch.equal(out.snr, torch.zeros(8)) and torch.equal(out.iou, torch.zeros(8))


def test_iou_and_snr_hand_cases():
    e = torch.tensor([[[0.5, 0.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, 0.0]]])
    u = torch.tensor([[[0.5, 0.5], [0.0, 0.0]], [[0.0, 0.0], [0.0, 0.0]]])
    torch.testing.assert_close(trust.explanation_iou(e, u), torch.tensor([0.5, 0.0]))
    torch.testing.assert_close(trust.explanation_iou(e, u, threshold=0.6), torch.zeros(2))
    maps = torch.tensor([[[0.0, 1.0], [0.0, 1.0]], [[0.3, 0.3], [0.3, 0.3]]])
    torch.testing.assert_close(trust.map_snr(maps), torch.tensor([1.0, 0.0]))  # constant -> 0


@pytest.mark.parametrize("threshold, err", [(-0.1, ValueError), (1.0, ValueError),
                                            ("0.1", TypeError), (True, TypeError)])
def test_bad_thresholds_name_the_argument(tiny, x8, threshold, err):
    m = torch.rand(2, 4, 4)
    with pytest.raises(err, match="threshold"):
        trust.explanation_iou(m, m, threshold)
    with pytest.raises(err, match="threshold"):
        trust.voice(tiny, x8, threshold=threshold)


def test_map_checks_name_the_argument():
    with pytest.raises(ValueError, match="explanation"):
        trust.explanation_iou(torch.rand(4, 4), torch.rand(4, 4))
    with pytest.raises(ValueError, match="same shape"):
        trust.explanation_iou(torch.rand(2, 4, 4), torch.rand(2, 5, 5))
    with pytest.raises(TypeError, match="maps"):
        trust.map_snr([[0.0]])
    with pytest.raises(ValueError, match="NaN"):
        trust.map_snr(torch.full((1, 2, 2), float("nan")))


def test_voice_restores_model_state_and_leaves_no_hooks(tiny, x8):
    tiny.train()
    trust.voice(tiny, x8)
    assert tiny.training
    assert all(p.requires_grad for p in tiny.parameters())
    assert all(not m._forward_hooks and not m._backward_hooks for m in tiny.modules())


def test_gradtrust_slides_matches_backpropagated_contrast_losses():
    """The slides' GradTrust from real backward passes: CE(z, c) for P and the top-k contrast
    classes, variance of the last-layer weight gradient, predicted over mean contrast."""
    import torch.nn.functional as F

    from tutorial_utils.architectures import SmallCNN
    from tutorial_utils.forward import final_linear

    torch.manual_seed(0)
    model = SmallCNN(in_channels=1, num_classes=5).eval()
    x = torch.rand(3, 1, 28, 28)
    ratio, trust_score = trust.gradtrust_slides(model, x, k=2)
    fc = final_linear(model)
    ref = []
    for xb in x:
        z = model(xb[None])
        order = z[0].topk(3).indices
        v = []
        for c in order:
            g, = torch.autograd.grad(F.cross_entropy(z, c[None]), fc.weight, retain_graph=True)
            v.append(g.double().var())
        ref.append(v[0] / torch.stack(v[1:]).mean())
    torch.testing.assert_close(ratio.double(), torch.stack(ref), rtol=1e-4, atol=0)
    torch.testing.assert_close(trust_score * ratio, torch.ones(3), rtol=1e-5, atol=0)
    assert all(p.grad is None for p in model.parameters())
    with pytest.raises(ValueError, match="k must be at most"):
        trust.gradtrust_slides(model, x, k=5)
