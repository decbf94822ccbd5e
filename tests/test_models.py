"""Tests for tutorial_utils.models: the zoo loads, verifies checksums and keeps its accuracy."""

from __future__ import annotations

import shutil

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from torch import nn

from tutorial_utils import architectures, data, get_device, models, plotting, seed_everything, zoo
from tutorial_utils.architectures import SmallCNN

RECORDED = zoo.read_manifest()


@pytest.mark.parametrize("name", zoo.ZOO)
def test_zoo_model_reaches_its_recorded_test_accuracy(name, zoo_models):
    model = zoo_models[name]
    ds = zoo.zoo_dataset(name)
    acc = models.accuracy(model, ds.x_test, ds.y_test)
    assert acc == pytest.approx(RECORDED[name]["test_accuracy"], abs=1e-3)
    assert not model.training


def test_accuracy_bars(zoo_models):
    assert RECORDED["digits"]["test_accuracy"] >= 0.97
    assert RECORDED["signs"]["test_accuracy"] >= 0.97


@pytest.mark.parametrize("name", zoo.ZOO)
def test_checkpoints_are_small_and_recorded(name):
    entry = RECORDED[name]
    path = zoo.data_dir() / entry["file"]
    assert path.stat().st_size <= 2 * 1024 * 1024
    assert {"sha256", "recipe", "test_accuracy"} <= entry.keys()


def test_zoo_anatomy(zoo_models):
    model = zoo_models["signs"]
    x = torch.rand(2, 3, 48, 48)
    with torch.no_grad():
        assert torch.allclose(model.fc(model.penultimate(x)), model(x), atol=1e-6)
        fmap = model.last_conv(model.features(model.normalize(x)))
    assert fmap.shape[-2:] == (12, 12)
    assert isinstance(model.fc, torch.nn.Linear) and model.target_layer is model.last_conv
    digits = zoo_models["digits"]
    digit_map = digits.last_conv(digits.features(torch.rand(1, 1, 28, 28)))
    assert min(digit_map.shape[-2:]) >= 6


def test_ensemble_is_the_mean_of_member_probabilities(zoo_models):
    ens = zoo_models["signs-ensemble"]
    x = torch.rand(3, 3, 48, 48)
    with torch.no_grad():
        mean_p = ens.member_logits(x).softmax(-1).mean(0)
        assert torch.allclose(ens(x).softmax(-1), mean_p, atol=1e-6)
    assert len(ens.members) == 5


def test_sign_accuracy_falls_as_challenge_level_rises(zoo_models, signs):
    model, x, y = zoo_models["signs"], signs.x_test[::4], signs.y_test[::4]
    for kind in ("noise", "haze", "gaussian blur"):
        accs = [models.accuracy(model, data.apply_challenge(x, kind, lvl, seed=1), y)
                for lvl in (0, 3, 5)]
        assert accs[0] > accs[1] > accs[2], (kind, accs)


def _copy_zoo(tmp_path, monkeypatch, name):
    src = zoo.data_dir()
    shutil.copy(src / "manifest.json", tmp_path / "manifest.json")
    shutil.copy(src / f"{name}.pt", tmp_path / f"{name}.pt")
    monkeypatch.setattr(zoo, "data_dir", lambda: tmp_path)
    return tmp_path / f"{name}.pt"


def test_corrupted_checkpoint_says_how_to_rebuild(tmp_path, monkeypatch):
    path = _copy_zoo(tmp_path, monkeypatch, "digits")
    blob = bytearray(path.read_bytes())
    blob[-10] ^= 0xFF
    path.write_bytes(bytes(blob))
    with pytest.raises(zoo.ChecksumError, match="python -m tutorial_utils.models"):
        models.load("digits")


def test_missing_checkpoint_without_training_says_how_to_rebuild(tmp_path, monkeypatch):
    path = _copy_zoo(tmp_path, monkeypatch, "digits")
    path.unlink()
    with pytest.raises(FileNotFoundError, match="python -m tutorial_utils.models"):
        models.load("digits", train_if_missing=False)


