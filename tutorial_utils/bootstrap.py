"""The cluster bootstrap: a statistic of per-unit evidence with its 95% interval.

:func:`estimate` resamples **units** (the independent draws: a base image with its
challenged, augmented and attacked copies is one unit) and returns an :class:`Estimate`: the
statistic (or the difference of two, paired) on the data with the 2.5% and 97.5% percentiles
of 2,000 resampled values. :mod:`tutorial_utils.claims` turns an estimate into the verdict of
a result sentence; this module knows nothing about sentences.

**Evidence and units.** ``a`` and ``b`` hold one value per row (a sample, an image, a pair),
shape ``(N,)`` (``(N, S+1)`` curves for the curve statistics). Rows are paired: row ``i`` of
``a`` and of ``b`` are the same image under two methods. ``units`` (N,) gives each row the
integer id of its unit; rows that share an id are resampled together, so 10 copies of 20
images give the interval of 20 images, not of 200. The interval is the 95% percentile
interval of a paired bootstrap over units: the same drawn units enter stat(A) and stat(B).
Unpaired sets (two statistics measured on different images) take ``paired=False``: each set
is resampled on its own (``units``/``labels`` as a pair).

**Statistics.** ``statistic`` is ``"mean"`` (default), ``"accuracy"`` (of 0/1 correct flags),
``"auroc"`` (``labels`` (N,) with 1 = positive = in-distribution; scores higher = more
in-distribution), ``"auac"`` (``a`` = trust (N,), ``labels`` = correct flags; as
:func:`tutorial_utils.metrics.auac`), ``"curve_auc"`` / ``"deletion_auc"`` /
``"insertion_auc"`` (``a`` = per-unit curves (N, S+1) on evenly spaced fractions; the mean of
the rows' trapezoid areas, as :func:`tutorial_utils.evaluation.curve_auc`),
``"mutual_information"`` (``a`` = integer pairs (N, 2), e.g. (label, decision); I(A; B) in
bits), or a callable
``f(values, weights[, labels]) -> (R,)``: ``weights`` (R, N) says how often each row was drawn
in each of R resamples (the data themselves are one row of ones), so ``f`` is a *weighted*
statistic evaluated for all resamples at once. For AUROC, units whose rows all carry one label
are resampled within their label (the numbers of ID and OOD units stay as designed); if a
unit spans both labels (a clean image and its challenged copy), units are resampled as wholes.

**Vectorised.** A statistic is prepared once per side (sorting, ranks) and then maps a
(R, U) matrix of unit draw counts to R values: no Python loop over resamples. AUROC sorts once
and reads ranks from cumulative sums; AUAC sorts once and locates all resamples' percentiles
with one sorted search (see :class:`_AUAC`). The resamples are evaluated in chunks small
enough for the CPU cache, one chunk per core at a time (threads: NumPy's loops release the
GIL); the values do not depend on the chunking.

**Seeds.** The resamples derive from the course seed (``TUTORIAL_SEED``, see
:func:`tutorial_utils.utils.derive_seed`) and ``key`` (the claims pass their statement), so a
run is reproducible, another course seed draws other resamples, and claims do not share draws.

Bad input (a length mismatch, NaNs, an unknown statistic) raises ``ValueError``/``TypeError``
naming the argument.
"""

from __future__ import annotations

import functools
import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from tutorial_utils.utils import derive_seed

__all__ = ["Estimate", "estimate", "STATISTICS", "RESAMPLES", "LEVEL"]

RESAMPLES = 2_000  # bootstrap resamples per estimate
LEVEL = 0.95  # the interval's coverage
_MAX_CELLS = 4_000_000  # resamples × rows per batch of draws (memory of one weights matrix)
# resamples × rows per evaluation of a statistic: a chunk's arrays stay in the CPU's cache
# (a statistic is computed on each chunk of a batch; the draws do not depend on it)
_CACHE_CELLS = 200_000


# --------------------------------------------------------------------------- numbers


