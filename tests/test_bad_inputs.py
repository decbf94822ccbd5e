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


# ==============================================================================================
# Round two (issue 23): NaN values, float truncation, units, degenerate fits, rounding at the
# edges, mismatched pieces, NumPy scalars and the argument a message names
# ==============================================================================================

from tutorial_utils import dashboard, ensembles, exercises, interventions  # noqa: E402
from tutorial_utils.architectures import Ensemble  # noqa: E402

Y2 = torch.tensor([0, 1])


def _maps(x, value=None):
    maps = torch.rand(len(x), *x.shape[-2:], generator=torch.Generator().manual_seed(5))
    if value is not None:
        maps[0, 0, 0] = value
    return maps


def _y8():
    return torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])


def _x8():
    return torch.rand(8, 3, 12, 12, generator=torch.Generator().manual_seed(6))


def _digits4():
    return torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(7))


_REFERENCE = {}


def _reference(m):
    if id(m) not in _REFERENCE:
        _REFERENCE[id(m)] = dashboard.build_reference(m, _x8(), _y8(), _x8())
    return _REFERENCE[id(m)]


# --------------------------------------------------------------- 2. NaN / inf as values
NAN_VALUES = {}
for _v, _tag in ((NAN, "NaN"), (INF, "inf")):
    NAN_VALUES.update({
        f"masking_view threshold {_tag}": (lambda m, x, v=_v: interventions.masking_view(
            m, x[0], {"a": _maps(x)[0]}, v), ValueError, "threshold"),
        f"threshold_view keep_percent {_tag}": (lambda m, x, v=_v: detection.threshold_view(
            [0.1, 0.5, 0.9], [0.2], v), ValueError, "keep_percent"),
        f"odin epsilon {_tag}": (lambda m, x, v=_v: uncertainty.odin(m, x, epsilon=v),
                                 ValueError, "epsilon"),
        f"odin temperature {_tag}": (lambda m, x, v=_v: uncertainty.odin(m, x, temperature=v),
                                     ValueError, "temperature"),
        f"ODINScore epsilon {_tag}": (lambda m, x, v=_v: uncertainty.ODINScore(m, epsilon=v),
                                      ValueError, "epsilon"),
        f"energy temperature {_tag}": (lambda m, x, v=_v: uncertainty.energy(
            torch.randn(2, 4), v), ValueError, "temperature"),
        f"explanation_iou threshold {_tag}": (lambda m, x, v=_v: trust.explanation_iou(
            _maps(x), _maps(x), v), ValueError, "threshold"),
        f"tent lr {_tag}": (lambda m, x, v=_v: adaptation.tent(m, x, lr=v), ValueError, "lr"),
        f"ScoreSuite odin_epsilon {_tag}": (lambda m, x, v=_v: detection.ScoreSuite(
            m, x, Y2, names=["ODIN"], odin_epsilon=v), ValueError, "odin_epsilon"),
        f"attack_view epsilon {_tag}": (lambda m, x, v=_v: interventions.attack_view(
            m, x[0], 0, v), ValueError, "epsilon"),
    })
NAN_MAPS = {
    "masking_view NaN map": (lambda m, x: interventions.masking_view(
        m, x[0], {"a": _maps(x, NAN)[0]}, 0.5), ValueError, "maps"),
    "rank_correlation NaN map": (lambda m, x: metrics.rank_correlation(_maps(x, NAN), _maps(x)),
                                 ValueError, "a"),
    "rank_correlation inf map": (lambda m, x: metrics.rank_correlation(_maps(x), _maps(x, INF)),
                                 ValueError, "b"),
    "sanity_check: explainer returns NaN": (lambda m, x: evaluation.sanity_check(
        m, x, lambda mm, xx, t, layer=None: torch.full((len(xx), 12, 12), NAN)), ValueError,
        "explain"),
    "region_ratio NaN map": (lambda m, x: contrast.region_ratio(_maps(x, NAN), _maps(x) > 0.5),
                             ValueError, "maps"),
    "map_snr NaN map": (lambda m, x: trust.map_snr(_maps(x, NAN)), ValueError, "maps"),
    "deletion_curve NaN saliency": (lambda m, x: evaluation.deletion_curve(
        m, x, _maps(x, NAN), steps=2), ValueError, "saliency"),
}


