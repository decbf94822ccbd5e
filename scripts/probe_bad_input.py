"""Bad-input probe: call the course's functions with bad (and valid-but-unusual) arguments and
classify each case as

* ``clear``  — a ``ValueError``/``TypeError`` whose message names the argument (or, for a valid
  input such as a NumPy scalar, the call succeeds; for a state case, the state is intact);
* ``raw``    — any other exception (IndexError, KeyError, a torch/sklearn message, or a
  ValueError/TypeError that does not name the argument), or a valid input refused;
* ``silent`` — a bad input accepted without an error, or a state leak.

Usage: ``python scripts/probe_bad_input.py [-v]`` (``-v`` lists every case). Runs in a few
seconds on the CPU with tiny models; nothing is downloaded and no zoo model is loaded.
"""

from __future__ import annotations

import io
import re
import signal
import sys
import tempfile
from contextlib import redirect_stdout

import numpy as np
import torch
from torch import nn

from tutorial_utils import (
    adaptation,
    anomaly,
    attacks,
    cam,
    contrast,
    dashboard,
    detection,
    ensembles,
    evaluation,
    exercises,
    information,
    interventions,
    metrics,
    models,
    privacy,
    trust,
    uncertainty,
)

NAN, INF = float("nan"), float("inf")


class Net(nn.Module):
    """A tiny zoo-like CNN (3 channels, 4 classes): BatchNorm, dropout, penultimate + fc."""

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


torch.manual_seed(0)
NET = Net().eval()
OTHER = Net().eval()
X = torch.rand(8, 3, 12, 12, generator=torch.Generator().manual_seed(1))
Y = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])
MAPS = torch.rand(8, 12, 12, generator=torch.Generator().manual_seed(2))
XG = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(3))  # GradCon digits
ID, NOV = np.linspace(0, 1, 10), np.linspace(-1, 0.5, 10)

CASES: list[tuple[str, str, object, str | None]] = []  # (name, expect, call, argument)


def bad(name: str, arg: str | None = None):
    """Register ``call`` as a bad input: it must raise ValueError/TypeError naming ``arg``."""
    def deco(call):
        CASES.append((name, "error", call, arg))
        return call
    return deco


def case(name: str, call, arg: str | None = None, expect: str = "error") -> None:
    CASES.append((name, expect, call, arg))


def ok(name: str, call) -> None:
    """A valid input (e.g. a NumPy scalar): it must be accepted."""
    CASES.append((name, "ok", call, None))


def state(name: str, call) -> None:
    """``call()`` returns True when the state it checks was left intact."""
    CASES.append((name, "state", call, None))


# --- 1. mode restore: a model whose dropout alone is in train mode ---------------------------


def _dropout_only() -> Net:
    net = Net().eval()
    net.load_state_dict(NET.state_dict())
    net.drop.train()
    return net


def _modes(net: nn.Module) -> dict:
    return {n: m.training for n, m in net.named_modules()}


def _restores(fn):
    def call():
        net = _dropout_only()
        before = _modes(net)
        with redirect_stdout(io.StringIO()):
            fn(net)
        return _modes(net) == before
    return call


for _name, _fn in {
    "models.predict_logits": lambda n: models.predict_logits(n, X),
    "models.predict_proba": lambda n: models.predict_proba(n, X),
    "models.accuracy": lambda n: models.accuracy(n, X, Y),
    "models.decision": lambda n: models.decision(n, X[0]),
    "models.features_and_logits": lambda n: models.features_and_logits(n, X),
    "adaptation.tta_predict": lambda n: adaptation.tta_predict(n, X),
    "adaptation.bn_adapt": lambda n: adaptation.bn_adapt(n, X),
    "adaptation.tent": lambda n: adaptation.tent(n, X, steps=1),
    "adaptation.evaluate_by_level": lambda n: adaptation.evaluate_by_level(
        n, X, Y, "gaussian blur", levels=[0, 1], methods=("none", "tta", "bn", "tent"),
        tent_steps=1),
    "contrast.representatives": lambda n: contrast.representatives(n, X, Y),
    "contrast.contrast_state": lambda n: contrast.contrast_state(n, X[:1]),
    "uncertainty.odin": lambda n: uncertainty.odin(n, X),
    "uncertainty.gradnorm": lambda n: uncertainty.gradnorm(n, X),
    "uncertainty.confounding_score": lambda n: uncertainty.confounding_score(n, X),
    "uncertainty.Mahalanobis.fit": lambda n: uncertainty.Mahalanobis(n).fit(X, Y).score(X),
    "ensembles.mc_dropout": lambda n: ensembles.mc_dropout(n, X, passes=2),
    "trust.gradtrust": lambda n: trust.gradtrust(n, X),
    "trust.voice": lambda n: trust.voice(n, X[:2]),
    "attacks.fgsm": lambda n: attacks.fgsm(n, X, Y, 4 / 255),
    "attacks.pgd": lambda n: attacks.pgd(n, X, Y, 4 / 255, steps=2),
    "privacy.loss_threshold_scores": lambda n: privacy.loss_threshold_scores(n, X, Y),
    "privacy.confidence_scores": lambda n: privacy.confidence_scores(n, X, Y),
    "evaluation.deletion_curve": lambda n: evaluation.deletion_curve(n, X, MAPS, steps=4),
    "evaluation.sanity_check": lambda n: evaluation.sanity_check(n, X[:2], "Grad-CAM"),
    "interventions.occlusion_interventions": lambda n: interventions.occlusion_interventions(
        n, X[:2], MAPS[:2], n_random=2),
    "interventions.attack_sweep": lambda n: interventions.attack_sweep(n, X, Y, [0, 4 / 255]),
    "cam.grad_cam": lambda n: cam.grad_cam(n, X),
    "information.fisher_information": lambda n: information.fisher_information(n, X),
    "information.exact_last_layer_fisher": lambda n: information.exact_last_layer_fisher(n, X),
    "dashboard.build_reference": lambda n: dashboard.build_reference(n, X, Y, X),
}.items():
    state(f"mode restore: {_name}", _restores(_fn))


