"""Chapter-2 figure/widget logic: CAM identities, the gallery, and every widget value."""

from __future__ import annotations

import statistics
import time

import matplotlib.pyplot as plt
import pytest
import torch
import torch.nn.functional as F

from tutorial_utils import explain as E
from tutorial_utils import introspection as I
from tutorial_utils.data import stratified_indices


@pytest.fixture(scope="module")
def sign_model():
    from tutorial_utils import models

    return models.load("signs", train_if_missing=False)


@pytest.fixture(scope="module")
def picker(signs):
    idx = [int(torch.nonzero(signs.y_test == k)[0]) for k in range(len(signs.classes))]
    return signs.x_test[idx]


@pytest.fixture(scope="module")
def reps(sign_model, signs):
    return signs.x_test[E.representatives(sign_model, signs.x_test, signs.y_test)]


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
    v = E.layer_view(sign_model, x)
    for k in (0, 8, 13):
        a, g, _ = _layer_grad(sign_model, x, lambda z, k=k: z[0, k])
        torch.testing.assert_close(v.activations, a)
        torch.testing.assert_close(v.grads[k], g, atol=1e-6, rtol=1e-4)
    assert not any(m._forward_hooks for m in sign_model.modules())
    assert all(p.requires_grad for p in sign_model.parameters())


def test_contrast_weights_equal_cross_entropy_gradient(sign_model, picker):
    x = picker[8:9]
    v = E.layer_view(sign_model, x)
    for q in range(14):
        _, g, _ = _layer_grad(sign_model, x, lambda z, q=q: F.cross_entropy(z, torch.tensor([q])))
        torch.testing.assert_close(v.weights("contrast", q), g.mean(dim=(1, 2)),
                                   atol=1e-7, rtol=1e-4)
    torch.testing.assert_close(v.weights("counterfactual"), -v.weights("gradcam"))


def test_maps_agree_with_cam_module(sign_model, picker):
    cam = pytest.importorskip("tutorial_utils.cam")
    x = picker[:3]
    for i in range(3):
        st = E.contrast_state(sign_model, x[i:i + 1])
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
    s = E.gradcam_steps(sign_model, x)
    assert s["map"].shape == x.shape[-2:]
    assert 0 <= s["map"].min() and s["map"].max() <= 1
    torch.testing.assert_close(s["relu"], torch.relu(s["weighted"]))
    # GAP -> linear head: the gradient is flat, alpha = W[P] / (h w)
    hw = s["activations"].shape[-1] * s["activations"].shape[-2]
    torch.testing.assert_close(s["alpha"], sign_model.fc.weight[s["target"]].detach() / hw)
    # ContrastCAM = Grad-CAM of (p - e_Q) . z
    st = E.contrast_state(sign_model, x)
    for q in range(14):
        w = s["probs"] - torch.eye(14)[q]
        torch.testing.assert_close(E.gradcam_steps(sign_model, x, weights=w)["map"],
                                   st.contrast[q], atol=1e-5, rtol=1e-4)
    plt.close(E.plot_gradcam_steps(s, [str(i) for i in range(14)]))


def test_bad_inputs(sign_model, picker):
    with pytest.raises(ValueError, match="exactly one image"):
        E.layer_view(sign_model, picker[:2])
    v = E.layer_view(sign_model, picker[:1])
    with pytest.raises(ValueError, match="out of range"):
        v.weights("contrast", 14)
    with pytest.raises(ValueError, match="needs the contrast class"):
        v.weights("contrast")
    with pytest.raises(ValueError, match="kind must be"):
        v.weights("bogus")
    with pytest.raises(ValueError, match="K=14"):
        E.gradcam_steps(sign_model, picker[:1], weights=torch.ones(3))
    with pytest.raises(ValueError, match="one \\(Q1, Q2\\) pair"):
        E.contrast_gallery(sign_model, picker[:2], [(0, 1)], picker)


