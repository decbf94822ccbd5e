"""The small vision transformer (zoo member ``signs-vit``, architectures.SignViT): anatomy,
attention rollout, and every method of the course on the token grid, against the peers."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from tutorial_utils import cam, layers, models, rollout, uncertainty
from tutorial_utils.architectures import SignViT

RECIPE = dict(patch_size=8, dim=96, depth=4, heads=4, mlp_ratio=2.0)


@pytest.fixture(scope="module")
def vit(signs):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = SignViT(3, 14, **RECIPE, mean=signs.mean, std=signs.std)
    path = models.data_dir() / "signs-vit.pt"
    if path.exists():
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model.eval()


@pytest.fixture(scope="module")
def images(signs):
    return signs.x_test[::100][:12]  # 12 test images, several classes


def test_anatomy(vit):
    h, w = vit.token_grid
    assert (h, w) == (6, 6)  # 48 / patch 8
    assert isinstance(vit.fc, nn.Linear) and vit.fc.out_features == 14
    assert layers.default_target_layer(vit) is vit.blocks[-1].norm1
    dropouts = [m for m in vit.modules() if isinstance(m, nn.modules.dropout._DropoutNd)]
    assert dropouts == [vit.dropout]  # MC dropout samples the head only, as for the CNN
    assert all(b.norm_first and b.self_attn.batch_first for b in vit.blocks)
    with pytest.raises(ValueError, match="patch_size must divide"):
        SignViT(3, 14, patch_size=7)
    with pytest.raises(ValueError, match="heads must divide"):
        SignViT(3, 14, dim=90, heads=4)
    with pytest.raises(ValueError, match=r"x must have shape \(B, 3, 48, 48\)"):
        vit(torch.rand(1, 3, 32, 32))


def test_forward_batch_vs_single_and_penultimate(vit, images):
    with torch.no_grad():
        z = vit(images)  # the fused fast path (eval, no grad, no hooks)
        single = torch.cat([vit(images[i:i + 1]) for i in range(len(images))])
        h = vit.penultimate(images)
    with torch.enable_grad():
        z_slow = vit(images).detach()  # parameters require grad: the ordinary modules
    torch.testing.assert_close(single, z, rtol=0, atol=1e-5)
    torch.testing.assert_close(z_slow, z, rtol=0, atol=1e-5)
    torch.testing.assert_close(vit.fc(h), z, rtol=0, atol=1e-6)
    h2, z2 = models.features_and_logits(vit, images)
    torch.testing.assert_close(h2, h, rtol=0, atol=1e-5)
    torch.testing.assert_close(z2, z, rtol=0, atol=1e-5)
    assert not vit.training


def test_tokens_to_map(vit):
    h, w = vit.token_grid
    t = torch.arange(2 * (1 + h * w) * 3, dtype=torch.float32).view(2, 1 + h * w, 3)
    m = vit.tokens_to_map(t)
    assert m.shape == (2, 3, h, w)
    assert torch.equal(m[1, 2, 3, 5], t[1, 1 + 3 * w + 5, 2])  # row-major, class token dropped
    with pytest.raises(ValueError, match="tokens must have shape"):
        vit.tokens_to_map(t[:, 1:])


def test_hooked_attention_reproduces_each_block(vit, images):
    """The recorded probabilities P rebuild every block's output from its input exactly."""
    inputs, outputs = [], []

    def keep(_module, args, output):
        inputs.append(args[0])
        outputs.append(output)

    hooks = [b.register_forward_hook(keep) for b in vit.blocks]
    try:
        with torch.no_grad(), rollout.attention_probabilities(vit) as probs:
            z_hooked = vit(images)
    finally:
        for hook in hooks:
            hook.remove()
    with torch.no_grad():
        z = vit(images)
    torch.testing.assert_close(z_hooked, z, rtol=0, atol=1e-5)  # the hooks change nothing
    for block, x, y, p in zip(vit.blocks, inputs, outputs, probs, strict=True):
        attn = block.self_attn
        heads, d = attn.num_heads, attn.embed_dim
        n = 1 + vit.token_grid[0] * vit.token_grid[1]
        assert p.shape == (len(images), heads, n, n)
        torch.testing.assert_close(p.sum(-1), torch.ones_like(p[..., 0]), rtol=0, atol=1e-5)
        with torch.no_grad():
            v = nn.functional.linear(block.norm1(x), attn.in_proj_weight[2 * d:],
                                     attn.in_proj_bias[2 * d:])
            v = v.unflatten(-1, (heads, d // heads)).transpose(1, 2)  # (B, H, N, d/H)
            o = attn.out_proj((p @ v).transpose(1, 2).flatten(2))
            x1 = x + o
            rebuilt = x1 + block.linear2(block.activation(block.linear1(block.norm2(x1))))
        torch.testing.assert_close(rebuilt, y, rtol=0, atol=1e-5)


def test_rollout(vit, images):
    r = rollout.rollout_matrix(vit, images)
    n = 1 + vit.token_grid[0] * vit.token_grid[1]
    assert r.shape == (len(images), n, n)
    torch.testing.assert_close(r.sum(-1), torch.ones(len(images), n), rtol=0, atol=1e-5)
    assert (r >= 0).all()
    maps = rollout.attention_rollout(vit, images)
    assert maps.shape == (len(images), 48, 48)
    assert maps.min() >= 0 and maps.max() <= 1
    assert torch.allclose(maps.amax(dim=(1, 2)), torch.ones(len(images)))
    raw = rollout.attention_rollout(vit, images, raw=True)
    torch.testing.assert_close(raw, r[:, 0, 1:].view(-1, *vit.token_grid))
    one = rollout.attention_rollout(vit, images[3:4])  # batch-independent
    torch.testing.assert_close(one[0], maps[3], rtol=0, atol=1e-4)
    # residual = 1 ignores attention: R = I, the class token draws on no patch
    assert rollout.attention_rollout(vit, images, residual=1.0, raw=True).abs().max() == 0
    assert not vit.training and not any(b.self_attn._forward_hooks for b in vit.blocks)
    with pytest.raises(TypeError, match="TransformerEncoderLayer"):
        rollout.rollout_matrix(nn.Sequential(nn.Conv2d(3, 2, 3), nn.Flatten()), images)


def _our_token_grad_cam(model, x, layer, target):
    """Grad-CAM from the course's own layer gradients, with the token -> grid reshape."""
    acts, grads = layers.layer_activations_and_gradients(model, x, layer, target=target)
    acts, grads = model.tokens_to_map(acts), model.tokens_to_map(grads)
    return cam.cam_from_weights(acts, cam.gradcam_weights(acts, grads), x.shape[-2:])


def test_grad_cam_matches_pytorch_grad_cam(vit, images):
    gc = pytest.importorskip("pytorch_grad_cam")
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    pred = models.predict_logits(vit, images).argmax(1)
    ours = _our_token_grad_cam(vit, images, vit.target_layer, pred)
    peer_model = copy.deepcopy(vit)  # pytorch-grad-cam writes .grad and sets eval mode
    with gc.GradCAM(model=peer_model, target_layers=[peer_model.target_layer],
                    reshape_transform=peer_model.tokens_to_map) as explainer:
        peer = explainer(input_tensor=images,
                         targets=[ClassifierOutputTarget(int(k)) for k in pred])
    assert ours.shape == (len(images), 48, 48)
    assert ours.amax(dim=(1, 2)).min() == 1  # not empty
    torch.testing.assert_close(ours, torch.from_numpy(peer), rtol=0, atol=1e-5)


def test_last_block_output_has_no_patch_gradient(vit, images):
    """Why the CAM layer is blocks[-1].norm1: the logits read only the class token after the
    per-token LayerNorm, so the last block's patch tokens get exactly zero gradient."""
    _, grads = layers.layer_activations_and_gradients(vit, images, vit.blocks[-1])
    assert grads[:, 1:].abs().max() == 0 and grads[:, 0].abs().max() > 0


def test_scores_use_class_token_features(vit, images, signs):
    h, z = models.features_and_logits(vit, images)
    gn = uncertainty.gradnorm(vit, images)
    expected = (z.softmax(1) - 1 / 14).abs().sum(1) * h.abs().sum(1)
    torch.testing.assert_close(gn, expected)
    maha = uncertainty.Mahalanobis(vit).fit(signs.x_train[::10], signs.y_train[::10])
    s = maha.score(images)
    assert s.shape == (len(images),) and (s <= 0).all()
