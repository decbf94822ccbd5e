"""Result sentences checked by the run: the evidence decides, not the author.

Every sentence of a chapter that states a result sits next to a call that takes the **raw
per-unit evidence** and computes the verdict itself::

    claims.greater("GradTrust ranks wrong predictions better than MSP (AUAC)",
                   gradtrust, msp, labels=correct, statistic="auac", units=base_image)
    ✓ GradTrust ranks wrong predictions better than MSP (AUAC) (Δ AUAC = 0.027 [0.004, 0.051],
      70 units (840 rows), 2,000 resamples)

=================  ======================================================================
function           the sentence it checks, and when it holds
=================  ======================================================================
:func:`greater`    "A beats B": the 95% interval of Δ = stat(A) − stat(B) lies above 0
:func:`less`       "A is lower than B": the interval lies below 0
:func:`tie`        "no clear difference": the interval contains 0
:func:`above`      "above chance (0.5)": the interval of stat(A) lies above a round threshold
:func:`below`      "below 0.1": the interval lies below a round threshold
:func:`over_seeds` "for every ensemble member": the direction holds at every seed (mean ± SD)
:func:`mixed`      "some, not all": named parts, each side holds for ≥ 20% of them
:func:`claim`      an exact fact of this run (a count, an equality to a reference)
=================  ======================================================================

**Evidence and units.** ``a`` and ``b`` hold one value per row (a sample, an image, a pair),
shape ``(N,)`` (``(N, S+1)`` curves for the curve statistics). Rows are paired: row ``i`` of
``a`` and of ``b`` are the same image under two methods. A *unit* is what was drawn
independently: a base image, with its challenged, augmented and attacked copies, is one unit,
not many. ``units`` (N,) gives each row the integer id of its unit; rows that share an id are
resampled together, so 10 copies of 20 images give the interval of 20 images, not of 200.
The interval is the 95% percentile interval of a paired bootstrap over units: the same drawn
units enter stat(A) and stat(B). Unpaired sets (two statistics measured on different images)
take ``paired=False``: each set is resampled on its own (``units``/``labels`` as a pair).

**Statistics.** ``statistic`` is ``"mean"`` (default), ``"accuracy"`` (of 0/1 correct flags),
``"auroc"`` (``labels`` (N,) with 1 = positive = in-distribution; scores higher = more
in-distribution), ``"auac"`` (``a`` = trust (N,), ``labels`` = correct flags; as
:func:`tutorial_utils.metrics.auac`), ``"curve_auc"`` / ``"deletion_auc"`` /
``"insertion_auc"`` (``a`` = per-unit curves (N, S+1) on evenly spaced fractions; the mean of
the rows' trapezoid areas, as :func:`tutorial_utils.evaluation.curve_auc`), or a callable
``f(values, weights[, labels]) -> (R,)``: ``weights`` (R, N) says how often each row was drawn
in each of R resamples (the data themselves are one row of ones), so ``f`` is a *weighted*
statistic evaluated for all resamples at once. For AUROC, units whose rows all carry one label
are resampled within their label (the numbers of ID and OOD units stay as designed); if a
unit spans both labels (a clean image and its challenged copy), units are resampled as wholes.

**Seeds.** The resamples derive from the course seed (``TUTORIAL_SEED``, see
:func:`tutorial_utils.utils.derive_seed`) and the statement, so a run is reproducible, another
course seed draws other resamples, and claims do not share draws. All 2,000 resamples are
computed at once from a (R, units) matrix of draw counts; AUROC sorts once and reads ranks.

**Failures.** A claim the evidence does not support raises :class:`ClaimError` with the
interval and a suggested rewording: "no clear difference" when the interval straddles the
reference, "reversed" when it lies on the other side. Executing the notebook (nbval in CI)
then fails instead of printing a sentence its own numbers contradict.

**Sweeps.** Two environment variables serve ``scripts/check_claims.py``:
``TUTORIAL_CLAIMS_REPORT=<path>`` appends one JSON line per claim (statement, kind, verdict,
numbers, interval, course seed) to ``<path>``, whatever the verdict; ``TUTORIAL_CLAIMS_RAISE=0``
prints a failed claim as ``✗ statement (…) → suggested: …`` instead of raising, so a sweep sees
every claim of a chapter. By default (CI) a failed claim raises. Bad input (a length mismatch,
NaNs, an unknown statistic) always raises ``ValueError``/``TypeError``: it is a broken call,
not a verdict.

**Identities are not claims.** A statement that holds by construction (aleatoric + epistemic =
predictive, a negated score's AUROC = 1 − AUROC, a map compared with itself) cannot fail, so it
checks nothing about the data: it belongs in a unit test under ``tests/``, or is shown as a
demonstration without a ``✓``. :func:`tie` and :func:`greater` refuse ``a`` identical to ``b``.
"""

from __future__ import annotations

import functools
import json
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

from tutorial_utils.utils import course_seed, derive_seed

__all__ = ["ClaimError", "Estimate", "estimate", "greater", "less", "tie", "above", "below",
           "over_seeds", "mixed", "claim", "format_number", "STATISTICS", "RESAMPLES",
           "MIXED_MIN_SHARE", "REPORT_ENV", "RAISE_ENV"]

RESAMPLES = 2_000  # bootstrap resamples per claim
LEVEL = 0.95  # the interval's coverage
MIXED_MIN_SHARE = 0.2  # "mixed": each side holds for at least this share of the parts
REPORT_ENV = "TUTORIAL_CLAIMS_REPORT"  # path: append one JSON line per claim
RAISE_ENV = "TUTORIAL_CLAIMS_RAISE"  # "0": print ✗ and go on instead of raising
_MAX_CELLS = 4_000_000  # resamples × rows per batch (memory of one weights matrix)


