"""Chapter 4 explorers (masking threshold, box occluder, attack ε): every control value is
driven and the data shown is checked against the pure functions (redraw times:
``benchmarks/bench_widgets.py``)."""

from __future__ import annotations

import pytest
import torch

from tutorial_utils import cam, evaluation, forward, interventions, models
from tutorial_utils.data import stratified_indices

widgets = pytest.importorskip("tutorial_utils.widgets")
PNG = b"\x89PNG\r\n\x1a\n"


def _set(explorer, name, value):
    """Set a control; redraw by hand when the value did not change (no event fires)."""
    calls = explorer.state["calls"]
    explorer.controls[name].value = value
    if explorer.state["calls"] == calls:
        explorer.update()
    assert explorer.image.value[:8] == PNG
    return explorer.state["last"]


@pytest.fixture(scope="module")
def digit_model():
    return models.load("digits", train_if_missing=False)


@pytest.fixture(scope="module")
def masking_setup(digits, digit_model):
    idx = stratified_indices(digits.y_test, 2)
    x, y = digits.x_test[idx], digits.y_test[idx]
    maps = {"Grad-CAM": cam.grad_cam(digit_model, x),
            "random map": torch.rand(len(x), 28, 28, generator=torch.Generator().manual_seed(0)),
            "image itself": x[:, 0]}
    thresholds = tuple(i / 10 for i in range(10))
    curves = {n: evaluation.structure_wise_curve(digit_model, x, m, y, thresholds)
              for n, m in maps.items()}
    return x, maps, curves, thresholds


def test_masking_explorer_every_threshold(masking_setup, digit_model):
    x, maps, curves, thresholds = masking_setup
    one = {n: m[3] for n, m in maps.items()}
    box = widgets.masking_explorer(digit_model, x[3], one, curves, threshold=0.5)
    assert [v for _, v in box.controls["threshold"].options] == list(thresholds)
    for t in (*thresholds, *thresholds[::-1]):  # revisits only swap cached pictures
        data = _set(box, "threshold", t)
        _, probs, kept = interventions.masking_view(digit_model, x[3], one, t)
        for k, name in enumerate(one):
            assert data["image"][name] == pytest.approx((float(probs[k]), float(kept[k])))
            idx = thresholds.index(t)
            assert data["accuracy"][name] == pytest.approx(float(curves[name].accuracy[idx]))
        assert f"τ = {t:.1f}" in box.info.value
    with pytest.raises(ValueError, match="threshold"):
        widgets.masking_explorer(digit_model, x[3], one, curves, threshold=0.55)
    with pytest.raises(ValueError, match="same methods"):
        widgets.masking_explorer(digit_model, x[3], {"Grad-CAM": one["Grad-CAM"]}, curves)


def test_masking_explorer_masks_with_the_chapter_grey(masking_setup, digit_model):
    x, maps, curves, _ = masking_setup
    one = {n: m[3] for n, m in maps.items()}
    box = widgets.masking_explorer(digit_model, x[3], one, curves, threshold=0.5, baseline=0.12)
    data = _set(box, "threshold", 0.5)
    _, probs, _ = interventions.masking_view(digit_model, x[3], one, 0.5, baseline=0.12)
    _, black, _ = interventions.masking_view(digit_model, x[3], one, 0.5)
    for k, name in enumerate(one):
        assert data["image"][name][0] == pytest.approx(float(probs[k]))
    assert not torch.allclose(probs, black)  # the grey is not black to this model


@pytest.fixture(scope="module")
def sign_image(signs):
    i = int(torch.nonzero(signs.y_test == 5)[0])
    return signs.x_test[i], int(signs.y_test[i])


def test_occluder_explorer_every_position_and_size(sign_model, signs, sign_image):
    image, label = sign_image
    sizes = (8, 12, 16, 24)
    box = widgets.occluder_explorer(sign_model, image, signs.classes, target=label,
                                    sizes=sizes, step=4, size=12)
    centres = list(range(2, 48, 4))
    assert (box.controls["row"].min, box.controls["row"].max, box.controls["row"].step) == (
        2, 46, 4)
    land = interventions.box_landscape(sign_model, image, sizes, centres)
    for size in sizes:
        _set(box, "size", size)
        for name in ("row", "col"):
            for v in centres:
                data = _set(box, name, v)
                r, c = box.controls["row"].value, box.controls["col"].value
                expected = land[sizes.index(size), centres.index(r), centres.index(c), label]
                assert data["p_target"] == pytest.approx(float(expected), abs=1e-6)
                assert f"{size}×{size} box at ({r}, {c})" in box.info.value
    # one placement checked against a direct forward pass with the box filled in
    _set(box, "size", 16)
    _set(box, "row", 22)
    data = _set(box, "col", 26)
    mask = interventions.box_mask((48, 48), (22, 26), 16)
    base = forward.baseline_image(image[None], "mean", sign_model)
    p = models.predict_proba(sign_model, torch.where(mask, base, image[None]))[0, label]
    assert data["p_target"] == pytest.approx(float(p), abs=1e-5)
    with pytest.raises(ValueError, match="grid"):
        widgets.occluder_explorer(sign_model, image, signs.classes, row=3)


def test_attack_explorer_every_attack_and_epsilon(sign_model, signs, sign_image):
    image, label = sign_image
    eps = (0.0, 2 / 255, 8 / 255, 16 / 255)
    box = widgets.attack_explorer(sign_model, image, label, signs.classes, eps,
                                  epsilon=8 / 255, attack="FGSM")
    assert list(box.controls["attack"].options) == ["FGSM", "PGD"]
    for _ in range(2):  # the second pass redraws cached views
        for attack in ("FGSM", "PGD"):
            _set(box, "attack", attack)
            for e in eps:
                view = _set(box, "epsilon", e)
                assert (view.attack, view.epsilon) == (attack, e)
                assert (view.image - image).abs().max() <= e + 1e-6
                assert f"{attack}, ε = {255 * e:g}/255" in box.info.value
    expected = interventions.attack_view(sign_model, image, label, 16 / 255, "PGD")
    torch.testing.assert_close(box.state["last"].image, expected.image)
    torch.testing.assert_close(box.state["last"].contrast, expected.contrast)
    assert int(box.state["last"].probs.argmax()) != label  # 16/255 PGD flips this sign
    with pytest.raises(ValueError, match="epsilon"):
        widgets.attack_explorer(sign_model, image, label, signs.classes, eps, epsilon=0.5)