def _decimals(*values: float, width: float) -> int:
    """Decimals that show an interval of ``width``: two significant digits of the width, at
    least three below 10, at most six."""
    d = 3 if width <= 0 else int(np.clip(1 - math.floor(math.log10(width)), 0, 6))
    return max(d, 3) if max(abs(v) for v in values) < 10 else d


def _fixed(value: float, d: int) -> str:
    return f"{value + 0.0:.{d}f}".replace("-0." + "0" * d, "0." + "0" * d) if d else \
        f"{value + 0.0:,.0f}"



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
    :func:`tutorial_utils.metrics.auac` computes it on the resampled (repeated) rows.

    All resamples at once: the rows are sorted by trust once; per resample one cumulative sum
    of the draws says where each trust group ends among the repeated rows (each resample
    lifted above the one before, so one sorted search serves them all), and the kept rows and
    their correct ones are read off cumulative sums. np.percentile's threshold
    lerp(v[lo], v[lo + 1], γ) lies above v[lo] exactly when position lo + 1 starts a new
    group and γ > 0, unless two trust values lie within a few ulps; only then are the
    thresholds computed from both values (a second search).
    """

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
        # column 0 of the draw counts holds each resample's lift; the units follow
        cols0, starts0 = np.r_[0, cols + 1], np.r_[0, starts + 1]
        c_cols0 = np.r_[0, cols[correct] + 1]  # the correct rows' units, in trust order
        c_before = np.r_[np.r_[0, np.cumsum(correct)][starts], int(correct.sum())]  # (G + 1,)
        q = self.q / 100.0
        row_q = np.diff(q)
        gap = float(np.diff(values).min()) if n_groups > 1 else math.inf
        tiny = 8 * np.finfo(float).eps * max(1.0, float(np.abs(values).max()))

        def stat(counts):
            r = len(counts)
            rows_max = int(counts.max()) * len(cols) + 1  # more rows than any resample has
            itype = np.int32 if rows_max * (r + 1) < 2**31 else np.int64
            lift = np.arange(r, dtype=itype) * itype(rows_max)  # (R,)
            c0 = np.empty((r, counts.shape[1] + 1), itype)
            c0[:, 0], c0[:, 1:] = lift, counts
            w0 = np.take(c0, cols0, axis=1)  # (R, N + 1): the lift, then each sorted row
            if ties:
                w0 = np.add.reduceat(w0, starts0, axis=1)  # (R, G + 1) per trust group
            e = _cumsum_rows(w0)  # e[r, g] − lift[r]: rows drawn before group g (g = G: all)
            m = (e[:, -1] - lift).astype(np.int64)  # rows of each resample
            # np.percentile, linear: position q (M - 1), value lerp(v[lo], v[lo + 1], γ)
            pos = q[None, :] * (m[:, None] - 1)
            lo = np.floor(pos)
            gamma = pos - lo
            lo = lo.astype(itype)
            flat, lifted = e.ravel(), lift[:, None]
            i = np.searchsorted(flat, (lo + lifted).ravel(), side="right").reshape(r, -1)
            g_lo = i - 1 - (np.arange(r) * (n_groups + 1))[:, None]  # the group of lo
            start_lo = flat[i - 1] - lifted  # rows before lo's group
            nxt = (flat[i] - lifted == lo + 1) & (lo + 1 < m[:, None])  # lo + 1: a new group
            if gap * gamma[gamma > 0].min(initial=1.0) > tiny:
                up = nxt & (gamma > 0)  # the threshold lies above v[lo]
            else:  # trust values within a few ulps: compute each threshold
                a = values[g_lo]
                b = a.copy()
                i_hi = np.searchsorted(flat, (lo + 1 + lifted)[nxt], side="right")
                b[nxt] = values[(i_hi - 1) % (n_groups + 1)]
                diff = b - a
                thr = np.where(gamma >= 0.5, b - diff * (1 - gamma), a + diff * gamma)
                up = thr > a
            # kept: trust >= threshold, i.e. from position lo + 1 on, or from lo's group on
            kept = np.where(up, m[:, None] - 1 - lo, m[:, None] - start_lo)
            c_flat = _cumsum_rows(np.take(c0, c_cols0, axis=1)).ravel()  # lifted like e
            width = len(c_cols0)
            row0 = (np.arange(r) * width)[:, None]
            below = c_flat[row0 + c_before[g_lo + up]]  # correct rows not kept (+ lift)
            acc = (c_flat[row0 + width - 1] - below) / kept
            area = (0.5 * (acc[:, 1:] + acc[:, :-1]) * row_q).sum(1)
            return area / (q[-1] - q[0])
        return stat


class _MutualInformation:
    """Plug-in mutual information I(A; B) in bits of paired discrete outcomes, weighted.

    ``values`` (N, 2): per row the two outcomes (e.g. the true label and the decision), as
    integers. The joint histogram of every resample is one sum over the rows sorted by their
    (a, b) cell, done once for all resamples; as :func:`tutorial_utils.information.
    information_table`'s ``I(A;B)`` on the resampled rows.
    """

    name, ndim, needs_labels, binary_values = "I (bits)", 2, False, False

    def prepare(self, x, labels, cols):
        if x.shape[1] != 2 or not np.array_equal(x, np.round(x)):
            raise ValueError(f"values must hold integer pairs (a, b), shape (N, 2), for "
                             f"statistic 'mutual_information'; got shape {x.shape}")
        cells, code = np.unique(x.astype(np.int64), axis=0, return_inverse=True)
        code = code.reshape(-1)
        order = np.argsort(code, kind="stable")
        starts = np.flatnonzero(np.r_[True, code[order][1:] != code[order][:-1]])
        a_of = np.unique(cells[:, 0], return_inverse=True)[1].reshape(-1)  # (C,) a's index
        b_of = np.unique(cells[:, 1], return_inverse=True)[1].reshape(-1)
        to_a = np.eye(a_of.max() + 1)[a_of]  # (C, A) which a each cell belongs to
        to_b = np.eye(b_of.max() + 1)[b_of]
        cols = cols[order]

        def stat(counts):
            joint = np.add.reduceat(counts[:, cols], starts, axis=1)  # (R, C)
            total = joint.sum(1, keepdims=True)
            pa, pb = joint @ to_a, joint @ to_b  # (R, A), (R, B) marginal counts
            with np.errstate(divide="ignore", invalid="ignore"):
                terms = joint * np.log2(joint * total / (pa[:, a_of] * pb[:, b_of]))
            return np.where(joint > 0, terms, 0.0).sum(1) / total[:, 0]
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
              "insertion_auc": _CurveAUC("insertion AUC"),
              "mutual_information": _MutualInformation()}


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


@functools.cache
def _pool() -> ThreadPoolExecutor | None:
    """Threads for the chunks of a built-in statistic (NumPy releases the GIL in its loops):
    one per CPU core this process may use, at most 4; None on a single core. A callable
    statistic runs in the calling thread (it may not be thread-safe)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    workers = min(4, cores or 1)
    return ThreadPoolExecutor(workers, thread_name_prefix="bootstrap") if workers > 1 else None


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
        self.stat, self.fn = stat, stat.prepare(x, y, self.cols)
        self.strata = _strata(stat, y, self.cols, self.n_units)

    def values(self, counts: np.ndarray) -> np.ndarray:
        """(R,) the statistic of each resample, from its (R, U) unit draw counts.

        Evaluated in chunks of resamples small enough for the CPU cache (``_CACHE_CELLS``
        weights): the same values as one call on all R, about twice as fast for an AUROC.
        """
        chunk = max(1, _CACHE_CELLS // max(1, self.n))
        if len(counts) <= chunk:
            return np.asarray(self.fn(counts), dtype=float)
        parts = [counts[i:i + chunk] for i in range(0, len(counts), chunk)]
        pool = None if isinstance(self.stat, _Callable) else _pool()
        done = pool.map(self.fn, parts) if pool is not None else map(self.fn, parts)
        return np.concatenate([np.asarray(v, dtype=float) for v in done])


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

