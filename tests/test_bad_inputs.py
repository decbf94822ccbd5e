"""Bad input gets a clear error naming the argument, never a silent wrong answer.

One parametrised test per module: each case calls a public function with one bad argument and
asserts the exception type and that the message names the argument. The models are small
(``TinyNet`` from ``conftest`` and two variants), so every case fails in milliseconds.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from torch import nn

from tutorial_utils import (
    adaptation,
    anomaly,
    architectures,
    attacks,
    cam,
    challenges,
    contrast,
    data,
    detection,
    evaluation,
    forward,
    gradients,
    information,
    landscape,
    layers,
    manifolds,
    metrics,
    models,
    privacy,
    robustness,
    saliency,
    trust,
    uncertainty,
    utils,
)

NAN, INF = float("nan"), float("inf")


class BNNet(nn.Module):
    """TinyNet with BatchNorm, a ReLU module and dropout: every method runs on it."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.bn = nn.BatchNorm2d(6)
        self.relu = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.drop = nn.Dropout(0.5)
        self.fc = nn.Linear(6, 4)

    def penultimate(self, x):
        return self.pool(self.relu(self.bn(self.conv(x)))).flatten(1)

    def forward(self, x):
        return self.fc(self.drop(self.penultimate(x)))


@pytest.fixture(scope="module")
def net():
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return BNNet().eval()


@pytest.fixture(scope="module")
def x():
    return torch.rand(2, 3, 12, 12, generator=torch.Generator().manual_seed(1))


def _names(message: str, arg: str) -> bool:
    return re.search(r"(?<![\w])" + re.escape(arg) + r"(?!\w)", message) is not None


def _check(call, error, arg, net, x):
    with pytest.raises(error) as info:
        call(net, x)
    assert _names(str(info.value), arg), f"the message does not name {arg!r}: {info.value}"


def _nan(x):
    out = x.clone()
    out[0, 0, 0, 0] = NAN
    return out


def _cases(table: dict):
    return pytest.mark.parametrize("call, error, arg", list(table.values()), ids=list(table))


# ------------------------------------------------------------------------------ images
IMAGES = {
    "0..255": (lambda m, x: cam.grad_cam(m, x * 255), ValueError, "x"),
    "uint8": (lambda m, x: saliency.vanilla_gradient(m, (x * 255).to(torch.uint8)), TypeError,
              "x"),
    "(C, H, W) without batch": (lambda m, x: models.predict_proba(m, x[0]), ValueError, "x"),
    "NaN pixel": (lambda m, x: attacks.fgsm(m, _nan(x), None, 0.01), ValueError, "x"),
    "wrong channels": (lambda m, x: models.predict_logits(m, x[:, :1]), ValueError, "x"),
    "2x2 image": (lambda m, x: saliency.rise(m, x[..., :2, :2], n_masks=2), ValueError, "x"),
    "float64 for a float32 model": (lambda m, x: uncertainty.odin(m, x.double()), TypeError,
                                    "x"),
    "ndarray": (lambda m, x: adaptation.tta_predict(m, x.numpy()), TypeError, "x"),
    "empty batch": (lambda m, x: gradients.contrast_gradients(m, x[:0]), ValueError, "x"),
    "normalised images": (lambda m, x: evaluation.deletion_curve(
        m, (x - 0.5) / 0.25, torch.rand(2, 12, 12), steps=2), ValueError, "x"),
    "image named image": (lambda m, x: models.decision(m, x[0] * 255), ValueError, "image"),
    "fit_x named fit_x": (lambda m, x: detection.ScoreSuite(m, x * 255, torch.tensor([0, 1]),
                                                            names=["MSP"]), ValueError, "fit_x"),
    "x_members": (lambda m, x: privacy.evaluate_membership(m, x[:, :1], [0, 1], x, [0, 1]),
                  ValueError, "x_members"),
    "challenge: uint8": (lambda m, x: challenges.apply_challenge((x * 255).byte(), "rain", 1),
                         TypeError, "x"),
    "model without conv": (lambda m, x: cam.grad_cam(nn.Sequential(nn.Flatten(),
                                                                    nn.Linear(432, 3)), x),
                           ValueError, "layer"),
}


@_cases(IMAGES)
def test_image_checks(call, error, arg, net, x):
    _check(call, error, arg, net, x)