# --- 2. NaN / inf as values --------------------------------------------------------------------

for _v in (NAN, INF):
    case(f"masking_view threshold={_v}", lambda v=_v: interventions.masking_view(
        NET, X[0], {"a": MAPS[0]}, v), "threshold")
    case(f"threshold_view keep_percent={_v}", lambda v=_v: detection.threshold_view(
        ID, NOV, v), "keep_percent")
    case(f"odin epsilon={_v}", lambda v=_v: uncertainty.odin(NET, X, epsilon=v), "epsilon")
    case(f"odin temperature={_v}", lambda v=_v: uncertainty.odin(NET, X, temperature=v),
         "temperature")
    case(f"max_softmax temperature={_v}", lambda v=_v: uncertainty.max_softmax(
        torch.randn(3, 4), v), "temperature")
    case(f"energy temperature={_v}", lambda v=_v: uncertainty.energy(torch.randn(3, 4), v),
         "temperature")
    case(f"fgsm epsilon={_v}", lambda v=_v: attacks.fgsm(NET, X, Y, v), "epsilon")
    case(f"pgd alpha={_v}", lambda v=_v: attacks.pgd(NET, X, Y, 0.01, alpha=v), "alpha")
    case(f"explanation_iou threshold={_v}", lambda v=_v: trust.explanation_iou(
        MAPS, MAPS, v), "threshold")
    case(f"region_masks fraction={_v}", lambda v=_v: interventions.region_masks(MAPS, v),
         "fraction")
    case(f"tent lr={_v}", lambda v=_v: adaptation.tent(NET, X, lr=v), "lr")
    case(f"gradcon_scores beta={_v}", lambda v=_v: anomaly.gradcon_scores(_gc(), XG, v),
         "beta")
    case(f"fpr_at_tpr tpr={_v}", lambda v=_v: metrics.fpr_at_tpr([0, 1, 1], [0.1, .5, .9], v),
         "tpr")
    case(f"deletion_curve baseline={_v}", lambda v=_v: evaluation.deletion_curve(
        NET, X, MAPS, steps=4, baseline=v), "baseline")
    case(f"ScoreSuite odin_epsilon={_v}", lambda v=_v: detection.ScoreSuite(
        NET, X, Y, names=["ODIN"], odin_epsilon=v), "odin_epsilon")

_NANMAP = MAPS.clone()
_NANMAP[0, 0, 0] = NAN
case("masking_view NaN map", lambda: interventions.masking_view(NET, X[0], {"a": _NANMAP[0]},
                                                                 0.5), "maps")
case("rank_correlation NaN map", lambda: metrics.rank_correlation(_NANMAP, MAPS), "a")
case("region_ratio NaN map", lambda: contrast.region_ratio(_NANMAP, MAPS > 0.5), "maps")
case("map_snr NaN map", lambda: trust.map_snr(_NANMAP), "maps")
case("sanity_check explain returning NaN", lambda: evaluation.sanity_check(
    NET, X[:2], lambda m, x, t, layer=None, **o: torch.full(x.shape[:1] + x.shape[2:], NAN)),
    "explain")
case("deletion_curve NaN saliency", lambda: evaluation.deletion_curve(NET, X, _NANMAP, steps=4),
     "saliency")


def _quiet(fn):
    def call():
        with redirect_stdout(io.StringIO()):
            return fn()
    return call


# exercise checkers: a NaN answer is never correct (each must return False)
for _name, _check, _arity in [
        ("softmax_temperature", exercises.softmax_temperature, 2),
        ("entropy_bits", exercises.entropy_bits, 1),
        ("fisher_matrix", exercises.fisher_matrix, 1),
        ("gradcam_weights", exercises.gradcam_weights, 2),
        ("contrast_weights", exercises.contrast_weights, 3),
        ("energy_score", exercises.energy_score, 2),
        ("deletion_auc", exercises.deletion_auc, 2),
        ("fgsm_step", exercises.fgsm_step, 3),
        ("tpr_at_fpr", exercises.tpr_at_fpr, 3),
        ("tta_average", exercises.tta_average, 1),
        ("handover_accuracy", exercises.handover_accuracy, 3)]:
    def _nan_fn(*args, _n=_name):
        return float("nan") if _n in ("tpr_at_fpr", "handover_accuracy") else \
            torch.full_like(torch.as_tensor(args[0], dtype=torch.float64), NAN)
    case(f"exercises.{_name}: NaN answer", lambda c=_check, f=_nan_fn: (
        _ for _ in ()).throw(AssertionError("accepted")) if _quiet(lambda: c(f))() else None,
        expect="checker")