class ClaimError(AssertionError):
    """A result sentence of a chapter is contradicted by the numbers of this run.

    ``statement``, ``kind`` (``"greater"``, ``"tie"``, …), ``verdict`` (what the evidence
    says instead, e.g. ``"no clear difference"``), ``suggestion`` (a rewording) and
    ``estimate`` (the :class:`Estimate`, or None) say why.
    """

    def __init__(self, message: str, *, statement: str = "", kind: str = "", verdict: str = "",
                 suggestion: str = "", estimate: Estimate | None = None):
        super().__init__(message)
        self.statement, self.kind, self.verdict = statement, kind, verdict
        self.suggestion, self.estimate = suggestion, estimate


# --------------------------------------------------------------------------- numbers


def format_number(value: object) -> str:
    """A short, readable rendering of a number (tensors and NumPy scalars included)."""
    if hasattr(value, "numel") and hasattr(value, "item") and value.numel() == 1:
        value = value.item()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e5):
            return f"{value:.3g}"
        return f"{value:.3f}".rstrip("0").rstrip(".") if abs(value) >= 100 else f"{value:.3f}"
    return str(value)


def _decimals(*values: float, width: float) -> int:
    """Decimals that show an interval of ``width``: two significant digits of the width, at
    least three below 10, at most six."""
    d = 3 if width <= 0 else int(np.clip(1 - math.floor(math.log10(width)), 0, 6))
    return max(d, 3) if max(abs(v) for v in values) < 10 else d


def _fixed(value: float, d: int) -> str:
    return f"{value + 0.0:.{d}f}".replace("-0." + "0" * d, "0." + "0" * d) if d else \
        f"{value + 0.0:,.0f}"


def _round_enough(threshold: float) -> bool:
    """At most two significant digits (0.5, 0.85, 10, 0.05): a number a sentence states."""
    return threshold == 0 or math.isclose(float(f"{threshold:.2g}"), threshold, rel_tol=1e-9)


# --------------------------------------------------------------------------- evidence