# ------------------------------------------------------------------------------ class indices
CLASSES = {
    "float": (lambda m, x: cam.grad_cam(m, x, target=1.0), TypeError, "target"),
    "numpy float": (lambda m, x: saliency.occlusion(m, x, np.float32(1), window=6, stride=6),
                    TypeError, "target"),
    "bool": (lambda m, x: attacks.fgsm(m, x, True, 0.01), TypeError, "y"),
    "== K": (lambda m, x: cam.contrast_cam(m, x, contrast=4), ValueError, "contrast"),
    "negative": (lambda m, x: layers.layer_activations_and_gradients(m, x, target=-1),
                 ValueError, "target"),
    "wrong length": (lambda m, x: privacy.loss_threshold_scores(m, x, [0, 1, 2]), ValueError,
                     "y"),
    "float tensor": (lambda m, x: evaluation.masked_prediction(
        m, x, torch.ones(2, 12, 12), torch.tensor([0.0, 1.0])), TypeError, "target"),
    "2-d tensor": (lambda m, x: information.score_vectors(m, x, labels=torch.tensor([[0], [1]])),
                   ValueError, "labels"),
    "string": (lambda m, x: saliency.contrast_input_gradient(m, x, contrast="stop"), TypeError,
               "contrast"),
    "contrast_gradients classes": (lambda m, x: gradients.contrast_gradients(m, x, 1.5),
                                   TypeError, "classes"),
    "single class of a view": (lambda m, x: cam.gradcam_steps(m, x[:1], target=True), TypeError,
                               "target"),
    "landscape label": (lambda m, x: landscape.directional_change(m, x[:1], 4, n_random=1),
                        ValueError, "label"),
    "training labels out of range": (lambda m, x: models.train_classifier(
        m, x, torch.tensor([0, 7]), epochs=1, progress=False), ValueError, "y"),
    "accuracy labels wrong length": (lambda m, x: models.accuracy(m, x, torch.tensor([0])),
                                     ValueError, "y"),
    "representatives y float": (lambda m, x: contrast.representatives(
        m, x, torch.tensor([0.0, 1.0])), TypeError, "y"),
}


@_cases(CLASSES)
def test_class_index_checks(call, error, arg, net, x):
    _check(call, error, arg, net, x)


@pytest.mark.parametrize("good", [np.int64(2), torch.tensor(2), torch.tensor([2, 2]), [2, 2]],
                         ids=["numpy int", "0-d tensor", "1-d tensor", "list"])
def test_integer_class_indices_are_accepted(net, x, good):
    torch.testing.assert_close(cam.grad_cam(net, x, target=good), cam.grad_cam(net, x, target=2))
    torch.testing.assert_close(attacks.fgsm(net, x, good, 0.01), attacks.fgsm(net, x, 2, 0.01))


