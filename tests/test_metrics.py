"""Tests of tutorial_utils.metrics: hand-computed cases, sklearn cross-checks, bad inputs."""

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, f1_score, roc_auc_score

from tutorial_utils import metrics as M

# 4 in-distribution (label 1) and 4 novel samples; scores: higher = more in-distribution
Y_HAND = np.array([1, 1, 1, 1, 0, 0, 0, 0])
S_HAND = np.array([0.9, 0.8, 0.7, 0.2, 0.6, 0.5, 0.1, 0.05])


@pytest.fixture
def rng():
    return np.random.default_rng(0)


# --------------------------------------------------------------------------- detection
def test_auroc_aupr_match_sklearn_on_random_data(rng):
    y = rng.integers(0, 2, 500)
    s = rng.normal(size=500) + 0.8 * y
    assert M.auroc(y, s) == pytest.approx(roc_auc_score(y, s))
    assert M.aupr(y, s) == pytest.approx(average_precision_score(y, s))
    assert isinstance(M.auroc(y, s), float)


def test_auroc_aupr_hand_cases():
    y = np.array([1, 1, 0, 0])
    assert M.auroc(y, [0.9, 0.8, 0.2, 0.1]) == 1.0
    assert M.auroc(y, [0.1, 0.2, 0.8, 0.9]) == 0.0
    assert M.auroc(y, [0.5, 0.5, 0.5, 0.5]) == 0.5
    assert M.aupr(y, [0.9, 0.8, 0.2, 0.1]) == 1.0
    # 2 of the 16 (pos, neg) pairs are ordered wrongly in the hand set (0.2 < 0.6, 0.5)
    assert M.auroc(Y_HAND, S_HAND) == pytest.approx(14 / 16)


def test_torch_and_numpy_inputs_agree(rng):
    y = rng.integers(0, 2, 100)
    s = rng.normal(size=100) + y
    assert M.auroc(torch.tensor(y), torch.tensor(s, dtype=torch.float32)) == pytest.approx(
        M.auroc(y, s.astype(np.float32)))
    assert M.auroc(torch.tensor(y).bool(), s) == M.auroc(y, s)
    assert M.auroc(list(y), list(s)) == M.auroc(y, s)


def test_fpr_at_tpr_hand_case():
    # TPR >= 95% needs all four positives: threshold 0.2 lets 0.6 and 0.5 through -> FPR 2/4
    assert M.fpr_at_tpr(Y_HAND, S_HAND) == 0.5
    # TPR 75% is reached at threshold 0.7, where no negative is above -> FPR 0
    assert M.fpr_at_tpr(Y_HAND, S_HAND, tpr=0.75) == 0.0
    assert M.fpr_at_tpr(Y_HAND, S_HAND, tpr=0.5) == 0.0
    assert M.fpr_at_tpr([1, 1, 0, 0], [0.9, 0.8, 0.2, 0.1]) == 0.0
    assert M.fpr_at_tpr([1, 1, 0, 0], [0.1, 0.2, 0.8, 0.9]) == 1.0


def test_fpr_at_tpr_exact_95_percent():
    # 20 positives: the 19th-best positive gives exactly 95% TPR (no need for the 20th)
    pos = np.arange(20, 0, -1) / 20.0 + 1.0  # 2.0 ... 1.05
    pos[-1] = -10.0  # the worst positive is below every negative
    neg = np.array([1.5, 0.0, -1.0, -2.0])  # one negative above the 19th positive (1.1)
    y = np.r_[np.ones(20), np.zeros(4)].astype(int)
    assert M.fpr_at_tpr(y, np.r_[pos, neg]) == 0.25


def test_detection_accuracy_hand_case():
    # best threshold 0.7: TPR 3/4, TNR 4/4 -> 0.875
    assert M.detection_accuracy(Y_HAND, S_HAND) == pytest.approx(0.875)
    assert M.detection_accuracy([1, 0], [1.0, 0.0]) == 1.0
    assert M.detection_accuracy([1, 0], [0.0, 1.0]) == 0.5  # never below chance: accept all


def test_detection_report(rng):
    s_in, s_out = rng.normal(1, 1, 300), rng.normal(0, 1, 200)
    rep = M.detection_report(s_in, s_out)
    assert set(rep) == {"AUROC", "AUPR-In", "AUPR-Out", "FPR@95TPR", "Detection acc."}
    y = np.r_[np.ones(300), np.zeros(200)]
    s = np.r_[s_in, s_out]
    assert rep["AUROC"] == pytest.approx(roc_auc_score(y, s))
    assert rep["AUPR-In"] == pytest.approx(average_precision_score(y, s))
    assert rep["AUPR-Out"] == pytest.approx(average_precision_score(1 - y, -s))
    assert 0 < rep["FPR@95TPR"] < 1 and 0.5 < rep["Detection acc."] < 1
    perfect = M.detection_report([3.0, 4.0, 5.0], [0.0, 1.0])
    assert perfect == {"AUROC": 1.0, "AUPR-In": 1.0, "AUPR-Out": 1.0, "FPR@95TPR": 0.0,
                       "Detection acc.": 1.0}