def _inplace_softmax(z, t):
    z /= t
    return z.softmax(0)


def _mutates_checker():
    out = io.StringIO()
    with redirect_stdout(out):
        exercises.softmax_temperature(_inplace_softmax)
    return "place" in out.getvalue()  # the verdict must say the input was changed in place


state("exercises.softmax_temperature: in-place mutation named", _mutates_checker)


# --- 3. floats silently truncated ----------------------------------------------------------

case("box_mask centre=(2.7, 3.2)", lambda: interventions.box_mask((12, 12), (2.7, 3.2), 3),
     "centre")
case("box_landscape centres=[2.5]", lambda: interventions.box_landscape(
    NET, X[0], [3], [2.5]), "centres")
case("box_mask size=2.5", lambda: interventions.box_mask((12, 12), (2, 3), 2.5), "size")
case("gradtrust_from_logits int logits", lambda: trust.gradtrust_from_logits(
    torch.tensor([[3, 1, 0], [1, 1, 1]])), "logits", )
case("attack_view label=2.7", lambda: interventions.attack_view(NET, X[0], 2.7, 0.01), "label")
case("make_input label=1.5", lambda: dashboard.make_input(NET, X[0], 1.5, "FGSM attack"),
     "label")
case("dashboard_view contrast=1.5", lambda: dashboard.dashboard_view(
    NET, _reference(), X[:1], contrast=1.5), "contrast")
case("mc_dropout passes=2.5", lambda: ensembles.mc_dropout(NET, X, passes=2.5), "passes")
case("pgd steps=2.5", lambda: attacks.pgd(NET, X, Y, 0.01, steps=2.5), "steps")
case("tent steps=1.5", lambda: adaptation.tent(NET, X, steps=1.5), "steps")
case("region_masks n=1.5", lambda: interventions.region_masks(MAPS, 0.1, "random", n=1.5), "n")
case("reliability_curve n_bins=7.5", lambda: metrics.reliability_curve(
    np.full((4, 2), 0.5), [0, 1, 0, 1], 7.5), "n_bins")
case("deletion_curve steps=4.5", lambda: evaluation.deletion_curve(NET, X, MAPS, steps=4.5),
     "steps")
case("contrast_panel q=1.5", lambda: contrast.contrast_panel(
    contrast.contrast_state(NET, X[:1]), 1.5, ["a", "b", "c", "d"]), "q")

# --- 4. units and ranges -------------------------------------------------------------------

case("odin epsilon=2 (pixel units)", lambda: uncertainty.odin(NET, X, epsilon=2), "epsilon")
case("ODINScore epsilon=2", lambda: uncertainty.ODINScore(NET, epsilon=2), "epsilon")
case("ScoreSuite odin_epsilon=2", lambda: detection.ScoreSuite(
    NET, X, Y, names=["ODIN"], odin_epsilon=2), "odin_epsilon")
case("odin epsilon=-0.1", lambda: uncertainty.odin(NET, X, epsilon=-0.1), "epsilon")
case("train_gradcon lr=0", lambda: anomaly.train_gradcon(XG, epochs=1, lr=0,
                                                          progress=False), "lr")
case("train_gradcon lr=-1", lambda: anomaly.train_gradcon(XG, epochs=1, lr=-1,
                                                           progress=False), "lr")
case("tent lr=0", lambda: adaptation.tent(NET, X, lr=0), "lr")
case("tent lr=-0.1", lambda: adaptation.tent(NET, X, lr=-0.1), "lr")
case("train_classifier lr=0", lambda: models.train_classifier(
    Net(), X, Y, epochs=1, lr=0, progress=False), "lr")
case("mc_dropout passes=10**8", lambda: ensembles.mc_dropout(NET, X, passes=10**8), "passes")
case("MCDropoutScore passes=10**8", lambda: uncertainty.MCDropoutScore(NET, passes=10**8),
     "passes")
case("attack_sweep epsilons=[2]", lambda: interventions.attack_sweep(NET, X, Y, [2]),
     "epsilons")
case("fgsm epsilon=8", lambda: attacks.fgsm(NET, X, Y, 8), "epsilon")
case("max_softmax temperature=0", lambda: uncertainty.max_softmax(torch.randn(3, 4), 0),
     "temperature")
case("energy temperature=-1", lambda: uncertainty.energy(torch.randn(3, 4), -1), "temperature")
case("explanation_iou threshold=1.5", lambda: trust.explanation_iou(MAPS, MAPS, 1.5),
     "threshold")
case("threshold_view keep_percent=150", lambda: detection.threshold_view(ID, NOV, 150),
     "keep_percent")
case("threshold_view keep_percent=0", lambda: detection.threshold_view(ID, NOV, 0),
     "keep_percent")
