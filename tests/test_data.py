"""Tests for tutorial_utils.data: determinism, shapes, ranges, challenges and bad inputs."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
import torch

from tutorial_utils import data


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


def test_no_left_and_no_right_templates_are_mirror_images_in_the_arrow_only():
    t = data.render_templates(("no left", "no right"))
    assert not torch.allclose(t[0], t[1])
    # the two differ only inside the ring: everything outside radius 0.75 is identical
    size = t.shape[-1]
    yy, xx = torch.meshgrid(torch.linspace(-1.05, 1.05, size), torch.linspace(-1.05, 1.05, size),
                            indexing="ij")
    outer = (xx**2 + yy**2).sqrt() > 0.78
    assert torch.allclose(t[0][:, outer], t[1][:, outer], atol=2e-2)


def test_generating_all_signs_takes_at_most_20_seconds():
    start = time.perf_counter()
    data.load_signs(seed=11, cache=False)
    assert time.perf_counter() - start <= 20.0


@pytest.mark.parametrize("kind", data.CHALLENGES)
def test_every_challenge_runs_is_deterministic_and_grows_with_level(kind, signs):
    x = signs.x_test[::140]
    distances = []
    for level in range(6):
        out = data.apply_challenge(x, kind, level, seed=1)
        assert out.shape == x.shape and out.dtype == x.dtype
        assert 0.0 <= out.min() and out.max() <= 1.0
        assert torch.equal(out, data.apply_challenge(x, kind, level, seed=1))
        distances.append((out - x).pow(2).mean().sqrt().item())
    assert distances[0] == 0.0
    assert all(b >= a - 1e-6 for a, b in zip(distances, distances[1:], strict=False)), distances
    assert distances[5] > distances[1] > 0.0


def test_challenge_is_pure_and_level_zero_is_a_copy(signs):
    x = signs.x_test[:4].clone()
    before = x.clone()
    clean = data.apply_challenge(x, "noise", 0)
    data.apply_challenge(x, "snow", 5)
    assert torch.equal(x, before) and torch.equal(clean, x) and clean is not x


def test_challenge_works_on_grayscale_digits(digits):
    out = data.apply_challenge(digits.x_test[:8], "gaussian blur", 3)
    assert out.shape == (8, 1, 28, 28)


def test_unknown_challenge_lists_the_valid_names(signs):
    with pytest.raises(ValueError, match="valid kinds: decolorization, lens blur"):
        data.apply_challenge(signs.x_test[:1], "fog", 1)


@pytest.mark.parametrize("level", [-1, 6])
def test_level_out_of_range(level, signs):
    with pytest.raises(ValueError, match="level must be in 0..5"):
        data.apply_challenge(signs.x_test[:1], "haze", level)


def test_level_must_be_an_int(signs):
    with pytest.raises(TypeError, match="level"):
        data.apply_challenge(signs.x_test[:1], "haze", 2.5)


def test_wrong_rank_and_channels_and_dtype():
    with pytest.raises(ValueError, match=r"x must have shape \(B, C, H, W\).*unsqueeze"):
        data.apply_challenge(torch.rand(3, 48, 48), "haze", 1)
    with pytest.raises(ValueError, match="1 or 3 channels"):
        data.apply_challenge(torch.rand(1, 2, 48, 48), "haze", 1)
    with pytest.raises(TypeError, match="floating-point"):
        data.apply_challenge(torch.zeros(1, 3, 48, 48, dtype=torch.uint8), "haze", 1)
    with pytest.raises(ValueError, match="NaN"):
        data.apply_challenge(torch.full((1, 3, 8, 8), float("nan")), "haze", 1)


@pytest.mark.parametrize("name", data.OOD_SOURCES)
def test_ood_sources(name):
    x = data.load_ood(name, n=6, seed=2)
    assert x.shape == (6, 3, 48, 48) and x.dtype == torch.float32
    assert 0.0 <= x.min() and x.max() <= 1.0
    assert torch.equal(x, data.load_ood(name, n=6, seed=2))


def test_ood_bad_inputs():
    with pytest.raises(ValueError, match="valid names: go, textures"):
        data.load_ood("imagenet", 4)
    with pytest.raises(ValueError, match="n must be a positive int"):
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


def test_figure_helpers(signs):
    import matplotlib.pyplot as plt

    examples = data.class_examples(signs)
    assert examples.shape == (14, 3, 48, 48)
    assert torch.equal(examples[5], signs.x_test[signs.y_test == 5][0])
    fig = data.plot_sign_classes(signs)
    assert [ax.get_title() for ax in fig.axes] == list(signs.classes)
    plt.close(fig)
    stack = data.challenge_stack(signs.x_test[0], kinds=("noise", "haze"), levels=(0, 5))
    assert stack.shape == (2, 2, 3, 48, 48) and torch.equal(stack[0, 0], signs.x_test[0])
    fig = data.plot_challenge_grid(signs.x_test[0])
    assert len(fig.axes) == 12 * 6
    plt.close(fig)
    with pytest.raises(ValueError, match="single image"):
        data.challenge_stack(signs.x_test[:2])