def test_unknown_zoo_name():
    with pytest.raises(ValueError, match="valid names: digits, digits05"):
        models.load("resnet")


def test_training_is_deterministic_for_a_seed():
    x, y = torch.rand(32, 1, 28, 28), torch.randint(0, 3, (32,))

    def run():
        torch.manual_seed(0)
        net = SmallCNN(1, 3, (4, 4, 8))
        models.train_classifier(net, x, y, epochs=2, batch_size=8, seed=7, progress=False)
        return torch.cat([p.flatten() for p in net.parameters()])

    assert torch.equal(run(), run())


def test_seed_everything_and_device():
    seed_everything(3)
    a = torch.rand(4)
    seed_everything(3)
    assert torch.equal(a, torch.rand(4))
    assert get_device().type in ("cpu", "cuda")
    with pytest.raises(TypeError, match="seed"):
        seed_everything("3")


def test_predict_proba_rows_sum_to_one_and_match_softmax(tiny, x8):
    p = models.predict_proba(tiny, x8, batch_size=3)
    assert p.shape == (8, 4)
    torch.testing.assert_close(p.sum(1), torch.ones(8))
    torch.testing.assert_close(p, tiny(x8).softmax(1).detach())


def test_predict_proba_restores_training_mode(tiny, x8):
    tiny.train()
    models.predict_proba(tiny, x8)
    assert tiny.training


def test_decision_is_argmax_and_softmax(tiny, x8):
    d = models.decision(tiny, x8[2])
    z = tiny(x8[2:3])[0].detach()
    torch.testing.assert_close(d.logits, z)
    assert d.pred == int(z.argmax())
    assert d.confidence == pytest.approx(float(z.softmax(0).max()))


@pytest.mark.parametrize("bad, err", [(torch.rand(2, 3, 12, 12), ValueError),
                                      (torch.zeros(3, 12, 12, dtype=torch.long), TypeError),
                                      (np.zeros((3, 12, 12)), TypeError)])
def test_decision_rejects_bad_images(tiny, bad, err):
    with pytest.raises(err):
        models.decision(tiny, bad)


def test_plot_decision_draws_three_panels(tiny, x8):
    d = models.decision(tiny, x8[0])
    fig = plotting.models.plot_decision(x8[0], d, ["a", "b", "c", "d"])
    assert len(fig.axes) == 3
    plt.close(fig)
    with pytest.raises(ValueError, match="class_names"):
        plotting.models.plot_decision(x8[0], d, ["a", "b"])


def test_penultimate_features_feed_the_head(tiny, x8):
    h = models.features_and_logits(tiny, x8, batch_size=3)[0]
    torch.testing.assert_close(tiny.fc(h), tiny(x8), atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(h, tiny.penultimate(x8), atol=1e-6, rtol=1e-5)
    # any classifier that ends in an nn.Linear: the features are read by a hook on it
    flat = nn.Sequential(nn.Flatten(), nn.Linear(432, 2)).eval()
    h, z = models.features_and_logits(flat, x8)
    torch.testing.assert_close(h, x8.flatten(1))
    torch.testing.assert_close(z, flat(x8))
    with pytest.raises(TypeError, match="no final nn.Linear"):
        models.features_and_logits(nn.Sequential(nn.Conv2d(3, 2, 3), nn.Flatten()), x8)


@pytest.mark.parametrize("build", [
    lambda **kw: architectures.SmallCNN(in_channels=3, num_classes=4, **kw),
    lambda **kw: architectures.SignViT(in_channels=3, num_classes=4, **kw),
], ids=["SmallCNN", "SignViT"])
@pytest.mark.parametrize("arg", ["mean", "std"])
def test_normalisation_needs_one_value_per_channel(build, arg):
    with pytest.raises(ValueError, match=rf"^{arg} must give one value per input channel \(3\)"):
        build(**{arg: (0.5, 0.5)})
    net = build(**{arg: (0.1, 0.2, 0.3)})
    assert getattr(net.normalize, arg).flatten().tolist() == pytest.approx([0.1, 0.2, 0.3])
