"""Tests for tutorial_utils.data: determinism, shapes, ranges, challenges and bad inputs."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
import torch

from tutorial_utils import data
from tutorial_utils.data import SIGN_CLASSES


def test_digits_split_is_fixed_stratified_and_in_range(digits):
    assert digits.x_train.shape == (4000, 1, 28, 28)
    assert digits.x_test.shape == (1000, 1, 28, 28)
    assert digits.x_train.dtype == torch.float32 and digits.y_train.dtype == torch.int64
    assert 0.0 <= digits.x_train.min() and digits.x_train.max() <= 1.0
    assert torch.bincount(digits.y_test).tolist() == [100] * 10
    again = data.load_digits()
    assert torch.equal(again.x_test, digits.x_test) and torch.equal(again.y_train, digits.y_train)
    assert digits.classes == tuple("0123456789")


def test_signs_shapes_dtypes_ranges(signs):
    assert signs.x_train.shape == (14 * 300, 3, 48, 48)
    assert signs.x_test.shape == (14 * 100, 3, 48, 48)
    assert signs.x_test.dtype == torch.float32 and signs.y_test.dtype == torch.int64
    assert 0.0 <= signs.x_train.min() and signs.x_train.max() <= 1.0
    assert torch.bincount(signs.y_train).tolist() == [300] * 14
    assert len(signs.classes) == 14 and signs.num_classes == 14
    assert "no left" in signs.classes and "no right" in signs.classes


def test_signs_same_seed_same_bytes_other_seed_differs():
    a = data.load_signs(seed=3, n_train=4, n_test=2, cache=False)
    b = data.load_signs(seed=3, n_train=4, n_test=2, cache=False)
    c = data.load_signs(seed=4, n_train=4, n_test=2, cache=False)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.x_test, b.x_test)
    assert not torch.equal(a.x_train, c.x_train)


def test_cached_signs_equal_freshly_generated(tmp_path, monkeypatch):
    monkeypatch.setenv("TUTORIAL_UTILS_CACHE", str(tmp_path))
    fresh = data.load_signs(seed=5, n_train=3, n_test=2)
    assert len(list(tmp_path.glob("*.pt"))) == 1
    cached = data.load_signs(seed=5, n_train=3, n_test=2)
    assert torch.equal(fresh.x_train, cached.x_train) and torch.equal(fresh.y_test, cached.y_test)


def test_generating_all_signs_takes_at_most_20_seconds():
    start = time.perf_counter()
    data.load_signs(seed=11, cache=False)
    assert time.perf_counter() - start <= 20.0


@pytest.mark.parametrize("name", data.OOD_SOURCES)
def test_ood_sources(name):
    x = data.load_ood(name, n=6, seed=2)
    assert x.shape == (6, 3, 48, 48) and x.dtype == torch.float32
    assert 0.0 <= x.min() and x.max() <= 1.0
    assert torch.equal(x, data.load_ood(name, n=6, seed=2))


@pytest.mark.parametrize("name", [n for n in data.NEAR_OOD_SIGNS if n != "go"])
def test_near_ood_signs_are_new_signs_in_training_scenes(name):
    """A near-OOD set is its own sign in scenes drawn like the training scenes: deterministic
    for a seed, another seed other scenes, and no image equals a rendered training class."""
    x = data.load_ood(name, n=8, seed=3)
    assert torch.equal(x, data.load_ood(name, n=8, seed=3))
    assert not torch.equal(x, data.load_ood(name, n=8, seed=4))
    others = [data.load_ood(o, n=8, seed=3) for o in data.NEAR_OOD_SIGNS if o != name]
    assert all((x - o).abs().amax() > 0.1 for o in others)
    # the same renderer: re-rendering these scenes with a training class changes only the sign
    from tutorial_utils import signs as S

    templates = S.render_templates((data.NEAR_OOD_SIGNS[name], "speed limit"))
    offset = 11 + 2 * list(data.NEAR_OOD_SIGNS).index(name)
    labels = torch.zeros(8, dtype=torch.long)
    same = S.render_signs(labels, templates, 3 + offset)
    known = S.render_signs(labels + 1, templates, 3 + offset)
    torch.testing.assert_close(same, x)
    alpha = torch.maximum(S.render_signs(labels, templates, 3 + offset, alpha_only=True),
                          S.render_signs(labels + 1, templates, 3 + offset, alpha_only=True))
    background = alpha < 0.001  # neither sign covers the pixel: the scene is the same
    diff = (same - known).abs().amax(dim=1)
    assert diff[background].max() < 0.005 and diff[~background].max() > 0.3


def test_ood_bad_inputs():
    with pytest.raises(ValueError, match="valid names: go, ring 80"):
        data.load_ood("imagenet", 4)
    with pytest.raises(ValueError, match="n must be >= 1"):
        data.load_ood("go", 0)


def test_subset_keeps_only_requested_classes(digits):
    sub = digits.subset([0, 1, 2, 3, 4, 5])
    assert set(sub.y_train.unique().tolist()) == set(range(6))
    assert len(sub.y_test) == 600


def test_import_is_fast_and_side_effect_free(tmp_path):
    code = (
        "import sys, time; t = time.perf_counter(); import tutorial_utils; "
        "print(time.perf_counter() - t); "
        "print(any(m in sys.modules for m in ('tutorial_utils.data', 'tutorial_utils.models')))"
    )
    env = {"TUTORIAL_UTILS_CACHE": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env=env, cwd=tmp_path)
    seconds, heavy = out.stdout.split()
    assert float(seconds) < 3.0
    assert heavy == "False"
    assert list(tmp_path.iterdir()) == []


def test_stratified_indices_takes_first_n_of_each_class():
    from tutorial_utils.data import stratified_indices

    y = torch.tensor([0, 1, 0, 2, 1, 0, 2, 2])
    idx = stratified_indices(y, 2)
    assert y[idx].tolist() == [0, 0, 1, 1, 2, 2]
    assert idx.tolist() == [0, 2, 1, 4, 3, 6]
    with pytest.raises(ValueError, match="per_class"):
        stratified_indices(y, 0)


def test_sign_classes_available():
    assert len(SIGN_CLASSES) == 14