case("fpr_at_tpr tpr=95", lambda: metrics.fpr_at_tpr([0, 1, 1], [0.1, .5, .9], 95), "tpr")
case("privacy.train_overfit_digits n_train=7", lambda: privacy.train_overfit_digits(
    n_train=7, epochs=1, progress=False), "n_train")

# --- 5. degenerate fits ----------------------------------------------------------------------

case("Mahalanobis fit on one image", lambda: uncertainty.Mahalanobis(NET).fit(X[:1], Y[:1]),
     "x")
case("Mahalanobis fit_features one sample per class", lambda: uncertainty.Mahalanobis(
    NET).fit_features(torch.randn(4, 6), torch.arange(4)), "h")
case("Mahalanobis fit_features constant features", lambda: uncertainty.Mahalanobis(
    NET).fit_features(torch.ones(6, 6), torch.zeros(6, dtype=torch.long)), "h")
case("ScoreSuite Mahalanobis fit on one image", lambda: detection.ScoreSuite(
    NET, X[:1], Y[:1], names=["Mahalanobis"]), "fit_x")
case("build_reference one fit image", lambda: dashboard.build_reference(NET, X[:1], Y[:1], X),
     "x_fit")
ok("Mahalanobis one class (distance to its mean)", lambda: uncertainty.Mahalanobis(
    NET).fit(X, torch.zeros(8, dtype=torch.long)).score(X))
ok("Mahalanobis fewer images than dims (pseudo-inverse)", lambda: uncertainty.Mahalanobis(
    NET).fit_features(torch.randn(5, 6), torch.tensor([0, 0, 1, 1, 1])).score_features(
        torch.randn(3, 6)))

# --- 6. rounding at the edges ---------------------------------------------------------------


def _keeps(percent, n=10):
    def call():
        view = detection.threshold_view(np.arange(n, dtype=float), np.arange(n, dtype=float),
                                        percent)
        return abs(view.tpr * 100 - percent) < 1e-9
    return call


for _p in (90, 70, 30, 10, 80, 60):
    state(f"threshold_view keep_percent={_p} of 10 keeps exactly {_p}%", _keeps(_p))
state("threshold_view keep_percent=29 of 100 keeps 29", _keeps(29, 100))
state("threshold_view keep_percent=57 of 100 keeps 57", _keeps(57, 100))

# --- 7. mismatched pieces -------------------------------------------------------------------

_REF = []


def _reference():
    if not _REF:
        _REF.append(dashboard.build_reference(NET, X, Y, X))
    return _REF[0]


case("dashboard_view with another model's reference", lambda: dashboard.dashboard_view(
    OTHER, _reference(), X[:1]), "reference")
case("gauge_percentiles reference not a Reference", lambda: dashboard.gauge_percentiles(
    {"a": 1}, X), "reference")
case("make_input level=3 without kind", lambda: dashboard.make_input(NET, X[0], 0, level=3),
     "kind")
case("make_input source='pgd'", lambda: dashboard.make_input(NET, X[0], 0, "pgd"), "source")
case("make_input kind='rain' level=9", lambda: dashboard.make_input(
    NET, X[0], 0, kind="gaussian blur", level=9), "level")
case("attack_view attack='pgd'", lambda: interventions.attack_view(NET, X[0], 0, 0.01, "pgd"),
     "attack")
case("attack_sweep attacks=['pgd']", lambda: interventions.attack_sweep(
    NET, X, Y, [0.01], attacks=["pgd"]), "attacks")
case("evaluate_membership attack='lira'", lambda: privacy.evaluate_membership(
    NET, X, Y, X, Y, attack="lira"), "attack")
case("evaluate_by_level methods=['foo']", lambda: adaptation.evaluate_by_level(
    NET, X, Y, "gaussian blur", levels=[0], methods=["foo"]), "methods")
case("evaluate_by_level kind='fog'", lambda: adaptation.evaluate_by_level(
    NET, X, Y, "fog", levels=[0]), "kind")
case("tent optimizer='sgdd'", lambda: adaptation.tent(NET, X, optimizer="sgdd"), "optimizer")
case("augment ['flip']", lambda: adaptation.augment(X, ["flip"]), "augmentations")
case("region_masks kind='middle'", lambda: interventions.region_masks(MAPS, 0.1, "middle"),
     "kind")
case("deletion_curve score='logprob'", lambda: evaluation.deletion_curve(
    NET, X, MAPS, steps=4, score="logprob"), "score")
case("deletion_curve baseline='purple'", lambda: evaluation.deletion_curve(
    NET, X, MAPS, steps=4, baseline="purple"), "baseline")
case("detection_table metric='AUC'", lambda: detection.detection_table(
    {"a": torch.rand(5)}, {"n": {"a": torch.rand(5)}}, metric="AUC"), "metric")
case("ScoreSuite names=['foo']", lambda: detection.ScoreSuite(NET, X, Y, names=["foo"]),
     "names")
case("confounding_score loss='hinge'", lambda: uncertainty.confounding_score(
    NET, X, loss="hinge"), "loss")
case("information.entropy unit='dits'", lambda: information.entropy(
    np.full((2, 2), .5), "dits"), "unit")

# --- 8. older modules ----------------------------------------------------------------------

