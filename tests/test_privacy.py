"""Membership inference: attack scores, the report's known answers, overfit vs regularised."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tutorial_utils import privacy


@pytest.fixture
def labels8():
    return torch.tensor([0, 1, 2, 3, 3, 2, 1, 0])


# --------------------------------------------------------------------------- scores


def test_loss_scores_are_minus_the_per_sample_cross_entropy(tiny, x8, labels8):
    s = privacy.loss_threshold_scores(tiny, x8, labels8)
    expected = -F.cross_entropy(tiny(x8), labels8, reduction="none")
    assert s.shape == (8,) and (s <= 0).all()
    torch.testing.assert_close(s.float(), expected.detach(), atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(privacy.loss_threshold_scores(tiny, x8, 2).float(),
                               -F.cross_entropy(tiny(x8), torch.full((8,), 2),
                                                reduction="none").detach())


def test_scores_do_not_depend_on_the_batching(sign_model, signs):
    x, y = signs.x_test[::50], signs.y_test[::50]
    whole = privacy.loss_threshold_scores(sign_model, x, y)
    single = torch.cat([privacy.loss_threshold_scores(sign_model, x[i:i + 1], y[i:i + 1])
                        for i in range(len(x))])
    torch.testing.assert_close(single, whole, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(privacy.confidence_scores(sign_model, x, y, batch_size=3),
                               privacy.confidence_scores(sign_model, x, y), atol=1e-6, rtol=0)


def test_confidence_scores(tiny, x8, labels8):
    p = tiny(x8).softmax(1).detach()
    torch.testing.assert_close(privacy.confidence_scores(tiny, x8).float(), p.max(1).values)
    with_y = privacy.confidence_scores(tiny, x8, labels8)
    torch.testing.assert_close(with_y.float(), p[torch.arange(8), labels8])
    # p_y = exp(-CE): the confidence attack ranks exactly like the loss attack
    torch.testing.assert_close(with_y, privacy.loss_threshold_scores(tiny, x8, labels8).exp())


def test_scores_leave_model_and_rng_alone(tiny, x8, labels8):
    tiny.train()
    tiny.fc.weight.requires_grad_(False)
    rng = torch.get_rng_state()
    privacy.loss_threshold_scores(tiny, x8, labels8)
    privacy.confidence_scores(tiny, x8)
    assert tiny.training and not tiny.fc.weight.requires_grad and tiny.conv.weight.requires_grad
    assert torch.equal(torch.get_rng_state(), rng)


def test_scores_reject_bad_inputs(tiny, x8, labels8):
    with pytest.raises(TypeError, match="y must give the true class"):
        privacy.loss_threshold_scores(tiny, x8, None)
    with pytest.raises(ValueError, match="y class 4 is out of range"):
        privacy.loss_threshold_scores(tiny, x8, torch.full((8,), 4))
    with pytest.raises(ValueError, match="y must give one class per sample"):
        privacy.loss_threshold_scores(tiny, x8, labels8[:3])
    with pytest.raises(TypeError, match="y must hold integer class indices"):
        privacy.confidence_scores(tiny, x8, labels8.float())
    with pytest.raises(ValueError, match="batch_size"):
        privacy.loss_threshold_scores(tiny, x8, labels8, batch_size=0)
    with pytest.raises(ValueError, match="x must have shape"):
        privacy.loss_threshold_scores(tiny, x8[0], labels8)
    with pytest.raises(ValueError, match="attack must be one of"):
        privacy.evaluate_membership(tiny, x8, labels8, x8, labels8, attack="lira")


# --------------------------------------------------------------------------- report


def test_report_perfectly_separated_identical_and_reversed():
    members, nonmembers = np.linspace(1, 2, 200), np.linspace(-1, 0, 200)
    r = privacy.membership_report(members, nonmembers)
    assert r["AUROC"] == 1.0 and r["TPR@1%FPR"] == 1.0 and r["Balanced acc."] == 1.0
    assert 0 < r["Threshold"] <= 1 and r["members"] == 200 and r["non-members"] == 200
    assert math.isnan(r["TPR@0.1%FPR"])  # 200 non-members cannot measure a 0.1% FPR
    same = privacy.membership_report(np.arange(200.0), np.arange(200.0))
    assert same["AUROC"] == pytest.approx(0.5) and same["Balanced acc."] == pytest.approx(0.5)
    assert privacy.membership_report(nonmembers, members)["AUROC"] == 0.0


def test_report_tpr_at_low_fpr_hand_made_case():
    nonmembers = np.arange(200.0)  # 1% of 200 = two false positives allowed
    members = np.r_[np.full(30, 1000.0), 198.5, np.full(69, -1.0)]
    r = privacy.membership_report(members, nonmembers)
    # threshold 198.5 flags 31 members and one non-member (199): FPR 0.5%, TPR 31%;
    # lowering it to 197 would add non-members 197 and 198 (FPR 1.5%) and no member.
    assert r["TPR@1%FPR"] == pytest.approx(0.31)
    assert r["Balanced acc."] == pytest.approx(0.5 * (0.31 + 199 / 200))
    assert r["AUROC"] == pytest.approx(0.30 + 0.01 * 199 / 200)
    # with 1,000 non-members the 0.1% point exists: one false positive allowed
    big = privacy.membership_report(np.r_[np.full(10, 5000.0), np.full(90, -1.0)],
                                    np.r_[np.arange(999.0), 6000.0])
    assert big["TPR@0.1%FPR"] == pytest.approx(0.10) and big["TPR@1%FPR"] == pytest.approx(0.10)
    fpr, tpr = privacy.membership_roc(members, nonmembers)
    assert fpr[0] == 0 and fpr[-1] == 1 and tpr[-1] == 1 and np.all(np.diff(fpr) >= 0)


def test_caught_at_fpr_flags_the_members_behind_the_reported_tpr():
    nonmembers = np.arange(200.0)
    members = np.r_[np.full(30, 1000.0), 198.5, np.full(69, -1.0)]
    flags = privacy.caught_at_fpr(members, nonmembers, 0.01)
    assert flags.shape == (100,) and set(np.unique(flags)) <= {0.0, 1.0}
    assert flags[:31].all() and not flags[31:].any()
    rng = np.random.default_rng(3)
    a, b = rng.normal(0.5, 1, 300), rng.normal(0, 1, 400)
    assert privacy.caught_at_fpr(a, b, 0.01).mean() == pytest.approx(
        privacy.membership_report(a, b)["TPR@1%FPR"])
    with pytest.raises(ValueError, match="fpr"):
        privacy.caught_at_fpr(a, b, 1.5)


def test_report_rejects_bad_scores():
    with pytest.raises(ValueError, match="member_scores must be 1-D"):
        privacy.membership_report(np.ones((3, 2)), np.ones(3))
    with pytest.raises(ValueError, match="nonmember_scores is empty"):
        privacy.membership_report(np.ones(3), [])
    with pytest.raises(ValueError, match="member_scores contains NaN"):
        privacy.membership_report([0.1, np.nan], [0.2])
    with pytest.raises(TypeError, match="nonmember_scores must be a numpy array"):
        privacy.membership_report([0.1], "0.2")


# --------------------------------------------------------------------------- target models


@pytest.fixture(scope="module")
def targets(digits):
    """The overfit and the regularised digit model on the same 200 images (≈ 3 s each)."""
    rng = torch.get_rng_state()
    overfit = privacy.train_overfit_digits(200, 30, ds=digits)
    regular = privacy.train_regularised_digits(200, 30, ds=digits)
    assert torch.equal(torch.get_rng_state(), rng), "training touched the global RNG"
    return overfit, regular


def _attack(digits, target, attack="loss"):
    model, members, nonmembers = target
    nonmembers = nonmembers[::4]  # 950 unseen digits are plenty and 4x cheaper
    return privacy.evaluate_membership(model, digits.x_train[members], digits.y_train[members],
                                       digits.x_train[nonmembers], digits.y_train[nonmembers],
                                       attack)


def test_overfit_model_leaks_more_than_the_regularised_one(targets, digits):
    overfit, regular = (_attack(digits, t) for t in targets)
    assert overfit["AUROC"] > 0.7
    assert overfit["AUROC"] > regular["AUROC"] + 0.1
    assert 0.45 < regular["AUROC"] < overfit["AUROC"]
    assert overfit["members"] == 200 and overfit["non-members"] == 950
    conf = _attack(digits, targets[0], "confidence")
    assert conf["AUROC"] == pytest.approx(overfit["AUROC"])  # p_y is a monotone map of -CE


def test_members_are_a_stratified_subset_and_nonmembers_the_rest(targets, digits):
    model, members, nonmembers = targets[0]
    assert not model.training and model.dropout.p == 0.0
    assert targets[1][0].dropout.p == 0.5
    assert torch.equal(members, targets[1][1])  # same subset for both models
    assert len(np.intersect1d(members, nonmembers)) == 0
    assert len(members) + len(nonmembers) == len(digits.y_train)
    assert torch.equal(torch.bincount(digits.y_train[members]), torch.full((10,), 20))


def test_training_is_deterministic_and_seeded(digits):
    a, ma, _ = privacy.train_overfit_digits(20, 1, ds=digits, seed=3)
    b, mb, _ = privacy.train_overfit_digits(20, 1, ds=digits, seed=3)
    c, mc, _ = privacy.train_overfit_digits(20, 1, ds=digits, seed=4)
    assert torch.equal(ma, mb) and not torch.equal(ma, mc)
    for k, v in a.state_dict().items():
        assert torch.equal(v, b.state_dict()[k]), k
    assert not torch.equal(a.fc.weight, c.fc.weight)


@pytest.mark.parametrize("kwargs, err, match", [
    (dict(n_train=55), ValueError, "multiple of 10"),
    (dict(n_train=0), ValueError, "n_train"),
    (dict(epochs=0), ValueError, "epochs"),
    (dict(dropout=1.0), ValueError, "dropout"),
    (dict(weight_decay=-0.1), ValueError, "weight_decay"),
    (dict(weight_decay="none"), TypeError, "weight_decay"),
])
def test_training_rejects_bad_arguments(kwargs, err, match):
    with pytest.raises(err, match=match):
        privacy.train_overfit_digits(**kwargs)


def test_balanced_table_draws_equal_sets_and_holds_out_the_threshold(targets, digits):
    overfit, _ = targets
    res = privacy.membership_table({"overfit": overfit}, digits, seed=3, balanced=True,
                                   random_members=400)
    row = res.table.loc["overfit"]
    assert row["members"] == row["non-members"] == len(overfit[1])
    s_in, s_out = res.scores["overfit"]
    assert len(s_in) == len(s_out) == len(overfit[1])
    rnd = res.table.loc["random score"]
    assert rnd["members"] == rnd["non-members"] == 400
    # a held-out threshold cannot flatter a score without information; the leaky model stays
    assert abs(rnd["Balanced acc."] - 0.5) < 0.06
    assert row["Balanced acc."] > 0.55
    again = privacy.membership_table({"overfit": overfit}, digits, seed=3, balanced=True,
                                     random_members=400)
    assert again.table.equals(res.table)
    with pytest.raises(TypeError, match="balanced"):
        privacy.membership_table({"overfit": overfit}, digits, balanced="yes")