def _as_numbers(values: object, name: str) -> np.ndarray:
    """``values`` as a float64 array (tensors detached; bools as 0/1), finite and non-empty."""
    if hasattr(values, "detach") and hasattr(values, "cpu"):
        values = values.detach().cpu().numpy()
    if isinstance(values, (str, bytes)) or values is None:
        raise TypeError(f"{name} must be numbers (an array, tensor or sequence), got "
                        f"{type(values).__name__}")
    try:
        arr = np.asarray(values)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be an array of numbers, got {type(values).__name__}"
                        ) from None
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number)
                                   or arr.dtype == np.bool_):
        raise TypeError(f"{name} must hold numbers, got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.complexfloating):
        raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    if arr.size == 0:
        raise ValueError(f"{name} is empty: a claim needs evidence")
    if not np.isfinite(arr).all():
        bad = int((~np.isfinite(arr)).sum())
        raise ValueError(f"{name} contains {bad} NaN or infinite value(s); a claim cannot be "
                         f"decided on them — drop or fix those rows first")
    return arr


def _binary(values: object, name: str) -> np.ndarray:
    arr = _as_numbers(values, name)
    if arr.ndim != 1:
        raise ValueError(f"{name} must have shape (N,), got {arr.shape}")
    if not np.isin(arr, (0.0, 1.0)).all():
        raise ValueError(f"{name} must hold 0/1 (or bool) flags, got values such as "
                         f"{arr[~np.isin(arr, (0.0, 1.0))][0]:g}")
    return arr


def _is_number(value: object) -> bool:
    """A single number (Python, NumPy, or a 0-d tensor/array), not a sequence of values."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError("b must be values or a number, got a bool")
    if isinstance(value, (int, float, np.number)):
        return True
    return hasattr(value, "ndim") and value.ndim == 0


def _unit_index(units: object, n: int, name: str) -> np.ndarray:
    """Integer ids (N,) -> unit index in ``0..U-1`` per row (None: every row its own unit)."""
    if units is None:
        return np.arange(n)
    if hasattr(units, "detach") and hasattr(units, "cpu"):
        units = units.detach().cpu().numpy()
    arr = np.asarray(units)
    if not np.issubdtype(arr.dtype, np.integer) or arr.dtype == np.bool_:
        raise TypeError(f"{name} must hold integer unit ids (e.g. the index of each row's base "
                        f"image), got dtype {arr.dtype}")
    if arr.ndim != 1 or len(arr) != n:
        raise ValueError(f"{name} must give one unit id per row, shape ({n},), got "
                         f"{arr.shape}")
    return np.unique(arr, return_inverse=True)[1].reshape(-1)


# --------------------------------------------------------------------------- statistics
# A statistic is prepared once per side (sorting, ranks) and then maps a (R, U) matrix of unit
# draw counts to R values. ``cols`` (N,) is each row's unit index.


class _Mean:
    name, ndim, needs_labels, binary_values = "mean", 1, False, False

    def prepare(self, x, labels, cols):
        def stat(counts):
            w = counts[:, cols]
            return w @ x / w.sum(1)
        return stat


class _Accuracy(_Mean):
    name, binary_values = "accuracy", True


class _CurveAUC(_Mean):
    ndim = 2

    def __init__(self, name):
        self.name = name

    def prepare(self, x, labels, cols):
        if x.shape[1] < 2:
            raise ValueError(f"per-unit curves need at least 2 points, got shape {x.shape}")
        f = np.linspace(0.0, 1.0, x.shape[1])
        return super().prepare(np.trapezoid(x, f, axis=1), labels, cols)


class _AUROC:
    name, ndim, needs_labels, binary_values = "AUROC", 1, True, False

    def prepare(self, s, y, cols):
        if y.min() == y.max():
            raise ValueError("labels must contain both classes (1 = positive = "
                             "in-distribution, 0 = negative) for statistic 'auroc'")
        pos, neg = s[y == 1], s[y == 0]
        neg_order = np.argsort(neg, kind="stable")
        neg_sorted = neg[neg_order]
        below = np.searchsorted(neg_sorted, pos, side="left")  # negatives strictly below
        upto = np.searchsorted(neg_sorted, pos, side="right")  # ... and tied
        pos_cols, neg_cols = cols[y == 1], cols[y == 0][neg_order]

        def stat(counts):
            wn = counts[:, neg_cols]
            cum = np.zeros((len(counts), len(neg_cols) + 1))
            np.cumsum(wn, axis=1, out=cum[:, 1:])
            wp = counts[:, pos_cols]
            num = 0.5 * (wp * (cum[:, below] + cum[:, upto])).sum(1)
            den = wp.sum(1) * cum[:, -1]
            with np.errstate(invalid="ignore", divide="ignore"):
                return num / den
        return stat


class _AUAC:
    """Weighted AUAC: the accuracy of the most-trusted rows at each percentile, as
    :func:`tutorial_utils.metrics.auac` computes it on the resampled (repeated) rows."""

    name, ndim, needs_labels, binary_values = "AUAC", 1, True, False

    def __init__(self, percentiles=None):
        self.q = (np.linspace(0, 99, 100) if percentiles is None
                  else np.asarray(percentiles, float))

    def prepare(self, t, correct, cols):
        # sort once: groups of equal trust, ascending; every resample reads this one order
        order = np.argsort(t, kind="stable")
        t_sorted = t[order]
        starts = np.flatnonzero(np.r_[True, t_sorted[1:] != t_sorted[:-1]])
        values, n_groups = t_sorted[starts], len(starts)
        cols, correct = cols[order], correct[order].astype(bool)
        ties = n_groups < len(t)
        c_cols = cols[correct]  # the correct rows' units, in trust order
        c_before = np.r_[np.r_[0, np.cumsum(correct)][starts], len(c_cols)]  # (G + 1,)
        q = self.q / 100.0
        row_q = np.diff(q)

        def stat(counts):
            r = len(counts)
            # integer draw counts: int32 while every (offset) cumulative count fits
            m_bound = (int(counts.max()) * len(cols) + 1) * (r + 1)
            itype = np.int32 if m_bound < 2**31 else np.int64
            c = counts.astype(itype)
            w = np.take(c, cols, axis=1)  # (R, N) draws of each sorted row
            if ties:
                w = np.add.reduceat(w, starts, axis=1)  # (R, G) draws of each trust group
            ends = _cumsum_rows(w)  # (R, G): rows drawn up to the end of group g
            m = ends[:, -1].astype(np.int64)  # rows of each resample
            # np.percentile, linear: position q (M - 1), value lerp(v[lo], v[lo + 1], γ)
            pos = q[None, :] * (m[:, None] - 1)
            lo = np.floor(pos)
            gamma = pos - lo
            lo = lo.astype(itype)
            # lift each resample above the one before, so one sorted search serves them all
            step = (np.arange(r, dtype=itype) * itype(int(m.max()) + 1))[:, None]
            ends += step
            lo += step
            flat = ends.ravel()
            at = np.searchsorted(flat, lo.ravel(), side="right").reshape(r, -1)  # group of lo
            end_lo = flat[at]  # (lifted) rows drawn up to the end of lo's group
            start_lo = end_lo - w.ravel()[at]  # ... and before it
            g_lo = at - (np.arange(r) * n_groups)[:, None]
            # position lo + 1 lies in a later drawn group (when lo is not the last position)
            nxt = (end_lo <= lo + 1) & (lo + 1 - step < m[:, None])
            a = values[g_lo]
            b = a.copy()
            at_hi = np.searchsorted(flat, (lo + 1)[nxt], side="right")  # keys still sorted
            b[nxt] = values[at_hi - (at_hi // n_groups) * n_groups]
            diff = b - a
            thr = np.where(gamma >= 0.5, b - diff * (1 - gamma), a + diff * gamma)
            up = thr > a  # kept: trust >= thr, i.e. from the next group on when thr > v[lo]
            kept = m[:, None] - (np.where(up, end_lo, start_lo) - step)
            if len(c_cols):
                c_ends = _cumsum_rows(np.take(c, c_cols, axis=1))  # (R, correct rows)
                k = c_before[g_lo + up]  # correct rows (of the data) below the kept groups
                below = np.where(k > 0, np.take_along_axis(c_ends, np.maximum(k - 1, 0), 1), 0)
                acc = (c_ends[:, -1:] - below) / kept
            else:
                acc = np.zeros(kept.shape)
            area = (0.5 * (acc[:, 1:] + acc[:, :-1]) * row_q).sum(1)
            return area / (q[-1] - q[0])
        return stat


def _cumsum_rows(x: np.ndarray) -> np.ndarray:
    """Inclusive cumulative sums along axis 1 of an integer (R, N) array, in its own dtype.

    PyTorch's cumsum is vectorised where NumPy's is a scalar loop (about 8x slower here); the
    integer sums are exact either way. Shares memory with a new tensor, not with ``x``.
    """
    import torch

    tensor = torch.from_numpy(np.ascontiguousarray(x))
    return torch.cumsum(tensor, 1, dtype=tensor.dtype).numpy()


class _Callable:
    ndim, binary_values = None, False

    def __init__(self, fn):
        self.fn, self.name = fn, getattr(fn, "__name__", "statistic")
        if self.name == "<lambda>":
            self.name = "statistic"
        self.needs_labels = False

    def prepare(self, x, labels, cols):
        def stat(counts):
            w = counts[:, cols]
            out = self.fn(x, w, labels) if labels is not None else self.fn(x, w)
            out = np.asarray(out, dtype=float).reshape(-1) if np.ndim(out) <= 1 else None
            if out is None or len(out) != len(w):
                raise ValueError(f"statistic {self.name!r} must return one value per resample, "
                                 f"shape ({len(w)},), for weights of shape {w.shape}")
            return out
        return stat


STATISTICS = {"mean": _Mean(), "accuracy": _Accuracy(), "auroc": _AUROC(), "auac": _AUAC(),
              "curve_auc": _CurveAUC("curve AUC"), "deletion_auc": _CurveAUC("deletion AUC"),
              "insertion_auc": _CurveAUC("insertion AUC")}


def _statistic(statistic: object):
    if callable(statistic):
        return _Callable(statistic)
    if not isinstance(statistic, str):
        raise TypeError(f"statistic must be a name ({', '.join(STATISTICS)}) or a callable "
                        f"f(values, weights[, labels]), got {type(statistic).__name__}")
    if statistic.lower() not in STATISTICS:
        raise ValueError(f"statistic {statistic!r} is unknown; use one of "
                         f"{', '.join(STATISTICS)} or a callable f(values, weights[, labels])")
    return STATISTICS[statistic.lower()]


# --------------------------------------------------------------------------- the bootstrap


@dataclass(frozen=True)
class Estimate:
    """A statistic (or a difference of two) with its 95% bootstrap interval.

    ``value``: stat(A) − stat(B) on the data (stat(A) when there is no ``b``); ``low``,
    ``high``: the 2.5% and 97.5% percentiles of the resampled values ``draws`` (R,);
    ``statistic``: its printed name; ``difference``: whether it is A − B; ``units``, ``rows``:
    per set (one entry when paired, two when not); ``resamples``: R.
    """

    value: float
    low: float
    high: float
    statistic: str
    difference: bool
    units: tuple[int, ...]
    rows: tuple[int, ...]
    resamples: int
    paired: bool
    draws: np.ndarray = field(repr=False, compare=False)

    def describe(self) -> str:
        """``Δ = 0.021 [0.008, 0.034], 70 units, 2,000 resamples`` (the printed evidence)."""
        d = _decimals(self.value, self.low, self.high, width=self.high - self.low)
        what = ("Δ" if self.statistic == "mean" else f"Δ {self.statistic}") if self.difference \
            else self.statistic
        if self.paired:
            units = f"{self.units[0]:,} units" + (
                f" ({self.rows[0]:,} rows)" if self.rows[0] != self.units[0] else "")
        else:
            units = " + ".join(f"{u:,}" for u in self.units) + " units (unpaired)"
        return (f"{what} = {_fixed(self.value, d)} [{_fixed(self.low, d)}, "
                f"{_fixed(self.high, d)}], {units}, {self.resamples:,} resamples")


def _counts(rng: np.random.Generator, strata: list[np.ndarray], n_units: int, r: int
            ) -> np.ndarray:
    """(r, n_units) how often each unit is drawn; each stratum keeps its size."""
    counts = np.zeros((r, n_units))
    for ids in strata:
        k = len(ids)
        draws = rng.integers(0, k, size=(r, k)) + (np.arange(r) * k)[:, None]
        counts[:, ids] = np.bincount(draws.ravel(), minlength=r * k).reshape(r, k)
    return counts


def _strata(stat, labels, cols, n_units) -> list[np.ndarray]:
    """Label strata for AUROC when every unit is label-pure; else all units as one stratum."""
    if isinstance(stat, _AUROC):
        pos = np.bincount(cols, weights=labels, minlength=n_units)
        size = np.bincount(cols, minlength=n_units)
        if np.all((pos == 0) | (pos == size)):
            return [np.flatnonzero(pos == size), np.flatnonzero(pos == 0)]
    return [np.arange(n_units)]


class _Side:
    """One set of evidence: values, labels, units, and its prepared statistic."""

    def __init__(self, stat, values, labels, units, name, labels_name, units_name):
        x = _as_numbers(values, name)
        if stat.ndim == 1 and x.ndim != 1:
            hint = "; for per-unit curves use statistic='curve_auc'" if x.ndim == 2 else ""
            raise ValueError(f"{name} must have shape (N,) for statistic {stat.name!r}, got "
                             f"{x.shape}{hint}")
        if stat.ndim == 2 and x.ndim != 2:
            raise ValueError(f"{name} must hold per-unit curves, shape (N, S+1), for statistic "
                             f"{stat.name!r}; got {x.shape}")
        if stat.binary_values:
            x = _binary(x, name)
        n = len(x)
        if stat.needs_labels and labels is None:
            raise ValueError(f"statistic {stat.name!r} needs {labels_name}: one 0/1 flag per "
                             f"row of {name}")
        y = None if labels is None else _binary(labels, labels_name)
        if y is not None and len(y) != n:
            raise ValueError(f"{labels_name} must have one flag per row of {name}: got "
                             f"{len(y)} for {n} rows")
        self.x, self.y, self.n = x, y, n
        self.cols = _unit_index(units, n, units_name)
        self.n_units = int(self.cols.max()) + 1
        self.fn = stat.prepare(x, y, self.cols)
        self.strata = _strata(stat, y, self.cols, self.n_units)

    def values(self, counts: np.ndarray) -> np.ndarray:
        return np.asarray(self.fn(counts), dtype=float)


def _resampled(sides: list[_Side], rng_per_group: list, shared: bool, resamples: int
               ) -> tuple[np.ndarray, ...]:
    """(R,) resampled stat per side, in batches of at most ``_MAX_CELLS`` weights."""
    n_rows = max(s.n for s in sides)
    batch = max(1, min(resamples, _MAX_CELLS // max(1, n_rows)))
    out = [np.empty(resamples) for _ in sides]
    for start in range(0, resamples, batch):  # batches of resamples, not single resamples
        r = min(batch, resamples - start)
        if shared:
            counts = _counts(rng_per_group[0], sides[0].strata, sides[0].n_units, r)
            for o, s in zip(out, sides, strict=True):
                o[start:start + r] = s.values(counts)
        else:
            for o, s, rng in zip(out, sides, rng_per_group, strict=True):
                o[start:start + r] = s.values(_counts(rng, s.strata, s.n_units, r))
    return tuple(out)


def estimate(a: object, b: object = None, *, units: object = None, statistic: object = "mean",
             labels: object = None, paired: bool = True, resamples: int = RESAMPLES,
             key: str = "estimate") -> Estimate:
    """stat(A) − stat(B) (or stat(A), or stat(A) − a number ``b``) with its 95% interval.

    Args:
        a: per-row values of A, shape (N,) (or (N, S+1) curves for the curve statistics).
        b: per-row values of B on the same rows (paired), an unpaired set (``paired=False``),
            a number (a stated reference, subtracted), or None (stat(A) alone).
        units: (N,) integer unit id per row (rows sharing an id are resampled together);
            with ``paired=False`` a pair ``(units_a, units_b)``. None: each row is a unit.
        statistic: a name in :data:`STATISTICS` or a callable (see the module docstring).
        labels: (N,) 0/1 flags the statistic needs (AUROC: 1 = positive; AUAC: correct);
            with ``paired=False`` a pair ``(labels_a, labels_b)``.
        paired: resample the same units for A and B (default), or each set on its own.
        resamples: number of bootstrap resamples R (at least 200).
        key: names the random stream (the claims use their statement), with the course seed.

    Returns an :class:`Estimate`. Raises ``ValueError``/``TypeError`` naming the argument for
    bad input.
    """
    stat = _statistic(statistic)
    if (not isinstance(resamples, (int, np.integer)) or isinstance(resamples, bool)
            or resamples < 200):
        raise ValueError(f"resamples must be an int >= 200 (a 95% interval needs the tails), "
                         f"got {resamples!r}")
    resamples = int(resamples)
    if not isinstance(paired, bool):
        raise TypeError(f"paired must be True or False, got {type(paired).__name__}")
    reference = 0.0
    if _is_number(b):  # a stated reference: stat(A) − b
        reference, b = float(_as_numbers(b, "b")), None
    if b is None and not paired:
        raise ValueError("paired=False compares two sets: give b as well")
    if paired:
        if isinstance(units, tuple) or isinstance(labels, tuple):
            raise TypeError("units and labels are pairs (a, b) only with paired=False; for "
                            "paired evidence give one array shared by a and b")
        side_a = _Side(stat, a, labels, units, "a", "labels", "units")
        sides = [side_a]
        if b is not None:
            side_b = _Side(stat, b, labels, units, "b", "labels", "units")
            if side_b.x.shape != side_a.x.shape:
                raise ValueError(f"a and b must be paired values of equal shape, got "
                                 f"{side_a.x.shape} and {side_b.x.shape}; for two different "
                                 f"sets use paired=False")
            if np.array_equal(side_a.x, side_b.x):
                raise ValueError("a and b are identical: comparing a result with itself is an "
                                 "identity, not a claim; test it in a unit test instead")
            sides.append(side_b)
    else:
        pair = {}
        for arg, value in (("units", units), ("labels", labels)):
            if value is not None and not (isinstance(value, tuple) and len(value) == 2):
                raise TypeError(f"with paired=False, {arg} must be a pair ({arg}_a, {arg}_b) "
                                f"or None")
            pair[arg] = value if value is not None else (None, None)
        sides = [_Side(stat, x, lab, u, name, f"labels[{i}]", f"units[{i}]")
                 for i, (x, lab, u, name) in enumerate(zip((a, b), pair["labels"],
                                                           pair["units"], ("a", "b"),
                                                           strict=True))]
    point = [float(s.values(np.ones((1, s.n_units)))[0]) for s in sides]
    seq = np.random.SeedSequence(derive_seed("claims-bootstrap", key))
    rngs = [np.random.default_rng(s) for s in seq.spawn(len(sides))]
    draws = _resampled(sides, rngs, shared=paired, resamples=resamples)
    delta = draws[0] - draws[1] if len(sides) == 2 else draws[0] - reference
    if not np.isfinite(delta).all():
        bad = int((~np.isfinite(delta)).sum())
        raise ValueError(f"{bad} of {resamples} resamples give no finite {stat.name} (e.g. no "
                         f"positive or no negative row drawn): too few units for this claim")
    value = point[0] - point[1] if len(sides) == 2 else point[0] - reference
    if paired and len(sides) == 2 and np.ptp(delta) <= 1e-12 * max(1.0, abs(value)):
        raise ValueError(f"every resample gives the same Δ = {value:.6g}: the difference does "
                         f"not depend on which units are drawn, so it holds by construction "
                         f"(an identity: test it in a unit test) or every unit agrees exactly "
                         f"(state that fact with claims.claim)")
    low, high = np.percentile(delta, [100 * (1 - LEVEL) / 2, 100 * (1 + LEVEL) / 2])
    sets = sides if not paired else sides[:1]
    return Estimate(value=value, low=float(low), high=float(high), statistic=stat.name,
                    difference=len(sides) == 2, units=tuple(s.n_units for s in sets),
                    rows=tuple(s.n for s in sets), resamples=resamples, paired=paired,
                    draws=delta)


# --------------------------------------------------------------------------- verdicts


def _statement(statement: object) -> str:
    if not isinstance(statement, str) or not statement.strip():
        raise TypeError("statement must be a non-empty string: the sentence being checked")
    return statement


def _raising() -> bool:
    return os.environ.get(RAISE_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def _report(record: dict) -> None:
    path = os.environ.get(REPORT_ENV, "").strip()
    if path:
        record = {"seed": course_seed(), **record}
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record, default=float, ensure_ascii=False) + "\n")


def _verdict(kind: str, statement: str, holds: bool, evidence: str, *, mark: str = "✓",
             verdict: str = "", suggestion: str = "", est: Estimate | None = None,
             numbers: dict | None = None) -> None:
    """Print the ✓ line, or raise/print the failure; record it either way."""
    record = {"statement": statement, "kind": kind, "holds": holds,
              "verdict": "holds" if holds else verdict, "evidence": evidence,
              "numbers": numbers or {}}
    if est is not None:
        record.update(value=est.value, low=est.low, high=est.high, statistic=est.statistic,
                      units=list(est.units), rows=list(est.rows), resamples=est.resamples)
    if holds:
        _report(record)
        print(f"{mark} {statement}" + (f" ({evidence})" if evidence else ""))
        return
    record["suggestion"] = suggestion
    _report(record)
    message = (f"the chapter says {statement!r}, but this run does not support it: {verdict}"
               + (f" ({evidence})" if evidence else "")
               + (f". Suggested: {suggestion}" if suggestion else
                  ". Rewrite the sentence to match the numbers."))
    if _raising():
        raise ClaimError(message, statement=statement, kind=kind, verdict=verdict,
                         suggestion=suggestion, estimate=est)
    print(f"✗ {statement}" + (f" ({evidence})" if evidence else "")
          + f" → {verdict}" + (f"; suggested: {suggestion}" if suggestion else ""))


def _recorded_errors(fn):
    """Bad input still raises, but a sweep's report sees the broken call too."""
    @functools.wraps(fn)
    def wrapper(statement, *args, **kwargs):
        try:
            return fn(statement, *args, **kwargs)
        except (ValueError, TypeError) as error:
            _report({"statement": str(statement), "kind": fn.__name__, "holds": False,
                     "verdict": "error", "evidence": f"{type(error).__name__}: {error}"})
            raise
    return wrapper


def _side_claim(kind: str, statement: str, est: Estimate, side: str, reference: float) -> None:
    """Decide ``side`` ("greater" / "less" / "tie") of the interval against ``reference``."""
    evidence = est.describe()
    ref = f"{float(reference):g}"
    if reference != 0 or not est.difference:
        evidence += f"; {'threshold' if kind in ('above', 'below') else 'reference'} {ref}"
    above_ref, below_ref = est.low > reference, est.high < reference
    holds = {"greater": above_ref, "less": below_ref, "tie": not (above_ref or below_ref)}[side]
    if holds:
        _verdict(kind, statement, True, evidence, est=est, numbers={"reference": reference})
        return
    what = "difference" if est.difference and reference == 0 else f"difference from {ref}"
    if side == "tie":
        direction = "above" if above_ref else "below"
        verdict = f"a clear {what}: the 95% interval lies {direction} {ref}"
        fix = "claims.greater" if above_ref else "claims.less"
        suggestion = (f"state the direction ('{'higher' if above_ref else 'lower'}'), "
                      f"checked with {fix}")
    elif not (above_ref or below_ref):
        verdict = f"no clear {what}: the 95% interval contains {ref}"
        suggestion = (f"'no clear {what}' (claims.tie), or gather more units")
    else:
        verdict = f"reversed: the 95% interval lies {'below' if side == 'greater' else 'above'}" \
                  f" {ref}"
        suggestion = "state the reverse direction (swap the sides or use " + (
            "claims.less)" if side == "greater" else "claims.greater)")
    _verdict(kind, statement, False, evidence, verdict=verdict, suggestion=suggestion,
             est=est, numbers={"reference": reference})


def _compare(kind: str, statement: str, a, b, side: str, **evidence) -> None:
    """stat(A) − stat(B) against 0, or stat(A) against a number ``b`` (a stated reference)."""
    statement = _statement(statement)
    reference = 0.0
    if b is not None and _is_number(b):
        reference, b = float(_as_numbers(b, "b")), None
    est = estimate(a, b, key=statement, **evidence)
    _side_claim(kind, statement, est, side, reference)


# The evidence arguments of every interval claim (a, b, units, statistic, labels, paired,
# resamples) are those of :func:`estimate`; ``b`` may also be a number (a stated reference,
# e.g. a paper's value) or None (stat(A) against 0). Each prints
# ``✓ statement (Δ = … [low, high], U units, R resamples)`` or raises :class:`ClaimError`.


@_recorded_errors
def greater(statement: str, a: object, b: object = None, *, units: object = None,
            statistic: object = "mean", labels: object = None, paired: bool = True,
            resamples: int = RESAMPLES) -> None:
    """"A beats B": holds when the whole 95% interval of stat(A) − stat(B) lies above 0.

    Example: ``claims.greater("ODIN separates snow 5 better than MSP", odin, msp,
    labels=is_clean, statistic="auroc", units=base_id)``.
    """
    _compare("greater", statement, a, b, "greater", units=units, statistic=statistic,
             labels=labels, paired=paired, resamples=resamples)


@_recorded_errors
def less(statement: str, a: object, b: object = None, *, units: object = None,
         statistic: object = "mean", labels: object = None, paired: bool = True,
         resamples: int = RESAMPLES) -> None:
    """"A is lower than B": holds when the whole 95% interval of stat(A) − stat(B) lies
    below 0 (e.g. a deletion AUC, where lower is better).

    Example: ``claims.less("Grad-CAM's deletion AUC is lower than the random map's",
    cam_curves, random_curves, statistic="deletion_auc")``.
    """
    _compare("less", statement, a, b, "less", units=units, statistic=statistic,
             labels=labels, paired=paired, resamples=resamples)


@_recorded_errors
def tie(statement: str, a: object, b: object = None, *, units: object = None,
        statistic: object = "mean", labels: object = None, paired: bool = True,
        resamples: int = RESAMPLES) -> None:
    """"No clear difference": holds when the 95% interval of stat(A) − stat(B) contains 0
    (with ``b`` a number, e.g. 0.5 for "at chance": when it contains that number).

    A wide interval passes too, and the printed interval shows how little that says.
    Example: ``claims.tie("the random score sits at chance", random_scores, 0.5,
    labels=is_clean, statistic="auroc")``.
    """
    _compare("tie", statement, a, b, "tie", units=units, statistic=statistic,
             labels=labels, paired=paired, resamples=resamples)


def _threshold(threshold: object) -> float:
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.integer,
                                                                  np.floating)):
        raise TypeError(f"threshold must be a number the sentence states (e.g. 0.5), got "
                        f"{type(threshold).__name__}")
    t = float(threshold)
    if not math.isfinite(t):
        raise ValueError(f"threshold must be finite, got {t}")
    if not _round_enough(t):
        raise ValueError(f"threshold {t!r} is not a round number: state one with at most two "
                         f"significant digits (e.g. {float(f'{t:.1g}'):g}), never a value placed "
                         f"just under the observed one")
    return t


