"""Manifolds: covariance spectra, effective rank and the joint Isomap."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from tutorial_utils import manifolds, plotting


def test_covariance_spectrum_and_effective_rank():
    gen = torch.Generator().manual_seed(0)
    iso = torch.randn(2000, 8, generator=gen)
    s = manifolds.covariance_spectrum(iso)
    assert s.shape == (8,) and np.all(np.diff(s) <= 1e-12) and s.sum() == pytest.approx(1)
    assert manifolds.effective_rank(s) > 7.5
    collapsed = torch.randn(2000, 1, generator=gen) @ torch.randn(1, 8, generator=gen)
    assert manifolds.effective_rank(manifolds.covariance_spectrum(collapsed)) < 1.1
    with pytest.raises(ValueError):
        manifolds.covariance_spectrum(torch.randn(1, 8))
    with pytest.raises(ValueError):
        manifolds.effective_rank(np.array([-1.0, 2.0]))


def test_isomap_embedding_splits_back_by_set():
    gen = torch.Generator().manual_seed(0)
    feats = {"a": torch.randn(30, 5, generator=gen), "b": torch.randn(20, 5, generator=gen) + 6}
    emb = manifolds.isomap_embedding(feats, n_neighbors=8)
    assert emb["a"].shape == (30, 2) and emb["b"].shape == (20, 2)
    gap = np.linalg.norm(emb["a"].mean(0) - emb["b"].mean(0))
    assert gap > np.linalg.norm(emb["a"] - emb["a"].mean(0), axis=1).mean()
    with pytest.raises(ValueError):
        manifolds.isomap_embedding({"a": torch.randn(5, 3), "b": torch.randn(5, 4)})
    plt.close(plotting.manifolds.plot_embedding(emb))