case("grad_cam on a 1x1 layer", lambda: cam.grad_cam(NET, X, layer=NET.pool), "layer")
case("contrast_cam on a 1x1 layer", lambda: cam.contrast_cam(NET, X, layer=NET.pool),
     "layer")


class _Ens(nn.Module):
    def __init__(self):
        super().__init__()
        self.members = nn.ModuleList([Net(), Net()])

    def forward(self, x):
        return torch.stack([m(x) for m in self.members]).softmax(-1).mean(0).log()


def _ensemble():
    from tutorial_utils.architectures import Ensemble
    try:
        return Ensemble([Net(), Net()])
    except Exception:  # noqa: BLE001 - a different constructor
        return _Ens()


case("exact_last_layer_fisher on an Ensemble", lambda: information.exact_last_layer_fisher(
    _ensemble(), X), "model")
case("effective_rank of an all-zero spectrum",
     lambda: _defined(information.effective_rank if hasattr(information, "effective_rank")
                      else __import__("tutorial_utils.manifolds", fromlist=["x"]).effective_rank,
                      torch.zeros(5)), "spectrum", expect="defined")


def _defined(fn, *args):
    value = float(fn(*args))
    if not np.isfinite(value):
        raise AssertionError(f"undefined value {value}")
    return value


def _manifest_retrain():
    """A checkpoint file without a manifest entry: ``load`` must not retrain over it."""
    from tutorial_utils import zoo

    class Retrained(Exception):
        pass

    def no_training(name, progress=True):
        raise Retrained(name)

    with tempfile.TemporaryDirectory() as tmp:
        from pathlib import Path
        path = Path(tmp) / "digits.pt"
        path.write_bytes(b"checkpoint bytes")
        (Path(tmp) / "manifest.json").write_text("{}")
        old_dir, old_train = zoo.data_dir, models.train_zoo_model
        zoo.data_dir, models.train_zoo_model = (lambda: Path(tmp)), no_training
        try:
            models.load("digits")
        except Retrained:
            return False
        except (ValueError, FileNotFoundError, RuntimeError) as error:
            return "manifest" in str(error) and path.read_bytes() == b"checkpoint bytes"
        finally:
            zoo.data_dir, models.train_zoo_model = old_dir, old_train
        return False


state("models.load missing manifest entry keeps the checkpoint", _manifest_retrain)

# --- raw errors: NumPy scalars, argument names, raw exceptions ------------------------------

ok("odin temperature=np.float64", lambda: uncertainty.odin(NET, X, np.float64(10),
                                                           np.float64(0.001)))
ok("max_softmax temperature=np.float32", lambda: uncertainty.max_softmax(
    torch.randn(3, 4), np.float32(2)))
ok("energy temperature=np.float64", lambda: uncertainty.energy(torch.randn(3, 4),
                                                               np.float64(2)))
ok("fgsm epsilon=np.float64", lambda: attacks.fgsm(NET, X, Y, np.float64(0.01)))
ok("pgd steps=np.int64", lambda: attacks.pgd(NET, X, Y, 0.01, steps=np.int64(2)))
ok("pgd alpha=np.float32", lambda: attacks.pgd(NET, X, Y, 0.01, alpha=np.float32(0.005),
                                               steps=2))
ok("tent steps=np.int64 lr=np.float64", lambda: adaptation.tent(NET, X, steps=np.int64(1),
                                                                lr=np.float64(1e-3)))
ok("threshold_view keep_percent=np.float64", lambda: detection.threshold_view(
    ID, NOV, np.float64(90)))
ok("threshold_view keep_percent=np.int64", lambda: detection.threshold_view(
    ID, NOV, np.int64(90)))
ok("masking_view threshold=np.float64", lambda: interventions.masking_view(
    NET, X[0], {"a": MAPS[0]}, np.float64(0.5)))
ok("masking_view baseline=np.float64", lambda: interventions.masking_view(
    NET, X[0], {"a": MAPS[0]}, 0.5, baseline=np.float64(0.2)))
ok("region_masks fraction=np.float64", lambda: interventions.region_masks(
    MAPS, np.float64(0.1)))
ok("occlusion_interventions fractions=np.array", lambda: interventions.occlusion_interventions(
    NET, X[:2], MAPS[:2], fractions=np.array([0.1, 0.2]), n_random=2))
ok("deletion_curve steps=np.int64 baseline=np.float64", lambda: evaluation.deletion_curve(
    NET, X, MAPS, steps=np.int64(4), baseline=np.float64(0.5)))
ok("explanation_iou threshold=np.float64", lambda: trust.explanation_iou(
    MAPS, MAPS, np.float64(0.2)))
ok("mc_dropout passes=np.int64", lambda: ensembles.mc_dropout(NET, X, passes=np.int64(2)))
ok("gradcon_scores beta=np.float64", lambda: anomaly.gradcon_scores(_gc(), XG,
                                                                     np.float64(0.1)))
ok("attack_view epsilon=np.float64 label=np.int64", lambda: interventions.attack_view(
    NET, X[0], np.int64(1), np.float64(0.01)))
ok("attack_sweep epsilons=np.array", lambda: interventions.attack_sweep(
    NET, X, Y, np.array([0, 0.01])))