def _threshold_claim(kind, statement, a, b, threshold, side, **evidence) -> None:
    statement = _statement(statement)
    t = _threshold(threshold)
    if b is not None and _is_number(b):
        raise TypeError("b must be per-row values (for a difference above the threshold) or "
                        "None; the number goes into threshold=")
    est = estimate(a, b, key=statement, **evidence)
    _side_claim(kind, statement, est, side, t)


@_recorded_errors
def above(statement: str, a: object, b: object = None, *, threshold: float,
          units: object = None, statistic: object = "mean", labels: object = None,
          paired: bool = True, resamples: int = RESAMPLES) -> None:
    """"Above chance (0.5)": holds when the whole 95% interval of stat(A) (or of
    stat(A) − stat(B)) lies above ``threshold``, a round number the sentence states (at most
    two significant digits). A threshold inside the interval fails.

    Example: ``claims.above("MSP separates the GO sign from clean signs above chance (0.5)",
    msp, labels=is_clean, statistic="auroc", threshold=0.5)``.
    """
    _threshold_claim("above", statement, a, b, threshold, "greater", units=units,
                     statistic=statistic, labels=labels, paired=paired, resamples=resamples)


@_recorded_errors
def below(statement: str, a: object, b: object = None, *, threshold: float,
          units: object = None, statistic: object = "mean", labels: object = None,
          paired: bool = True, resamples: int = RESAMPLES) -> None:
    """"Below 0.1": holds when the whole 95% interval lies below ``threshold`` (a round
    number the sentence states). A threshold inside the interval fails.

    Example: ``claims.below("GradNorm is reversed on textures (AUROC below 0.5)", gradnorm,
    labels=is_clean, statistic="auroc", threshold=0.5)``.
    """
    _threshold_claim("below", statement, a, b, threshold, "less", units=units,
                     statistic=statistic, labels=labels, paired=paired, resamples=resamples)