@_cases({**NAN_VALUES, **NAN_MAPS})
def test_nan_and_inf_values_are_refused(call, error, arg, net, x):
    _check(call, error, arg, net, x)


def test_a_nan_map_cannot_pass_the_sanity_check(net, x):
    """A method whose maps are NaN must not "pass" (ρ = 0 would read as "the map changed")."""
    with pytest.raises(ValueError, match="NaN"):
        evaluation.sanity_check(net, x, lambda m, xx, t, layer=None: torch.full(
            (len(xx), 12, 12), NAN))


def _nan_like(*args):
    return torch.full_like(torch.as_tensor(args[0], dtype=torch.float64), NAN)


CHECKERS = {  # checker: a function returning NaN of a plausible shape
    "softmax_temperature": (exercises.softmax_temperature, _nan_like),
    "entropy_bits": (exercises.entropy_bits, lambda p: torch.full((len(p),), NAN)),
    "fisher_matrix": (exercises.fisher_matrix, lambda u: torch.full((u.shape[1],) * 2, NAN)),
    "gradcam_weights": (exercises.gradcam_weights, lambda a, g: torch.full(g.shape[:2], NAN)),
    "contrast_weights": (exercises.contrast_weights, lambda p, j, q: torch.full(j.shape[1:],
                                                                               NAN)),
    "energy_score": (exercises.energy_score, lambda z, t: torch.full((len(z),), NAN)),
    "mutual_information_split": (exercises.mutual_information_split, lambda p: (
        torch.full(p.shape[1:2], NAN), torch.full(p.shape[1:2], NAN))),
    "deletion_auc": (exercises.deletion_auc, lambda f, p: torch.full((len(p),), NAN)),
    "fgsm_step": (exercises.fgsm_step, lambda x, g, e: torch.full_like(x, NAN)),
    "tpr_at_fpr": (exercises.tpr_at_fpr, lambda a, b, f: NAN),
    "tta_average": (exercises.tta_average, lambda p: torch.full(p.shape[1:], NAN)),
    "handover_accuracy": (exercises.handover_accuracy, lambda t, c, s: NAN),
}


@pytest.mark.parametrize("checker, answer", list(CHECKERS.values()), ids=list(CHECKERS))
def test_exercise_checkers_never_accept_nan(checker, answer, capsys):
    assert checker(answer).ok is False
    assert "✗" in capsys.readouterr().out


def _softmax_in_place(z, t):
    z /= t
    return z.softmax(0)


def _energy_in_place(z, t):
    z /= t
    return t * torch.logsumexp(z, dim=1)


def _fgsm_in_place(x, grad, eps):
    return x.add_(eps * grad.sign()).clamp_(0, 1)


def _tta_in_place(probs):
    probs.clamp_(0, 1)
    probs[0] = probs.mean(0)
    return probs[0]


def _handover_in_place(trust, correct, share):
    trust.sort()
    order = np.argsort(trust, kind="stable")
    return correct[order[int(share * len(trust)):]].mean()


IN_PLACE = {
    "softmax_temperature": (exercises.softmax_temperature, _softmax_in_place),
    "energy_score": (exercises.energy_score, _energy_in_place),
    "fgsm_step": (exercises.fgsm_step, _fgsm_in_place),
    "tta_average": (exercises.tta_average, _tta_in_place),
    "handover_accuracy": (exercises.handover_accuracy, _handover_in_place),
}


@pytest.mark.parametrize("checker, answer", list(IN_PLACE.values()), ids=list(IN_PLACE))
def test_exercise_checkers_say_when_the_input_was_changed_in_place(checker, answer, capsys):
    assert checker(answer).ok is False
    out = capsys.readouterr().out
    assert "in place" in out and "no effect" not in out, out