# ------------------------------------------------------------------------------ hyper-parameters
HYPER = {
    "smoothgrad sigma inf": (lambda m, x: saliency.smoothgrad(m, x, n_samples=2, sigma=INF),
                             ValueError, "sigma"),
    "smoothgrad n_samples 0": (lambda m, x: saliency.smoothgrad(m, x, n_samples=0), ValueError,
                               "n_samples"),
    "rise p_keep 1": (lambda m, x: saliency.rise(m, x, n_masks=2, p_keep=1.0), ValueError,
                      "p_keep"),
    "rise cells > image": (lambda m, x: saliency.rise(m, x, n_masks=2, cells=20), ValueError,
                           "cells"),
    "occlusion stride > window": (lambda m, x: saliency.occlusion(m, x, window=4, stride=6),
                                  ValueError, "stride"),
    "occlusion baseline 255": (lambda m, x: saliency.occlusion(m, x, window=6, stride=6,
                                                               baseline=255), ValueError,
                               "baseline"),
    "smoothgrad seed 1.5": (lambda m, x: saliency.smoothgrad(m, x, n_samples=2, seed=1.5),
                            TypeError, "seed"),
    "loss_plane span inf": (lambda m, x: landscape.loss_plane(m, x[:1], span=INF, steps=3),
                            ValueError, "span"),
    "loss_plane span nan": (lambda m, x: landscape.loss_plane(m, x[:1], span=NAN, steps=3),
                            ValueError, "span"),
    "directional alphas nan": (lambda m, x: landscape.directional_change(
        m, x[:1], alphas=[NAN], n_random=1), ValueError, "alphas"),
    "blur_sigma inf": (lambda m, x: evaluation.insertion_curve(m, x, torch.rand(2, 12, 12),
                                                               steps=2, blur_sigma=INF),
                       ValueError, "blur_sigma"),
    "pgd alpha nan": (lambda m, x: attacks.pgd(m, x, None, 0.01, alpha=NAN), ValueError,
                      "alpha"),
    "pgd seed 1.5": (lambda m, x: attacks.pgd(m, x, None, 0.01, seed=1.5), TypeError, "seed"),
    "fgsm epsilon 8 (not /255)": (lambda m, x: attacks.fgsm(m, x, None, 8), ValueError,
                                  "epsilon"),
    "tent lr inf": (lambda m, x: adaptation.tent(m, x, lr=INF), ValueError, "lr"),
    "tta per_augmentation 'yes'": (lambda m, x: adaptation.tta_predict(
        m, x, per_augmentation="yes"), TypeError, "per_augmentation"),
    "train lr nan": (lambda m, x: models.train_classifier(m, x, [0, 1], epochs=1, lr=NAN,
                                                          progress=False), ValueError, "lr"),
    "train epochs 0": (lambda m, x: models.train_classifier(m, x, [0, 1], epochs=0,
                                                            progress=False), ValueError,
                       "epochs"),
    "odin temperature 0": (lambda m, x: uncertainty.odin(m, x, temperature=0.0), ValueError,
                           "temperature"),
    "mc_dropout seed 1.5": (lambda m, x: uncertainty.mc_dropout(m, x, seed=1.5), TypeError,
                            "seed"),
    "voice threshold nan": (lambda m, x: trust.voice(m, x, threshold=NAN), ValueError,
                            "threshold"),
    "gradtrust batch_size 0": (lambda m, x: trust.gradtrust(m, x, batch_size=0), ValueError,
                               "batch_size"),
}


@_cases(HYPER)
def test_hyper_parameter_checks(call, error, arg, net, x):
    _check(call, error, arg, net, x)


# ------------------------------------------------------------------------------ arrays and maps
ARRAYS = {
    "normalize_maps NaN": (lambda m, x: forward.normalize_maps(torch.full((1, 2, 2), NAN)),
                           ValueError, "maps"),
    "normalize_maps list": (lambda m, x: forward.normalize_maps([[1.0]]), TypeError, "maps"),
    "masked maps > 1": (lambda m, x: evaluation.masked_prediction(m, x, torch.full((2, 12, 12),
                                                                                   2.0)),
                        ValueError, "maps"),
    "structure maps > 1": (lambda m, x: evaluation.structure_wise_curve(
        m, x, torch.full((2, 12, 12), 2.0), None, [0.5]), ValueError, "maps"),
    "cam_from_weights alpha": (lambda m, x: cam.cam_from_weights(torch.rand(2, 4, 3, 3),
                                                                 torch.rand(2, 5), (8, 8)),
                               ValueError, "alpha"),
    "curve_auc string": (lambda m, x: evaluation.curve_auc("01", [0.5, 0.5]), TypeError,
                         "fractions"),
    "effective_rank NaN": (lambda m, x: manifolds.effective_rank([NAN, 1.0]), ValueError,
                           "singular_values"),
    "covariance NaN": (lambda m, x: manifolds.covariance_spectrum(torch.full((4, 3), NAN)),
                       ValueError, "features"),
    "isomap n_neighbors >= N": (lambda m, x: manifolds.isomap_embedding(
        {"a": torch.rand(5, 3)}, n_neighbors=10), ValueError, "n_neighbors"),
    "score_moments NaN": (lambda m, x: information.score_moments(torch.full((3, 2), NAN)),
                          ValueError, "u"),
    "relative_difference b = 0": (lambda m, x: information.relative_difference(
        torch.ones(3), torch.zeros(3)), ValueError, "b"),
    "gradtrust_from_logits NaN": (lambda m, x: trust.gradtrust_from_logits(
        torch.full((2, 3), NAN)), ValueError, "logits"),
    "region_ratio NaN": (lambda m, x: contrast.region_ratio(torch.full((1, 4, 4), NAN),
                                                            torch.ones(1, 4, 4).bool()),
                         ValueError, "maps"),
    "metrics NaN score": (lambda m, x: metrics.auroc([0, 1], [NAN, 1.0]), ValueError,
                          "y_score"),
    "plane_value NaN": (lambda m, x: landscape.plane_value(
        landscape.loss_plane(m, x[:1], steps=3), NAN, 0.0), ValueError, "a"),
}