@_recorded_errors
def over_seeds(statement: str, values_by_seed: object, *, side: str = "greater",
               threshold: float = 0.0) -> None:
    """"For every seed": holds when every seed's value lies on ``side`` of ``threshold``.

    Args:
        values_by_seed: one number per seed (e.g. Δ AUAC of GradTrust − MSP for each of the
            five ensemble members): a mapping seed → value, a pandas Series, or a sequence.
            At least 2 seeds.
        side: ``"greater"`` (every value > threshold) or ``"less"`` (every value <).
        threshold: 0 (a difference) or a round number the sentence states.

    Prints ``✓ statement (0.021 ± 0.004 over 5 seeds, every seed > 0: min 0.015)`` (mean ±
    SD). Example: ``claims.over_seeds("GradTrust beats MSP for every ensemble member",
    {m: gt[m] - msp[m] for m in members})``.
    """
    statement = _statement(statement)
    if side not in ("greater", "less"):
        raise ValueError(f"side must be 'greater' or 'less', got {side!r}")
    t = _threshold(threshold)
    if isinstance(values_by_seed, Mapping):
        seeds, raw = list(values_by_seed.keys()), list(values_by_seed.values())
    elif hasattr(values_by_seed, "index") and hasattr(values_by_seed, "to_numpy"):
        seeds, raw = list(values_by_seed.index), values_by_seed.to_numpy()
    else:
        raw = values_by_seed
        seeds = None
    v = _as_numbers(raw, "values_by_seed")
    if v.ndim != 1:
        raise ValueError(f"values_by_seed must give one number per seed, got shape {v.shape}")
    if len(v) < 2:
        raise ValueError(f"values_by_seed needs at least 2 seeds, got {len(v)}: one seed says "
                         f"nothing about the others")
    seeds = list(range(len(v))) if seeds is None else seeds
    ok = v > t if side == "greater" else v < t
    sign = ">" if side == "greater" else "<"
    sd = float(v.std(ddof=1))
    d = _decimals(*v, width=max(sd, float(v.max() - v.min())))
    worst = float(v.min() if side == "greater" else v.max())
    evidence = (f"{_fixed(float(v.mean()), d)} ± {_fixed(sd, d)} over {len(v)} seeds, every "
                f"seed {sign} {t:g}: {'min' if side == 'greater' else 'max'} "
                f"{_fixed(worst, d)}")
    numbers = {"by_seed": {str(s): float(x) for s, x in zip(seeds, v, strict=True)},
               "mean": float(v.mean()), "sd": sd, "threshold": t}
    if ok.all():
        _verdict("over_seeds", statement, True, evidence, numbers=numbers)
        return
    failing = ", ".join(f"{s}: {_fixed(float(x), d)}" for s, x, o in zip(seeds, v, ok,
                                                                        strict=True) if not o)
    evidence = evidence.replace("every seed", f"{int(ok.sum())} of {len(v)} seeds")
    verdict = f"holds at {int(ok.sum())} of {len(v)} seeds (not at {failing})"
    suggestion = ("say that it depends on the seed, or state the mean ± SD without a direction"
                  if ok.any() else "reversed at every seed: state the other direction")
    _verdict("over_seeds", statement, False, evidence, verdict=verdict,
             suggestion=suggestion, numbers=numbers)