# --------------------------------------------------------------- 3. floats never truncated
TRUNCATION = {
    "box_mask centre (2.7, 3.2)": (lambda m, x: interventions.box_mask((12, 12), (2.7, 3.2), 3),
                                   TypeError, "centre"),
    "box_mask centre np.float64": (lambda m, x: interventions.box_mask(
        (12, 12), (np.float64(2.0), 3), 3), TypeError, "centre"),
    "box_mask size 2.5": (lambda m, x: interventions.box_mask((12, 12), (2, 3), 2.5), TypeError,
                          "size"),
    "box_landscape centres [2.5]": (lambda m, x: interventions.box_landscape(
        m, x[0], [3], [2.5]), TypeError, "centres"),
    "gradtrust_from_logits int logits": (lambda m, x: trust.gradtrust_from_logits(
        torch.tensor([[3, 1, 0], [1, 1, 1]])), TypeError, "logits"),
    "gradtrust_from_gradients int grads": (lambda m, x: trust.gradtrust_from_gradients(
        torch.ones(2, 3, 4, dtype=torch.long)), TypeError, "grads"),
    "attack_view label 2.7": (lambda m, x: interventions.attack_view(m, x[0], 2.7, 0.01),
                              TypeError, "label"),
    "make_input label 1.5": (lambda m, x: dashboard.make_input(m, x[0], 1.5, "FGSM attack"),
                             TypeError, "label"),
    "make_input level 1.5": (lambda m, x: dashboard.make_input(m, x[0], 0, kind="rain",
                                                               level=1.5), TypeError, "level"),
    "mc_dropout passes 2.5": (lambda m, x: ensembles.mc_dropout(m, x, passes=2.5), TypeError,
                              "passes"),
    "tent steps 1.5": (lambda m, x: adaptation.tent(m, x, steps=1.5), TypeError, "steps"),
    "pgd steps 2.5": (lambda m, x: attacks.pgd(m, x, Y2, 0.01, steps=2.5), TypeError, "steps"),
    "mean_se dim 0.5": (lambda m, x: metrics.mean_se(np.ones((2, 3)), 0.5), TypeError, "dim"),
    "huffman counts [2.5]": (lambda m, x: evaluation.huffman_code_lengths([2.5, 1]), TypeError,
                             "counts"),
}


@_cases(TRUNCATION)
def test_floats_are_refused_never_truncated(call, error, arg, net, x):
    _check(call, error, arg, net, x)


# --------------------------------------------------------------- 4. units and ranges
UNITS = {
    "odin epsilon 2 (pixel units)": (lambda m, x: uncertainty.odin(m, x, epsilon=2),
                                     ValueError, "epsilon"),
    "ODINScore epsilon 2": (lambda m, x: uncertainty.ODINScore(m, epsilon=2), ValueError,
                            "epsilon"),
    "ScoreSuite odin_epsilon 2": (lambda m, x: detection.ScoreSuite(
        m, x, Y2, names=["ODIN"], odin_epsilon=2), ValueError, "odin_epsilon"),
    "attack_view epsilon 8": (lambda m, x: interventions.attack_view(m, x[0], 0, 8),
                              ValueError, "epsilon"),
    "train_gradcon lr 0": (lambda m, x: anomaly.train_gradcon(_digits4(), epochs=1, lr=0,
                                                              progress=False), ValueError, "lr"),
    "train_gradcon lr -1": (lambda m, x: anomaly.train_gradcon(_digits4(), epochs=1, lr=-1,
                                                               progress=False), ValueError, "lr"),
    "tent lr 0": (lambda m, x: adaptation.tent(m, x, lr=0), ValueError, "lr"),
    "train_classifier lr 0": (lambda m, x: models.train_classifier(
        BNNet(), x, Y2, epochs=1, lr=0, progress=False), ValueError, "lr"),
    "mc_dropout passes 10**8": (lambda m, x: ensembles.mc_dropout(m, x, passes=10 ** 8),
                                ValueError, "passes"),
    "MCDropoutScore passes 10**8": (lambda m, x: uncertainty.MCDropoutScore(m, passes=10 ** 8),
                                    ValueError, "passes"),
    "ScoreSuite mc_passes 10**8": (lambda m, x: detection.ScoreSuite(
        m, x, Y2, names=["MSP"], mc_passes=10 ** 8), ValueError, "mc_passes"),
}


@_cases(UNITS)
def test_units_and_ranges(call, error, arg, net, x):
    _check(call, error, arg, net, x)


