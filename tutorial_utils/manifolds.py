"""Manifolds of learned representations: Isomap embeddings and dimensional collapse.

The penultimate features ``h`` (N, D) of a zoo model come from
:func:`tutorial_utils.models.features_and_logits`; this module looks at their geometry.

======================  ===============================================================
function                what it returns
======================  ===============================================================
isomap_embedding        one joint 2-D Isomap of several feature sets, split back by set
covariance_spectrum     singular values of the feature covariance (normalised to sum 1)
effective_rank          ``exp(entropy)`` of a spectrum: how many directions carry variance
resampled_effective_rank  the effective rank of many weighted copies of one feature set at
                        once: the bootstrap statistic behind an interval on an effective rank
======================  ===============================================================

References
----------
- J. B. Tenenbaum, V. de Silva, J. C. Langford, "A global geometric framework for nonlinear
  dimensionality reduction", Science 290, 2000 (Isomap).
- O. Roy, M. Vetterli, "The effective rank: a measure of effective dimensionality",
  EUSIPCO 2007.
- L. Jing, P. Vincent, Y. LeCun, Y. Tian, "Understanding dimensional collapse in contrastive
  self-supervised learning", ICLR 2022.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from tutorial_utils._checks import as_array, check_int

__all__ = [
    "isomap_embedding",
    "covariance_spectrum",
    "effective_rank",
    "resampled_effective_rank",
]


def isomap_embedding(features: Mapping[str, torch.Tensor], n_neighbors: int = 10,
                     n_components: int = 2) -> dict[str, np.ndarray]:
    """One Isomap (Tenenbaum et al. 2000) fitted on all feature sets together.

    ``features``: ``{name: (N_i, D)}``; returns ``{name: (N_i, n_components)}``, the same
    embedding split back by set, so distances between sets are comparable.
    """
    from sklearn.manifold import Isomap

    if not isinstance(features, Mapping) or not features:
        raise ValueError("features must be a non-empty dict {name: (N, D) features}")
    arrays = {k: _matrix(v, f"features[{k!r}]") for k, v in features.items()}
    if len({a.shape[1] for a in arrays.values()}) != 1:
        raise ValueError("features: every set must be (N, D) with the same D")
    stacked = np.concatenate(list(arrays.values()))
    n_neighbors = check_int(n_neighbors, "n_neighbors", low=1, high=len(stacked) - 1)
    n_components = check_int(n_components, "n_components", low=1)
    emb = Isomap(n_neighbors=n_neighbors, n_components=n_components).fit_transform(stacked)
    out, start = {}, 0
    for k, a in arrays.items():
        out[k] = emb[start:start + len(a)]
        start += len(a)
    return out


def covariance_spectrum(features: torch.Tensor, normalize: bool = True) -> np.ndarray:
    """Singular values of the feature covariance matrix, in decreasing order.

    ``features`` (N, D); with ``normalize`` the values are divided by their sum, so spectra
    of differently scaled feature sets can be compared by shape only.
    """
    f = torch.from_numpy(_matrix(features, "features"))
    if f.shape[0] < 2:
        raise ValueError(f"features must be (N, D) with N >= 2, got {tuple(f.shape)}")
    c = f - f.mean(0, keepdim=True)
    s = torch.linalg.svdvals(c.T @ c / (len(f) - 1)).numpy()
    if normalize:
        s = s / max(s.sum(), 1e-300)
    return s


def _matrix(value: object, name: str) -> np.ndarray:
    """A finite, non-empty (N, D) float64 array."""
    a = as_array(value, name)
    if a.ndim != 2 or a.size == 0:
        raise ValueError(f"{name} must be (N, D) features, got shape {a.shape}")
    if not (np.issubdtype(a.dtype, np.number) or a.dtype == bool):
        raise TypeError(f"{name} must be numeric, got dtype {a.dtype}")
    a = a.astype(np.float64)
    if not np.isfinite(a).all():
        raise ValueError(f"{name} contain NaN or infinite values")
    return a


def effective_rank(singular_values: np.ndarray) -> float:
    """``exp(−Σ q_i log q_i)`` with ``q = s / Σ s`` (Roy & Vetterli 2007): between 1 and D.

    An all-zero spectrum (features without any variance) has effective rank 0: no direction
    carries variance."""
    s = as_array(singular_values, "singular_values")
    if s.ndim != 1 or s.size == 0 or not np.issubdtype(s.dtype, np.number):
        raise ValueError("singular_values must be a non-empty 1-D array of non-negative values")
    s = s.astype(np.float64)
    if not np.isfinite(s).all() or (s < 0).any():
        raise ValueError("singular_values must be finite and non-negative")
    if s.sum() == 0:
        return 0.0
    q = s / s.sum()
    q = q[q > 0]
    return float(np.exp(-(q * np.log(q)).sum()))


def resampled_effective_rank(features: object, weights: object) -> np.ndarray:
    """Effective ranks of weighted copies of one feature set: (R,), one per row of ``weights``.

    The statistic for an interval on an effective rank (``claims.greater(..., statistic=
    manifolds.resampled_effective_rank)``): the claims' bootstrap passes the features of the
    images (N, D) and a (R, N) matrix of how often each image is drawn in each resample. Row
    ``r`` gives the effective rank of the covariance of the features with image ``n`` counted
    ``weights[r, n]`` times; a row of ones gives
    ``effective_rank(covariance_spectrum(features))``. The covariance is positive
    semi-definite, so its singular values are its eigenvalues: all R spectra come from one
    batched ``eigvalsh``, no loop over resamples.

    Args:
        features: (N, D) features, finite.
        weights: (R, N) non-negative weights (draw counts); each row sums to more than 0.
    """
    f = _matrix(features, "features")
    w = as_array(weights, "weights")
    if w.ndim == 1:
        w = w[None]
    if w.ndim != 2 or w.shape[1] != len(f):
        raise ValueError(f"weights must be (R, N) with N = {len(f)} rows of features, got "
                         f"shape {w.shape}")
    w = w.astype(np.float64)
    if not np.isfinite(w).all() or (w < 0).any() or (w.sum(1) <= 0).any():
        raise ValueError("weights must be finite and non-negative, each row with a positive sum")
    w = w / w.sum(1, keepdims=True)
    mean = w @ f                                                    # (R, D)
    second = np.matmul(f.T[None] * w[:, None, :], f)                # (R, D, D)
    cov = second - mean[:, :, None] * mean[:, None, :]
    s = np.clip(np.linalg.eigvalsh(cov), 0, None)                   # (R, D)
    total = s.sum(1, keepdims=True)
    q = np.divide(s, total, out=np.zeros_like(s), where=total > 0)
    entropy = -np.sum(q * np.log(np.where(q > 0, q, 1.0)), axis=1)
    return np.where(total[:, 0] > 0, np.exp(entropy), 0.0)