ok("fpr_at_tpr tpr=np.float64", lambda: metrics.fpr_at_tpr([0, 1, 1], [.1, .5, .9],
                                                           np.float64(0.9)))
ok("reliability_curve n_bins=np.int64", lambda: metrics.reliability_curve(
    np.full((4, 2), 0.5), [0, 1, 0, 1], np.int64(5)))
ok("box_mask centre=np.int64", lambda: interventions.box_mask((12, 12), (np.int64(2),
                                                                        np.int64(3)), 3))
ok("make_input level=np.int64", lambda: dashboard.make_input(NET, X[0], 0, kind="gaussian blur",
                                                             level=np.int64(2)))
ok("ScoreSuite odin_temperature=np.float64", lambda: detection.ScoreSuite(
    NET, X, Y, names=["ODIN"], odin_temperature=np.float64(10), mc_passes=np.int64(2)))

case("ScoreSuite fit_y wrong length names fit_y", lambda: detection.ScoreSuite(
    NET, X, Y[:3], names=["Mahalanobis"]), "fit_y")
case("ScoreSuite fit_y float names fit_y", lambda: detection.ScoreSuite(
    NET, X, Y.float(), names=["Mahalanobis"]), "fit_y")
case("build_reference y_fit wrong length names y_fit", lambda: dashboard.build_reference(
    NET, X, Y[:3], X), "y_fit")
case("build_reference y_fit float names y_fit", lambda: dashboard.build_reference(
    NET, X, Y.float(), X), "y_fit")
case("make_input label=99 names label", lambda: dashboard.make_input(
    NET, X[0], 99, "FGSM attack"), "label")
case("attack_view label=99 names label", lambda: interventions.attack_view(
    NET, X[0], 99, 0.01), "label")
case("evaluate_membership y_members wrong length", lambda: privacy.evaluate_membership(
    NET, X, Y[:3], X, Y), "y_members")
case("evaluate_membership y_nonmembers float", lambda: privacy.evaluate_membership(
    NET, X, Y, X, Y.float()), "y_nonmembers")
case("one_class_aurocs normal_class=9", lambda: anomaly.one_class_aurocs(
    _gc(), XG, Y[:4], 9), "normal_class")
case("occlusion_interventions fractions=[]", lambda: interventions.occlusion_interventions(
    NET, X[:2], MAPS[:2], fractions=[]), "fractions")
case("structure_wise_curve thresholds=[]", lambda: evaluation.structure_wise_curve(
    NET, X[:2], MAPS[:2], Y[:2], thresholds=[]), "thresholds")
case("box_landscape sizes=[]", lambda: interventions.box_landscape(NET, X[0], [], [2]),
     "sizes")
case("box_landscape centres=[]", lambda: interventions.box_landscape(NET, X[0], [3], []),
     "centres")
case("masking_view map of another shape", lambda: interventions.masking_view(
    NET, X[0], {"a": torch.rand(5, 5)}, 0.5), "maps")
case("masking_view maps not tensors", lambda: interventions.masking_view(
    NET, X[0], {"a": [[0.5]]}, 0.5), "maps")
case("contrast_gallery contrasts length mismatch", lambda: contrast.contrast_gallery(
    NET, X[:2], [(0, 1)], X[:4]), "contrasts")
case("contrast_gallery rep_images too few", lambda: contrast.contrast_gallery(
    NET, X[:1], [(0, 1)], X[:2]), "rep_images")
case("contrast_panel q=99", lambda: contrast.contrast_panel(
    contrast.contrast_state(NET, X[:1]), 99, ["a", "b", "c", "d"]), "q")
case("contrast_panel class_names too short", lambda: contrast.contrast_panel(
    contrast.contrast_state(NET, X[:1]), 1, ["a"]), "class_names")
case("representatives y float", lambda: contrast.representatives(NET, X, Y.float()), "y")
case("representatives y wrong length", lambda: contrast.representatives(NET, X, Y[:3]), "y")
case("detection_table novel set missing a score", lambda: detection.detection_table(
    {"a": torch.rand(5), "b": torch.rand(5)}, {"n": {"a": torch.rand(5)}}), "novel_scores")
case("detection_table near names an unknown set", lambda: detection.detection_table(
    {"a": torch.rand(5)}, {"n": {"a": torch.rand(5)}}, near=["zz"]), "near")
case("membership_report continuous labels", lambda: metrics.auroc([0.1, 0.7, 0.3],
                                                                 [0.2, 0.5, 0.9]), "y_true")
case("auroc one class only", lambda: metrics.auroc([1, 1, 1], [0.2, 0.5, 0.9]), "y_true")
case("auroc length mismatch", lambda: metrics.auroc([0, 1, 1], [0.2, 0.5]), "y_score")
case("ece labels out of range", lambda: metrics.expected_calibration_error(
    np.full((4, 2), 0.5), [0, 1, 5, 1]), "labels")
case("auac percentiles=[]", lambda: metrics.auac([.1, .2, .3], [1, 0, 1], []), "percentiles")
case("mean_se dim=5", lambda: metrics.mean_se(np.ones((2, 3)), 5), "dim")
case("membership_table targets not a mapping", lambda: privacy.membership_table(
    [1, 2], None), "targets")
