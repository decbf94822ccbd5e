"""CURE-TSR challenges: determinism, monotone in level, purity, bad input."""

from __future__ import annotations

import pytest
import torch

from tutorial_utils import challenges


@pytest.mark.parametrize("kind", challenges.CHALLENGES)
def test_every_challenge_runs_is_deterministic_and_grows_with_level(kind, signs):
    x = signs.x_test[::140]
    distances = []
    for level in range(6):
        out = challenges.apply_challenge(x, kind, level, seed=1)
        assert out.shape == x.shape and out.dtype == x.dtype
        assert 0.0 <= out.min() and out.max() <= 1.0
        assert torch.equal(out, challenges.apply_challenge(x, kind, level, seed=1))
        distances.append((out - x).pow(2).mean().sqrt().item())
    assert distances[0] == 0.0
    assert all(b >= a - 1e-6 for a, b in zip(distances, distances[1:], strict=False)), distances
    assert distances[5] > distances[1] > 0.0


def test_challenge_is_pure_and_level_zero_is_a_copy(signs):
    x = signs.x_test[:4].clone()
    before = x.clone()
    clean = challenges.apply_challenge(x, "noise", 0)
    challenges.apply_challenge(x, "snow", 5)
    assert torch.equal(x, before) and torch.equal(clean, x) and clean is not x


def test_challenge_works_on_grayscale_digits(digits):
    out = challenges.apply_challenge(digits.x_test[:8], "gaussian blur", 3)
    assert out.shape == (8, 1, 28, 28)


def test_unknown_challenge_lists_the_valid_names(signs):
    with pytest.raises(ValueError, match="valid kinds: decolorization, lens blur"):
        challenges.apply_challenge(signs.x_test[:1], "fog", 1)


@pytest.mark.parametrize("level", [-1, 6])
def test_level_out_of_range(level, signs):
    with pytest.raises(ValueError, match="level must be in 0..5"):
        challenges.apply_challenge(signs.x_test[:1], "haze", level)


def test_level_must_be_an_int(signs):
    with pytest.raises(TypeError, match="level"):
        challenges.apply_challenge(signs.x_test[:1], "haze", 2.5)


def test_wrong_rank_and_channels_and_dtype():
    with pytest.raises(ValueError, match=r"x must have shape \(B, C, H, W\).*unsqueeze"):
        challenges.apply_challenge(torch.rand(3, 48, 48), "haze", 1)
    with pytest.raises(ValueError, match="1 or 3 channels"):
        challenges.apply_challenge(torch.rand(1, 2, 48, 48), "haze", 1)
    with pytest.raises(TypeError, match="8-bit"):
        challenges.apply_challenge(torch.zeros(1, 3, 48, 48, dtype=torch.uint8), "haze", 1)
    with pytest.raises(ValueError, match="divide by 255"):
        challenges.apply_challenge(torch.rand(1, 3, 48, 48) * 255, "haze", 1)
    with pytest.raises(ValueError, match="NaN"):
        challenges.apply_challenge(torch.full((1, 3, 8, 8), float("nan")), "haze", 1)
