"""The loss landscape from one input: first-order change, steepest descent, the loss plane."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest

from tutorial_utils import information, landscape, plotting


def test_directional_change_first_order_and_steepest(tiny, x8):
    dc = landscape.directional_change(tiny, x8[0], alphas=[1e-2, 3e-2], n_random=16)
    # tiny steps: the actual change matches the Taylor prediction -alpha |g|^2
    np.testing.assert_allclose(dc.gradient, dc.first_order, rtol=5e-2)
    # no random direction of the same length decreases the loss more than -g (to first order)
    assert (dc.random.min(axis=0) >= dc.gradient - 1e-7).all()
    assert dc.random.shape == (16, 2)
    assert dc.label == int(tiny(x8[:1]).argmax())


def test_directional_change_default_alphas_and_all_params(tiny, x8):
    dc = landscape.directional_change(tiny, x8[1], n_random=4, params=[tiny.conv, tiny.fc])
    assert len(dc.alphas) == 16
    assert dc.gradient[-1] <= 0  # a long step along -g still lowers the loss
    assert dc.gradient[-1] >= -dc.loss - 1e-6  # but cross-entropy cannot fall below 0
    plt.close(plotting.landscape.plot_directional_change(dc))
    with pytest.raises(ValueError, match="label"):
        landscape.directional_change(tiny, x8[1], label=9)
    with pytest.raises(ValueError, match="n_random"):
        landscape.directional_change(tiny, x8[1], n_random=0)


def test_loss_plane_descends_along_negative_gradient(tiny, x8):
    plane = landscape.loss_plane(tiny, x8[0], steps=21)
    assert plane.values.shape == (21, 21)
    centre = plane.values[10, 10]
    assert abs(centre) < 1e-6
    small = 0.1 * plane.coords.max()
    down = landscape.plane_value(plane, small, 0.0)
    up = landscape.plane_value(plane, -small, 0.0)
    side = landscape.plane_value(plane, 0.0, small)
    assert down < side < up or down < min(side, up)
    assert down < 0 < up
    plt.close(plotting.landscape.plot_loss_plane(plane))
    with pytest.raises(ValueError):
        landscape.plane_value(plane, 10 * plane.coords.max(), 0.0)
    with pytest.raises(ValueError, match="steps"):
        landscape.loss_plane(tiny, x8[0], steps=2)


def test_functions_restore_model_state(tiny, x8):
    tiny.train()
    flags = [p.requires_grad for p in tiny.parameters()]
    landscape.directional_change(tiny, x8[0], n_random=2)
    landscape.loss_plane(tiny, x8[0], steps=5)
    information.all_label_scores(tiny, x8)
    assert tiny.training
    assert [p.requires_grad for p in tiny.parameters()] == flags
    assert all(p.grad is None for p in tiny.parameters())