def _truth(holds: object, name: str = "holds") -> bool:
    if hasattr(holds, "numel") and hasattr(holds, "item"):
        if holds.numel() != 1:
            raise TypeError(f"{name} must be a single truth value, got a tensor of shape "
                            f"{tuple(holds.shape)}; reduce it with .all() or .any()")
        holds = holds.item()
    if isinstance(holds, np.ndarray):
        if holds.size != 1:
            raise TypeError(f"{name} must be a single truth value, got an array of shape "
                            f"{holds.shape}; reduce it with .all() or .any()")
        holds = holds.item()
    if not isinstance(holds, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool (the result of a comparison), got "
                        f"{type(holds).__name__}")
    return bool(holds)


def _numbers(numbers: dict) -> str:
    return ", ".join(f"{k}={format_number(v)}" for k, v in numbers.items())


def _parts(outcomes: object, parts: object) -> tuple[list[str], list[bool]]:
    """Named outcomes: a mapping, a pandas Series, or a sequence with ``parts=`` names."""
    if isinstance(outcomes, Mapping):
        names, flags = list(outcomes.keys()), list(outcomes.values())
    elif hasattr(outcomes, "index") and hasattr(outcomes, "to_numpy") and parts is None:
        names, flags = list(outcomes.index), list(outcomes.to_numpy())
    elif parts is not None and isinstance(outcomes, Iterable):
        if hasattr(outcomes, "detach"):
            outcomes = outcomes.detach().cpu().numpy()
        flags = list(np.asarray(outcomes).reshape(-1)) if isinstance(outcomes, np.ndarray) \
            else list(outcomes)
        names = list(parts)
        if len(names) != len(flags):
            raise ValueError(f"parts must name every outcome: {len(names)} names for "
                             f"{len(flags)} outcomes")
    else:
        raise TypeError("outcomes must name its parts: a dict {part: bool}, a pandas Series "
                        "of bools, or a sequence of bools with parts=[names]")
    if len(flags) < 2:
        raise ValueError("outcomes must hold at least two parts: one part cannot be mixed")
    return [str(n) for n in names], [_truth(f, f"outcomes[{n!r}]") for n, f in
                                     zip(names, flags, strict=True)]


