"""Contrastive explanations: the gallery rows, the explorer state, the counterfactual truth."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pytest
import torch

from tutorial_utils import contrast, data, plotting


@pytest.fixture(scope="module")
def reps(sign_model, signs):
    return signs.x_test[contrast.representatives(sign_model, signs.x_test, signs.y_test)]


def test_gallery_rows(sign_model, signs, picker, reps):
    c = {n: i for i, n in enumerate(signs.classes)}
    rows = contrast.contrast_gallery(sign_model, picker[[c["no left"], c["stop"]]],
                              [(c["no right"], c["stop"]), (c["no entry"], c["no left"])], reps)
    assert [r["pred"] for r in rows] == [c["no left"], c["stop"]]
    for r in rows:
        for key in ("gradcam", "contrast1", "contrast2", "why_not"):
            assert r[key].shape == (48, 48) and 0 <= r[key].min() and r[key].max() <= 1
    # contrasting with a different class gives a different map than Grad-CAM
    assert (rows[0]["contrast1"] - rows[0]["gradcam"]).abs().max() > 0.05
    plt.close(plotting.contrast.plot_contrast_gallery(rows, signs.classes))


def test_region_ratio_hand_cases():
    region = torch.zeros(1, 4, 4, dtype=torch.bool)
    region[0, :2, :2] = True  # a quarter of the image
    inside = region.float()
    assert contrast.region_ratio(inside, region).item() == pytest.approx(4.0)  # all mass inside
    assert contrast.region_ratio(torch.ones(1, 4, 4), region).item() == pytest.approx(1.0)
    assert contrast.region_ratio(1 - inside, region).item() == pytest.approx(0.0)
    assert contrast.region_ratio(torch.zeros(1, 4, 4), region).item() == 0.0  # no mass
    with pytest.raises(ValueError, match="at least one pixel"):
        contrast.region_ratio(inside, torch.zeros_like(region))
    with pytest.raises(ValueError, match="regions"):
        contrast.region_ratio(inside, region[0])


def test_counterfactual_matches_the_data_set(signs):
    idx = torch.nonzero(signs.y_test == 8).flatten()[:3]
    same, empty = data.counterfactual(signs, idx, 8)
    assert torch.equal(same, signs.x_test[idx]) and not empty.any()
    _, regions = data.counterfactual(signs, idx, 9)
    assert regions.any(dim=(1, 2)).all()
    with pytest.raises(ValueError, match="load_signs"):
        data.counterfactual(data.load_digits(), 0, 1)


def test_ground_truth_table_beats_chance_and_truth_panel(sign_model, signs):
    table, per_scene = contrast.ground_truth_table(sign_model, signs, [("no left", "no right")],
                                                   n=8, progress=False, scenes=True)
    assert len(per_scene) == 8 and per_scene["scene"].is_unique
    assert per_scene["Grad-CAM"].mean() == pytest.approx(table.iloc[0]["Grad-CAM"], rel=1e-6)
    assert per_scene["corr(ContrastCAM (last block), Grad-CAM)"].between(-1, 1).all()
    row = table.iloc[0]
    assert row["pair"] == "near" and 0 < row["region share"] < 0.1
    assert row["Grad-CAM"] > 1.5 and row["ContrastCAM (last block)"] > 1.5
    assert 0.5 < row["random map"] < 1.5
    i = int(torch.nonzero(signs.y_test == 8)[0])
    cf, region = data.counterfactual(signs, i, 9)
    panel = contrast.truth_panel(sign_model, signs.x_test[i], region[0], 9, counterfactual=cf[0])
    assert panel["corr"]["gradcam"] == pytest.approx(1.0, abs=1e-5)
    torch.testing.assert_close(panel["difference"], panel["contrast"] - panel["gradcam"])
    assert panel["signed_contrast"].min() < 0 < panel["signed_contrast"].max()
    plt.close(plotting.contrast.plot_truth_panels([panel], signs.classes))
