"""Tests for tutorial_utils.anomaly (GradCon) and its zoo members."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tutorial_utils import anomaly, metrics, models, zoo
from tutorial_utils.architectures import ConvAutoencoder

RECORDED = zoo.read_manifest()


def _detector(seed: int = 0) -> anomaly.GradCon:
    """An untrained detector with random (non-zero) reference gradients."""
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        det = anomaly.GradCon(widths=(4, 4, 8, 8)).eval()
    det.update_reference([torch.randn(r.shape, generator=gen) for r in det.reference_gradients])
    return det


@pytest.fixture
def x28():
    return torch.rand(6, 1, 28, 28, generator=torch.Generator().manual_seed(3))


# ------------------------------------------------------------------------------ architecture


def test_autoencoder_shapes_and_paper_size():
    ae = ConvAutoencoder(1, (32, 32, 64, 64))
    assert sum(p.numel() for p in ae.parameters()) == 230_721  # the paper's parameter count
    out = ConvAutoencoder()(torch.rand(2, 1, 28, 28))
    assert out.shape == (2, 1, 28, 28) and 0 <= out.min() and out.max() <= 1
    assert len(ConvAutoencoder().decoder_layers) == 4


# ------------------------------------------------------------------------------ gradients


def test_batched_per_sample_gradients_equal_a_loop(x28):
    det = _detector()
    mse, grads = anomaly.reconstruction_gradients(det, x28)
    weights = [det.autoencoder.get_parameter(n) for n in det.weight_names]
    for b in range(len(x28)):
        xb = x28[b:b + 1]
        loss = F.mse_loss(det(xb), xb)
        loop = torch.autograd.grad(loss, weights)
        assert mse[b] == pytest.approx(loss.item(), rel=1e-5)
        for g_batched, g_loop in zip(grads, loop, strict=True):
            torch.testing.assert_close(g_batched[b], g_loop, rtol=1e-4, atol=1e-7)
    assert all(w.grad is None for w in weights)  # no .grad written


def test_scores_combine_mse_and_the_cosine_term(x28):
    det = _detector()
    s = anomaly.gradcon_scores(det, x28, beta=0.5)
    _, grads = anomaly.reconstruction_gradients(det, x28)
    cos = torch.stack([
        torch.stack([F.cosine_similarity(g[b].flatten(), r.flatten(), dim=0)
                     for g, r in zip(grads, det.reference_gradients, strict=True)]).mean()
        for b in range(len(x28))])
    torch.testing.assert_close(s.cosine, cos, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(s.reconstruction, -s.mse)
    torch.testing.assert_close(s.gradcon, -s.mse + 0.5 * cos)
    chunked = anomaly.gradcon_scores(det, x28, beta=0.5, batch_size=4)
    torch.testing.assert_close(chunked.gradcon, s.gradcon, rtol=1e-5, atol=1e-7)
    single = anomaly.gradcon_scores(det, x28[2:3], beta=0.5)
    torch.testing.assert_close(single.gradcon[0], s.gradcon[2], rtol=1e-5, atol=1e-7)


def test_training_loss_backpropagates_through_the_gradients(x28):
    """The cosine term depends on the weights through ∂MSE/∂φ (double backprop)."""
    det = _detector().train()
    weights = list(det.autoencoder.parameters())
    loss, mse, cos = anomaly.gradcon_loss(det, x28, alpha=1.0)
    assert loss.item() == pytest.approx(mse.item() - cos.item(), rel=1e-6)
    g_loss = torch.autograd.grad(loss, weights, retain_graph=True)
    g_mse = torch.autograd.grad(mse, weights, retain_graph=True)
    g_cos = torch.autograd.grad(cos, weights)
    assert any(g.abs().max() > 0 for g in g_cos)  # the constraint reaches the weights
    for a, b, c in zip(g_loss, g_mse, g_cos, strict=True):
        torch.testing.assert_close(a, b - c, rtol=1e-4, atol=1e-7)
    fresh = anomaly.GradCon(widths=(4, 4, 8, 8))  # no history yet: the cosine term is off
    loss0, mse0, cos0 = anomaly.gradcon_loss(fresh, x28)
    assert loss0.item() == mse0.item() and cos0.item() == 0.0


def test_reference_is_the_running_mean_of_past_gradients():
    det = anomaly.GradCon(widths=(4, 4, 8, 8))
    steps = [[torch.full_like(r, float(v)) for r in det.reference_gradients] for v in (1, 2, 6)]
    for g in steps:
        det.update_reference(g)
    assert int(det.ref_count) == 3
    for r in det.reference_gradients:
        torch.testing.assert_close(r, torch.full_like(r, 3.0))


def test_training_is_deterministic_and_leaves_the_global_rng_alone(digits):
    x = digits.x_train[digits.y_train == 1][:48]
    state = torch.get_rng_state()
    a = anomaly.train_gradcon(x, epochs=2, batch_size=16, widths=(4, 4, 8, 8), seed=5,
                              progress=False)
    assert torch.equal(torch.get_rng_state(), state)
    b = anomaly.train_gradcon(x, epochs=2, batch_size=16, widths=(4, 4, 8, 8), seed=5,
                              progress=False)
    for (name, ta), tb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(ta, tb), name
    assert int(a.ref_count) == 2 * 3 and len(a.history) == 2 and not a.training


# ------------------------------------------------------------------------------ orientation


def test_trained_detector_scores_normal_digits_above_noise_and_blank_images(digits):
    det = models.load("gradcon-1", train_if_missing=False)
    normal = digits.x_test[digits.y_test == 1]
    gen = torch.Generator().manual_seed(0)
    odd = torch.cat([torch.rand(20, 1, 28, 28, generator=gen),
                     torch.full((5, 1, 28, 28), 0.5), torch.ones(5, 1, 28, 28)])
    s_in, s_out = det.scores(normal), det.scores(odd)
    for name in ("gradcon", "reconstruction"):  # every normal digit above every odd image
        assert getattr(s_in, name).min() > getattr(s_out, name).max(), name
    labels = np.r_[np.ones(len(normal), int), np.zeros(len(odd), int)]
    cos = torch.cat([s_in.cosine, s_out.cosine])  # the gradient term alone: almost
    assert metrics.auroc(labels, cos) > 0.97


# ------------------------------------------------------------------------------ the zoo


@pytest.mark.parametrize("name", zoo.GRADCON_ZOO)
def test_gradcon_members_load_verified_and_reproduce_their_aurocs(name, digits):
    entry = RECORDED[name]
    path = zoo.data_dir() / entry["file"]
    assert path.stat().st_size <= 512 * 1024
    assert {"sha256", "recipe", "train_seconds", "test_auroc"} <= entry.keys()
    det = models.load(name, train_if_missing=False)
    assert isinstance(det, anomaly.GradCon) and not det.training and int(det.ref_count) > 0
    d = entry["recipe"]["normal_class"]
    got = anomaly.one_class_aurocs(det, digits.x_test, digits.y_test, d)
    for key, value in entry["test_auroc"].items():
        assert got[key] == pytest.approx(value, abs=1e-4), key


def test_gradcon_recipes_are_recorded():
    for name in zoo.GRADCON_ZOO:
        assert RECORDED[name]["recipe"] == zoo.GRADCON_RECIPES[name]
    assert zoo.MEMBERS == zoo.ZOO + zoo.GRADCON_ZOO


def test_corrupted_gradcon_checkpoint_says_how_to_rebuild(tmp_path, monkeypatch):
    src = zoo.data_dir()
    shutil.copy(src / "manifest.json", tmp_path / "manifest.json")
    path = tmp_path / "gradcon-4.pt"
    blob = bytearray((src / "gradcon-4.pt").read_bytes())
    blob[-10] ^= 0xFF
    path.write_bytes(bytes(blob))
    monkeypatch.setattr(zoo, "data_dir", lambda: tmp_path)
    with pytest.raises(zoo.ChecksumError, match="python -m tutorial_utils.models gradcon-4"):
        models.load("gradcon-4")
    path.unlink()
    with pytest.raises(FileNotFoundError, match="python -m tutorial_utils.models"):
        models.load("gradcon-4", train_if_missing=False)


def test_command_line_expands_the_gradcon_alias(monkeypatch):
    seen = []
    monkeypatch.setattr(models, "rebuild_zoo", lambda names: seen.append(names))
    models.main(["gradcon"])
    models.main([])
    models.main(["gradcon-2", "digits", "gradcon-2"])
    assert seen == [zoo.GRADCON_ZOO, zoo.MEMBERS, ("gradcon-2", "digits")]
    with pytest.raises(SystemExit):
        models.main(["gradcon-10"])
    with pytest.raises(ValueError, match="gradcon-0 .. gradcon-9"):
        models.load("gradcon-x")


def test_auroc_table_has_a_row_per_class_a_mean_and_a_chance_column(digits):
    dets = {d: models.load(f"gradcon-{d}", train_if_missing=False) for d in (0, 7)}
    table = anomaly.auroc_table(dets, digits.x_test, digits.y_test)
    assert list(table.index) == [0, 7, "mean"]
    assert list(table.columns) == ["gradcon", "reconstruction", "cosine", "random"]
    assert table.loc["mean", "gradcon"] == pytest.approx(table.loc[[0, 7], "gradcon"].mean())
    assert abs(table.loc["mean", "random"] - 0.5) < 0.1
    assert table.loc[0, "gradcon"] == pytest.approx(RECORDED["gradcon-0"]["test_auroc"]["gradcon"],
                                                    abs=1e-4)
    assert np.isfinite(table.to_numpy()).all()


# ------------------------------------------------------------------------------ bad inputs


def test_bad_inputs_name_the_argument(x28, digits):
    det = _detector()
    with pytest.raises(TypeError, match="model"):
        anomaly.gradcon_scores(torch.nn.Linear(2, 2), x28)
    with pytest.raises(ValueError, match="28x28"):
        anomaly.gradcon_scores(det, torch.rand(2, 1, 32, 32))
    with pytest.raises(ValueError, match="x must have shape"):
        anomaly.gradcon_scores(det, x28[0])
    with pytest.raises(ValueError, match="channel"):
        anomaly.gradcon_scores(det, torch.rand(2, 3, 28, 28))
    with pytest.raises(TypeError, match="x is torch.float64"):
        anomaly.gradcon_scores(det, x28.double())
    with pytest.raises(ValueError, match="beta"):
        anomaly.gradcon_scores(det, x28, beta=-1.0)
    with pytest.raises(TypeError, match="beta"):
        anomaly.gradcon_scores(det, x28, beta="0.12")
    with pytest.raises(ValueError, match="batch_size"):
        anomaly.gradcon_scores(det, x28, batch_size=0)
    with pytest.raises(ValueError, match="reference gradients"):
        anomaly.gradcon_scores(anomaly.GradCon(widths=(4, 4, 8, 8)), x28)
    with pytest.raises(ValueError, match="epochs"):
        anomaly.train_gradcon(x28, epochs=0)
    with pytest.raises(ValueError, match="alpha"):
        anomaly.train_gradcon(x28, epochs=1, alpha=-0.1)
    with pytest.raises(ValueError, match="normal_class"):
        anomaly.one_class_aurocs(det, x28, torch.zeros(6, dtype=torch.long), 3)
    with pytest.raises(TypeError, match="normal_class"):
        anomaly.one_class_aurocs(det, x28, torch.arange(6), 1.0)
    with pytest.raises(TypeError, match="detectors"):
        anomaly.auroc_table({}, x28, torch.arange(6))


def test_scores_leave_the_detector_as_found(x28):
    det = _detector().train()
    anomaly.gradcon_scores(det, x28)
    assert det.training and all(p.requires_grad for p in det.parameters())
    assert all(p.grad is None for p in det.parameters())


def test_random_scores_sit_at_chance():
    y = np.r_[np.ones(100, int), np.zeros(900, int)]
    s = np.random.default_rng(0).random(1000)
    assert abs(metrics.auroc(y, s) - 0.5) < 0.1