@_recorded_errors
def mixed(statement: str, outcomes: object, *, yes: str, no: str, most: str | None = None,
          expected: Mapping | None = None, parts: Iterable | None = None,
          min_share: float = MIXED_MIN_SHARE, **numbers: object) -> None:
    """"Some, not all": the parts go both ways, each side for at least 20% of them.

    Args:
        outcomes: which way each *named* part goes: a dict ``{part: bool}``, a pandas Series
            of bools (index = parts), or a sequence of bools with ``parts=`` names. True means
            the ``yes`` direction.
        yes, no: what True and False mean, as the sentence says it (e.g. ``yes="the gradient
            score wins"``, ``no="reconstruction error wins"``); printed with their parts.
        most: ``"yes"`` or ``"no"`` when the sentence says "most …": that side must hold for
            more than half of the parts.
        expected: ``{part: bool}`` for the parts the sentence names ("wins on snow 5, loses on
            the GO sign"): each of them must go the stated way.
        min_share: the smallest share each side needs (at least :data:`MIXED_MIN_SHARE` =
            0.2, at most 0.5): "mixed" at 1 of 12 is "all but one", an exact count for
            :func:`claim`.
        numbers: further evidence printed with the verdict.

    Prints ``≈ statement (yes: k of n [parts]; no: n-k of n [parts])``.
    """
    statement = _statement(statement)
    for arg, value in (("yes", yes), ("no", no)):
        if not isinstance(value, str) or not value.strip():
            raise TypeError(f"{arg} must be a non-empty str saying what a "
                            f"{'True' if arg == 'yes' else 'False'} outcome means")
    if most not in (None, "yes", "no"):
        raise ValueError(f"most must be None, 'yes' or 'no', got {most!r}")
    if isinstance(min_share, (bool, np.bool_)) or not isinstance(
            min_share, (int, float, np.integer, np.floating)) \
            or not MIXED_MIN_SHARE <= min_share <= 0.5:
        raise ValueError(f"min_share must lie in [{MIXED_MIN_SHARE}, 0.5], got {min_share!r}")
    names, flags = _parts(outcomes, parts)
    n, k = len(flags), sum(flags)
    need = math.ceil(min_share * n - 1e-9)

    def listing(side):
        chosen = [p for p, f in zip(names, flags, strict=True) if f == side]
        shown = ", ".join(chosen[:8]) + (", …" if len(chosen) > 8 else "")
        return f"{len(chosen)} of {n}" + (f" [{shown}]" if chosen else "")

    evidence = f"{yes}: {listing(True)}; {no}: {listing(False)}"
    if numbers:
        evidence += "; " + _numbers(numbers)
    problems = []
    if k < need or n - k < need:
        thin, count = (yes, k) if k < n - k else (no, n - k)
        problems.append(f"'{thin}' holds for only {count} of {n} parts (< {min_share:.0%})")
    if most == "yes" and not k > n / 2:
        problems.append(f"'most' {yes}, but only {k} of {n}")
    if most == "no" and not n - k > n / 2:
        problems.append(f"'most' {no}, but only {n - k} of {n}")
    if expected is not None:
        if not isinstance(expected, Mapping):
            raise TypeError("expected must be a dict {part: bool} of the parts the sentence "
                            "names")
        lookup = dict(zip(names, flags, strict=True))
        for part, way in expected.items():
            if str(part) not in lookup:
                raise ValueError(f"expected names the part {part!r}, which is not among the "
                                 f"outcomes ({', '.join(names[:8])})")
            if lookup[str(part)] != _truth(way, f"expected[{part!r}]"):
                problems.append(f"{part} goes the other way ({yes if lookup[str(part)] else no})")
    record = {"yes": k, "no": n - k, "parts": n,
              "outcomes": dict(zip(names, flags, strict=True))}
    if not problems:
        _verdict("mixed", statement, True, evidence, mark="≈", numbers=record)
        return
    if k in (0, n):
        suggestion = f"not mixed: every part says '{yes if k else no}'; state that"
    elif k < need or n - k < need:
        suggestion = ("state the exact count with claims.claim (e.g. 'all but one') instead "
                      "of 'mixed'")
    else:
        suggestion = "name the parts as they went"
    _verdict("mixed", statement, False, evidence, verdict="; ".join(problems),
             suggestion=suggestion, numbers=record)


@_recorded_errors
def claim(statement: str, holds: object, **numbers: object) -> None:
    """An exact fact of this run: print ``✓ statement (numbers)``, or raise :class:`ClaimError`.

    Only for facts that need no interval: a count ("3 of the 14 classes …"), an equality to a
    reference ("matches captum to 1e-6"), a property of this run's data ("every image is in
    [0, 1]"). A comparison ("A beats B"), a threshold ("above chance") or "no difference" goes
    through :func:`greater`, :func:`tie`, :func:`above`, … on the raw per-unit values; an
    identity that holds by construction goes into a unit test, not here.

    Args:
        statement: the sentence as the chapter states it.
        holds: a single bool computed from this run's numbers (a 1-element tensor or array is
            accepted; anything else is a ``TypeError``, so a forgotten ``.all()`` cannot pass).
        numbers: the evidence, printed next to the statement either way.

    Returns nothing (so a claim at the end of a cell adds no second output line).
    """
    statement = _statement(statement)
    evidence = _numbers(numbers)
    _verdict("claim", statement, _truth(holds), evidence, verdict="false in this run",
             numbers={k: format_number(v) for k, v in numbers.items()})