@pytest.mark.parametrize("call", [
    lambda m, x: uncertainty.odin(m, x, epsilon=2),
    lambda m, x: uncertainty.ODINScore(m, epsilon=2),
    lambda m, x: attacks.fgsm(m, x, None, 2)], ids=["odin", "ODINScore", "fgsm"])
def test_odin_epsilon_in_pixel_units_like_the_attacks(call, net, x):
    with pytest.raises(ValueError, match=r"did you mean epsilon=2/255\?"):
        call(net, x)


# --------------------------------------------------------------- 5. degenerate fits
DEGENERATE = {
    "Mahalanobis one image": (lambda m, x: uncertainty.Mahalanobis(m).fit(x[:1], Y2[:1]),
                              ValueError, "x"),
    "Mahalanobis one image per class": (lambda m, x: uncertainty.Mahalanobis(m).fit(x, Y2),
                                        ValueError, "x"),
    "Mahalanobis identical features": (lambda m, x: uncertainty.Mahalanobis(m).fit_features(
        torch.ones(5, 6), torch.zeros(5, dtype=torch.long)), ValueError, "h"),
    "ScoreSuite Mahalanobis one image": (lambda m, x: detection.ScoreSuite(
        m, x[:1], Y2[:1], names=["Mahalanobis"]), ValueError, "fit_x"),
    "build_reference one image": (lambda m, x: dashboard.build_reference(
        m, x[:1], Y2[:1], x), ValueError, "x_fit"),
}


@_cases(DEGENERATE)
def test_degenerate_fits_are_a_clear_error(call, error, arg, net, x):
    _check(call, error, arg, net, x)


def test_mahalanobis_documented_shrinkage_one_class_and_fewer_images_than_dims(net):
    one_class = uncertainty.Mahalanobis(net).fit(_x8(), torch.zeros(8, dtype=torch.long))
    s = one_class.score(_x8())
    assert torch.isfinite(s).all() and (s <= 0).all() and s.abs().max() > 0
    gen = torch.Generator().manual_seed(0)
    h = torch.randn(5, 6, generator=gen)  # N − C = 3 < D = 6: the pseudo-inverse's span
    few = uncertainty.Mahalanobis(net).fit_features(h, torch.tensor([0, 0, 1, 1, 1]))
    s = few.score_features(torch.randn(3, 6, generator=gen))
    assert torch.isfinite(s).all() and s.abs().max() > 0
    assert "pseudo-inverse" in uncertainty.Mahalanobis.__doc__


# --------------------------------------------------------------- 6. rounding at the edges
@pytest.mark.parametrize("n, percent", [(10, p) for p in range(10, 101, 10)]
                         + [(100, p) for p in (1, 7, 29, 57, 58, 70, 99)] + [(3, 100 / 3 * 2)])
def test_threshold_view_keeps_exactly_the_share_asked_for(n, percent):
    scores = np.arange(n, dtype=float)
    view = detection.threshold_view(scores, scores, percent)
    assert view.tpr == pytest.approx(percent / 100, abs=1e-12)


# --------------------------------------------------------------- 7. mismatched pieces
MISMATCH = {
    "dashboard_view: another model's reference": (lambda m, x: dashboard.dashboard_view(
        BNNet().eval(), _reference(m), x[:1]), ValueError, "reference"),
    "dashboard_view: reference a dict": (lambda m, x: dashboard.dashboard_view(
        m, {"MSP": 1}, x[:1]), TypeError, "reference"),
    "gauge_percentiles: reference a dict": (lambda m, x: dashboard.gauge_percentiles(
        {"MSP": 1}, x), TypeError, "reference"),
    "make_input level 3 without kind": (lambda m, x: dashboard.make_input(m, x[0], 0, level=3),
                                        ValueError, "kind"),
    "make_input source 'pgd'": (lambda m, x: dashboard.make_input(m, x[0], 0, "pgd"),
                                ValueError, "source"),
    "make_input label 99": (lambda m, x: dashboard.make_input(m, x[0], 99, "FGSM attack"),
                            ValueError, "label"),
    "attack_view attack 'pgd'": (lambda m, x: interventions.attack_view(m, x[0], 0, 0.01, "pgd"),
                                 ValueError, "attack"),
}


