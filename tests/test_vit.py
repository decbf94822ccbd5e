"""The small vision transformer (zoo member ``signs-vit``, architectures.SignViT): anatomy,
attention rollout, and every method of the course on the token grid, against the peers."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from tutorial_utils import (
    cam,
    detection,
    evaluation,
    explainers,
    gradients,
    layers,
    models,
    rollout,
    trust,
    uncertainty,
    zoo,
)
from tutorial_utils.architectures import SignViT


@pytest.fixture(scope="module")
def vit():
    return models.load("signs-vit", train_if_missing=False)


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
    ours = cam.grad_cam(vit, images, pred)  # reshape defaults to vit.tokens_to_map
    explicit = cam.grad_cam(vit, images, pred, vit.target_layer, reshape=vit.tokens_to_map)
    by_hand = _our_token_grad_cam(vit, images, vit.target_layer, pred)
    peer_model = copy.deepcopy(vit)  # pytorch-grad-cam writes .grad and sets eval mode
    with gc.GradCAM(model=peer_model, target_layers=[peer_model.target_layer],
                    reshape_transform=peer_model.tokens_to_map) as explainer:
        peer = explainer(input_tensor=images,
                         targets=[ClassifierOutputTarget(int(k)) for k in pred])
    assert ours.shape == (len(images), 48, 48)
    assert ours.amax(dim=(1, 2)).min() == 1  # not empty
    torch.testing.assert_close(ours, torch.from_numpy(peer), rtol=0, atol=1e-5)
    torch.testing.assert_close(explicit, ours, rtol=0, atol=0)
    torch.testing.assert_close(by_hand, ours, rtol=0, atol=0)
    assert not vit.training and all(p.grad is None for p in vit.parameters())


def test_reshape_option(vit, images):
    assert cam.resolve_reshape(vit, None) == vit.tokens_to_map
    assert cam.resolve_reshape(nn.Conv2d(3, 2, 3), None) is None
    with pytest.raises(TypeError, match="reshape must be a callable"):
        cam.grad_cam(vit, images[:2], reshape="tokens")
    with pytest.raises(ValueError, match=r"reshape must return a \(B, C, h, w\)"):
        cam.grad_cam(vit, images[:2], reshape=lambda t: t[:, 0])
    # the batched all-contrast path and the one-image view reshape the same way
    every_q = cam.contrast_cam_all(vit, images[:3])
    for q in (0, 5):
        torch.testing.assert_close(every_q[:, q], cam.contrast_cam(vit, images[:3], contrast=q),
                                   rtol=0, atol=1e-5)
    view = cam.layer_view(vit, images[:1])
    assert view.activations.shape == (96, *vit.token_grid)
    torch.testing.assert_close(view.cam(view.weights("gradcam")),
                               cam.grad_cam(vit, images[:1])[0], rtol=0, atol=1e-5)


FAST = {"SmoothGrad": dict(n_samples=3), "occlusion": dict(window=8, stride=4),
        "RISE": dict(n_masks=8, cells=4), "SHAPE": dict(n_masks=8, cells=4)}


@pytest.mark.parametrize("name", list(explainers.EXPLAINERS))
def test_every_registry_method_runs_on_the_vit(vit, images, name):
    assert explainers.applies_to(name, vit)
    x = images[:4]
    maps = explainers.explain(name, vit, x, **FAST.get(name, {}))
    assert maps.shape == (4, 48, 48) and maps.min() >= 0 and maps.max() <= 1
    if name not in explainers.CONTROLS:
        assert (maps.amax(dim=(1, 2)) > 0).all(), "an empty map explains nothing"
    # one image alone gets the map it gets in the batch
    one = explainers.explain(name, vit, x[2:3], **FAST.get(name, {}))
    if name != "random map":
        torch.testing.assert_close(one[0], maps[2], rtol=0, atol=1e-4)
    assert not vit.training


def test_guided_backprop_guides_the_gelu(vit, images):
    x = images[:3]
    guided = explainers.explain("guided backprop", vit, x)
    plain = explainers.explain("vanilla gradient", vit, x)
    assert not torch.allclose(guided, plain, atol=1e-3)  # the guidance changes the map
    assert not any(b.activation._forward_hooks for b in vit.blocks)


def test_insertion_deletion_and_sanity_check_on_the_vit(vit, images):
    x = images[:4]
    maps = cam.grad_cam(vit, x)
    curve = evaluation.deletion_curve(vit, x, maps, steps=8)
    assert curve.probs.shape == (4, 9)
    torch.testing.assert_close(curve.probs[:, 0], models.predict_proba(vit, x).amax(1))
    ins = evaluation.insertion_curve(vit, x, maps, steps=8)
    assert ins.probs.shape == (4, 9)
    names = evaluation.randomization_layers(vit)
    assert names[0] == "fc" and names[-1] == "patch_embed"
    assert "blocks.3.self_attn" in names and "blocks.0.norm1" in names
    randomised = dict(evaluation.randomized_models(vit, names[:7], seed=0))
    new = randomised["blocks.3.self_attn"].blocks[3].self_attn.in_proj_weight
    assert not torch.equal(new, vit.blocks[3].self_attn.in_proj_weight)
    assert new.abs().max() <= 1 / 96 ** 0.5  # U(±1/√fan_in), fan_in = dim
    check = evaluation.sanity_check(vit, x, "Grad-CAM", layers=names[:4], seed=0)
    assert check.correlation.shape == (5, 4)
    torch.testing.assert_close(check.correlation[0].float(), torch.ones(4), rtol=0, atol=1e-5)


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


def test_zoo_member_is_verified(vit, monkeypatch):
    entry = zoo.read_manifest()["signs-vit"]
    assert entry["recipe"]["architecture"] == "vit" and entry["recipe"]["weight_decay"] == 0.05
    assert entry["test_accuracy"] >= 0.97 and entry["parameters"] == models.num_parameters(vit)
    assert entry["sha256"] == zoo.sha256(zoo.data_dir() / "signs-vit.pt")
    assert isinstance(vit, SignViT)
    stale = {**zoo.read_manifest(), "signs-vit": {**entry, "sha256": "0" * 64}}
    monkeypatch.setattr(zoo, "read_manifest", lambda: stale)
    with pytest.raises(zoo.ChecksumError, match="signs-vit"):
        models.load("signs-vit", train_if_missing=False)


def test_logit_scores_equal_pytorch_ood_on_the_vit(vit, images):
    det = pytest.importorskip("pytorch_ood.detector")
    x = images
    ours = {name: detection.SCORES[name](vit).score(x) for name in ("MSP", "Energy", "−entropy")}
    peer_model = copy.deepcopy(vit)
    with torch.no_grad():
        torch.testing.assert_close(ours["MSP"], -det.MaxSoftmax(peer_model).predict(x),
                                   rtol=0, atol=1e-5)
        torch.testing.assert_close(ours["Energy"], -det.EnergyBased(peer_model).predict(x),
                                   rtol=0, atol=1e-4)
        torch.testing.assert_close(ours["−entropy"], -det.Entropy(peer_model).predict(x),
                                   rtol=0, atol=1e-5)
    theirs = det.GradNorm(peer_model, param_filter=lambda n: n == "fc.weight").predict(x)
    torch.testing.assert_close(uncertainty.gradnorm(vit, x), -theirs, rtol=1e-4, atol=1e-4)


def test_every_score_runs_on_the_vit(vit, images, signs):
    """Every score of detection.SCORES (the ensemble's needs an Ensemble, not a ViT)."""
    fit_x, fit_y = signs.x_train[::20], signs.y_train[::20]
    for name, make in detection.SCORES.items():
        if name == "ensemble (−MI)":
            continue
        detector = make(vit)
        if name == "gradient detector H":
            detector = uncertainty.ConfoundingDetector(vit, layers=[*vit.blocks, vit.fc])
            detector.fit(fit_x[:24], x_novel=torch.rand(24, 3, 48, 48))
        else:
            detector.fit(fit_x, fit_y)
        s = detector.score(images[:4])
        assert s.shape == (4,) and torch.isfinite(s).all(), name
    assert not vit.training and all(p.grad is None for p in vit.parameters())


def test_confounding_norms_recurse_into_blocks(vit, images):
    x = images[:3]
    full = gradients.confounding_gradient_norms(vit, x)
    assert "blocks.0.self_attn" in full.names and "blocks.0.self_attn.out_proj" in full.names
    by_block = gradients.confounding_gradient_norms(vit, x, layers=[*vit.blocks,
                                                                                 vit.fc])
    assert by_block.names == ["blocks.0", "blocks.1", "blocks.2", "blocks.3", "fc"]
    for i in range(4):
        cols = [j for j, n in enumerate(full.names) if n.startswith(f"blocks.{i}.")]
        torch.testing.assert_close(by_block.norms[:, i], full.norms[:, cols].sum(1),
                                   rtol=1e-4, atol=1e-4)
    # the head alone: the closed form equals the per-sample engine
    head = uncertainty.confounding_score(vit, x, layers=[vit.fc], sign=1)
    torch.testing.assert_close(head, by_block.norms[:, 4], rtol=1e-4, atol=1e-4)
    # an attention's out_proj is not called as a module: the engine must not hook it
    out_proj = gradients.confounding_gradient_norms(
        vit, x, layers=[vit.blocks[0].self_attn.out_proj])
    assert torch.isfinite(out_proj.norms).all() and (out_proj.norms > 0).all()


def test_gradtrust_and_voice_on_the_vit(vit, images):
    x = images[:4]
    g = trust.gradtrust(vit, x)
    torch.testing.assert_close(g, trust.gradtrust_from_logits(models.predict_logits(vit, x)),
                               rtol=1e-4, atol=1e-4)
    v = trust.voice(vit, x)
    assert v.explanation.shape == v.uncertainty.shape == (4, 48, 48)
    assert v.iou.shape == v.snr.shape == (4,)


def test_batched_passes_keep_the_vit_input_layout(vit, images):
    """The ViT opts out of the channels-last copy of the course's batched forward passes (its
    one convolution gains nothing from it): the logits and features are the same either way."""
    from tutorial_utils import forward
    from tutorial_utils.utils import channels_last

    assert vit.prefers_channels_last is False
    h, z = forward.features_and_logits(vit, images)
    with torch.inference_mode():
        z_cl = vit(channels_last(images))
        h_cl = vit.penultimate(channels_last(images))
    torch.testing.assert_close(z, z_cl, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(h, h_cl, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(forward.logits(vit, images), z, rtol=0, atol=0)
