"""Claims: the run decides. Synthetic evidence with known answers for every verdict."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from tutorial_utils import claims, metrics

N = 70


def standardised(n: int, seed: int) -> np.ndarray:
    """n values with mean exactly 0 and SD exactly 1 (so an effect in SE units is exact)."""
    z = np.random.default_rng(seed).normal(size=n)
    z -= z.mean()
    return z / z.std(ddof=1)


def paired(effect_in_se: float, n: int = N, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(a, b) whose paired differences have mean = effect_in_se standard errors."""
    b = np.random.default_rng(seed + 100).normal(size=n)
    d = standardised(n, seed) + effect_in_se / np.sqrt(n)
    return b + d, b


def width(est: claims.Estimate) -> float:
    return est.high - est.low


# ------------------------------------------------------------------------- greater / less


def test_a_clear_difference_holds_and_prints_the_interval(capsys):
    a, b = paired(6.0)
    claims.greater("A beats B", a, b)
    out = capsys.readouterr().out.strip()
    est = claims.estimate(a, b, key="A beats B")
    assert est.low > 0
    assert out == (f"✓ A beats B (Δ = {est.value:.3f} [{est.low:.3f}, {est.high:.3f}], "
                   f"70 units, 2,000 resamples)")
    assert est.value == pytest.approx(6.0 / np.sqrt(N))


def test_a_difference_of_a_third_of_a_standard_error_fails_as_no_clear_difference():
    a, b = paired(0.3)
    with pytest.raises(claims.ClaimError, match="no clear difference") as error:
        claims.greater("A beats B", a, b)
    est = error.value.estimate
    assert est.low < 0 < est.high
    assert error.value.verdict.startswith("no clear difference")
    assert "claims.tie" in error.value.suggestion
    assert "[" in str(error.value) and "70 units" in str(error.value)


def test_the_reversed_direction_is_called_reversed():
    a, b = paired(-6.0)
    with pytest.raises(claims.ClaimError, match="reversed") as error:
        claims.greater("A beats B", a, b)
    assert "claims.less" in error.value.suggestion
    claims.less("A is lower than B", a, b)
    with pytest.raises(claims.ClaimError, match="reversed"):
        claims.less("B is lower than A", b, a)


def test_the_interval_has_the_width_of_a_normal_interval():
    """Paired differences with SD 1: the 95% interval is about ±1.96 SE."""
    a, b = paired(0.0, n=400)
    est = claims.estimate(a, b)
    assert width(est) == pytest.approx(2 * 1.96 / np.sqrt(400), rel=0.12)


def test_clustered_copies_give_the_interval_of_the_units_not_of_the_rows():
    """10 copies of 20 units: the interval of 20 units, not of 200 independent rows."""
    a20, b20 = paired(0.0, n=20, seed=3)
    a200, b200 = np.repeat(a20, 10), np.repeat(b20, 10)
    base = np.repeat(np.arange(20), 10)
    one = claims.estimate(a20, b20, key="k")
    clustered = claims.estimate(a200, b200, units=base, key="k")
    naive = claims.estimate(a200, b200, key="k")
    assert clustered.units == (20,) and clustered.rows == (200,)
    assert width(clustered) == pytest.approx(width(one), rel=0.15)
    assert width(naive) < 0.5 * width(one)  # ≈ 1/√10: what ignoring the units would claim
    assert "20 units (200 rows)" in clustered.describe()


def test_units_may_be_any_integer_ids_in_any_order():
    a, b = paired(1.0, n=40)
    ids = np.repeat(np.arange(20), 2)
    shuffled = np.random.default_rng(0).permutation(20)[ids] * 7 + 1000
    e1 = claims.estimate(a, b, units=ids, key="k")
    e2 = claims.estimate(a, b, units=shuffled, key="k")
    assert e2.units == (20,)
    assert width(e2) == pytest.approx(width(e1), rel=0.2)


def test_greater_against_a_number_and_against_nothing(capsys):
    x = 0.3 + standardised(50, 1) * 0.1
    claims.greater("the gain is positive", x)
    claims.greater("the gain exceeds the paper's 0.27", x, 0.27)
    out = capsys.readouterr().out
    assert "mean = 0.300" in out and "reference 0.27" in out
    with pytest.raises(claims.ClaimError, match="no clear difference from 0.3"):
        claims.greater("the gain exceeds 0.3", x, 0.3)


