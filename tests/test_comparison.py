"""comparison: the CNN-vs-ViT evidence, and ECE as a weighted bootstrap statistic."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tutorial_utils import claims, comparison, metrics, models


def test_weighted_ece_equals_the_metric_and_weights_repeat_rows():
    rng = np.random.default_rng(0)
    conf = rng.uniform(0, 1, 200)
    correct = rng.uniform(0, 1, 200) < conf
    values = np.stack([conf, correct.astype(float)], axis=1)
    ones = np.ones((1, 200))
    assert comparison.weighted_ece(values, ones)[0] == pytest.approx(
        metrics.ece_from_confidence(conf, correct), abs=1e-12)
    w = rng.integers(0, 3, (4, 200)).astype(float)  # a weight of 2 = the row drawn twice
    for r in range(4):
        rep = np.repeat(np.arange(200), w[r].astype(int))
        assert comparison.weighted_ece(values, w[r:r + 1])[0] == pytest.approx(
            metrics.ece_from_confidence(conf[rep], correct[rep]), abs=1e-12)
    est = claims.estimate(values, units=np.arange(200) // 4, statistic=comparison.weighted_ece)
    assert est.low <= est.value <= est.high


@pytest.fixture(scope="module")
def small_comparison(sign_model, signs):
    vit = models.load("signs-vit", train_if_missing=False)
    return comparison.architecture_comparison(
        {"CNN": sign_model, "ViT": vit}, signs, per_class=1, ood_per_source=6,
        fit_per_class=5, deletion_images=4, deletion_steps=4, sanity_images=2), vit


def test_architecture_comparison_evidence(small_comparison, signs):
    arch, vit = small_comparison
    n = 14 * 12 * 5
    assert arch.names == ["CNN", "ViT"] and arch.units.shape == (n,)
    assert np.bincount(arch.units).tolist() == [60] * 14  # each base image: 12 kinds x 5 levels
    for name in arch.names:
        assert arch.correct[name].shape == arch.confidence[name].shape == (n,)
        assert set(arch.ood[name]) == set(comparison.OOD_SCORES)
        s, y = arch.ood[name]["MSP"]["far"]
        assert s.shape == y.shape and y.sum() == 14 and (1 - y).sum() == 6 * len(comparison.FAR)
        assert arch.voice_iou[name].shape == (14 * 12,) and arch.sanity[name].shape == (2,)
    assert set(arch.deletion) == {"Grad-CAM", "attention rollout", "random map"}
    assert arch.deletion["Grad-CAM"].shape == (4, 5)
    assert comparison.transformer_layers(vit)[:3] == ["fc", "norm", "blocks.3"]
    assert comparison.transformer_layers(torch.nn.Linear(2, 2)) is None
    table = arch.table(resamples=200)
    assert {"question", "model", "value", "low", "high"} <= set(table.columns)
    assert ((table.low <= table.value + 1e-9) & (table.value <= table.high + 1e-9)).all()
    assert not vit.training


def test_bad_inputs(signs, sign_model):
    with pytest.raises(TypeError, match="models must map two or more"):
        comparison.architecture_comparison({"CNN": sign_model}, signs)
    with pytest.raises(TypeError, match="ds must be an ImageDataset"):
        comparison.architecture_comparison({"a": sign_model, "b": sign_model}, signs.x_test)