@_cases(ARRAYS)
def test_array_and_map_checks(call, error, arg, net, x):
    _check(call, error, arg, net, x)


# ------------------------------------------------------------------------------ types, models, data
MISC = {
    "capture_layer string": (lambda m, x: forward.capture_layer("fc").__enter__(), TypeError,
                             "layer"),
    "score_fn not callable": (lambda m, x: layers.layer_activations_and_gradients(
        m, x, score_fn=3), TypeError, "score_fn"),
    "per_sample loss_fn vector": (lambda m, x: gradients.per_sample_gradients(
        m, x, lambda z, _xb: z), ValueError, "loss_fn"),
    "confounding layers a module": (lambda m, x: uncertainty.confounding_score(
        m, x, layers=m.fc), TypeError, "layers"),
    "restoring string": (lambda m, x: adaptation.restoring("m").__enter__(), TypeError,
                         "model"),
    "preserved_state string": (lambda m, x: utils.preserved_state("m").__enter__(), TypeError,
                               "model"),
    "not fitted": (lambda m, x: uncertainty.Mahalanobis(m).score(x), ValueError, "fit"),
    "ensemble not an ensemble": (lambda m, x: uncertainty.ensemble_uncertainty(m, x), TypeError,
                                 "ensemble"),
    "gradcon model": (lambda m, x: anomaly.gradcon_scores(m, x), TypeError, "model"),
    "GradCon widths": (lambda m, x: anomaly.GradCon(widths=(4, 4)), ValueError, "widths"),
    "SmallCNN in_channels 0": (lambda m, x: architectures.SmallCNN(0, 10), ValueError,
                               "in_channels"),
    "Normalize std 0": (lambda m, x: architectures.Normalize((0.5,), (0.0,)), ValueError,
                        "std"),
    "seed_everything 2**70": (lambda m, x: utils.seed_everything(2 ** 70), ValueError, "seed"),
    "load unknown name": (lambda m, x: models.load("resnet"), ValueError, "name"),
    "load device": (lambda m, x: models.load("digits", device="gpu0"), ValueError, "device"),
    "load_signs n_train 2.5": (lambda m, x: data.load_signs(n_train=2.5, cache=False),
                               TypeError, "n_train"),
    "load_signs seed 'a'": (lambda m, x: data.load_signs("a", cache=False), TypeError, "seed"),
    "load_ood name": (lambda m, x: data.load_ood("imagenet"), ValueError, "name"),
    "stratified y float": (lambda m, x: data.stratified_indices(torch.rand(4), 1), TypeError,
                           "y"),
    "apply_challenge seed 1.5": (lambda m, x: challenges.apply_challenge(x, "rain", 1, 1.5),
                                 TypeError, "seed"),
    "apply_challenge level 6": (lambda m, x: challenges.apply_challenge(x, "rain", 6),
                                ValueError, "level"),
    "challenge_view cache": (lambda m, x: robustness.challenge_view("c", "rain", 1), TypeError,
                             "cache"),
    "detection_table missing score": (lambda m, x: detection.detection_table(
        {"s": [1, 2]}, {"o": {"t": [0, 1]}}), ValueError, "novel_scores"),
    "train_overfit weight_decay inf": (lambda m, x: privacy.train_overfit_digits(
        10, 1, weight_decay=INF), ValueError, "weight_decay"),
}


@_cases(MISC)
def test_types_models_and_data_checks(call, error, arg, net, x):
    _check(call, error, arg, net, x)


def test_counterfactual_rejects_float_and_out_of_range_indices():
    ds = data.load_signs(seed=3, n_train=1, n_test=2, cache=False)
    for index, contrast_class, error, arg in ((1.5, 1, TypeError, "index"),
                                              (1, 2.7, TypeError, "contrast"),
                                              (99, 1, ValueError, "index"),
                                              (1, 14, ValueError, "contrast"),
                                              ([0, 1, 2], [1, 2], ValueError, "contrast")):
        with pytest.raises(error) as info:
            data.counterfactual(ds, index, contrast_class)
        assert _names(str(info.value), arg), str(info.value)