@_cases(MISMATCH)
def test_mismatched_pieces_are_refused(call, error, arg, net, x):
    _check(call, error, arg, net, x)


def test_threshold_explorer_never_clamps_a_valid_keep_percent():
    from tutorial_utils import widgets

    explorer = widgets.threshold_explorer({"MSP": np.linspace(0, 1, 20)},
                                          {"MSP": np.linspace(-1, 1, 4)},
                                          torch.rand(4, 3, 12, 12), keep_percent=30)
    assert explorer.controls["keep"].value == 30
    with pytest.raises(ValueError, match="keep_percent"):
        widgets.threshold_explorer({"MSP": np.ones(3)}, {"MSP": np.ones(3)},
                                   torch.rand(4, 3, 12, 12), keep_percent=NAN)


# --------------------------------------------------------------- 8. older modules
def _ensemble():
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        return Ensemble([BNNet().eval(), BNNet().eval()]).eval()


OLDER = {
    **{f"{fn.__name__} on a 1x1 layer": (lambda m, x, fn=fn: fn(m, x, layer=m.pool),
                                         ValueError, "layer")
       for fn in (cam.grad_cam, cam.grad_cam_pp, cam.counterfactual_cam, cam.contrast_cam,
                  cam.contrast_cam_all)},
    "layer_view on a 1x1 layer": (lambda m, x: cam.layer_view(m, x[:1], layer=m.pool),
                                  ValueError, "layer"),
    "exact_last_layer_fisher on an Ensemble": (lambda m, x: information.exact_last_layer_fisher(
        _ensemble(), x), TypeError, "model"),
}


@_cases(OLDER)
def test_older_modules_round_two(call, error, arg, net, x):
    _check(call, error, arg, net, x)


# --------------------------------------------------------------- NumPy scalars are accepted
NUMPY_SCALARS = {
    "odin temperature, epsilon": lambda m, x: uncertainty.odin(m, x, np.float64(10),
                                                               np.float32(0.001)),
    "ODINScore": lambda m, x: uncertainty.ODINScore(m, np.float64(10), np.float64(0.001)),
    "max_softmax temperature": lambda m, x: uncertainty.max_softmax(torch.randn(2, 4),
                                                                    np.float32(2)),
    "energy temperature": lambda m, x: uncertainty.energy(torch.randn(2, 4), np.float64(2)),
    "fgsm epsilon": lambda m, x: attacks.fgsm(m, x, None, np.float64(0.01)),
    "pgd steps, alpha": lambda m, x: attacks.pgd(m, x, None, 0.01, alpha=np.float32(0.005),
                                                 steps=np.int64(2)),
    "tent steps, lr": lambda m, x: adaptation.tent(m, x, steps=np.int64(1), lr=np.float64(1e-3)),
    "threshold_view keep_percent": lambda m, x: detection.threshold_view(
        [0.1, 0.5, 0.9], [0.2], np.float64(90)),
    "threshold_view keep_percent int64": lambda m, x: detection.threshold_view(
        [0.1, 0.5, 0.9], [0.2], np.int64(90)),
    "masking_view threshold, baseline": lambda m, x: interventions.masking_view(
        m, x[0], {"a": _maps(x)[0]}, np.float64(0.5), baseline=np.float64(0.2)),
    "region_masks fraction": lambda m, x: interventions.region_masks(_maps(x), np.float64(0.1)),
    "occlusion fractions array": lambda m, x: interventions.occlusion_interventions(
        m, x, _maps(x), fractions=np.array([0.1, 0.2]), n_random=2),
    "deletion_curve steps, baseline": lambda m, x: evaluation.deletion_curve(
        m, x, _maps(x), steps=np.int64(2), baseline=np.float64(0.5)),
    "explanation_iou threshold": lambda m, x: trust.explanation_iou(_maps(x), _maps(x),
                                                                    np.float64(0.2)),
    "mc_dropout passes": lambda m, x: ensembles.mc_dropout(m, x, passes=np.int64(2)),
    "attack_view label, epsilon": lambda m, x: interventions.attack_view(
        m, x[0], np.int64(1), np.float64(0.01)),
    "attack_sweep epsilons array": lambda m, x: interventions.attack_sweep(
        m, x, Y2, np.array([0, 0.01])),
    "fpr_at_tpr tpr": lambda m, x: metrics.fpr_at_tpr([0, 1, 1], [0.1, 0.5, 0.9],
                                                      np.float64(0.9)),
    "box_mask centre, size": lambda m, x: interventions.box_mask(
        (12, 12), (np.int64(2), np.int64(3)), np.int64(3)),
    "box_landscape sizes, centres": lambda m, x: interventions.box_landscape(
        m, x[0], np.array([3]), np.array([2, 6])),
    "make_input level": lambda m, x: dashboard.make_input(m, x[0], 0, kind="rain",
                                                          level=np.int64(2)),
    "ScoreSuite odin_temperature, mc_passes": lambda m, x: detection.ScoreSuite(
        m, x, Y2, names=["ODIN"], odin_temperature=np.float64(10), mc_passes=np.int64(2)),
    "mixed min_share": lambda m, x: __import__("tutorial_utils.claims").claims.mixed(
        "s", {"a": True, "b": False, "c": True, "d": False}, yes="a", no="b",
        min_share=np.float64(0.25)),
}