case("tta_predict augmentations=[]", lambda: adaptation.tta_predict(NET, X, []),
     "augmentations")
case("evaluate_by_level levels=[9]", lambda: adaptation.evaluate_by_level(
    NET, X, Y, "gaussian blur", levels=[9]), "levels")
case("evaluate_by_level y wrong length", lambda: adaptation.evaluate_by_level(
    NET, X, Y[:3], "gaussian blur", levels=[0]), "y")
case("voice layer not in model", lambda: trust.voice(NET, X[:2], layer=nn.Conv2d(3, 3, 1)),
     "layer")
case("gradtrust layer not a Linear", lambda: trust.gradtrust(NET, X, layer=NET.conv), "layer")
case("last_layer_gradients layer not in model", lambda: trust.last_layer_gradients(
    NET, X, nn.Linear(6, 4)), "layer")
case("ensemble_uncertainty on a plain model", lambda: ensembles.ensemble_uncertainty(NET, X),
     "ensemble")
case("EnsembleScore on a plain model", lambda: uncertainty.EnsembleScore(NET).score(X),
     "model")
case("ConfoundingDetector score before fit", lambda: uncertainty.ConfoundingDetector(
    NET).score(X), "fit")
case("Mahalanobis score before fit", lambda: uncertainty.Mahalanobis(NET).score(X), "fit")
case("gradcon_scores before fit/ref", lambda: anomaly.gradcon_scores(anomaly.GradCon(), XG),
     "model")
case("train_gradcon 3-channel model images wrong channels", lambda: anomaly.gradcon_scores(
    _gc(), X), "x")
case("information_table length mismatch", lambda: information.information_table(
    [0, 1, 1], [0, 1]), "b")
case("mutual_information bins=0", lambda: information.mutual_information(
    [0, 1, 1], [0, 1, 0], 0), "bins")
case("curve_auc length mismatch", lambda: evaluation.curve_auc(torch.linspace(0, 1, 5),
                                                               torch.rand(2, 4)), "values")
case("huffman_code_lengths negative count", lambda: evaluation.huffman_code_lengths(
    [3, -1, 2]), "counts")
case("randomized_models unknown layer", lambda: evaluation.randomized_models(NET, ["nope"]),
     "layers")
case("sanity_check explain='nope'", lambda: evaluation.sanity_check(NET, X[:2], "nope"),
     "explain")

# --- a second sweep: claims, introspection, landscape, saliency, widgets' argument checks ---

from tutorial_utils import claims, introspection, landscape, manifolds, saliency  # noqa: E402

_A, _B = np.linspace(0, 1, 20), np.linspace(0.2, 1.2, 20)
case("claims.greater NaN in a", lambda: claims.greater("s", np.r_[_A[:-1], NAN], _B), "a")
case("claims.greater length mismatch", lambda: claims.greater("s", _A, _B[:5]), "b")
case("claims.greater resamples=2.5", lambda: claims.greater("s", _A, _B, resamples=2.5),
     "resamples")
case("claims.above threshold NaN", lambda: claims.above("s", _A, threshold=NAN), "threshold")
case("claims.over_seeds side='up'", lambda: claims.over_seeds("s", {0: 1.0, 1: 2.0},
                                                              side="up"), "side")
case("claims.over_seeds NaN value", lambda: claims.over_seeds("s", {0: NAN, 1: 2.0}),
     "values_by_seed")
case("claims.mixed min_share=0.9", lambda: claims.mixed("s", {"a": True, "b": False},
                                                        yes="y", no="n", min_share=0.9),
     "min_share")
case("claims.claim holds='yes'", lambda: claims.claim("s", "yes"), "holds")
ok("claims.above threshold np.float64", lambda: claims.above("s", _A + 1,
                                                             threshold=np.float64(0.5)))
ok("claims.over_seeds numpy values", lambda: claims.over_seeds(
    "s", {0: np.float64(1.0), 1: np.float32(2.0), 2: np.float64(1.5)}))
case("introspection.sparsity rel_threshold NaN", lambda: introspection.sparsity(
    torch.rand(3, 4), NAN), "rel_threshold")
case("introspection.build_heads feat_dim=2.5", lambda: introspection.build_heads(2.5, 4),
     "feat_dim")
ok("introspection.build_heads np.int64", lambda: introspection.build_heads(np.int64(6),
                                                                           np.int64(4)))
case("landscape.loss_plane steps=2.5", lambda: landscape.loss_plane(NET, X[:1], steps=2.5),
     "steps")
case("landscape.loss_plane span NaN", lambda: landscape.loss_plane(NET, X[:1], span=NAN,
                                                                   steps=3), "span")
case("landscape.directional_change label=1.5", lambda: landscape.directional_change(
    NET, X[:1], 1.5, n_random=2), "label")
ok("landscape.loss_plane span np.float64", lambda: landscape.loss_plane(
    NET, X[:1], span=np.float64(0.1), steps=np.int64(3)))
case("manifolds.effective_rank NaN", lambda: manifolds.effective_rank(np.array([1.0, NAN])),
     "singular_values")