# ------------------------------------------------------------------------- tie / above / below


def test_tie_holds_when_the_interval_contains_zero_and_fails_otherwise():
    claims.tie("no clear difference between A and B", *paired(0.3))
    with pytest.raises(claims.ClaimError, match="a clear difference") as error:
        claims.tie("no clear difference between A and B", *paired(6.0))
    assert "claims.greater" in error.value.suggestion
    claims.tie("the score sits at chance", 0.5 + standardised(60, 2) * 0.1, 0.5)


def test_an_identity_is_refused():
    x = np.random.default_rng(0).normal(size=30)
    with pytest.raises(ValueError, match="identity"):
        claims.tie("a map compared with itself agrees", x, x.copy())


def test_a_threshold_inside_the_interval_fails():
    x = 0.52 + standardised(N, 4) * 0.2  # SE 0.024: 0.5 lies inside the interval
    with pytest.raises(claims.ClaimError, match="no clear difference from 0.5") as error:
        claims.above("the accuracy is above one half", x, threshold=0.5)
    assert error.value.estimate.low < 0.5 < error.value.estimate.high
    with pytest.raises(claims.ClaimError, match="no clear difference from 0.5"):
        claims.below("the accuracy is below one half", x, threshold=0.5)
    claims.above("the accuracy is above 0.4", x, threshold=0.4)
    claims.below("the accuracy is below 0.6", x, threshold=0.6)
    with pytest.raises(claims.ClaimError, match="reversed"):
        claims.below("the accuracy is below 0.4", x, threshold=0.4)


def test_a_threshold_must_be_a_round_number():
    x = 0.2 + standardised(N, 5) * 0.01
    with pytest.raises(ValueError, match="threshold 0.10006 is not a round number"):
        claims.above("raises accuracy by more than 10 points", x, threshold=0.10006)
    with pytest.raises(TypeError, match="threshold"):
        claims.above("above", x, threshold="0.1")
    with pytest.raises(TypeError, match="threshold="):
        claims.above("above", x, 0.1, threshold=0.1)


def test_above_on_a_difference():
    a, b = paired(40.0)  # Δ ≈ 4.8
    claims.above("A is more than 4 above B", a, b, threshold=4)
    with pytest.raises(claims.ClaimError):
        claims.above("A is more than 5 above B", a, b, threshold=5)


# ------------------------------------------------------------------------- statistics