# --------------------------------------------------------------------------- calibration
def test_ece_zero_when_confident_and_correct():
    assert M.ece_from_confidence(np.ones(10), np.ones(10, bool)) == 0.0
    probs = np.eye(4)[[0, 1, 2, 3, 0]]
    assert M.expected_calibration_error(probs, np.array([0, 1, 2, 3, 0])) == 0.0
    # fully confident and always wrong: ECE 1
    assert M.expected_calibration_error(probs, np.array([1, 2, 3, 0, 1])) == 1.0


def test_ece_two_bins_hand_case():
    conf = np.array([0.3, 0.3, 0.8, 0.8])
    correct = np.array([True, False, True, True])
    # bin (0, .5]: acc .5, conf .3 -> gap .2; bin (.5, 1]: acc 1, conf .8 -> gap .2
    assert M.ece_from_confidence(conf, correct, n_bins=2) == pytest.approx(0.2)
    # one bin: |acc 0.75 - conf 0.55| = 0.2 as well; with 10 bins the same two groups
    assert M.ece_from_confidence(conf, correct, n_bins=1) == pytest.approx(0.2)
    assert M.ece_from_confidence(conf, correct, n_bins=10) == pytest.approx(0.2)
    assert M.expected_calibration_error(conf, correct, n_bins=2) == pytest.approx(0.2)


def test_ece_probs_form_equals_confidence_form(rng):
    probs = torch.softmax(torch.tensor(rng.normal(size=(300, 6)) * 2), dim=1)
    labels = torch.tensor(rng.integers(0, 6, 300))
    conf, pred = probs.max(dim=1)
    a = M.expected_calibration_error(probs, labels, n_bins=10)
    b = M.ece_from_confidence(conf, pred == labels, n_bins=10)
    assert a == pytest.approx(b)
    assert M.expected_calibration_error(probs.float(), labels) == pytest.approx(
        M.expected_calibration_error(probs.numpy(), labels.numpy()), abs=1e-6)


def test_ece_matches_naive_loop(rng):
    conf = rng.uniform(0, 1, 1000)
    correct = rng.uniform(size=1000) < conf**2
    n = 15
    ece = 0.0
    for i in range(n):
        lo, hi = i / n, (i + 1) / n
        inside = (conf > lo) & (conf <= hi)
        if inside.any():
            ece += inside.mean() * abs(correct[inside].mean() - conf[inside].mean())
    assert M.ece_from_confidence(conf, correct, n) == pytest.approx(ece)


def test_bin_edge_convention():
    curve = M.reliability_curve(np.array([1.0]), np.array([True]), n_bins=10)
    assert curve.counts[-1] == 1  # 1.0 counts, in the last bin
    curve = M.reliability_curve(np.array([0.0]), np.array([False]), n_bins=10)
    assert curve.counts[0] == 1  # 0.0 goes to the first bin
    # inner edges belong to the bin below: (0, .5] and (.5, 1]
    curve = M.reliability_curve(np.array([0.5, 0.5000001]), np.array([True, True]), n_bins=2)
    assert curve.counts.tolist() == [1, 1]
    curve = M.reliability_curve(np.array([0.25, 0.5, 0.75]), np.ones(3, bool), n_bins=4)
    assert curve.counts.tolist() == [1, 1, 1, 0]
    # decimal edges as NumPy writes them: 0.3 is in (0.2, 0.3]
    curve = M.reliability_curve(np.array([0.3, 0.7]), np.ones(2, bool), n_bins=10)
    assert np.flatnonzero(curve.counts).tolist() == [2, 6]


def test_reliability_curve_fields(rng):
    conf = rng.uniform(0.5, 1.0, 200)
    correct = rng.uniform(size=200) < conf
    curve = M.reliability_curve(conf, correct, n_bins=10)
    assert curve.counts.sum() == 200
    assert curve.edges.shape == (11,) and curve.edges[0] == 0 and curve.edges[-1] == 1
    assert np.isnan(curve.accuracy[:5]).all() and np.isnan(curve.confidence[:5]).all()
    assert (curve.counts[:5] == 0).all()
    filled = curve.counts > 0
    assert np.all((curve.confidence[filled] > curve.edges[:-1][filled])
                  & (curve.confidence[filled] <= curve.edges[1:][filled]))
    weights = curve.counts[filled] / 200
    gap = np.abs(curve.accuracy[filled] - curve.confidence[filled])
    assert curve.ece == pytest.approx(np.sum(weights * gap))


# --------------------------------------------------------------------------- AUAC / AUFC
def _naive_curve(trust, metric, q):
    values = []
    for x in q:
        keep = trust >= np.percentile(trust, x)
        values.append(metric(keep))
    return np.array(values)


def test_auac_matches_naive_loop_with_ties(rng):
    trust = rng.integers(0, 20, 400).astype(float)  # many ties
    correct = rng.uniform(size=400) < trust / 20
    res = M.auac(trust, correct)
    ref = _naive_curve(trust, lambda k: correct[k].mean(), np.linspace(0, 99, 100))
    np.testing.assert_allclose(res.values, ref)
    assert res.fractions[0] == 0 and res.fractions[-1] == pytest.approx(0.99)
    expected_area = np.sum(0.5 * (ref[1:] + ref[:-1]) * np.diff(res.fractions)) / 0.99
    assert res.area == pytest.approx(expected_area)
    assert res.n_kept[0] == 400 and (np.diff(res.n_kept) <= 0).all()


