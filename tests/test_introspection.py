"""Introspective features, the equal-capacity heads, training and evaluation."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tutorial_utils import introspection as I
from tutorial_utils import models, plotting
from tutorial_utils.data import stratified_indices
from tutorial_utils.gradients import contrast_directions


@pytest.fixture(scope="module")
def sign_subset(signs):
    idx = stratified_indices(signs.y_test, 2, seed=0)
    return signs.x_test[idx], signs.y_test[idx]


def test_contrast_features_match_autograd(sign_model, sign_subset):
    x = sign_subset[0][:3]
    h, z = models.features_and_logits(sign_model, x)
    g = I.contrast_features(h, z, normalize=False, flatten=False)
    k, d = z.shape[1], h.shape[1]
    assert g.shape == (3, k, k, d)
    w = sign_model.fc.weight.detach().clone().requires_grad_(True)
    for q in (0, 5, k - 1):
        logits = h @ w.T + sign_model.fc.bias.detach()
        loss = F.cross_entropy(logits, torch.full((3,), q), reduction="sum")
        (gw,) = torch.autograd.grad(loss, w)
        # the summed loss gives the sum over samples of the per-sample gradients
        torch.testing.assert_close(g[:, q].sum(0), gw, atol=1e-5, rtol=1e-4)


def test_contrast_features_match_gradients_module(sign_model, sign_subset):
    gradients = pytest.importorskip("tutorial_utils.gradients")
    x = sign_subset[0][:4]
    h, z = models.features_and_logits(sign_model, x)
    ours = I.contrast_features(h, z, normalize=False, flatten=False)
    torch.testing.assert_close(ours, gradients.contrast_gradients(sign_model, x).cpu(),
                               atol=1e-5, rtol=1e-4)


def test_every_contrast_block_is_rank_one_the_outer_product_of_p_minus_eq_and_h(sign_model,
                                                                              sign_subset):
    # block q of image n is (p - e_q) h^T: one direction h, rescaled per row (chapter 2, sec. 5)
    h, z = models.features_and_logits(sign_model, sign_subset[0][:4])
    g = I.contrast_features(h, z, normalize=False, flatten=False)   # (B, Q, K, D)
    sv = torch.linalg.svdvals(g.double())                           # (B, Q, min(K, D))
    assert float((sv[..., 1] / sv[..., 0]).max()) < 1e-5
    k = z.shape[1]
    outer = (z.softmax(1)[:, None, :] - torch.eye(k))[..., None] * h[:, None, None, :]
    torch.testing.assert_close(g, outer, atol=1e-5, rtol=1e-4)


def test_normalised_blocks_have_unit_norm_and_scale_invariance(sign_model, sign_subset):
    h, z = models.features_and_logits(sign_model, sign_subset[0][:5])
    g = I.contrast_features(h, z, flatten=False)
    torch.testing.assert_close(g.flatten(2).norm(dim=2), torch.ones(5, z.shape[1]))
    torch.testing.assert_close(I.contrast_features(3.0 * h, z), I.contrast_features(h, z))
    r = I.introspective_features(sign_model, sign_subset[0][:5])
    assert r.shape == (5, z.shape[1] ** 2 * h.shape[1])
    torch.testing.assert_close(r, g.flatten(1))


def test_introspective_head_is_an_mlp_on_r_x(sign_model, sign_subset):
    # the factorised first layer gives exactly mlp(r_x), without materialising r_x
    h, z = models.features_and_logits(sign_model, sign_subset[0])
    intro, _ff = I.build_heads(h.shape[1], z.shape[1], hidden=6, seed=1)
    torch.testing.assert_close(intro(h, z), intro.mlp(I.contrast_features(h, z)),
                               atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(contrast_directions(z),
                               z.softmax(1)[:, None] - torch.eye(z.shape[1]))


def test_train_head_uses_the_course_training_loop(sign_model, signs):
    from tutorial_utils.models import train_classifier

    idx = stratified_indices(signs.y_train, 3, seed=0)
    h, z = models.features_and_logits(sign_model, signs.x_train[idx])
    y = signs.y_train[idx]
    a, _ = I.build_heads(h.shape[1], 14, hidden=4, seed=2)
    b, _ = I.build_heads(h.shape[1], 14, hidden=4, seed=2)
    la = I.train_head(a, h, z, y, epochs=3, batch_size=8, seed=5, progress=False)
    lb = train_classifier(I._PackedInputs(b, h.shape[1]), torch.cat([h, z], 1), y, epochs=3,
                          batch_size=8, lr=3e-3, max_shift=0.0, seed=5, progress=False)
    assert la == lb
    torch.testing.assert_close(a(h, z), b(h, z))


def test_features_are_sparse_for_a_confident_prediction(sign_model, sign_subset):
    h, z = models.features_and_logits(sign_model, sign_subset[0][:1])
    g = I.contrast_features(h, z, normalize=False, flatten=False)[0]
    p = int(z.argmax())
    # why P, rather than P? is the smallest block when the network is confident
    norms = g.flatten(1).norm(dim=1)
    assert int(norms.argmin()) == p
    assert I.sparsity(g) > 0.5


def test_bad_inputs_raise():
    with pytest.raises(TypeError, match="h must be"):
        I.contrast_features([[1.0]], torch.zeros(1, 3))
    with pytest.raises(ValueError, match="same batch size"):
        I.contrast_features(torch.zeros(2, 4), torch.zeros(3, 3))
    with pytest.raises(ValueError, match="NaN"):
        I.contrast_features(torch.full((1, 4), float("nan")), torch.zeros(1, 3))
    with pytest.raises(ValueError, match="per_class"):
        stratified_indices(torch.tensor([0, 0, 1]), 0)
    with pytest.raises(ValueError, match="fewer than"):
        stratified_indices(torch.tensor([0, 0, 1]), 2)
    with pytest.raises(ValueError, match="hidden"):
        I.MLP(4, 0, 3)
    with pytest.raises(TypeError, match="no final nn.Linear"):
        models.features_and_logits(torch.nn.Conv2d(3, 3, 3), torch.zeros(1, 3, 8, 8))


def test_heads_have_equal_capacity():
    intro, ff = I.build_heads(64, 14, hidden=16, seed=0)
    n_i, n_f = I.num_parameters(intro), I.num_parameters(ff)
    assert abs(n_i - n_f) / n_i < 0.001
    assert intro.mlp.net[0].in_features == 14 * 14 * 64
    assert ff.mlp.net[0].in_features == 64


def test_stratified_indices_are_balanced_and_deterministic():
    y = torch.arange(5).repeat_interleave(7)
    a, b = stratified_indices(y, 3, seed=1), stratified_indices(y, 3, seed=1)
    assert torch.equal(a, b)
    assert torch.equal(torch.bincount(y[a]), torch.full((5,), 3))


def test_training_is_seeded_and_learns(sign_model, signs):
    idx = stratified_indices(signs.y_train, 6, seed=0)
    h, z = models.features_and_logits(sign_model, signs.x_train[idx])
    y = signs.y_train[idx]
    losses = []
    for _ in range(2):
        intro, _ff = I.build_heads(h.shape[1], 14, hidden=8, seed=3)
        losses.append(I.train_head(intro, h, z, y, epochs=5, batch_size=16, seed=3,
                                   progress=False))
    assert losses[0] == losses[1]
    assert losses[0][-1] < losses[0][0]
    assert not intro.training


def test_evaluate_heads_and_tables(sign_model, signs):
    idx = stratified_indices(signs.y_train, 5, seed=0)
    h, z = models.features_and_logits(sign_model, signs.x_train[idx])
    intro, ff = I.build_heads(h.shape[1], 14, hidden=4, seed=0)
    I.train_head(intro, h, z, signs.y_train[idx], epochs=2, progress=False)
    I.train_head(ff, h, z, signs.y_train[idx], epochs=2, progress=False)
    te = stratified_indices(signs.y_test, 1, seed=0)
    heads = {"stage 1": None, "feed-forward": ff, "introspective": intro}
    res = I.evaluate_heads(sign_model, heads, signs.x_test[te], signs.y_test[te],
                           challenges=("noise", "haze"), levels=(1, 5), progress=False)
    assert len(res.table) == 3 * (1 + 2 * 2)
    assert res.table.accuracy.between(0, 1).all() and res.table.ece.between(0, 1).all()
    # the stage-1 row equals the model's own accuracy
    from tutorial_utils.models import accuracy

    clean = res.table[(res.table.level == 0) & (res.table["head"] == "stage 1")]
    assert clean.accuracy.item() == pytest.approx(
        accuracy(sign_model, signs.x_test[te], signs.y_test[te]))
    lv = I.level_summary(res)
    assert list(lv.index) == [0, 1, 5]
    t1 = I.table1(res)
    assert list(t1.index.get_level_values(0).unique()) == ["clean", "noise", "haze",
                                                           "all challenges"]
    # pooled ECE of one challenge block recomputed by hand
    from tutorial_utils.metrics import expected_calibration_error

    p = np.concatenate([res.probs[("introspective", "noise", lv_)] for lv_ in (1, 5)])
    lab = np.tile(res.labels, 2)
    assert t1.loc[("noise", "introspective"), "ECE (%)"] == pytest.approx(
        100 * expected_calibration_error(p, lab))
    with pytest.raises(ValueError, match="levels"):
        I.evaluate_heads(sign_model, heads, signs.x_test[te], signs.y_test[te], levels=(0,),
                         progress=False)


def test_level_view(small_results):
    df = I.level_view(small_results, 3)
    assert list(df.index) == ["noise", "haze", "snow", "all"]
    assert df.loc["all", ("accuracy", "introspective")] == pytest.approx(
        df.loc[["noise", "haze", "snow"], ("accuracy", "introspective")].mean())
    assert list(I.level_view(small_results, 0).index) == ["clean", "all"]
    with pytest.raises(ValueError, match="level"):
        I.level_view(small_results, 6)
    with pytest.raises(TypeError, match="level"):
        I.level_view(small_results, 1.5)
    plt.close(plotting.introspection.plot_level_view(small_results, 2))


def test_contrast_gradient_grid(sign_model, picker):
    h, z = models.features_and_logits(sign_model, picker[:1])
    g = I.contrast_features(h, z, normalize=False, flatten=False)[0]
    fig = plotting.introspection.plot_contrast_gradient_grid(
        g, int(z.argmax()), [str(i) for i in range(14)], image=picker[0])
    assert len([a for a in fig.axes if a.get_title().startswith("why")]) == 14
    plt.close(fig)
