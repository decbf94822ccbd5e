"""Chapter 3's explorers, driven through every value of their controls (redraw times:
``benchmarks/bench_widgets.py``)."""

from __future__ import annotations

import pytest

from tutorial_utils import data, detection, metrics, trust

widgets = pytest.importorskip("tutorial_utils.widgets")
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def scores(sign_model, signs):
    suite = detection.ScoreSuite(sign_model, signs.x_train[::30], signs.y_train[::30],
                                 names=("MSP", "Energy", "Mahalanobis", "random"))
    x = signs.x_test[data.stratified_indices(signs.y_test, 2)]
    grid = {(kind, lv): suite(data.apply_challenge(x, kind, lv))
            for kind in ("snow", "haze", "noise") for lv in (1, 3, 5)}
    go = data.load_ood("go", n=24, seed=0)
    return suite(x), grid, go, suite(go)


def test_score_explorer_every_value(scores):
    clean, grid, _, _ = scores
    box = widgets.score_explorer(clean, grid, kind="snow", level=1, score="MSP")
    kind, level, score = (box.controls[k] for k in ("kind", "level", "score"))
    assert list(kind.options) == ["snow", "haze", "noise"] and list(score.options) == list(clean)
    for k in kind.options:
        kind.value = k
        for lv in (1, 3, 5):
            level.value = lv
            for name in score.options:
                score.value = name
                area = box.state["last"]
                want = metrics.detection_report(clean[name], grid[(k, lv)][name])["AUROC"]
                assert area == pytest.approx(want) and f"{area:.3f}" in box.info.value
                assert box.image.value[:8] == PNG
    with pytest.raises(ValueError, match="level"):
        widgets.score_explorer(clean, grid, level=2)


def test_threshold_explorer_every_value(scores):
    clean, _, go, go_scores = scores
    box = widgets.threshold_explorer(clean, go_scores, go, score="MSP", keep_percent=95)
    seen = set()
    for name in box.controls["score"].options:
        box.controls["score"].value = name
        for keep in (50, 75, 90, 99, 100):
            box.controls["keep"].value = keep
            view = box.state["last"]
            want = detection.threshold_view(clean[name], go_scores[name], keep)
            assert (view.tpr, view.fpr) == (want.tpr, want.fpr)
            assert view.tpr >= keep / 100 - 1e-9
            seen.add(box.image.value)
    assert len(seen) > 5
    with pytest.raises(ValueError, match="keep_percent"):
        detection.threshold_view(clean["MSP"], go_scores["MSP"], 0)


def test_voice_explorer_every_sample(sign_model, picker):
    voice = trust.voice(sign_model, picker[:6])
    box = widgets.voice_explorer(picker[:6], voice, [f"s{i}" for i in range(6)])
    for s in range(6):
        box.controls["sample"].value = s
        iou, snr = box.state["last"]
        assert iou == pytest.approx(float(voice.iou[s]))
        assert snr == pytest.approx(float(voice.snr[s]))
        assert f"s{s}" in box.info.value and box.image.value[:8] == PNG
    with pytest.raises(ValueError, match="labels"):
        widgets.voice_explorer(picker[:6], voice, ["only one"])