def detector_scores(n_id=140, n_ood=140, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.r_[np.ones(n_id), np.zeros(n_ood)]
    strong = rng.normal(size=n_id + n_ood) + 1.5 * labels
    weak = rng.normal(size=n_id + n_ood) + 0.2 * labels
    return labels, strong, weak


def test_auroc_point_estimate_and_every_resample_match_sklearn():
    from sklearn.metrics import roc_auc_score

    labels, strong, _ = detector_scores(30, 20)
    strong = np.round(strong, 1)  # ties, counted one half
    est = claims.estimate(strong, labels=labels, statistic="auroc")
    assert est.value == pytest.approx(metrics.auroc(labels, strong), abs=1e-12)
    stat = claims.STATISTICS["auroc"].prepare(strong, labels, np.arange(50))
    counts = np.random.default_rng(1).multinomial(50, np.full(50, 1 / 50), size=25)
    ours = stat(counts.astype(float))
    for c, value in zip(counts, ours, strict=True):
        keep = np.repeat(np.arange(50), c)
        if len(set(labels[keep])) == 2:
            assert value == pytest.approx(roc_auc_score(labels[keep], strong[keep]), abs=1e-12)


def test_auroc_comparison_of_two_detectors_on_the_same_images(capsys):
    labels, strong, weak = detector_scores()
    claims.greater("the strong detector separates ID from OOD better", strong, weak,
                   labels=labels, statistic="auroc")
    assert "Δ AUROC = " in capsys.readouterr().out
    claims.above("the strong detector is above chance (0.5)", strong, labels=labels,
                 statistic="auroc", threshold=0.5)
    claims.tie("a shuffled score sits at chance",
               np.random.default_rng(9).normal(size=280), 0.5, labels=labels,
               statistic="auroc")


def test_auroc_resamples_within_each_label_when_units_are_pure():
    """Label-pure units keep the numbers of ID and OOD units; mixed units resample whole."""
    labels, strong, _ = detector_scores(30, 30)
    side = claims._Side(claims.STATISTICS["auroc"], strong, labels, None, "a", "labels",
                        "units")
    assert [len(s) for s in side.strata] == [30, 30]
    pairs = np.r_[np.arange(30), np.arange(30)]  # unit = a clean image and its copy
    mixed_side = claims._Side(claims.STATISTICS["auroc"], strong, labels, pairs, "a",
                              "labels", "units")
    assert [len(s) for s in mixed_side.strata] == [30]
    est = claims.estimate(strong, labels=labels, statistic="auroc", units=pairs)
    assert est.units == (30,) and est.low < est.value < est.high


def test_auac_point_and_resamples_match_metrics_auac_on_repeated_rows():
    rng = np.random.default_rng(2)
    trust = np.round(rng.random(60), 1)  # ties kept together, as metrics.auac does
    correct = rng.random(60) < 0.4 + 0.5 * trust
    units = np.arange(60) // 3
    est = claims.estimate(trust, labels=correct, statistic="auac", units=units)
    assert est.value == pytest.approx(metrics.auac(trust, correct).area, abs=1e-12)
    stat = claims.STATISTICS["auac"].prepare(trust, correct.astype(float), units)
    counts = rng.multinomial(20, np.full(20, 1 / 20), size=30).astype(float)
    for c, value in zip(counts, stat(counts), strict=True):
        rows = np.repeat(np.arange(60), c[units].astype(int))
        assert value == pytest.approx(metrics.auac(trust[rows], correct[rows]).area,
                                      abs=1e-12)


def test_auac_resamples_match_metrics_auac_with_undrawn_trust_values():
    # distinct trust values, few units: most resamples skip many values between two drawn ones
    rng = np.random.default_rng(4)
    trust = rng.random(45)
    correct = rng.random(45) < 0.3 + 0.6 * trust
    units = rng.integers(0, 9, 45)
    stat = claims.STATISTICS["auac"].prepare(trust, correct.astype(float),
                                             np.unique(units, return_inverse=True)[1])
    counts = rng.multinomial(9, np.full(9, 1 / 9), size=40).astype(float)
    for c, value in zip(counts, stat(counts), strict=True):
        rows = np.repeat(np.arange(45), c[units].astype(int))
        assert value == pytest.approx(metrics.auac(trust[rows], correct[rows]).area,
                                      abs=1e-12)


def test_auac_resamples_match_metrics_auac_with_trust_values_an_ulp_apart():
    # two trust values within an ulp: the threshold between them is computed, not inferred
    rng = np.random.default_rng(6)
    trust = rng.random(40)
    trust[::2] = np.nextafter(trust[1::2], 2)
    correct = rng.random(40) < 0.5
    units = np.arange(40) // 4
    stat = claims.STATISTICS["auac"].prepare(trust, correct.astype(float), units)
    counts = rng.multinomial(10, np.full(10, 1 / 10), size=40).astype(float)
    for c, value in zip(counts, stat(counts), strict=True):
        rows = np.repeat(np.arange(40), c[units].astype(int))
        assert value == pytest.approx(metrics.auac(trust[rows], correct[rows]).area,
                                      abs=1e-12)


def test_curve_statistics_are_the_mean_trapezoid_area():
    from tutorial_utils.evaluation import curve_auc

    curves = np.random.default_rng(3).random((25, 11))
    est = claims.estimate(curves, statistic="deletion_auc")
    fractions = torch.linspace(0, 1, 11, dtype=torch.float64)
    expected = curve_auc(fractions, torch.from_numpy(curves)).mean().item()
    assert est.value == pytest.approx(expected, abs=1e-12)
    assert est.statistic == "deletion AUC"
    claims.less("the first map deletes faster", curves * 0.5, curves,
                statistic="deletion_auc")


def test_accuracy_and_a_callable_statistic():
    rng = np.random.default_rng(4)
    right_a, right_b = rng.random(200) < 0.9, rng.random(200) < 0.6
    claims.greater("A is more accurate than B", right_a, right_b, statistic="accuracy")
    with pytest.raises(ValueError, match="0/1"):
        claims.estimate(rng.random(10), statistic="accuracy")

    def weighted_mean(values, weights):
        return weights @ values / weights.sum(1)

    x = rng.normal(size=50)
    assert claims.estimate(x, statistic=weighted_mean).low == \
        claims.estimate(x, statistic="mean").low
    with pytest.raises(ValueError, match="one value per resample"):
        claims.estimate(x, statistic=lambda v, w: w.sum())


def test_unpaired_sets_are_resampled_independently():
    rng = np.random.default_rng(5)
    a, b = rng.normal(0.0, 1, 100), rng.normal(0.0, 2, 400)
    est = claims.estimate(a, b, paired=False)
    se = np.sqrt(a.var(ddof=1) / 100 + b.var(ddof=1) / 400)
    assert width(est) == pytest.approx(2 * 1.96 * se, rel=0.15)
    assert est.units == (100, 400) and "100 + 400 units (unpaired)" in est.describe()
    labels_a, sa, _ = detector_scores(40, 40, seed=1)
    labels_b, _, sb = detector_scores(60, 30, seed=2)
    claims.greater("the detector works better on set A than on set B", sa, sb,
                   labels=(labels_a, labels_b), statistic="auroc", paired=False,
                   units=(np.arange(80) // 2, None))
    with pytest.raises(TypeError, match="pair"):
        claims.estimate(a, b, paired=False, units=np.arange(100))
    with pytest.raises(ValueError, match="paired=False"):
        claims.estimate(a, paired=False)


# ------------------------------------------------------------------------- over seeds, mixed


def test_over_seeds_holds_when_every_seed_agrees_and_prints_mean_and_sd(capsys):
    claims.over_seeds("GradTrust beats MSP for every member", {0: 0.02, 1: 0.03, 2: 0.01})
    assert "0.020 ± 0.010 over 3 seeds, every seed > 0: min 0.010" in capsys.readouterr().out
    claims.over_seeds("the gap stays below 0.1", [0.05, 0.07], side="less", threshold=0.1)


def test_over_seeds_fails_when_one_seed_disagrees():
    with pytest.raises(claims.ClaimError, match=r"2 of 3 seeds \(not at 1: -0.030\)") as error:
        claims.over_seeds("GradTrust beats MSP for every member", {0: 0.02, 1: -0.03, 2: 0.01})
    assert "depends on the seed" in error.value.suggestion
    with pytest.raises(ValueError, match="at least 2 seeds"):
        claims.over_seeds("one seed", [0.1])
    with pytest.raises(ValueError, match="side"):
        claims.over_seeds("sideways", [0.1, 0.2], side="up")


def test_mixed_names_both_directions_and_their_parts(capsys):
    wins = {"digit 0": True, "digit 1": False, "digit 2": True, "digit 3": False,
            "digit 4": True}
    claims.mixed("the gradient score beats reconstruction on some digits, not all", wins,
                 yes="gradient wins", no="reconstruction wins")
    out = capsys.readouterr().out
    assert out.startswith("≈ the gradient score")
    assert "gradient wins: 3 of 5 [digit 0, digit 2, digit 4]" in out
    assert "reconstruction wins: 2 of 5 [digit 1, digit 3]" in out
    claims.mixed("most win", wins, yes="wins", no="loses", most="yes")
    with pytest.raises(claims.ClaimError, match="'most' loses"):
        claims.mixed("most lose", wins, yes="wins", no="loses", most="no")


def test_mixed_fails_at_one_of_n():
    one_of_ten = [i == 0 for i in range(10)]
    with pytest.raises(claims.ClaimError, match="only 1 of 10 parts") as error:
        claims.mixed("some scores win", one_of_ten, parts=range(10), yes="wins", no="loses")
    assert "claims.claim" in error.value.suggestion
    claims.mixed("some scores win", [i < 2 for i in range(10)], parts=range(10), yes="wins",
                 no="loses")  # 2 of 10 = 20%
    with pytest.raises(claims.ClaimError, match="not mixed"):
        claims.mixed("some win", {"a": True, "b": True}, yes="wins", no="loses")


def test_mixed_checks_the_parts_the_sentence_names():
    import pandas as pd

    grad_wins = pd.Series({"snow 5": True, "GO sign": False})
    claims.mixed("the gradient norm beats MSP on snow 5 and loses on the GO sign", grad_wins,
                 yes="gradient norm wins", no="MSP wins",
                 expected={"snow 5": True, "GO sign": False})
    with pytest.raises(claims.ClaimError, match="GO sign goes the other way"):
        claims.mixed("the gradient norm loses on snow 5 and wins on the GO sign", grad_wins,
                     yes="gradient norm wins", no="MSP wins",
                     expected={"snow 5": False, "GO sign": True})
    with pytest.raises(ValueError, match="not among the outcomes"):
        claims.mixed("x", grad_wins, yes="y", no="n", expected={"rain": True})


def test_mixed_requires_named_parts_and_directions():
    with pytest.raises(TypeError, match="name its parts"):
        claims.mixed("some win", [True, False], yes="wins", no="loses")
    with pytest.raises(TypeError, match="yes"):
        claims.mixed("some win", {"a": True, "b": False}, yes="", no="loses")
    with pytest.raises(TypeError):
        claims.mixed("some win", {"a": True, "b": False})  # directions are required
    with pytest.raises(ValueError, match="min_share"):
        claims.mixed("some win", {"a": True, "b": False}, yes="w", no="l", min_share=0.1)
    with pytest.raises(ValueError, match="two parts"):
        claims.mixed("some win", {"a": True}, yes="w", no="l")


# ------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("call, error, text", [
    (lambda: claims.greater("s", np.ones(5), np.ones(4)), ValueError, "equal shape"),
    (lambda: claims.greater("s", [1.0, np.nan, 2.0]), ValueError, "a contains 1 NaN"),
    (lambda: claims.greater("s", np.ones(3), [1.0, 2.0, np.inf]), ValueError, "b contains"),
    (lambda: claims.greater("s", []), ValueError, "a is empty"),
    (lambda: claims.greater("s", ["x", "y"]), TypeError, "a must hold numbers"),
    (lambda: claims.greater("s", np.arange(4.0), units=["a", "a", "b", "b"]), TypeError,
     "units must hold integer"),
    (lambda: claims.greater("s", np.arange(4.0), units=[0.0, 0.0, 1.0, 1.0]), TypeError,
     "units must hold integer"),
    (lambda: claims.greater("s", np.arange(4.0), units=[0, 1]), ValueError,
     r"units must give one unit id per row, shape \(4,\)"),
    (lambda: claims.greater("s", np.arange(4.0), statistic="median"), ValueError,
     "statistic 'median' is unknown"),
    (lambda: claims.greater("s", np.arange(4.0), statistic=3), TypeError, "statistic must"),
    (lambda: claims.greater("s", np.arange(4.0), statistic="auroc"), ValueError,
     "needs labels"),
    (lambda: claims.greater("s", np.arange(4.0), labels=[1, 1, 1, 1], statistic="auroc"),
     ValueError, "both classes"),
    (lambda: claims.greater("s", np.arange(4.0), labels=[1, 0], statistic="auroc"),
     ValueError, "labels must have one flag per row"),
    (lambda: claims.greater("s", np.arange(4.0), labels=[2, 0, 1, 0], statistic="auroc"),
     ValueError, "0/1"),
    (lambda: claims.greater("s", np.ones((4, 3))), ValueError, "curve_auc"),
    (lambda: claims.greater("s", np.ones(4), statistic="curve_auc"), ValueError,
     r"\(N, S\+1\)"),
    (lambda: claims.greater("s", np.arange(4.0), resamples=50), ValueError, "resamples"),
    (lambda: claims.greater("", np.arange(4.0)), TypeError, "statement"),
    (lambda: claims.greater("s", np.arange(4.0), True), TypeError, "bool"),
    (lambda: claims.greater("s", np.arange(4.0), paired="yes"), TypeError, "paired"),
    (lambda: claims.greater("s", np.arange(4.0), units=(np.arange(4),)), TypeError,
     "paired=False"),
])
def test_bad_input_raises_a_clear_error_naming_the_argument(call, error, text):
    with pytest.raises(error, match=text):
        call()


def test_tensors_are_accepted():
    a, b = (torch.from_numpy(v).requires_grad_(True) for v in paired(6.0))
    claims.greater("A beats B", a, b, units=torch.arange(N))


# ------------------------------------------------------------------------- seeds


def test_the_same_seed_gives_the_same_interval_and_another_seed_other_draws(monkeypatch):
    a, b = paired(1.0)
    monkeypatch.delenv("TUTORIAL_SEED", raising=False)
    first, again = claims.estimate(a, b, key="s"), claims.estimate(a, b, key="s")
    assert (first.low, first.high) == (again.low, again.high)
    assert np.array_equal(first.draws, again.draws)
    other_claim = claims.estimate(a, b, key="another sentence")
    assert not np.array_equal(first.draws, other_claim.draws)
    monkeypatch.setenv("TUTORIAL_SEED", "1")
    reseeded = claims.estimate(a, b, key="s")
    assert not np.array_equal(first.draws, reseeded.draws)
    assert (reseeded.low, reseeded.high) != (first.low, first.high)
    assert reseeded.value == first.value  # the data decide the estimate, the seed the draws


# ------------------------------------------------------------------------- claim, report mode


def test_claim_prints_statement_and_numbers(capsys):
    assert claims.claim("MSP beats chance", 0.93 > 0.5, auroc=0.93, n=1_400) is None
    assert capsys.readouterr().out.strip() == "✓ MSP beats chance (auroc=0.930, n=1,400)"
    claims.claim("any names are fine", True, verdict=1, kind=2, mark=3)
    assert "only for facts that need no interval" in " ".join(claims.claim.__doc__.lower().split())
    assert "unit test" in claims.__doc__


def test_false_claim_raises_with_the_evidence():
    with pytest.raises(claims.ClaimError, match=r"'GradNorm wins'.*auroc=0.412"):
        claims.claim("GradNorm wins", 0.412 > 0.5, auroc=0.412)


def test_tensor_and_numpy_truth_values():
    claims.claim("tensor", torch.tensor(3.0) > 2, value=torch.tensor(3.0))
    claims.claim("numpy", np.float64(0.2) < 1, value=np.float32(0.2))
    with pytest.raises(TypeError, match="reduce it with .all"):
        claims.claim("a whole tensor", torch.rand(3) >= 0)
    with pytest.raises(TypeError, match="bool"):
        claims.claim("a number is not a truth value", 0.7)
    with pytest.raises(TypeError, match="statement"):
        claims.claim("", True)


def test_format_number():
    assert claims.format_number(0.000123) == "0.000123"
    assert claims.format_number(123456.0) == "1.23e+05"
    assert claims.format_number(12) == "12"
    assert claims.format_number(float("nan")) == "nan"


def test_report_mode_records_every_claim_and_a_sweep_can_go_on(tmp_path, monkeypatch, capsys):
    report = tmp_path / "claims.jsonl"
    monkeypatch.setenv(claims.REPORT_ENV, str(report))
    monkeypatch.setenv("TUTORIAL_SEED", "3")
    claims.greater("A beats B", *paired(6.0))
    with pytest.raises(claims.ClaimError):  # recording alone still raises (CI stays strict)
        claims.greater("A beats B narrowly", *paired(0.3))
    monkeypatch.setenv(claims.RAISE_ENV, "0")
    claims.greater("A beats B narrowly", *paired(0.3))  # printed as ✗, no exception
    claims.claim("a count", 2 == 3, n=2)
    with pytest.raises(ValueError):  # a broken call raises in every mode, and is recorded
        claims.greater("broken", [np.nan])
    out = capsys.readouterr().out
    assert "✗ A beats B narrowly" in out and "no clear difference" in out
    records = [json.loads(line) for line in report.read_text().splitlines()]
    assert [(r["statement"], r["verdict"][:18]) for r in records] == [
        ("A beats B", "holds"), ("A beats B narrowly", "no clear differenc"),
        ("A beats B narrowly", "no clear differenc"), ("a count", "false in this run"),
        ("broken", "error")]
    first = records[0]
    assert first["seed"] == 3 and first["kind"] == "greater" and first["holds"] is True
    assert first["low"] > 0 and first["resamples"] == 2000 and first["units"] == [70]


def _notebook(path, condition: str) -> None:
    cell = {"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [],
            "source": ["from tutorial_utils import claims\n",
                       "auroc = 0.61\n",
                       f"claims.claim('the score finds GO', {condition}, auroc=auroc)\n"]}
    nb = {"cells": [cell], "metadata": {"kernelspec": {"name": "python3", "language": "python",
                                                      "display_name": "Python 3"}},
          "nbformat": 4, "nbformat_minor": 5}
    path.write_text(json.dumps(nb))


def test_a_claim_made_false_fails_the_notebook_test(tmp_path):
    good, bad = tmp_path / "good.ipynb", tmp_path / "bad.ipynb"
    _notebook(good, "auroc > 0.5")
    _notebook(bad, "auroc > 0.9")  # the comparison flipped: the run no longer supports it
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax",
           "--rootdir", str(tmp_path), "-c", "/dev/null"]
    passed = subprocess.run(cmd + [str(good)], capture_output=True, text=True, timeout=300)
    failed = subprocess.run(cmd + [str(bad)], capture_output=True, text=True, timeout=300)
    assert passed.returncode == 0, passed.stdout[-2000:]
    assert failed.returncode != 0
    assert "ClaimError" in failed.stdout