case("saliency.smoothgrad sigma NaN", lambda: saliency.smoothgrad(NET, X, n_samples=2,
                                                                  sigma=NAN), "sigma")
case("saliency.rise p_keep=1.5", lambda: saliency.rise(NET, X, n_masks=2, p_keep=1.5),
     "p_keep")
case("saliency.occlusion window=2.5", lambda: saliency.occlusion(NET, X, window=2.5),
     "window")
ok("saliency.smoothgrad np scalars", lambda: saliency.smoothgrad(
    NET, X, n_samples=np.int64(2), sigma=np.float64(0.1)))
ok("saliency.occlusion np window", lambda: saliency.occlusion(NET, X, window=np.int64(4),
                                                              stride=np.int64(4)))
case("information.mutual_information bins=2.5", lambda: information.mutual_information(
    [0, 1, 1, 0], [0, 1, 0, 1], 2.5), "bins")
case("information.entropy NaN probs", lambda: information.entropy(np.array([[NAN, 1.0]])),
     "probs")
case("metrics.auac percentiles NaN", lambda: metrics.auac([.1, .2, .3], [1, 0, 1],
                                                          [0, NAN, 100]), "percentiles")
case("metrics.detection_report NaN score", lambda: metrics.detection_report(
    [0.1, NAN], [0.2, 0.3]), "id_scores")
case("trust.explanation_uncertainty pred=1.5", lambda: trust.explanation_uncertainty(
    torch.rand(2, 4, 12, 12), torch.tensor([1.5, 0.5])), "pred")


def _widgets():
    from tutorial_utils import widgets
    return widgets


case("widgets.occluder_explorer target=2.7", lambda: _widgets().occluder_explorer(
    NET, X[0], ["a", "b", "c", "d"], target=2.7, sizes=(4,), size=4), "target")
case("widgets.occluder_explorer target=99", lambda: _widgets().occluder_explorer(
    NET, X[0], ["a", "b", "c", "d"], target=99, sizes=(4,), size=4), "target")
case("widgets.threshold_explorer keep_percent NaN", lambda: _widgets().threshold_explorer(
    {"MSP": ID}, {"MSP": NOV}, X, keep_percent=NAN), "keep_percent")


def _slider_keeps_30():
    explorer = _widgets().threshold_explorer({"MSP": ID}, {"MSP": NOV[:8]}, X, keep_percent=30)
    return explorer.controls["keep"].value == 30


state("widgets.threshold_explorer keep_percent=30 not clamped", _slider_keeps_30)
case("widgets.threshold_explorer 10 scores, 8 images", lambda: _widgets().threshold_explorer(
    {"MSP": ID}, {"MSP": NOV}, X), "novel_images")

_GC = []


def _gc():
    if not _GC:
        _GC.append(anomaly.train_gradcon(XG, epochs=1, widths=(2, 2, 2, 2),
                                         progress=False))
    return _GC[0]


# --------------------------------------------------------------------------------------------


def _names(message: str, arg: str | None) -> bool:
    return arg is None or re.search(rf"(?<![A-Za-z_]){re.escape(arg)}(?![A-Za-z_])",
                                    message) is not None


class _Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise _Timeout


TIME_LIMIT = 20  # seconds: a bad input that keeps the call running this long is "silent"


def classify(expect: str, call, arg: str | None) -> tuple[str, str]:
    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(TIME_LIMIT)
    try:
        with redirect_stdout(io.StringIO()):
            out = call()
    except _Timeout:
        return "silent", f"still running after {TIME_LIMIT} s (no error)"
    except (ValueError, TypeError) as error:
        if expect in ("ok", "defined"):
            return "raw", f"valid input refused: {type(error).__name__}: {error}"
        if expect == "state":
            return "raw", f"{type(error).__name__}: {error}"
        if _names(str(error), arg):
            return "clear", f"{type(error).__name__}: {error}"
        return "raw", f"does not name {arg!r}: {type(error).__name__}: {error}"
    except AssertionError as error:  # a checker accepted a NaN, an undefined value
        return "silent", str(error)
    except Exception as error:  # noqa: BLE001 - everything else is a raw error
        if expect == "defined" and isinstance(error, (ValueError, TypeError)):
            return "clear", str(error)
        return "raw", f"{type(error).__name__}: {error}"
    finally:
        signal.alarm(0)
    if expect in ("ok", "checker", "defined"):
        return "clear", "accepted"
    if expect == "state":
        return ("clear", "intact") if out else ("silent", "state changed")
    return "silent", "no error"


def main(argv: list[str]) -> int:
    import resource
    limit = 8 * 2**30  # an allocation beyond 8 GiB fails here instead of taking the machine
    resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))
    verbose = "-v" in argv
    counts = {"clear": 0, "raw": 0, "silent": 0}
    for name, expect, call, arg in CASES:
        verdict, detail = classify(expect, call, arg)
        counts[verdict] += 1
        if verbose or verdict != "clear":
            print(f"{verdict:6s} {name}: {detail}"[:300])
    total = sum(counts.values())
    print(f"\n{total} cases: {counts['clear']} clear, {counts['raw']} raw, "
          f"{counts['silent']} silent")
    return 0 if counts["silent"] == 0 and counts["raw"] <= 0.05 * total else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
