"""The score table: every entry through fit/score equals its direct function; ScoreSuite and the
dashboard's gauges give the table's numbers; OpenOOD-style tables and thresholds."""

from __future__ import annotations

import pytest
import torch

from tutorial_utils import dashboard, data, detection, gradients, trust
from tutorial_utils import uncertainty as U


@pytest.fixture(scope="module")
def sets(signs):
    fit = data.stratified_indices(signs.y_train, 3, seed=0)
    x = signs.x_test[::100]
    novel = data.apply_challenge(x, "snow", 5, seed=0)
    return signs.x_train[fit], signs.y_train[fit], x, novel


def _direct(name, model, ensemble, sets):
    """The score ``name`` computed by the function that defines it, not through the table."""
    x_fit, y_fit, x, novel = sets
    z = model(x).detach()
    h = model.penultimate(x).detach()
    direct = {
        "MSP": lambda: U.max_softmax(z),
        "−entropy": lambda: U.neg_entropy(z),
        "margin": lambda: U.margin(z),
        "−NLL": lambda: U.neg_nll(z),
        "Energy": lambda: U.energy(z),
        "ODIN": lambda: U.odin(model, x),
        "Mahalanobis": lambda: U.Mahalanobis(model).fit_features(
            model.penultimate(x_fit).detach(), y_fit).score_features(h),
        "GradNorm": lambda: U.gradnorm(model, x),
        "confounding norm": lambda: U.confounding_score(model, x),
        "MC dropout (−MI)": lambda: -U.mc_dropout(model, x, 20, seed=0).epistemic,
        "ensemble (−MI)": lambda: -U.ensemble_uncertainty(ensemble, x).epistemic,
        "random": lambda: torch.rand(len(x), generator=torch.Generator().manual_seed(1)),
        "GradTrust": lambda: trust.gradtrust(model, x),
    }
    return direct[name]()


@pytest.mark.parametrize("name", list(detection.SCORES))
def test_every_table_entry_equals_its_direct_function(name, sign_model, zoo_models, sets):
    x_fit, y_fit, x, novel = sets
    ensemble = zoo_models["signs-ensemble"]
    det = detection.SCORES[name](ensemble if name == "ensemble (−MI)" else sign_model)
    assert isinstance(det, U.Detector)
    if name == "gradient detector H":
        assert det.fit(x_fit, x_novel=novel) is det
        norms = gradients.confounding_gradient_norms(sign_model, x).norms
        want = det.score_norms(norms)
    else:
        assert det.fit(x_fit, y_fit) is det
        want = _direct(name, sign_model, ensemble, sets)
    got = det.score(x)
    assert got.shape == (len(x),)
    torch.testing.assert_close(got.float(), want.float(), rtol=1e-4, atol=1e-5)


def test_score_suite_and_gauges_give_the_table_numbers(sign_model, zoo_models, sets):
    x_fit, y_fit, x, novel = sets
    ensemble = zoo_models["signs-ensemble"]
    h_det = U.ConfoundingDetector(sign_model).fit(x_fit, x_novel=novel)
    suite = detection.ScoreSuite(sign_model, x_fit, y_fit, ensemble=ensemble, detector=h_det)
    out = suite(x)
    assert list(out) == [*detection.SCORE_NAMES, "gradient detector H"]
    for name in detection.SCORE_NAMES:
        model = ensemble if name == "ensemble (−MI)" else sign_model
        want = detection.SCORES[name](model, **({"seed": 0} if name == "random" else {}))
        torch.testing.assert_close(out[name], want.fit(x_fit, y_fit).score(x).float().cpu(),
                                   rtol=1e-4, atol=1e-5, msg=name)
    torch.testing.assert_close(out["gradient detector H"], h_det.score(x).float())
    reference = dashboard.build_reference(sign_model, x_fit, y_fit, x)
    gauges = dashboard._gauge_scores(reference.detectors, sign_model, x)
    assert list(gauges) == list(dashboard.GAUGES)
    for name, scores in gauges.items():
        torch.testing.assert_close(scores.float(), out.get(name, _direct(
            name, sign_model, ensemble, sets)).float(), rtol=1e-4, atol=1e-5, msg=name)


def test_score_suite_rejects_unknown_names(sign_model, sets):
    x_fit, y_fit, _, _ = sets
    with pytest.raises(ValueError, match="unknown score"):
        detection.ScoreSuite(sign_model, x_fit, y_fit, names=["MSP", "LOF"])
    with pytest.raises(ValueError, match="detector="):
        detection.ScoreSuite(sign_model, x_fit, y_fit, names=["gradient detector H"])


def test_detection_table_rows_and_near_far_means():
    gen = torch.Generator().manual_seed(0)
    id_scores = {"a": torch.rand(50, generator=gen) + 1, "b": torch.rand(50, generator=gen)}
    novel = {"far": {"a": torch.rand(40, generator=gen), "b": torch.rand(40, generator=gen)},
             "near": {"a": torch.rand(40, generator=gen) + 0.5,
                      "b": torch.rand(40, generator=gen)}}
    table = detection.detection_table(id_scores, novel, "AUROC", near=["near"], far=["far"])
    assert table.loc["far", "a"] == 1.0 and 0.3 < table.loc["far", "b"] < 0.7
    assert table.loc["near-OOD (mean)", "a"] == table.loc["near", "a"]
    with pytest.raises(ValueError, match="lacks"):
        detection.detection_table(id_scores, {"x": {"a": torch.rand(3)}})


def test_auroc_intervals_cluster_units_and_saturation():
    """Intervals contain the point AUROC; shared units (a clean image and its copy) widen
    nothing they should not; a saturated cell is marked, not ranked."""
    import numpy as np

    from tutorial_utils import detection

    g = torch.Generator().manual_seed(0)
    ids = {"good": torch.rand(40, generator=g) + 2.0, "noisy": torch.rand(40, generator=g)}
    nov = {"copy": {"good": torch.rand(20, generator=g), "noisy": torch.rand(20, generator=g)}}
    v, lab, u = detection.auroc_evidence(ids["noisy"], nov["copy"]["noisy"],
                                         novel_units=np.arange(20))
    assert v.shape == lab.shape == u.shape == (60,) and lab.sum() == 40
    assert set(u[40:]) <= set(u[:40])  # copies share their source image's unit
    table = detection.auroc_intervals(ids, nov, novel_units={"copy": np.arange(20)},
                                      resamples=400)
    row = table.loc[("copy", "noisy")]
    assert row.low <= row.AUROC <= row.high and row.high - row.low > 0.05
    text = detection.format_intervals(table)
    assert text.loc["copy", "good"].startswith("saturated") and "[" in text.loc["copy", "noisy"]
    with pytest.raises(ValueError, match="novel_units"):
        detection.auroc_evidence(ids["noisy"], nov["copy"]["noisy"], novel_units=np.arange(3))