def test_a_difference_that_no_resample_can_change_is_refused():
    """A monotone transform has the same AUROC in every resample: an identity in disguise."""
    labels, strong, _ = detector_scores(40, 40)
    with pytest.raises(ValueError, match="same Δ = 0"):
        claims.tie("doubling a score keeps its AUROC", strong, 2 * strong, labels=labels,
                   statistic="auroc")
    x = np.random.default_rng(0).normal(size=30)
    with pytest.raises(ValueError, match="by construction"):
        claims.greater("adding one raises the mean", x + 1, x)


# ------------------------------------------------------------------------- chunked evaluation


@pytest.mark.parametrize("statistic", ["mean", "auroc", "auac", "deletion_auc"])
def test_chunked_threaded_evaluation_equals_one_call_on_all_resamples(statistic, monkeypatch):
    # _Side.values splits the resamples into cache-sized chunks (in threads); the values must
    # be those of one call on every resample, in the same order
    from tutorial_utils import bootstrap

    rng = np.random.default_rng(11)
    n = 300
    units = np.arange(n) // 4
    labels = (rng.random(n) < 0.6).astype(float)
    x = rng.random((n, 11)) if statistic == "deletion_auc" else rng.random(n) + 0.3 * labels
    side = bootstrap._Side(bootstrap.STATISTICS[statistic], x, labels, units, "a", "labels",
                           "units")
    counts = bootstrap._counts(rng, side.strata, side.n_units, 500)
    whole = side.fn(counts)
    monkeypatch.setattr(bootstrap, "_CACHE_CELLS", 7 * n)  # chunks of 7 resamples
    assert bootstrap._pool() is None or len(range(0, 500, 7)) > 1
    chunked = side.values(counts)
    assert chunked.shape == (500,)
    if statistic in ("auroc", "auac"):  # counts and sorted searches: exact
        np.testing.assert_array_equal(chunked, whole)
    else:  # weighted sums by matmul: BLAS may order the sums differently per chunk size
        np.testing.assert_allclose(chunked, whole, rtol=0, atol=1e-12)


def test_a_callable_statistic_runs_in_the_calling_thread(monkeypatch):
    import threading

    from tutorial_utils import bootstrap

    seen = set()

    def weighted_mean(values, weights):
        seen.add(threading.get_ident())
        return weights @ values / weights.sum(1)

    monkeypatch.setattr(bootstrap, "_CACHE_CELLS", 50)  # many chunks
    est = claims.estimate(np.random.default_rng(3).random(40), statistic=weighted_mean)
    assert seen == {threading.get_ident()} and est.low < est.value < est.high
