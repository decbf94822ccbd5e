"""Contrastive explanations: representatives, the gallery rows, the explorer state."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pytest

from tutorial_utils import contrast, plotting


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