@pytest.mark.parametrize("call", list(NUMPY_SCALARS.values()), ids=list(NUMPY_SCALARS))
def test_numpy_scalars_are_accepted(call, net, x, capsys):
    call(net, x)


# --------------------------------------------------------------- the right argument named,
# and no raw zip / stack / IndexError / KeyError / sklearn error
NAMES = {
    "ScoreSuite fit_y wrong length": (lambda m, x: detection.ScoreSuite(
        m, x, Y2[:1], names=["Mahalanobis"]), ValueError, "fit_y"),
    "ScoreSuite fit_y float": (lambda m, x: detection.ScoreSuite(
        m, x, Y2.float(), names=["MSP"]), TypeError, "fit_y"),
    "build_reference y_fit wrong length": (lambda m, x: dashboard.build_reference(
        m, x, Y2[:1], x), ValueError, "y_fit"),
    "build_reference y_fit float": (lambda m, x: dashboard.build_reference(
        m, x, Y2.float(), x), TypeError, "y_fit"),
    "evaluate_by_level levels [9]": (lambda m, x: adaptation.evaluate_by_level(
        m, x, Y2, "rain", levels=[9]), ValueError, "levels"),
    "sanity_check explain 'nope'": (lambda m, x: evaluation.sanity_check(m, x, "nope"),
                                    ValueError, "explain"),
    "randomized_models unknown layer": (lambda m, x: evaluation.randomized_models(m, ["nope"]),
                                        ValueError, "layers"),
    "EnsembleScore on a plain model": (lambda m, x: uncertainty.EnsembleScore(m), TypeError,
                                       "model"),
    "occlusion_interventions fractions []": (lambda m, x: interventions.occlusion_interventions(
        m, x, _maps(x), fractions=[]), ValueError, "fractions"),
    "box_landscape sizes []": (lambda m, x: interventions.box_landscape(m, x[0], [], [2]),
                               ValueError, "sizes"),
    "box_landscape centres []": (lambda m, x: interventions.box_landscape(m, x[0], [3], []),
                                 ValueError, "centres"),
    "masking_view map of another size": (lambda m, x: interventions.masking_view(
        m, x[0], {"a": torch.rand(5, 5)}, 0.5), ValueError, "maps"),
    "masking_view map a list": (lambda m, x: interventions.masking_view(
        m, x[0], {"a": [[0.5]]}, 0.5), TypeError, "maps"),
    "mean_se dim 5": (lambda m, x: metrics.mean_se(np.ones((2, 3)), 5), ValueError, "dim"),
    "huffman negative count": (lambda m, x: evaluation.huffman_code_lengths([3, -1, 2]),
                               ValueError, "counts"),
    "auroc continuous labels": (lambda m, x: metrics.auroc([0.1, 0.7, 0.3], [0.2, 0.5, 0.9]),
                                ValueError, "y_true"),
}


@_cases(NAMES)
def test_messages_name_the_argument(call, error, arg, net, x):
    _check(call, error, arg, net, x)