def test_gallery_rows(sign_model, signs, picker, reps):
    c = {n: i for i, n in enumerate(signs.classes)}
    rows = E.contrast_gallery(sign_model, picker[[c["no left"], c["stop"]]],
                              [(c["no right"], c["stop"]), (c["no entry"], c["no left"])], reps)
    assert [r["pred"] for r in rows] == [c["no left"], c["stop"]]
    for r in rows:
        for key in ("gradcam", "contrast1", "contrast2", "why_not"):
            assert r[key].shape == (48, 48) and 0 <= r[key].min() and r[key].max() <= 1
    # contrasting with a different class gives a different map than Grad-CAM
    assert (rows[0]["contrast1"] - rows[0]["gradcam"]).abs().max() > 0.05
    plt.close(E.plot_contrast_gallery(rows, signs.classes))


def test_contrast_widget_every_value_and_latency(sign_model, signs, picker, reps):
    pytest.importorskip("ipywidgets")
    box = E.contrast_explorer(sign_model, picker, signs.classes, rep_images=reps)
    k = len(signs.classes)
    assert [v for _, v in box.sample.options] == list(range(len(picker)))
    assert [v for _, v in box.contrast.options] == list(range(k))
    images = set()
    for s in range(len(picker)):  # every sample in the picker
        box.sample.value = s
        assert box.image.value[:8] == b"\x89PNG\r\n\x1a\n"
        images.add(box.image.value)
    assert len(images) == len(picker)
    box.sample.value = 8  # no left
    times = []
    for rnd in range(2):
        for q in range(k):  # every contrast class, twice (the second round is timed too)
            start = time.perf_counter()
            box.contrast.value = q if rnd == 0 else (k - 1 - q)
            times.append(time.perf_counter() - start)
            assert box.image.value[:4] == b"\x89PNG"
            name = signs.classes[box.contrast.value]
            assert name in box.info.value
    box.contrast.value = 8  # Q = P
    assert "why not" in E.contrast_panel(E.contrast_state(sign_model, picker[8:9]), 8,
                                         signs.classes)["question"]
    median_ms = 1000 * statistics.median(times)
    print(f"contrast-class update: median {median_ms:.1f} ms over {len(times)} updates")
    assert median_ms <= 150


@pytest.fixture(scope="module")
def small_results(sign_model, signs):
    idx = stratified_indices(signs.y_train, 4, seed=0)
    h, z = I.features_and_logits(sign_model, signs.x_train[idx])
    intro, ff = I.build_heads(h.shape[1], 14, hidden=4, seed=0)
    I.train_head(intro, h, z, signs.y_train[idx], epochs=2, progress=False)
    I.train_head(ff, h, z, signs.y_train[idx], epochs=2, progress=False)
    te = stratified_indices(signs.y_test, 1, seed=0)
    return I.evaluate_heads(sign_model, {"feed-forward": ff, "introspective": intro},
                            signs.x_test[te], signs.y_test[te],
                            challenges=("noise", "haze", "snow"), progress=False)


def test_level_view(small_results):
    df = E.level_view(small_results, 3)
    assert list(df.index) == ["noise", "haze", "snow", "all"]
    assert df.loc["all", ("accuracy", "introspective")] == pytest.approx(
        df.loc[["noise", "haze", "snow"], ("accuracy", "introspective")].mean())
    assert list(E.level_view(small_results, 0).index) == ["clean", "all"]
    with pytest.raises(ValueError, match="level"):
        E.level_view(small_results, 6)
    with pytest.raises(TypeError, match="level"):
        E.level_view(small_results, 1.5)
    plt.close(E.plot_level_view(small_results, 2))


def test_level_widget_every_level(small_results):
    pytest.importorskip("ipywidgets")
    box = E.level_explorer(small_results)
    assert (box.level.min, box.level.max) == (0, 5)
    seen = set()
    for level in range(6):  # every level 0-5
        box.level.value = level
        assert box.image.value[:4] == b"\x89PNG"
        assert "introspective" in box.table.value
        seen.add(box.image.value)
    assert len(seen) == 6


def test_contrast_gradient_grid(sign_model, picker):
    h, z = I.features_and_logits(sign_model, picker[:1])
    g = I.contrast_features(h, z, normalize=False, flatten=False)[0]
    fig = E.plot_contrast_gradient_grid(g, int(z.argmax()), [str(i) for i in range(14)],
                                        image=picker[0])
    assert len([a for a in fig.axes if a.get_title().startswith("why")]) == 14
    plt.close(fig)