def test_auac_orderings(rng):
    correct = rng.uniform(size=1000) < 0.7
    perfect = M.auac(correct + 0.01 * rng.uniform(size=1000), correct)
    random = M.auac(rng.uniform(size=1000), correct)
    reversed_ = M.auac(-(correct + 0.01 * rng.uniform(size=1000)), correct)
    assert perfect.area > random.area > reversed_.area
    assert perfect.values[-1] == 1.0 and perfect.values[0] == pytest.approx(correct.mean())
    constant = M.auac(np.ones(1000), correct)
    assert constant.area == pytest.approx(correct.mean())
    np.testing.assert_allclose(constant.values, correct.mean())


def test_aufc_matches_naive_loop_and_constant(rng):
    y_true = rng.integers(0, 4, 300)
    y_pred = np.where(rng.uniform(size=300) < 0.6, y_true, rng.integers(0, 4, 300))
    trust = rng.normal(size=300) + (y_true == y_pred)
    q = np.linspace(0, 90, 10)
    res = M.aufc(torch.tensor(trust), y_true, y_pred, percentiles=q)
    ref = _naive_curve(trust, lambda k: f1_score(y_true[k], y_pred[k], average="macro",
                                                 zero_division=0), q)
    np.testing.assert_allclose(res.values, ref)
    whole = f1_score(y_true, y_pred, average="macro")
    assert M.aufc(np.zeros(300), y_true, y_pred).area == pytest.approx(whole)
    assert res.area > whole  # trust correlates with correctness


# --------------------------------------------------------------------------- information


# --------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("call, exc, name", [
    (lambda: M.auroc([1, 0, 1], [0.1, 0.2]), ValueError, "same length"),
    (lambda: M.auroc([1, 1, 1], [0.1, 0.2, 0.3]), ValueError, "single class"),
    (lambda: M.auroc([1, 0, 2], [0.1, 0.2, 0.3]), ValueError, "y_true"),
    (lambda: M.auroc([1, 0], [np.nan, 0.2]), ValueError, "y_score"),
    (lambda: M.auroc([1, 0], "ab"), TypeError, "y_score"),
    (lambda: M.auroc(np.ones((2, 2)), [0.1, 0.2]), ValueError, "y_true"),
    (lambda: M.aupr([1, 0], []), ValueError, "y_score"),
    (lambda: M.fpr_at_tpr([1, 0], [0.1, 0.2], tpr=1.5), ValueError, "tpr"),
    (lambda: M.detection_report([], [0.1]), ValueError, "id_scores"),
    (lambda: M.detection_report([0.2], [np.inf]), ValueError, "ood_scores"),
    (lambda: M.expected_calibration_error(np.array([[0.5, 0.5]]), [0], n_bins=0),
     ValueError, "n_bins"),
    (lambda: M.expected_calibration_error(np.array([[0.5, 0.5]]), [0], n_bins=2.0),
     TypeError, "n_bins"),
    (lambda: M.expected_calibration_error(np.array([[2.0, -1.0]]), [0]), ValueError, "probs"),
    (lambda: M.expected_calibration_error(np.array([[0.5, 0.6]]), [0]), ValueError, "sum to 1"),
    (lambda: M.expected_calibration_error(np.array([[np.nan, 0.5]]), [0]), ValueError, "NaN"),
    (lambda: M.expected_calibration_error(np.array([[0.5, 0.5]]), [2]), ValueError, "labels"),
    (lambda: M.expected_calibration_error(np.array([[0.5, 0.5]]), [0, 1]), ValueError,
     "labels"),
    (lambda: M.expected_calibration_error(np.array([[0.5, 0.5]]), [0.0]), TypeError, "labels"),
    (lambda: M.ece_from_confidence([1.2], [True]), ValueError, "confidence"),
    (lambda: M.ece_from_confidence([0.2, 0.3], [True]), ValueError, "correct"),
    (lambda: M.ece_from_confidence([0.2], [3]), ValueError, "correct"),
    (lambda: M.reliability_curve(np.ones((2, 2, 2)) / 2, [0, 1]), ValueError, "probs"),
    (lambda: M.auac([0.1, 0.2], [True]), ValueError, "correct"),
    (lambda: M.auac([0.1, np.nan], [True, False]), ValueError, "trust"),
    (lambda: M.auac([0.1, 0.2], [True, False], percentiles=[0, 120]), ValueError,
     "percentiles"),
    (lambda: M.auac([0.1, 0.2], [True, False], percentiles=[50, 10]), ValueError,
     "percentiles"),
    (lambda: M.aufc([0.1, 0.2], [0, 1], [0]), ValueError, "y_pred"),
])
def test_bad_input_raises_clear_error(call, exc, name):
    with pytest.raises(exc, match=name):
        call()
